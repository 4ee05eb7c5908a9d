package crdt_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// synced: converged, and then no replica joining or with nodes pending,
// and every replica counting the same processed nodes. (The heads and the
// visible state can agree before a walk has reached the bottom of the
// history, and a replica that has not heard the heads yet is idle: the
// counters are read after the comparison, not before.)
func synced(t testing.TB, rs []*replica) bool {
	if !converged(t, rs) {
		return false
	}
	var nodes uint64
	for i, r := range rs {
		st := r.Stats()
		if st.Joining || st.QueuedJobs != 0 || st.InFlight != 0 || (i > 0 && st.DAGNodes != nodes) {
			return false
		}
		nodes = st.DAGNodes
	}
	return true
}

func fastCfg() crdt.Config {
	return crdt.Config{RebroadcastInterval: 50 * time.Millisecond, RetryMinBackoff: 20 * time.Millisecond, RetryMaxBackoff: 200 * time.Millisecond}
}

// partition cuts (or, with nil, heals) both the broadcast links and the
// block fetches between the two sides.
func (c *cluster) partition(side map[string]bool) {
	if side == nil {
		c.bus.SetLink(nil)
		c.net.SetConnected(nil)
		return
	}
	same := func(a, b string) bool { return side[a] == side[b] }
	c.bus.SetLink(same)
	c.net.SetConnected(same)
}

// writeBatches writes keys [from, to) in batches of size n on r.
func writeBatches(t testing.TB, r *replica, from, to, n int, val []byte) {
	ctx := context.Background()
	for i := from; i < to; i += n {
		b, err := r.Batch(ctx)
		require.NoError(t, err)
		for j := i; j < min(i+n, to); j++ {
			require.NoError(t, b.Put(ctx, key(j), val))
		}
		require.NoError(t, b.Commit(ctx))
	}
}

// The equivalence test: on the same DAG, a replica that joins from a
// snapshot and one that replays the whole history end in the same state,
// with concurrent adds and removes of the same keys on both sides of the
// snapshot point (the snapshot is taken on one side of a partition while
// the other side adds, overwrites and deletes the same keys). A final
// delete of every key from one peer must empty every replica: a stale
// element left by the bulk load would survive it.
func TestSnapshotEquivalence(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runEquivalence(t, seed) })
	}
}

func runEquivalence(t *testing.T, seed int64) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	c := newCluster(t, 3, seed, fastCfg())
	const keys = 12
	randomOps := func(r *replica, n int) {
		for range n {
			k := key(rng.Intn(keys))
			if rng.Intn(3) == 0 {
				require.NoError(t, r.Delete(ctx, k))
			} else {
				require.NoError(t, r.Put(ctx, k, []byte(fmt.Sprintf("%s-%d", r.name, rng.Intn(4)))))
			}
		}
	}
	// Shared history.
	for _, r := range c.rs {
		randomOps(r, 10)
	}
	waitFor(t, 20*time.Second, "shared history", func() bool { return converged(t, c.rs) })

	// p0 alone on one side; p1, p2 on the other, writing the same keys.
	c.partition(map[string]bool{"p0": true})
	randomOps(c.rs[0], 15)
	randomOps(c.rs[1], 15)
	randomOps(c.rs[2], 15)
	info, err := c.rs[0].Snapshot(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, info.Heads)
	// Above the snapshot, still partitioned.
	randomOps(c.rs[0], 10)
	randomOps(c.rs[1], 10)
	c.partition(nil)
	waitFor(t, 20*time.Second, "healed", func() bool { return converged(t, c.rs) })
	randomOps(c.rs[1], 5)
	randomOps(c.rs[0], 5)

	snapJoin := fastCfg()
	snapJoin.SnapshotCatchUp = true
	var loaded atomic.Bool
	snapJoin.SnapshotHook = func(crdt.SnapshotInfo) { loaded.Store(true) }
	js := c.add("join-snap", snapJoin)
	jr := c.add("join-replay", fastCfg())
	waitFor(t, 30*time.Second, "joiners converged", func() bool { return synced(t, c.rs) })
	require.True(t, loaded.Load())
	require.EqualValues(t, 1, js.Stats().SnapshotsLoaded)
	t.Logf("nodes %d, snapshot covers %d; remote nodes applied: snapshot joiner %d, replay joiner %d", c.rs[0].Stats().DAGNodes, info.Nodes, js.Stats().RemoteNodes, jr.Stats().RemoteNodes)
	total := c.rs[0].Stats().DAGNodes
	require.Equal(t, total-info.Nodes, js.Stats().RemoteNodes, "the snapshot joiner replays only what is above the snapshot: %+v; replay joiner: %+v", js.Stats(), jr.Stats())
	require.Equal(t, total, jr.Stats().RemoteNodes)
	require.Equal(t, total, js.Stats().DAGNodes)

	// Every replica drops every key once p0 deletes what it sees.
	for i := range keys {
		require.NoError(t, c.rs[0].Delete(ctx, key(i)))
	}
	waitFor(t, 20*time.Second, "all deleted", func() bool { return converged(t, c.rs) })
	for _, r := range c.rs {
		_, n := digest(t, r)
		require.Zero(t, n, r.name)
	}
	// And writes after that still agree.
	randomOps(js, 10)
	randomOps(jr, 10)
	waitFor(t, 20*time.Second, "final", func() bool { return converged(t, c.rs) })
}

// A fresh replica joins a store holding 100,000 keys (100 batches of
// 1,000 plus single-key updates and deletes, some above the snapshot)
// from the snapshot: same state, few deltas replayed, PutHook for every
// key.
func TestSnapshotJoin100k(t *testing.T) {
	const n = 100_000
	ctx := context.Background()
	// Map stores: pebble runs its invariant checks under -race, which
	// makes 100,000-key tests take minutes.
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	p0 := c.open("p0", newMapStore(), fastCfg())
	writeBatches(t, p0, 0, n, 1000, pinValue)
	for i := range 40 {
		if i%4 == 0 {
			require.NoError(t, p0.Delete(ctx, key(i*997%n)))
		} else {
			require.NoError(t, p0.Put(ctx, key(i*991%n), []byte(fmt.Sprint("upd", i))))
		}
	}
	info, err := p0.Snapshot(ctx)
	require.NoError(t, err)
	require.EqualValues(t, p0.Stats().DAGNodes, info.Nodes)
	for i := range 50 {
		require.NoError(t, p0.Put(ctx, key(n+i), []byte("above")))
	}
	require.NoError(t, p0.Delete(ctx, key(5)))

	var hooks atomic.Int64
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.PutHook = func(ds.Key, []byte) { hooks.Add(1) }
	start := time.Now()
	j := c.open("joiner", newMapStore(), cfg)
	waitFor(t, 90*time.Second, "joiner caught up", func() bool {
		st := j.Stats()
		return !st.Joining && st.Heads == 1 && st.Height == p0.Stats().Height && st.QueuedJobs == 0 && st.InFlight == 0
	})
	t.Logf("joined %d keys in %v", n, time.Since(start))
	d0, k0 := digest(t, p0)
	dj, kj := digest(t, j)
	require.Equal(t, k0, kj)
	require.Equal(t, d0, dj)
	st := j.Stats()
	require.EqualValues(t, 1, st.SnapshotsLoaded)
	require.LessOrEqual(t, st.RemoteNodes, uint64(60), "only the deltas above the snapshot are replayed")
	require.GreaterOrEqual(t, hooks.Load(), int64(kj))
}

// A join interrupted half-way (Close during the load) resumes on the next
// New from the chunks already loaded: the bytes fetched by both runs stay
// within 1.1 x those of an uninterrupted join.
func TestSnapshotInterruptedJoin(t *testing.T) {
	const n = 40_000
	ctx := context.Background()
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	p0 := c.open("p0", newMapStore(), fastCfg())
	writeBatches(t, p0, 0, n, 1000, pinValue)
	_, err := p0.Snapshot(ctx)
	require.NoError(t, err)
	require.NoError(t, p0.Put(ctx, key(n+1), []byte("above")))
	d0, _ := digest(t, p0)

	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotChunkSize = 32 << 10
	cfg.SnapshotWorkers = 4

	// Uninterrupted reference.
	ref := c.open("ref", newMapStore(), cfg)
	waitFor(t, 60*time.Second, "reference joined", func() bool { d, _ := digest(t, ref); return d == d0 })
	refBytes := ref.dag.Bytes()
	chunks := ref.Stats().SnapshotChunks
	require.NotZero(t, chunks)

	// Interrupted: slow fetches, Close after half of the chunks.
	store := newMapStore()
	fd := crdttest.NewFaultDAG(c.net.DAG("int"))
	fd.SetDelay(3 * time.Millisecond)
	fd.SetEveryK(1, crdttest.FaultDelay)
	ep := c.bus.Endpoint("int")
	cfg.Logger = testLogger(t)
	s1, err := crdt.New(ctx, store, fd, ep, cfg)
	require.NoError(t, err)
	waitFor(t, 60*time.Second, "half loaded", func() bool { return s1.Stats().SnapshotChunks >= chunks/2 })
	require.NoError(t, s1.Close())
	first := s1.Stats().SnapshotChunks
	require.Less(t, first, chunks, "interrupted before the end")

	fd.SetEveryK(0, crdttest.FaultNone)
	s2, err := crdt.New(ctx, store, fd, ep, cfg)
	require.NoError(t, err)
	defer s2.Close()
	require.True(t, s2.Joining(), "resumes the load")
	waitFor(t, 60*time.Second, "resumed join done", func() bool { d, _ := digest(t, s2); return d == d0 })
	st := s2.Stats()
	require.EqualValues(t, 1, st.SnapshotsLoaded)
	require.Less(t, st.SnapshotChunks, chunks, "only the missing chunks are loaded again")
	got := fd.Bytes()
	t.Logf("bytes: uninterrupted %d, interrupted+resumed %d (%.3fx); chunks %d = %d + %d", refBytes, got, float64(got)/float64(refBytes), chunks, first, st.SnapshotChunks)
	require.LessOrEqual(t, float64(got), 1.1*float64(refBytes))
}

// Compaction: once every live peer acknowledges the snapshot, the blocks
// of the deltas it covers are deleted everywhere; the snapshot stays
// served, so a fresh replica still joins; the disk holds the snapshot and
// the deltas above it, not the history.
func TestSnapshotCompaction(t *testing.T) {
	ctx := context.Background()
	names := []peer.ID{"p0", "p1"}
	cfg := fastCfg()
	cfg.LivePeers = func() []peer.ID { return names }
	cfg.CompactInterval = time.Hour // driven by hand
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	for _, nm := range names {
		cc := cfg
		cc.Self = nm
		c.add(string(nm), cc)
	}
	p0, p1 := c.rs[0], c.rs[1]
	for i := range 200 {
		require.NoError(t, p0.Put(ctx, key(i%50), []byte(fmt.Sprint("v", i))))
	}
	for i := range 20 {
		require.NoError(t, p1.Delete(ctx, key(i)))
	}
	waitFor(t, 20*time.Second, "synced", func() bool { return converged(t, c.rs) })
	before := c.net.Blocks("p0")
	info, err := p0.Snapshot(ctx)
	require.NoError(t, err)
	// Nothing is deleted before p1 acknowledges.
	_, err = p0.Compact(ctx)
	require.Error(t, err)
	require.Equal(t, before+info.Blocks, c.net.Blocks("p0"))
	waitFor(t, 20*time.Second, "compacted on both", func() bool {
		n0, _ := p0.Compact(ctx)
		n1, _ := p1.Compact(ctx)
		_ = n0 + n1
		return p0.Stats().CompactedBlocks > 0 && p1.Stats().CompactedBlocks > 0
	})
	after0, after1 := c.net.Blocks("p0"), c.net.Blocks("p1")
	t.Logf("blocks on p0: %d before, %d after compaction (snapshot: %d blocks)", before, after0, info.Blocks)
	require.Equal(t, info.Blocks, after0)
	require.Equal(t, info.Blocks, after1)
	for _, h := range info.Heads {
		require.False(t, c.net.DAG("p0").Has(h))
	}
	// Writes continue above the snapshot; a fresh replica joins from it.
	require.NoError(t, p1.Put(ctx, key(1000), []byte("after")))
	jc := cfg
	jc.Self = "j"
	jc.SnapshotCatchUp = true
	names = append(names, "j")
	c.add("j", jc)
	waitFor(t, 30*time.Second, "joiner converged", func() bool { return converged(t, c.rs) })
}

// Periodic production: with SnapshotEvery, snapshots are produced and
// announced without being asked; a replica that knows a newer one stands
// down; a joiner picks it up.
func TestSnapshotPeriodic(t *testing.T) {
	ctx := context.Background()
	cfg := fastCfg()
	cfg.SnapshotEvery = 20
	c := newCluster(t, 2, 1, cfg)
	for i := range 60 {
		require.NoError(t, c.rs[i%2].Put(ctx, key(i), []byte("x")))
	}
	waitFor(t, 20*time.Second, "a snapshot", func() bool {
		s0, ok0 := c.rs[0].NewestSnapshot()
		s1, ok1 := c.rs[1].NewestSnapshot()
		return ok0 && ok1 && s0.Root == s1.Root && s0.Nodes >= 40
	})
	jc := cfg
	jc.SnapshotCatchUp = true
	j := c.add("j", jc)
	waitFor(t, 20*time.Second, "joined", func() bool { return converged(t, c.rs) })
	require.EqualValues(t, 1, j.Stats().SnapshotsLoaded)
}

// A fresh replica with SnapshotCatchUp and nobody announcing a snapshot
// replays the history after SnapshotWait; its writes wait until then.
func TestSnapshotNoneAnnounced(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, fastCfg())
	require.NoError(t, c.rs[0].Put(ctx, key(1), []byte("a")))
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = 200 * time.Millisecond
	j := c.add("j", cfg)
	require.True(t, j.Joining())
	require.NoError(t, j.Put(ctx, key(2), []byte("b"))) // waits for the end of joining
	<-j.JoinDone()
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(t, c.rs) })
	require.Zero(t, j.Stats().SnapshotsLoaded)
}

// Snapshots are content-addressed: two replicas with the same processed
// nodes produce the same root.
func TestSnapshotDeterministic(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2, 1, fastCfg())
	writeBatches(t, c.rs[0], 0, 3000, 500, pinValue)
	require.NoError(t, c.rs[1].Delete(ctx, key(7)))
	waitFor(t, 20*time.Second, "synced", func() bool { return converged(t, c.rs) })
	a, err := c.rs[0].Snapshot(ctx)
	require.NoError(t, err)
	b, err := c.rs[1].Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, a.Root, b.Root)
	require.Greater(t, a.Blocks, 2)
}

// Malformed or hostile announcements and snapshot blocks are rejected
// without harm; untrusted announcements are not loaded.
func TestSnapshotAbuse(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, fastCfg())
	require.NoError(t, c.rs[0].Put(ctx, key(1), []byte("a")))
	_, err := c.rs[0].Snapshot(ctx)
	require.NoError(t, err)
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = 300 * time.Millisecond
	cfg.TrustSnapshot = func(p peer.ID) bool { return p != "p0" }
	j := c.add("j", cfg)
	// Garbage and an announcement of a root that is a delta, not a
	// snapshot, from a trusted sender.
	c.bus.Inject("evil", "j", []byte{0xa1, 0x61, 0x76, 0x02})
	head := c.rs[0].Heads()[0]
	bad, err := crdt.EncodeAnnouncement(crdt.Announcement{Root: head, Height: 1, Nodes: 1})
	require.NoError(t, err)
	c.bus.Inject("evil", "j", bad)
	<-j.JoinDone()
	waitFor(t, 10*time.Second, "converged by replay", func() bool { return converged(t, c.rs) })
	require.Zero(t, j.Stats().SnapshotsLoaded)
	_, err = crdt.DecodeAnnouncement([]byte("nonsense"))
	require.ErrorIs(t, err, crdt.ErrInvalidMessage)
	var _ cid.Cid = head
}

// Periodic production waits nine times as long as the last production
// took: with a long last production, no snapshot however many deltas
// arrive; once the wait is over, the next one comes.
func TestSnapshotPeriodicCooldown(t *testing.T) {
	ctx := context.Background()
	cfg := fastCfg()
	cfg.SnapshotEvery = 20
	// The stagger before a due snapshot is at most two rebroadcast
	// intervals: 2 ms here, so the rounds below run past it.
	cfg.RebroadcastInterval = time.Millisecond
	c := newCluster(t, 1, 1, cfg)
	r := c.rs[0]
	r.SetSnapshotCooldownForTest(time.Hour)
	for i := range 60 {
		require.NoError(t, r.Put(ctx, key(i), []byte("x")))
	}
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		r.MaybeProduceForTest(ctx)
	}
	_, ok := r.NewestSnapshot()
	require.False(t, ok, "a snapshot was produced during the cooldown")
	r.SetSnapshotCooldownForTest(0)
	waitFor(t, 20*time.Second, "a snapshot after the cooldown", func() bool {
		s, ok := r.NewestSnapshot()
		return ok && s.Nodes >= 60
	})
}
