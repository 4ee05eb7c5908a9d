package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	mh "github.com/multiformats/go-multihash"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCid(t testing.TB, i int) cid.Cid {
	t.Helper()
	h, err := mh.Sum(fmt.Appendf(nil, "raft-%d", i), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func testPin(t testing.TB, i int) pincluster.Pin {
	p := pincluster.NewPin(testCid(t, i), pincluster.PinOptions{Name: fmt.Sprint("pin ", i), ReplicationMin: -1, ReplicationMax: -1})
	p.Timestamp = time.Unix(int64(i), 0).UTC()
	return p
}

const (
	heartbeat = 150 * time.Millisecond
	election  = 150 * time.Millisecond
)

// testNet is n raft peers on a fully linked mocknet.
type testNet struct {
	t     *testing.T
	mn    mocknet.Mocknet
	hosts []host.Host
	ids   []peer.ID
	dss   []ds.Batching
	cons  []*Consensus
}

func newTestNet(t *testing.T, n int, mkds func(i int) ds.Batching) *testNet {
	t.Helper()
	mn, err := mocknet.FullMeshLinked(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, mn: mn, hosts: mn.Hosts()}
	for _, h := range tn.hosts {
		tn.ids = append(tn.ids, h.ID())
	}
	for i := range n {
		if mkds != nil {
			tn.dss = append(tn.dss, mkds(i))
		} else {
			tn.dss = append(tn.dss, dssync.MutexWrap(ds.NewMapDatastore()))
		}
		tn.cons = append(tn.cons, nil)
		tn.start(i, tn.ids)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, c := range tn.cons {
			if c != nil {
				_ = c.Shutdown(ctx)
			}
		}
		_ = mn.Close()
	})
	return tn
}

func (tn *testNet) start(i int, peers []peer.ID) {
	tn.t.Helper()
	c, err := New(context.Background(), tn.hosts[i], Config{
		Peers: peers, Datastore: tn.dss[i],
		HeartbeatTimeout: heartbeat, ElectionTimeout: election,
		LeaderLeaseTimeout: heartbeat / 2, CommitTimeout: 10 * time.Millisecond,
	})
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.cons[i] = c
}

func (tn *testNet) stop(i int) {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.cons[i].Shutdown(ctx); err != nil {
		tn.t.Fatal(err)
	}
	tn.cons[i] = nil
}

// leader waits for a leader among the running peers and returns its index.
func (tn *testNet) leader(timeout time.Duration, among ...int) int {
	tn.t.Helper()
	if len(among) == 0 {
		for i := range tn.cons {
			among = append(among, i)
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, i := range among {
			c := tn.cons[i]
			if c == nil {
				continue
			}
			if l, err := c.Leader(context.Background()); err == nil && l == tn.ids[i] {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond) // polling raft state: no event to wait on
	}
	tn.t.Fatalf("no leader within %v", timeout)
	return -1
}

func countPins(t *testing.T, c *Consensus) int {
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range st.List(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// waitPins waits until every running peer holds want pins.
func (tn *testNet) waitPins(want int, timeout time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, c := range tn.cons {
			if c != nil && countPins(tn.t, c) != want {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, c := range tn.cons {
				if c != nil {
					tn.t.Logf("peer %d has %d pins", i, countPins(tn.t, c))
				}
			}
			tn.t.Fatalf("peers did not reach %d pins within %v", want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommitThroughEveryPeer(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprint(n, " voters"), func(t *testing.T) {
			tn := newTestNet(t, n, nil)
			tn.leader(5 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, n*20)
			for i, c := range tn.cons {
				wg.Go(func() {
					for j := range 20 {
						if err := c.LogPin(ctx, testPin(t, i*100+j)); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			tn.waitPins(n*20, 10*time.Second)
			// Committed once: unpin through a follower removes it everywhere.
			if err := tn.cons[(tn.leader(time.Second)+1)%n].LogUnpin(ctx, testPin(t, 0)); err != nil {
				t.Fatal(err)
			}
			tn.waitPins(n*20-1, 10*time.Second)
			peers, err := tn.cons[0].Peers(ctx)
			if err != nil || len(peers) != n {
				t.Fatalf("Peers = %v, %v", peers, err)
			}
		})
	}
}

func TestLeaderFailover(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	old := tn.leader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for j := range 10 {
		if err := tn.cons[old].LogPin(ctx, testPin(t, j)); err != nil {
			t.Fatal(err)
		}
	}
	tn.stop(old)
	start := time.Now()
	var others []int
	for i := range 3 {
		if i != old {
			others = append(others, i)
		}
	}
	nl := tn.leader(election*10+2*time.Second, others...)
	t.Logf("new leader after %v (election timeout %v)", time.Since(start), election)
	for j := 10; j < 20; j++ {
		if err := tn.cons[others[0]].LogPin(ctx, testPin(t, j)); err != nil {
			t.Fatal(err)
		}
	}
	_ = nl
	// The old leader rejoins from its datastore and catches up.
	tn.start(old, nil)
	tn.waitPins(20, 10*time.Second)
	if err := tn.cons[old].WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMinorityCannotCommit(t *testing.T) {
	tn := newTestNet(t, 5, nil)
	l := tn.leader(5 * time.Second)
	// Minority: the leader and one follower; majority: the other three.
	minority := []int{l, (l + 1) % 5}
	var majority []int
	for i := range 5 {
		if i != minority[0] && i != minority[1] {
			majority = append(majority, i)
		}
	}
	for _, a := range minority {
		for _, b := range majority {
			if err := tn.mn.UnlinkPeers(tn.ids[a], tn.ids[b]); err != nil {
				t.Fatal(err)
			}
			_ = tn.mn.DisconnectPeers(tn.ids[a], tn.ids[b])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := tn.cons[minority[1]].LogPin(ctx, testPin(t, 1))
	cancel()
	if !errors.Is(err, pincluster.ErrNoLeader) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("minority LogPin = %v, want ErrNoLeader or deadline", err)
	}
	if err == nil {
		t.Fatal("minority committed a pin")
	}
	nl := tn.leader(5*time.Second, majority...)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for j := 100; j < 110; j++ {
		if err := tn.cons[nl].LogPin(ctx, testPin(t, j)); err != nil {
			t.Fatalf("majority LogPin: %v", err)
		}
	}
	for _, a := range minority {
		for _, b := range majority {
			if _, err := tn.mn.LinkPeers(tn.ids[a], tn.ids[b]); err != nil {
				t.Fatal(err)
			}
			if _, err := tn.mn.ConnectPeers(tn.ids[a], tn.ids[b]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// After the heal every peer holds exactly the majority's 10 pins: the
	// minority's attempt was never committed.
	tn.waitPins(10, 15*time.Second)
	for _, c := range tn.cons {
		st, _ := c.State(ctx)
		if ok, _ := st.Has(ctx, testCid(t, 1)); ok {
			t.Fatal("the minority's uncommitted pin appeared")
		}
	}
}

func TestSnapshotRestoreAndRejoin(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	stores := make([]*pebbleds.Datastore, 3)
	t.Cleanup(func() { // registered first, so it runs after the peers stop
		for _, d := range stores {
			if d != nil {
				_ = d.Close()
			}
		}
	})
	tn := newTestNet(t, 3, func(i int) ds.Batching {
		d, err := pebbleds.NewDatastore(dirs[i])
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = d
		return d
	})
	l := tn.leader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 10000
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 32 {
		wg.Go(func() {
			for j := w; j < n; j += 32 {
				if err := tn.cons[l].LogPin(ctx, testPin(t, j)); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	tn.waitPins(n, 30*time.Second)
	// Snapshot every peer, then restart a follower from its datastore.
	for _, c := range tn.cons {
		if err := c.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	f := (l + 1) % 3
	tn.stop(f)
	if err := tn.cons[l].LogPin(ctx, testPin(t, n)); err != nil {
		t.Fatal(err)
	}
	tn.start(f, nil)
	tn.waitPins(n+1, 30*time.Second)

	// Restore: an FSM fed the leader's snapshot holds the same pins.
	snap, err := (*fsm)(tn.cons[l]).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fresh := &Consensus{cfg: Config{Datastore: dssync.MutexWrap(ds.NewMapDatastore())}}
	fresh.state = pincluster.NewDatastoreState(fresh.cfg.Datastore)
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if err := (*fsm)(fresh).Restore(sink.reader()); err != nil {
		t.Fatal(err)
	}
	if got := countPins(t, &Consensus{state: fresh.state}); got != n+1 {
		t.Fatalf("restored state has %d pins, want %d", got, n+1)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct{ buf []byte }

func (s *memSink) Write(p []byte) (int, error) { s.buf = append(s.buf, p...); return len(p), nil }
func (s *memSink) Close() error                { return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { return nil }
func (s *memSink) reader() io.ReadCloser       { return io.NopCloser(bytes.NewReader(s.buf)) }
