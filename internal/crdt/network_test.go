package crdt_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// writeAll has each replica write n keys from `writers` goroutines.
func writeAll(t *testing.T, rs []*replica, n, writers int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for p, r := range rs {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += writers {
					if err := r.Put(ctx, key(p*1_000_000+i), []byte(fmt.Sprintf("%s-%d", r.name, i))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
}

// ancestorsOf walks the DAG (from the network stores) below c.
func ancestorsOf(t *testing.T, dag crdt.DAG, c cid.Cid) map[cid.Cid]bool {
	seen := map[cid.Cid]bool{}
	stack := []cid.Cid{c}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		raw, err := dag.Get(context.Background(), x)
		require.NoError(t, err)
		d, err := crdt.DecodeDelta(raw, crdt.Limits{})
		require.NoError(t, err)
		for _, l := range d.Links {
			if !seen[l] {
				seen[l] = true
				stack = append(stack, l)
			}
		}
	}
	return seen
}

func checkHeadHygiene(t *testing.T, c *cluster, r *replica) {
	hs := r.Heads()
	dag := c.net.DAG(r.name)
	for _, h := range hs {
		anc := ancestorsOf(t, dag, h)
		for _, o := range hs {
			require.False(t, anc[o], "%s: head %s is an ancestor of head %s", r.name, o, h)
		}
	}
}

// T1/T11: 5 peers write 1,000 keys each concurrently; all converge; no
// head is an ancestor of another; after one more write, one head each.
func TestFivePeersConverge(t *testing.T) {
	c := newCluster(t, 5, 1, crdt.Config{RebroadcastInterval: 200 * time.Millisecond})
	start := time.Now()
	writeAll(t, c.rs, 1000, 4)
	t.Logf("5x1000 writes acknowledged in %v", time.Since(start))
	waitFor(t, 30*time.Second, "convergence", func() bool { return converged(t, c.rs) })
	t.Logf("converged %v after start", time.Since(start))
	_, n := digest(t, c.rs[0])
	require.Equal(t, 5000, n)
	for _, r := range c.rs {
		checkHeadHygiene(t, c, r)
	}
	require.NoError(t, c.rs[2].Put(context.Background(), key(-1), []byte("last")))
	waitFor(t, 10*time.Second, "one head everywhere", func() bool {
		for _, r := range c.rs {
			if len(r.Heads()) != 1 {
				return false
			}
		}
		return converged(t, c.rs)
	})
	var total uint64
	for _, r := range c.rs {
		total += r.Stats().LocalDeltas
	}
	for _, r := range c.rs {
		require.Equal(t, total, r.Stats().DAGNodes, "every peer holds every delta exactly once")
	}
	// Links per node <= number of concurrent writers (T11), on every node
	// (the single head's ancestors are the whole DAG). A peer's deltas
	// form a chain (each descends from the previous one), so the heads a
	// delta supersedes that are not ancestors of one another are at most
	// one per writing peer. A delta may also link to a stale head: a node
	// whose child a walk in progress had not reached yet (it is then an
	// ancestor of another link of the same delta); those redundant links
	// are bounded by MaxLinks only, and counted here.
	links := dagLinks(t, c.net.DAG("p0"), c.rs[0].Heads()[0])
	require.EqualValues(t, total, len(links), "the head's ancestors are every delta")
	maxLinks, maxIndep, redundant := 0, 0, 0
	anc := ancestorSets(links)
	for _, ls := range links {
		indep := 0
		for _, l := range ls {
			covered := false
			for _, m := range ls {
				if m != l && anc(m, l) {
					covered = true
					break
				}
			}
			if !covered {
				indep++
			}
		}
		maxLinks, maxIndep = max(maxLinks, len(ls)), max(maxIndep, indep)
		redundant += len(ls) - indep
	}
	t.Logf("%d nodes: max links per node %d, max independent links %d, %d redundant links (to stale heads)", len(links), maxLinks, maxIndep, redundant)
	require.LessOrEqual(t, maxIndep, len(c.rs), "independent links per node <= number of concurrent writers")
	require.LessOrEqual(t, maxLinks, crdt.DefaultMaxLinks)
}

// dagLinks returns the links of head and of each of its ancestors.
func dagLinks(t *testing.T, dag crdt.DAG, head cid.Cid) map[cid.Cid][]cid.Cid {
	out := map[cid.Cid][]cid.Cid{}
	stack := []cid.Cid{head}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := out[x]; ok {
			continue
		}
		raw, err := dag.Get(context.Background(), x)
		require.NoError(t, err)
		d, err := crdt.DecodeDelta(raw, crdt.Limits{})
		require.NoError(t, err)
		out[x] = d.Links
		stack = append(stack, d.Links...)
	}
	return out
}

// ancestorSets returns a predicate: anc(a, b) reports whether b is a
// strict ancestor of a (bit sets, one per node of links).
func ancestorSets(links map[cid.Cid][]cid.Cid) func(a, b cid.Cid) bool {
	idx := make(map[cid.Cid]int, len(links))
	for c := range links {
		idx[c] = len(idx)
	}
	words := (len(idx) + 63) / 64
	sets := make([][]uint64, len(idx))
	var walk func(c cid.Cid) []uint64
	walk = func(c cid.Cid) []uint64 {
		i := idx[c]
		if sets[i] != nil {
			return sets[i]
		}
		a := make([]uint64, words)
		for _, l := range links[c] {
			j := idx[l]
			a[j/64] |= 1 << (j % 64)
			for w, bits := range walk(l) {
				a[w] |= bits
			}
		}
		sets[i] = a
		return a
	}
	for c := range links {
		walk(c)
	}
	return func(a, b cid.Cid) bool {
		j := idx[b]
		return sets[idx[a]][j/64]&(1<<(j%64)) != 0
	}
}

// T4: 30% drop, 10% duplicates, reorder within 200 ms. Convergence within
// 3 x rebroadcast after the last op; no extra DAG nodes.
func TestMessageLoss(t *testing.T) {
	const rebroadcast = time.Second
	c := newCluster(t, 3, 42, crdt.Config{RebroadcastInterval: rebroadcast})
	c.bus.SetLoss(0.3, 0.1)
	c.bus.SetDelay(0, 200*time.Millisecond)
	ctx := context.Background()
	for i := range 2000 {
		r := c.rs[i%3]
		if i%10 == 9 {
			require.NoError(t, r.Delete(ctx, key(i-5)))
			continue
		}
		require.NoError(t, r.Put(ctx, key(i), []byte{byte(i)}))
	}
	last := time.Now()
	waitFor(t, 3*rebroadcast+2*time.Second, "convergence under loss", func() bool { return converged(t, c.rs) })
	t.Logf("converged %v after the last op; bus %+v", time.Since(last), c.bus.Stats())
	var total uint64
	for _, r := range c.rs {
		total += r.Stats().LocalDeltas
	}
	for _, r := range c.rs {
		require.Equal(t, total, r.Stats().DAGNodes, "duplicates must not add nodes")
	}
}

// T5: P's broadcasts are dropped for 50 writes, then one is delivered: the
// others walk down from it and get all 51 (no rebroadcast needed).
func TestCatchUpFromOneHead(t *testing.T) {
	c := newCluster(t, 3, 1, crdt.Config{RebroadcastInterval: time.Hour})
	ctx := context.Background()
	c.bus.DropFrom("p0", true)
	for i := range 50 {
		require.NoError(t, c.rs[0].Put(ctx, key(i), []byte("v")))
	}
	c.bus.DropFrom("p0", false)
	require.NoError(t, c.rs[0].Put(ctx, key(50), []byte("v")))
	start := time.Now()
	waitFor(t, 5*time.Second, "catch-up", func() bool { return converged(t, c.rs) })
	t.Logf("51 nodes caught up in %v", time.Since(start))
	_, n := digest(t, c.rs[1])
	require.Equal(t, 51, n)
}

// T6: one mid-branch block cannot be fetched by X: X keeps processing other
// nodes (gains new writes), reports the stuck node and dirty flag, and
// converges once the block is served.
func TestUnfetchableBranch(t *testing.T) {
	c := newCluster(t, 3, 1, crdt.Config{RebroadcastInterval: 200 * time.Millisecond, RetryMinBackoff: 50 * time.Millisecond, RetryMaxBackoff: time.Second})
	ctx := context.Background()
	x := c.rs[2]
	cutX := func(on bool) {
		c.bus.SetLink(func(from, to string) bool { return !on || (from != "p2" && to != "p2") })
	}
	cutX(true)
	var mid cid.Cid
	for i := range 100 {
		require.NoError(t, c.rs[0].Put(ctx, key(i), []byte("v")))
		if i == 49 {
			mid = c.rs[0].Heads()[0]
		}
	}
	waitFor(t, 10*time.Second, "p0/p1 converge", func() bool { return converged(t, c.rs[:2]) })
	x.dag.SetFault(mid, crdttest.FaultFail)
	cutX(false)
	waitFor(t, 10*time.Second, "X stuck on the mid block", func() bool {
		st := x.Stats()
		return len(st.Stuck) > 0 && st.Dirty
	})
	require.Equal(t, mid, x.Stats().Stuck[0].Cid)
	for i := range 500 {
		require.NoError(t, c.rs[1].Put(ctx, key(1000+i), []byte("new")))
	}
	waitFor(t, 10*time.Second, "X gains the 500 new keys despite the stuck block", func() bool {
		for i := range 500 {
			if ok, _ := x.Has(ctx, key(1000+i)); !ok {
				return false
			}
		}
		return true
	})
	st := x.Stats()
	require.True(t, st.Dirty)
	require.NotEmpty(t, st.Stuck)
	has, _ := x.Has(ctx, key(10))
	require.False(t, has, "keys below the stuck block are not there yet")
	x.dag.SetFault(mid, crdttest.FaultNone)
	served := time.Now()
	waitFor(t, 30*time.Second, "X converges after the block is served", func() bool {
		return converged(t, c.rs) && !x.Stats().Dirty
	})
	t.Logf("recovered %v after the block was served; fetch attempts of it: %d", time.Since(served), x.dag.Attempts(mid))
	require.Empty(t, x.Stats().Stuck)
}

// Corrupt and hanging fetches are retried, never applied.
func TestCorruptAndHangingFetches(t *testing.T) {
	// Deltas travel by fetch only, so that the fetches meet the faults.
	c := newCluster(t, 2, 1, crdt.Config{DAGSyncerTimeout: 100 * time.Millisecond, RetryMinBackoff: 20 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond, NoInlineDeltas: true})
	ctx := context.Background()
	c.rs[1].dag.SetEveryK(2, crdttest.FaultCorrupt)
	for i := range 30 {
		require.NoError(t, c.rs[0].Put(ctx, key(i), []byte("v")))
	}
	waitFor(t, 20*time.Second, "convergence with corrupt fetches", func() bool { return converged(t, c.rs) })
	require.Zero(t, c.rs[1].Stats().RejectedNodes)
	c.rs[1].dag.SetEveryK(3, crdttest.FaultHang)
	for i := range 30 {
		require.NoError(t, c.rs[0].Put(ctx, key(100+i), []byte("v")))
	}
	waitFor(t, 20*time.Second, "convergence with hanging fetches", func() bool { return converged(t, c.rs) })
	require.NotZero(t, c.rs[1].Stats().FetchErrors)
}

// Replicas that agree on their heads leave out most periodic
// rebroadcasts (Trickle): far fewer than one message per replica per
// interval; a replica that joins later still hears the heads.
func TestRebroadcastSuppressed(t *testing.T) {
	const n = 10
	c := newCluster(t, n, 7, crdt.Config{RebroadcastInterval: 50 * time.Millisecond})
	require.NoError(t, c.rs[3].Put(context.Background(), key(1), []byte("v")))
	waitFor(t, 20*time.Second, "one head everywhere", func() bool {
		for _, r := range c.rs {
			if len(r.Heads()) != 1 {
				return false
			}
		}
		return converged(t, c.rs)
	})
	counts := func() (sent, suppressed uint64) {
		for _, r := range c.rs {
			st := r.Stats()
			sent += st.SentBroadcasts
			suppressed += st.SuppressedRebroadcasts
		}
		return sent, suppressed
	}
	sent0, supp0 := counts()
	waitFor(t, 60*time.Second, "20 intervals of every replica", func() bool {
		sent, supp := counts()
		return (sent-sent0)+(supp-supp0) >= 20*n
	})
	sent, supp := counts()
	sent, supp = sent-sent0, supp-supp0
	t.Logf("periodic points: %d rebroadcasts sent, %d suppressed", sent, supp)
	require.LessOrEqual(t, sent, (sent+supp)/2, "agreeing replicas suppress most rebroadcasts")

	late := c.add("late", crdt.Config{RebroadcastInterval: 50 * time.Millisecond})
	waitFor(t, 20*time.Second, "the late replica has the heads", func() bool { return converged(t, c.rs) })
	v, err := late.Get(context.Background(), key(1))
	require.NoError(t, err)
	require.Equal(t, []byte("v"), v)
}
