package crdt_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
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
	return newCatchUpWith(t, seed, gap, compact, nil, nil)
}

// newCatchUpWith is newCatchUp with p2's store wrapped by wrap and its
// config changed by tune (either may be nil).
func newCatchUpWith(t *testing.T, seed int64, gap int, compact bool, wrap func(ds.Batching) ds.Batching, tune func(*crdt.Config)) *catchUp {
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
		if nm != "p2" {
			c.add(nm, cc)
			continue
		}
		cu.model.install(&cc)
		if tune != nil {
			tune(&cc)
		}
		st := newMemStore(t)
		if wrap != nil {
			st = wrap(st)
		}
		c.open(nm, st, cc)
	}
	p0, p1, p2 := c.rs[0], c.rs[1], c.rs[2]
	cu.p2 = p2
	// Shared history.
	for _, r := range c.rs {
		cu.randomOps(t, r, 10)
	}
	require.NoError(t, p0.Put(ctx, key(500), []byte("shared, deleted by p0 while p2 is away")))
	require.NoError(t, p0.Put(ctx, key(501), []byte("shared, deleted by p0 and overwritten by p2")))
	waitFor(t, 20*time.Second, "shared history", func() bool { return synced(t, c.rs) })

	// p2 cut off: it writes the same keys and its own.
	c.partition(map[string]bool{"p2": true})
	cu.randomOps(t, p2, 15)
	for i := range 5 {
		v := fmt.Sprint("p2 only ", i)
		require.NoError(t, p2.Put(ctx, key(1000+i), []byte(v)))
		cu.mine[1000+i] = v
	}
	require.NoError(t, p2.Put(ctx, key(501), []byte("p2 overwrote it")))
	cu.mine[501] = "p2 overwrote it" // add wins over p0's concurrent delete
	// The others write much more.
	require.NoError(t, p0.Delete(ctx, key(500)))
	require.NoError(t, p0.Delete(ctx, key(501)))
	require.NoError(t, p0.Put(ctx, key(502), []byte("new while p2 is away")))
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
	_, err := p2.Get(ctx, key(500))
	require.ErrorIs(t, err, ds.ErrNotFound, "p0's delete of a key p2 held reached p2")
	got, err := p2.Get(ctx, key(502))
	require.NoError(t, err)
	require.Equal(t, "new while p2 is away", string(got))
	ok, diff := cu.model.equal(t, p2) // so key 500 was deleted and 502 put through the hooks
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

// failingStore fails every batch commit once armed, which happens when
// the key arm is written and then after commits more commits.
type failingStore struct {
	ds.Batching
	arm     string
	after   int
	mu      sync.Mutex
	armed   bool
	left    int
	failed  int
	enabled bool
}

var errInjected = fmt.Errorf("injected commit failure")

func (f *failingStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	f.mu.Lock()
	if f.enabled && k.String() == f.arm && !f.armed {
		f.armed, f.left = true, f.after
	}
	f.mu.Unlock()
	return f.Batching.Put(ctx, k, v)
}

func (f *failingStore) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := f.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &failingBatch{Batch: b, f: f}, nil
}

func (f *failingStore) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

type failingBatch struct {
	ds.Batch
	f *failingStore
}

func (b *failingBatch) Commit(ctx context.Context) error {
	f := b.f
	f.mu.Lock()
	if f.enabled && f.armed {
		if f.left == 0 {
			f.failed++
			f.mu.Unlock()
			return errInjected
		}
		f.left--
	}
	f.mu.Unlock()
	return b.Batch.Commit(ctx)
}

// A merge interrupted after it started changing the state (here the
// store fails every commit after the first chunk's; the merge keeps
// retrying under the apply lock, so nothing else sees the half-merged
// state) resumes when the replica is opened again, and ends as an
// uninterrupted one: in sync, acknowledged writes kept, hooks in step.
func TestSnapshotCatchUpMergeResumes(t *testing.T) {
	var fs *failingStore
	wrap := func(st ds.Batching) ds.Batching {
		fs = &failingStore{Batching: st, arm: "/m/snap/merge/root", after: 1, enabled: true}
		return fs
	}
	small := func(c *crdt.Config) { c.SnapshotChunkSize = 2048 }
	cu := newCatchUpWith(t, 7, 50, false, wrap, small)
	waitFor(t, 20*time.Second, "merge failing mid-way", func() bool { return fs.failures() >= 2 })
	old := cu.p2
	require.True(t, old.Stats().CatchingUp)
	require.Zero(t, old.Stats().SnapshotsMerged)
	require.NoError(t, old.Close())
	fs.mu.Lock()
	fs.enabled = false
	fs.mu.Unlock()

	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotCatchUpGap = 50
	cfg.SnapshotChunkSize = 2048
	cfg.Self = "p2"
	cfg.Logger = testLogger(t)
	cu.model.mu.Lock()
	m := cu.model.m
	cu.model.install(&cfg)
	cu.model.m = m // the owner's view carries over
	cu.model.mu.Unlock()
	s2, err := crdt.New(context.Background(), fs, old.dag, old.ep, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	p2 := &replica{name: "p2", store: fs, dag: old.dag, ep: old.ep, Datastore: s2}
	cu.p2, cu.c.rs[2] = p2, p2
	require.EqualValues(t, 1, s2.Stats().SnapshotsMerged, "the merge was finished in New")
	cu.check(t)
}

// A trusted announcement naming a root that is not a snapshot (here a
// delta) with a huge covered count makes a replica with state think it
// is far behind: the merge fails in its first phase, changing nothing;
// the replica does not try that root again and catches up by replaying.
func TestSnapshotCatchUpInvalidSnapshot(t *testing.T) {
	ctx := context.Background()
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = 100 * time.Millisecond
	cfg.SnapshotCatchUpGap = 10
	cfg.DAGSyncerTimeout = 200 * time.Millisecond
	c := newCluster(t, 2, 1, cfg)
	p0, p1 := c.rs[0], c.rs[1]
	require.NoError(t, p1.Put(ctx, key(1), []byte("p1")))
	waitFor(t, 20*time.Second, "shared", func() bool { return synced(t, c.rs) })
	c.partition(map[string]bool{"p1": true})
	writeBatches(t, p0, 100, 300, 5, pinValue)
	require.NoError(t, p1.Put(ctx, key(2), []byte("p1 offline")))
	bad, err := crdt.EncodeAnnouncement(crdt.Announcement{Root: p0.Heads()[0], Height: 1 << 20, Nodes: 1 << 20})
	require.NoError(t, err)
	c.bus.Inject("p0", "p1", bad)
	waitFor(t, 20*time.Second, "the bad snapshot is known", func() bool {
		info, ok := p1.NewestSnapshot()
		return ok && info.Nodes == 1<<20
	})
	c.partition(nil)
	waitFor(t, 30*time.Second, "synced by replay", func() bool { return synced(t, c.rs) })
	st := p1.Stats()
	require.Zero(t, st.SnapshotsMerged)
	require.False(t, st.CatchingUp)
	got, err := p0.Get(ctx, key(2))
	require.NoError(t, err)
	require.Equal(t, "p1 offline", string(got))
}

// A walk stuck on a node that the newest snapshot does not cover (here a
// head nobody has) does not make the replica merge that snapshot: it
// fetches the snapshot's blocks once, sees the node is not covered,
// changes nothing and does not try that snapshot again.
func TestSnapshotCatchUpStuckNotCovered(t *testing.T) {
	ctx := context.Background()
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = 100 * time.Millisecond
	c := newCluster(t, 2, 1, cfg)
	p0, p1 := c.rs[0], c.rs[1]
	writeBatches(t, p0, 0, 50, 5, pinValue)
	waitFor(t, 20*time.Second, "synced", func() bool { return synced(t, c.rs) })
	ghost := rawCid(t, []byte("a block nobody has"))
	heads, err := crdt.EncodeMessage([]cid.Cid{ghost})
	require.NoError(t, err)
	c.bus.Inject("p0", "p1", heads)
	waitFor(t, 20*time.Second, "p1 stuck", func() bool {
		for _, st := range p1.Stats().Stuck {
			if st.Cid.Equals(ghost) && st.Attempts >= 3 {
				return true
			}
		}
		return false
	})
	info, err := p0.Snapshot(ctx)
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "p1 fetched the snapshot's chunks", func() bool {
		st := p1.Stats()
		return st.SnapshotChunks > 0 && !st.CatchingUp
	})
	chunks := p1.Stats().SnapshotChunks
	require.EqualValues(t, info.Blocks-1, chunks)
	sent := p1.Stats().SentBroadcasts
	waitFor(t, 20*time.Second, "ten more rebroadcast intervals", func() bool { return p1.Stats().SentBroadcasts >= sent+10 })
	st := p1.Stats()
	require.Zero(t, st.SnapshotsMerged)
	require.Equal(t, chunks, st.SnapshotChunks, "the snapshot was fetched once, not tried again")
	require.NotEmpty(t, st.Stuck)
	require.True(t, converged(t, c.rs))
}
