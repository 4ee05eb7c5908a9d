package crdt_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// hookModel is what an owner learns from PutHook and DeleteHook (the root
// package's tracker, for pins): it must end equal to the visible state.
type hookModel struct {
	mu sync.Mutex
	m  map[string]string
}

func (h *hookModel) install(cfg *crdt.Config) {
	h.m = map[string]string{}
	cfg.PutHook = func(k ds.Key, v []byte) {
		h.mu.Lock()
		h.m[k.String()] = string(v)
		h.mu.Unlock()
	}
	cfg.DeleteHook = func(k ds.Key) {
		h.mu.Lock()
		delete(h.m, k.String())
		h.mu.Unlock()
	}
}

// equal reports whether the model holds exactly r's visible keys and
// values, and describes the first difference.
func (h *hookModel) equal(t testing.TB, r *replica) (bool, string) {
	res, err := r.Query(context.Background(), dsq.Query{})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(es) != len(h.m) {
		return false, fmt.Sprintf("%d keys visible, %d in the hooks' model", len(es), len(h.m))
	}
	for _, e := range es {
		if v, ok := h.m[e.Key]; !ok || v != string(e.Value) {
			return false, fmt.Sprintf("key %s: visible %q, hooks' model %q (present %v)", e.Key, e.Value, v, ok)
		}
	}
	return true, ""
}

// catchUpScenario builds three replicas with a shared history, cuts p2
// off, writes on both sides (p2's own writes are acknowledged: Put
// returned), lets p0 take a snapshot (compacted when compact is set)
// with more writes above it, and heals. It returns the cluster, the
// snapshot, p2's stats at the heal and the keys only p2 wrote.
type catchUp struct {
	c      *cluster
	p2     *replica
	model  *hookModel
	info   crdt.SnapshotInfo
	before crdt.Stats
	mine   map[int]string
	rng    *rand.Rand
}

const catchUpKeys = 24

func (cu *catchUp) randomOps(t *testing.T, r *replica, n int) {
	ctx := context.Background()
	for range n {
		k := key(cu.rng.Intn(catchUpKeys))
		if cu.rng.Intn(3) == 0 {
			require.NoError(t, r.Delete(ctx, k))
		} else {
			require.NoError(t, r.Put(ctx, k, []byte(fmt.Sprintf("%s-%d", r.name, cu.rng.Intn(4)))))
		}
	}
}

func newCatchUp(t *testing.T, seed int64, gap int, compact bool) *catchUp {
	ctx := context.Background()
	cu := &catchUp{rng: rand.New(rand.NewSource(seed)), model: &hookModel{}, mine: map[int]string{}}
	names := []peer.ID{"p0", "p1"} // p2 is not live: compaction leaves it behind
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = 100 * time.Millisecond // nobody has a snapshot at first
	cfg.SnapshotCatchUpGap = gap
	cfg.CompactInterval = time.Hour // driven by hand
	if compact {
		cfg.LivePeers = func() []peer.ID { return names }
	}
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(seed)}
	cu.c = c
	for _, nm := range []string{"p0", "p1", "p2"} {
		cc := cfg
		cc.Self = peer.ID(nm)
		if nm == "p2" {
			cu.model.install(&cc)
		}
		c.add(nm, cc)
	}
	p0, p1, p2 := c.rs[0], c.rs[1], c.rs[2]
	cu.p2 = p2
	// Shared history.
	for _, r := range c.rs {
		cu.randomOps(t, r, 10)
	}
	waitFor(t, 20*time.Second, "shared history", func() bool { return synced(t, c.rs) })

	// p2 cut off: it writes the same keys and its own.
	c.partition(map[string]bool{"p2": true})
	cu.randomOps(t, p2, 15)
	for i := range 5 {
		v := fmt.Sprint("p2 only ", i)
		require.NoError(t, p2.Put(ctx, key(1000+i), []byte(v)))
		cu.mine[1000+i] = v
	}
	// The others write much more.
	cu.randomOps(t, p0, 15)
	cu.randomOps(t, p1, 15)
	writeBatches(t, p0, 2000, 2000+5*120, 5, pinValue)
	waitFor(t, 20*time.Second, "p0 and p1 synced", func() bool { return synced(t, c.rs[:2]) })
	info, err := p0.Snapshot(ctx)
	require.NoError(t, err)
	cu.info = info
	if compact {
		waitFor(t, 20*time.Second, "compacted on p0 and p1", func() bool {
			_, _ = p0.Compact(ctx)
			_, _ = p1.Compact(ctx)
			return p0.Stats().CompactedBlocks > 0 && p1.Stats().CompactedBlocks > 0
		})
	}
	// Above the snapshot.
	cu.randomOps(t, p0, 5)
	cu.randomOps(t, p1, 5)
	cu.before = p2.Stats()
	require.Zero(t, cu.before.SnapshotsMerged)
	c.partition(nil)
	return cu
}

// check waits for the cluster to settle after the heal and checks what
// every catch-up must give: the same state everywhere, p2's acknowledged
// writes kept (on every replica), the hooks in step with p2's state, and
// a final delete of every key from p0 emptying every replica (a stale
// element left by the merge would survive it).
func (cu *catchUp) check(t *testing.T) crdt.Stats {
	ctx := context.Background()
	c, p2 := cu.c, cu.p2
	waitFor(t, 30*time.Second, "all replicas synced after the heal", func() bool { return synced(t, c.rs) })
	healed := p2.Stats()
	for _, r := range c.rs {
		for i, v := range cu.mine {
			got, err := r.Get(ctx, key(i))
			require.NoError(t, err, "%s lost p2's acknowledged write of %s", r.name, key(i))
			require.Equal(t, v, string(got))
		}
	}
	ok, diff := cu.model.equal(t, p2)
	require.True(t, ok, "hooks out of step with p2's state: %s", diff)
	require.Empty(t, p2.Stats().Stuck)

	var keys []ds.Key
	res, err := c.rs[0].Query(ctx, dsq.Query{KeysOnly: true})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	for _, e := range es {
		keys = append(keys, ds.NewKey(e.Key))
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		require.NoError(t, c.rs[0].Delete(ctx, k))
	}
	waitFor(t, 20*time.Second, "all deleted", func() bool { return synced(t, c.rs) })
	for _, r := range c.rs {
		_, n := digest(t, r)
		require.Zero(t, n, r.name)
	}
	ok, diff = cu.model.equal(t, p2)
	require.True(t, ok, "hooks out of step with p2's state after the deletes: %s", diff)
	// And writes after that still agree.
	cu.randomOps(t, p2, 5)
	cu.randomOps(t, c.rs[0], 5)
	waitFor(t, 20*time.Second, "final", func() bool { return synced(t, c.rs) })
	return healed
}

// A replica far behind (not empty: it has the shared history and its own
// writes made while cut off) catches up from the newest snapshot instead
// of replaying: it applies only the deltas above the snapshot, merges the
// snapshot into its state, keeps its acknowledged writes, and ends equal
// to the replicas that replayed everything (concurrent adds, overwrites
// and deletes of the same keys on both sides).
func TestSnapshotCatchUpFarBehind(t *testing.T) {
	for seed := range int64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			cu := newCatchUp(t, seed, 50, false)
			missing := cu.info.Nodes - cu.before.DAGNodes
			st := cu.check(t) // p2's stats once synced after the heal
			total := st.DAGNodes
			replayed := st.RemoteNodes - cu.before.RemoteNodes
			t.Logf("p2 had %d nodes, the snapshot covers %d (%d more); after the heal p2 applied %d remote nodes (the whole history: %d), merged %d snapshot(s)",
				cu.before.DAGNodes, cu.info.Nodes, missing, replayed, total, st.SnapshotsMerged)
			require.Greater(t, missing, uint64(100))
			require.EqualValues(t, 1, st.SnapshotsMerged, "caught up from the snapshot")
			require.Zero(t, st.SnapshotsLoaded, "merged, not loaded as a fresh replica")
			// Only the 10 deltas written above the snapshot are replayed.
			require.Less(t, replayed, missing/2, "p2 replayed the history instead of using the snapshot")
		})
	}
}

// A replica whose walk needs history compacted away (it was not live when
// p0 and p1 compacted) recovers by itself: its walk gets stuck on a
// deleted block, it merges the snapshot that covers it, and ends in sync
// with nothing acknowledged lost and its hooks in step. The far-behind
// rule is off (gap of 2^30) so that only the stuck path can help.
func TestSnapshotCatchUpCompactedHistory(t *testing.T) {
	for seed := range int64(2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			cu := newCatchUp(t, seed, 1<<30, true)
			waitFor(t, 20*time.Second, "p2 stuck or recovered", func() bool {
				st := cu.p2.Stats()
				return len(st.Stuck) > 0 || st.SnapshotsMerged > 0
			})
			st := cu.check(t)
			require.EqualValues(t, 1, st.SnapshotsMerged, "recovered from the snapshot")
			require.NotZero(t, st.FetchErrors, "its walk did hit compacted history")
		})
	}
}
