package raft

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	mh "github.com/multiformats/go-multihash"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/internal/poll"
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
	tune  func(*Config) // applied to every peer's Config, if not nil
}

func newTestNet(t *testing.T, n int, mkds func(i int) ds.Batching, tune ...func(*Config)) *testNet {
	t.Helper()
	mn, err := mocknet.FullMeshLinked(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, mn: mn, hosts: mn.Hosts()}
	for _, f := range tune {
		tn.tune = f
	}
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
	cfg := Config{
		Peers: peers, Datastore: tn.dss[i],
		HeartbeatTimeout: heartbeat, ElectionTimeout: election,
		LeaderLeaseTimeout: heartbeat / 2, CommitTimeout: 10 * time.Millisecond,
	}
	if tn.tune != nil {
		tn.tune(&cfg)
	}
	c, err := New(context.Background(), tn.hosts[i], cfg)
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
	leader := -1
	waitUntil(tn.t, timeout, "a leader", func() bool { // polling raft state: no event to wait on
		for _, i := range among {
			c := tn.cons[i]
			if c == nil {
				continue
			}
			if l, err := c.Leader(context.Background()); err == nil && l == tn.ids[i] {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// waitUntil polls cond (in the caller's goroutine, so it may fail the
// test) until it holds, failing the test with what after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := poll.Until(ctx, "waiting for "+what, 5*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%v (%v)", err, timeout)
	}
}

// waitDisconnected waits until neither a nor b has a connection to the other.
func (tn *testNet) waitDisconnected(a, b int, timeout time.Duration) {
	tn.t.Helper()
	waitUntil(tn.t, timeout, fmt.Sprintf("peers %d and %d disconnected", a, b), func() bool { // polling mocknet: no event to wait on
		return len(tn.hosts[a].Network().ConnsToPeer(tn.ids[b]))+len(tn.hosts[b].Network().ConnsToPeer(tn.ids[a])) == 0
	})
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
	counts := make([]int, len(tn.cons))
	defer func() {
		if tn.t.Failed() {
			tn.t.Logf("pins per peer (-1: stopped): %v", counts)
		}
	}()
	waitUntil(tn.t, timeout, fmt.Sprintf("%d pins on every running peer", want), func() bool {
		ok := true
		for i, c := range tn.cons {
			counts[i] = -1
			if c != nil {
				counts[i] = countPins(tn.t, c)
				ok = ok && counts[i] == want
			}
		}
		return ok
	})
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
	// Commit one pin everywhere first: the leader's replication streams
	// are then open, so the partition below cuts them all (a stream opened
	// while mocknet tears a connection down can survive it).
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := tn.cons[tn.leader(5*time.Second)].LogPin(pctx, testPin(t, 0)); err != nil {
		t.Fatal(err)
	}
	tn.waitPins(1, 10*time.Second)
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
			if err := tn.mn.DisconnectPeers(tn.ids[a], tn.ids[b]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// mocknet closes the remote end of a connection asynchronously: the
	// partition holds once neither side sees a connection.
	for _, a := range minority {
		for _, b := range majority {
			tn.waitDisconnected(a, b, 5*time.Second)
		}
	}
	// Both minority peers try at once: the old leader (still leader until
	// its lease runs out, so the attempt meets a stale leader) with a short
	// deadline, its follower with a longer one (it ends with no leader).
	// Every outcome must be the typed error, wrapping the deadline too.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k, timeout := range []time.Duration{20 * time.Millisecond, 2 * time.Second} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			errs[k] = tn.cons[minority[k]].LogPin(ctx, testPin(t, 1+k))
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err == nil {
			t.Fatalf("minority peer %d committed a pin", minority[k])
		}
		if !errors.Is(err, pincluster.ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("minority peer %d: LogPin = %v, want an error wrapping both ErrNoLeader and DeadlineExceeded", minority[k], err)
		}
	}
	nl := tn.leader(5*time.Second, majority...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	// After the heal every peer holds exactly the first pin and the
	// majority's 10: the minority's attempts were never committed.
	tn.waitPins(11, 15*time.Second)
	for _, c := range tn.cons {
		st, _ := c.State(ctx)
		for j := 1; j <= 2; j++ {
			if ok, err := st.Has(ctx, testCid(t, j)); err != nil || ok {
				t.Fatalf("the minority's uncommitted pin %d: Has = %v, %v", j, ok, err)
			}
		}
	}
}

func TestSnapshotRestoreAndRejoin(t *testing.T) {
	const trailing = 64
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	snapDirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
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
	}, func(c *Config) {
		for i, d := range stores {
			if c.Datastore == ds.Batching(d) {
				c.SnapshotDir = snapDirs[i]
			}
		}
		// Snapshots only when asked (the interval outlasts the test); a
		// compacted log keeps 64 entries, so a follower more than 64
		// entries behind needs the leader's snapshot.
		c.TrailingLogs, c.SnapshotThreshold = trailing, 1024
	})
	l := tn.leader(5 * time.Second)
	// One budget for the whole test (10,256 commits, a restart, two
	// catch-ups): 17 s alone, over a minute beside other race-enabled
	// test processes on 2 CPUs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logPins := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 1)
		for w := range 32 {
			wg.Go(func() {
				for j := from + w; j < to; j += 32 {
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
	}
	const n, extra = 10000, 4 * trailing
	logPins(0, n)
	tn.waitPins(n, 30*time.Second)
	// Snapshot every peer, stop a follower, then let the leader move on
	// by more than TrailingLogs entries and compact its log.
	for _, c := range tn.cons {
		if err := c.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	f := (l + 1) % 3
	ownSnap := tn.cons[f].raft.Stats()["last_snapshot_index"]
	tn.stop(f)
	logPins(n, n+extra)
	// Compact both running peers' logs: leadership may move to the other
	// one meanwhile (slow runs), and it must not be able to serve the
	// missing entries from its log either.
	first := uint64(0)
	for i, c := range tn.cons {
		if i == f {
			continue
		}
		if err := c.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot of peer %d: %v", i, err)
		}
		fi, err := c.store.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 || fi < first {
			first = fi
		}
	}
	last, err := tn.cons[l].store.LastIndex()
	if err != nil || last-first+1 > trailing+1 {
		t.Fatalf("leader log [%d, %d], %v: not compacted to %d entries", first, last, err, trailing)
	}

	// The follower restarts from its datastore; its log ends before the
	// leader's first entry, so only an InstallSnapshot can catch it up.
	tn.start(f, nil)
	atStart := tn.cons[f].restores.Load() // its own snapshot, restored by New
	if fl, err := tn.cons[f].store.LastIndex(); err != nil || fl+1 >= first {
		t.Fatalf("restarted follower's last index %d, %v: not behind the leader's first %d", fl, err, first)
	}
	tn.waitPins(n+extra, 30*time.Second)
	if err := tn.cons[f].WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tn.cons[f].restores.Load(); got <= atStart {
		t.Fatalf("the restarted follower caught up without installing the leader's snapshot (%d restores, %d at start)", got, atStart)
	}
	si, err := strconv.ParseUint(tn.cons[f].raft.Stats()["last_snapshot_index"], 10, 64)
	if own, _ := strconv.ParseUint(ownSnap, 10, 64); err != nil || si < first-1 || si <= own {
		t.Fatalf("follower last_snapshot_index %d (%v), own snapshot before stop %s, leader's log starts at %d", si, err, ownSnap, first)
	}
	// Equal state: every pin of the leader, with its content, on the follower.
	lst, _ := tn.cons[l].State(ctx)
	fst, _ := tn.cons[f].State(ctx)
	for p, err := range lst.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got, err := fst.Get(ctx, p.Cid)
		if err != nil {
			t.Fatalf("follower: %v: %v", p.Cid, err)
		}
		if !got.Equal(p) {
			t.Fatalf("follower holds %+v, leader %+v", got, p)
		}
	}
}

func TestForwardOnlyFromVoters(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	l := tn.leader(5 * time.Second)
	outsider, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.mn.ConnectPeers(outsider.ID(), tn.ids[l]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := testPin(t, 1).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	err = sendForward(ctx, outsider, "default", tn.ids[l], opWire{Op: opPin, Pin: b})
	if !errors.Is(err, pincluster.ErrPermission) {
		t.Fatalf("a forward from a non-voter = %v, want pincluster.ErrPermission", err)
	}
	if n := countPins(t, tn.cons[l]); n != 0 {
		t.Fatalf("the leader holds %d pins after a refused forward", n)
	}
	// A voter's forward commits.
	f := (l + 1) % 3
	if err := tn.cons[f].LogPin(ctx, testPin(t, 2)); err != nil {
		t.Fatal(err)
	}
	tn.waitPins(1, 5*time.Second)
}

// soloConfig is the Config of a one-voter test consensus.
func soloConfig(peers []peer.ID) Config {
	return Config{
		Peers: peers, HeartbeatTimeout: heartbeat, ElectionTimeout: election,
		LeaderLeaseTimeout: heartbeat / 2, CommitTimeout: 10 * time.Millisecond,
	}
}

// waitLeaderSelf waits until c is the leader.
func waitLeaderSelf(t *testing.T, c *Consensus, self peer.ID, timeout time.Duration) {
	t.Helper()
	waitUntil(t, timeout, fmt.Sprintf("%s to lead", self), func() bool { // polling raft state: no event to wait on
		l, err := c.Leader(context.Background())
		return err == nil && l == self
	})
}

func soloHost(t *testing.T) host.Host {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// soloLeader starts a one-voter consensus with cfg on h, waits until it
// leads, and commits pins 0..n-1.
func soloLeader(ctx context.Context, t *testing.T, h host.Host, cfg Config, n int) *Consensus {
	t.Helper()
	c, err := New(ctx, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitLeaderSelf(t, c, h.ID(), 5*time.Second)
	for j := range n {
		if err := c.LogPin(ctx, testPin(t, j)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestBadgerPathRestartKeepsLog(t *testing.T) {
	h := soloHost(t)
	dir := t.TempDir() + "/raft"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cfg := soloConfig([]peer.ID{h.ID()})
	cfg.BadgerPath = dir
	c := soloLeader(ctx, t, h, cfg, 5)
	last, err := c.store.LastIndex()
	if err != nil || last < 6 { // bootstrap configuration, no-op, 5 pins
		t.Fatalf("last index %d, %v: want at least 6", last, err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// Restarted with no Peers: without the kept log it would have no
	// configuration and never lead.
	cfg = soloConfig(nil)
	cfg.BadgerPath = dir
	c, err = New(ctx, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.store.LastIndex(); err != nil || got < last {
		t.Fatalf("after restart last index %d, %v: want at least %d", got, err, last)
	}
	waitLeaderSelf(t, c, h.ID(), 5*time.Second)
	if err := c.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countPins(t, c); n != 5 {
		t.Fatalf("after restart %d pins, want 5", n)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Clean, stat %s: %v; want not exist", dir, err)
	}
}

func TestConfigDatastoreAndBadgerPath(t *testing.T) {
	h := soloHost(t)
	cfg := soloConfig([]peer.ID{h.ID()})
	cfg.Datastore = dssync.MutexWrap(ds.NewMapDatastore())
	cfg.BadgerPath = t.TempDir()
	c, err := New(context.Background(), h, cfg)
	if err == nil {
		_ = c.Shutdown(context.Background())
		t.Fatal("New accepted both Datastore and BadgerPath")
	}
	if !strings.Contains(err.Error(), "Datastore") || !strings.Contains(err.Error(), "BadgerPath") {
		t.Fatalf("error %q does not name both Datastore and BadgerPath", err)
	}
}

// waitPeers waits until every running peer lists exactly want as voters.
func (tn *testNet) waitPeers(want []peer.ID, timeout time.Duration) {
	tn.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	var last string
	defer func() {
		if tn.t.Failed() {
			tn.t.Logf("last: %s", last)
		}
	}()
	waitUntil(tn.t, timeout, fmt.Sprintf("voters %v on every running peer", want), func() bool { // polling raft state: no event to wait on
		for i, c := range tn.cons {
			if c == nil {
				continue
			}
			got, err := c.Peers(context.Background())
			slices.Sort(got)
			if err != nil || !slices.Equal(got, want) {
				last = fmt.Sprintf("peer %d: Peers = %v, %v", i, got, err)
				return false
			}
		}
		return true
	})
}

func TestAddPeerRmPeer(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	l := tn.leader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tn.cons[l].LogPin(ctx, testPin(t, 1)); err != nil {
		t.Fatal(err)
	}
	// A fourth peer starts with no Peers and is added through a follower
	// (the call is forwarded to the leader).
	h, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	tn.hosts, tn.ids = append(tn.hosts, h), append(tn.ids, h.ID())
	tn.dss, tn.cons = append(tn.dss, dssync.MutexWrap(ds.NewMapDatastore())), append(tn.cons, nil)
	tn.start(3, nil)
	if err := tn.cons[(l+1)%3].AddPeer(ctx, h.ID()); err != nil {
		t.Fatal(err)
	}
	tn.waitPeers(tn.ids, 10*time.Second)
	tn.waitPins(1, 10*time.Second) // the new voter received the log
	if err := tn.cons[3].LogPin(ctx, testPin(t, 2)); err != nil {
		t.Fatalf("LogPin on the new voter: %v", err)
	}
	tn.waitPins(2, 10*time.Second)

	// Removing it (through itself, forwarded) leaves the three voters.
	if err := tn.cons[3].RmPeer(ctx, h.ID()); err != nil {
		t.Fatal(err)
	}
	removed := tn.cons[3]
	tn.cons[3] = nil // waitPeers and waitPins skip it: it no longer follows
	tn.waitPeers(tn.ids[:3], 10*time.Second)
	if err := tn.cons[l].LogPin(ctx, testPin(t, 3)); err != nil {
		t.Fatal(err)
	}
	tn.waitPins(3, 10*time.Second)
	if tn.cons[l].isVoter(h.ID()) {
		t.Fatal("the leader still counts the removed peer as a voter")
	}
	if err := removed.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClean(t *testing.T) {
	h := soloHost(t)
	d := dssync.MutexWrap(ds.NewMapDatastore())
	other := ds.NewKey("/other/key") // not the consensus' data: Clean keeps it
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Put(ctx, other, []byte("x")); err != nil {
		t.Fatal(err)
	}
	cfg := soloConfig([]peer.ID{h.ID()})
	cfg.Datastore, cfg.SnapshotDir = d, t.TempDir()+"/snaps"
	c := soloLeader(ctx, t, h, cfg, 1)
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := c.Clean(ctx); err == nil {
		t.Fatal("Clean before Shutdown succeeded")
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(prefix string) int {
		res, err := d.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		all, err := res.Rest()
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	if count("/raft") == 0 || count("/state") == 0 {
		t.Fatal("no raft data to clean: the test proves nothing")
	}
	if err := c.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	if n, m := count("/raft"), count("/state"); n+m != 0 {
		t.Fatalf("after Clean %d raft and %d state keys remain", n, m)
	}
	if ok, err := d.Has(ctx, other); err != nil || !ok {
		t.Fatalf("Clean removed a key it does not own: %v, %v", ok, err)
	}
	if _, err := os.Stat(cfg.SnapshotDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Clean, stat %s: %v; want not exist", cfg.SnapshotDir, err)
	}
	// A new consensus on the cleaned datastore starts from nothing.
	cfg = soloConfig(nil)
	cfg.Datastore = d
	c, err := New(ctx, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Shutdown(ctx) }()
	if last, err := c.store.LastIndex(); err != nil || last != 0 {
		t.Fatalf("after Clean the log ends at %d, %v; want empty", last, err)
	}
}

func TestRestartCompactedLogWithoutSnapshotsFails(t *testing.T) {
	h := soloHost(t)
	d := dssync.MutexWrap(ds.NewMapDatastore())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := soloConfig([]peer.ID{h.ID()})
	cfg.Datastore, cfg.TrailingLogs = d, 2
	c := soloLeader(ctx, t, h, cfg, 10)
	if err := c.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := c.store.FirstIndex(); first <= 1 {
		t.Fatalf("log not compacted (first index %d)", first)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The in-memory snapshot is gone: New must refuse, not panic.
	cfg.Peers = nil
	c, err := New(ctx, h, cfg)
	if err == nil {
		_ = c.Shutdown(ctx)
		t.Fatal("New restarted a compacted log without its snapshot")
	}
	if !strings.Contains(err.Error(), "SnapshotDir") {
		t.Fatalf("error %q does not point at SnapshotDir", err)
	}
}
