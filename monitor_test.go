package pincluster_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	crypto "github.com/libp2p/go-libp2p/core/crypto"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// Short monitor timings for tests with real hosts: a metric outlives
// several publications, so a live peer is never declared silent on a busy
// machine, and a dead one is detected within TTL + CheckInterval. The TTL
// is longer than gossipsub's 1 s heartbeat because a peer that rejoins
// with the same key is reached only through gossip (IHAVE/IWANT at each
// heartbeat) by go-libp2p-pubsub v0.19.0, not by direct flood publishing
// (measured: one delivery per ~1 s, lasting at least 16 s).
const (
	testInterval = 200 * time.Millisecond
	testTTL      = 2500 * time.Millisecond
	testCheck    = 100 * time.Millisecond
	// testSlack covers scheduling delays on a loaded 2-core machine
	// running -race.
	testSlack = 500 * time.Millisecond
)

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	return k
}

// tpidReal returns a valid, random peer ID.
func tpidReal(t *testing.T) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(newKey(t))
	require.NoError(t, err)
	return id
}

// testNode is a libp2p host with its own gossipsub, whose lifetime the
// test owns (cancel stops the pubsub's goroutines), and optionally a
// monitor.
type testNode struct {
	key    crypto.PrivKey
	h      host.Host
	ps     *pubsub.PubSub
	cancel context.CancelFunc
	mon    *pincluster.PubsubMonitor
	closed bool
}

func newTestNode(t *testing.T, key crypto.PrivKey) *testNode {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		cancel()
		_ = h.Close()
		require.NoError(t, err)
	}
	n := &testNode{key: key, h: h, ps: ps, cancel: cancel}
	t.Cleanup(func() { n.close(t) })
	return n
}

func (n *testNode) startMonitor(t *testing.T, cfg pincluster.PubsubMonitorConfig) {
	t.Helper()
	mon, err := pincluster.NewPubsubMonitor(n.h, n.ps, cfg)
	require.NoError(t, err)
	n.mon = mon
}

// close shuts the monitor down, closes the host and stops the pubsub.
func (n *testNode) close(t *testing.T) {
	if n.closed {
		return
	}
	n.closed = true
	if n.mon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, n.mon.Shutdown(ctx))
		cancel()
	}
	require.NoError(t, n.h.Close())
	n.cancel()
}

func connectAll(t *testing.T, nodes ...*testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			require.NoError(t, a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}))
		}
	}
}

// waitFor polls cond every 20 ms until it holds or d passes. It is used
// only where the monitor offers no event to wait on (metric arrival).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, d, 20*time.Millisecond, "waiting for %s", what)
}

func hasValid(mon *pincluster.PubsubMonitor, name string, p peer.ID) bool {
	return slices.ContainsFunc(mon.LatestMetrics(context.Background(), name), func(m pincluster.Metric) bool { return m.Peer == p })
}

func countInformer(t *testing.T, n int64) pincluster.Informer {
	t.Helper()
	inf, err := pincluster.NewNumPinInformer(func(context.Context) (int64, error) { return n, nil }, pincluster.InformerConfig{})
	require.NoError(t, err)
	return inf
}

func freeSpaceInformer(t *testing.T, free uint64) pincluster.Informer {
	t.Helper()
	inf, err := pincluster.NewFreeSpaceInformer(func(context.Context) (pincluster.RepoStat, error) {
		return pincluster.RepoStat{StorageMax: free}, nil
	}, pincluster.FreeSpaceConfig{})
	require.NoError(t, err)
	return inf
}

func monitorConfig(infs ...pincluster.Informer) pincluster.PubsubMonitorConfig {
	return pincluster.PubsubMonitorConfig{
		ClusterName:   "monitor-test",
		Interval:      testInterval,
		TTL:           testTTL,
		CheckInterval: testCheck,
		Informers:     infs,
	}
}

// collectAlerts reads alerts from ch until the window closes.
func collectAlerts(ch <-chan pincluster.Alert, window time.Duration) []pincluster.Alert {
	var out []pincluster.Alert
	timer := time.NewTimer(window)
	defer timer.Stop()
	for {
		select {
		case a, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, a)
		case <-timer.C:
			return out
		}
	}
}

func TestPubsubMonitorFourHostsAlertOnceAndRejoin(t *testing.T) {
	var nodes []*testNode
	for i := range 4 {
		n := newTestNode(t, newKey(t))
		n.startMonitor(t, monitorConfig(countInformer(t, int64(i))))
		nodes = append(nodes, n)
	}
	connectAll(t, nodes...)

	// Metrics of every peer arrive on every peer.
	for _, n := range nodes {
		for _, o := range nodes {
			waitFor(t, 10*time.Second, "metrics of every peer everywhere", func() bool {
				return hasValid(n.mon, pincluster.MetricPing, o.h.ID()) && hasValid(n.mon, pincluster.MetricNumPin, o.h.ID())
			})
		}
		require.Equal(t, []string{pincluster.MetricNumPin, pincluster.MetricPing}, n.mon.MetricNames(context.Background()))
	}
	m, ok := nodes[0].mon.LatestForPeer(context.Background(), pincluster.MetricNumPin, nodes[2].h.ID())
	require.True(t, ok)
	require.Equal(t, int64(2), m.Weight)
	require.Equal(t, nodes[2].h.ID(), m.Peer)
	require.False(t, m.ReceivedAt.IsZero())

	// Close peer 3.
	dead := nodes[3]
	deadID := dead.h.ID()
	dead.close(t)
	closedAt := time.Now()
	live := nodes[:3]

	// Every live peer raises exactly one alert per metric of the dead
	// peer, within TTL + one check interval, and none about live peers.
	for i, n := range live {
		got := map[string]pincluster.Alert{}
		deadline := time.NewTimer(testTTL + testCheck + testSlack)
		for len(got) < 2 {
			select {
			case a := <-n.mon.Alerts():
				require.Equal(t, deadID, a.Metric.Peer, "alert about a live peer on node %d: %+v", i, a)
				_, dup := got[a.Metric.Name]
				require.False(t, dup, "second alert for %s on node %d", a.Metric.Name, i)
				got[a.Metric.Name] = a
				late := a.TriggeredAt.Sub(a.Metric.ValidUntil)
				t.Logf("node %d: alert %s %s after close, %s after expiry", i, a.Metric.Name, a.TriggeredAt.Sub(closedAt), late)
				require.LessOrEqual(t, late, testCheck+testSlack, "alert not within one check interval of expiry")
			case <-deadline.C:
				t.Fatalf("node %d: alerts after TTL + check interval: %v", i, got)
			}
		}
		deadline.Stop()
		require.Contains(t, got, pincluster.MetricPing)
		require.Contains(t, got, pincluster.MetricNumPin)
		require.False(t, hasValid(n.mon, pincluster.MetricPing, deadID))
		_, ok := n.mon.LatestForPeer(context.Background(), pincluster.MetricPing, deadID)
		require.True(t, ok, "expired metrics stay readable")
	}
	// No second alert within a few more intervals (no storm).
	var wg sync.WaitGroup
	extra := make([][]pincluster.Alert, len(live))
	for i, n := range live {
		wg.Go(func() { extra[i] = collectAlerts(n.mon.Alerts(), 5*testCheck+testInterval) })
	}
	wg.Wait()
	for i := range live {
		require.Empty(t, extra[i], "node %d raised alerts again", i)
		require.Equal(t, uint64(2), live[i].mon.Stats().Alerts)
	}

	// The peer rejoins: a new host with the same key.
	back := newTestNode(t, dead.key)
	require.Equal(t, deadID, back.h.ID())
	back.startMonitor(t, monitorConfig(countInformer(t, 33)))
	connectAll(t, append(slices.Clone(live), back)...)
	for _, n := range live {
		waitFor(t, 10*time.Second, "the rejoined peer's metrics", func() bool {
			m, ok := n.mon.LatestForPeer(context.Background(), pincluster.MetricNumPin, deadID)
			return ok && m.Weight == 33 && hasValid(n.mon, pincluster.MetricPing, deadID)
		})
	}
	// No further alert anywhere while it stays, over more than a TTL.
	all := append(slices.Clone(live), back)
	extra = make([][]pincluster.Alert, len(all))
	for i, n := range all {
		wg.Go(func() { extra[i] = collectAlerts(n.mon.Alerts(), testTTL+3*testCheck) })
	}
	wg.Wait()
	for i := range all {
		require.Empty(t, extra[i], "node %d", i)
	}
	for _, n := range live {
		st := n.mon.Stats()
		require.Zero(t, st.Malformed+st.Forged+st.AlertsDropped, "%+v", st)
	}
}

// TestPubsubMonitorSpoofedMetrics is T15: an untrusted peer U publishes,
// signed by itself, a ping metric claiming to be trusted peer T (which was
// stopped), garbage bytes, and a freespace metric of 1 PB for itself.
func TestPubsubMonitorSpoofedMetrics(t *testing.T) {
	const petabyte = uint64(1) << 50
	ctx := context.Background()
	a := newTestNode(t, newKey(t))  // observer that trusts A, B, T
	b := newTestNode(t, newKey(t))  // observer that trusts everyone
	tr := newTestNode(t, newKey(t)) // trusted peer T, stopped below
	u := newTestNode(t, newKey(t))  // untrusted attacker, raw pubsub
	trusted := []peer.ID{a.h.ID(), b.h.ID(), tr.h.ID()}
	cfgA := monitorConfig(freeSpaceInformer(t, 10<<30))
	cfgA.Trusted = func(p peer.ID) bool { return slices.Contains(trusted, p) }
	a.startMonitor(t, cfgA)
	b.startMonitor(t, monitorConfig(freeSpaceInformer(t, 20<<30)))
	tr.startMonitor(t, monitorConfig(freeSpaceInformer(t, 30<<30)))
	connectAll(t, a, b, tr, u)
	tID, uID := tr.h.ID(), u.h.ID()
	for _, n := range []*testNode{a, b} {
		waitFor(t, 10*time.Second, "T's metrics", func() bool { return hasValid(n.mon, pincluster.MetricPing, tID) })
	}

	// U joins the topic with a plain pubsub: no validator of ours.
	topic, err := u.ps.Join(pincluster.MetricsTopic("monitor-test"))
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "U sees A and B on the topic", func() bool {
		ps := topic.ListPeers()
		return slices.Contains(ps, a.h.ID()) && slices.Contains(ps, b.h.ID())
	})
	enc := func(m pincluster.Metric) []byte {
		data, err := m.MarshalBinary()
		require.NoError(t, err)
		return data
	}
	forged := enc(pincluster.Metric{Name: pincluster.MetricPing, Peer: tID, ValidUntil: time.Now().Add(time.Hour)})
	huge := enc(pincluster.Metric{Name: pincluster.MetricFreeSpace, Peer: uID, Value: fmt.Sprint(petabyte),
		Weight: int64(petabyte), ValidUntil: time.Now().Add(time.Hour)})
	garbage := []byte("\xff\x00 not a metric \x9f\x9f\x9f")

	// Stop T, then U keeps forging until both observers raised the alert.
	tr.close(t)
	stopped := time.Now()
	uctx, ucancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, msg := range [][]byte{forged, garbage, huge} {
				if err := topic.Publish(uctx, msg); err != nil {
					return
				}
			}
			select {
			case <-uctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	for _, n := range []*testNode{a, b} {
		deadline := time.NewTimer(testTTL + testCheck + testSlack)
	wait:
		for {
			select {
			case al := <-n.mon.Alerts():
				if al.Metric.Peer == tID && al.Metric.Name == pincluster.MetricPing {
					t.Logf("alert for T %s after it stopped", al.TriggeredAt.Sub(stopped))
					break wait
				}
			case <-deadline.C:
				t.Fatal("T's alert did not fire within TTL + check interval despite U's forgeries")
			}
		}
		deadline.Stop()
	}
	// U never appears as T, on either observer.
	for _, n := range []*testNode{a, b} {
		require.False(t, hasValid(n.mon, pincluster.MetricPing, tID))
		m, ok := n.mon.LatestForPeer(ctx, pincluster.MetricPing, tID)
		require.True(t, ok)
		require.True(t, m.ValidUntil.Before(time.Now()), "T's last metric is its own, expired")
		st := n.mon.Stats()
		t.Logf("stats: %+v", st)
		require.Positive(t, st.Forged)
		require.Positive(t, st.Malformed)
	}
	// A (trusted-only) ignores U's 1 PB; B, trusting everyone, takes it.
	waitFor(t, 5*time.Second, "B stores U's freespace", func() bool { return hasValid(b.mon, pincluster.MetricFreeSpace, uID) })
	require.False(t, hasValid(a.mon, pincluster.MetricFreeSpace, uID))
	require.False(t, hasValid(a.mon, pincluster.MetricPing, uID))
	require.Positive(t, a.mon.Stats().Untrusted)
	ucancel()
	wg.Wait()
	require.NoError(t, topic.Close())

	// With A's view (trusted-only), U gets 0 of 100 allocations; with B's,
	// U's claimed petabyte would win every time.
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{})
	waitFor(t, 5*time.Second, "A sees B's freespace", func() bool { return hasValid(a.mon, pincluster.MetricFreeSpace, b.h.ID()) })
	uCount := 0
	for range 100 {
		got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
			Cid: testCid, Min: 1, Max: 2, Metrics: pincluster.CollectMetrics(ctx, a.mon, alloc.Metrics()),
		})
		require.NoError(t, err)
		require.Len(t, got, 2)
		if slices.Contains(got, uID) {
			uCount++
		}
	}
	require.Zero(t, uCount)
	got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: testCid, Min: 1, Max: 1, Metrics: pincluster.CollectMetrics(ctx, b.mon, alloc.Metrics()),
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{uID}, got, "without trust, the lie wins")
}

func TestPubsubMonitorLocal(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t, newKey(t))
	cfg := monitorConfig()
	cfg.AlertBuffer = 2
	cfg.MaxNamesPerPeer = 3
	cfg.MaxTTL = 5 * time.Second
	n.startMonitor(t, cfg)
	mon := n.mon
	self := n.h.ID()

	// Own metrics are logged at once on publication.
	require.NoError(t, mon.PublishMetric(ctx, pincluster.Metric{Name: "custom", Value: "1", Weight: 1}))
	m, ok := mon.LatestForPeer(ctx, "custom", self)
	require.True(t, ok)
	require.Equal(t, self, m.Peer)
	require.WithinDuration(t, time.Now().Add(testTTL), m.ValidUntil, testSlack)

	// Refused metrics.
	other := tpidReal(t)
	require.ErrorIs(t, mon.PublishMetric(ctx, pincluster.Metric{Name: "x", Peer: other}), pincluster.ErrInvalidMetric)
	require.ErrorIs(t, mon.PublishMetric(ctx, pincluster.Metric{}), pincluster.ErrInvalidMetric)
	require.ErrorIs(t, mon.LogMetric(ctx, pincluster.Metric{Name: "x"}), pincluster.ErrInvalidMetric)

	// Far-future validity is capped at MaxTTL; older metrics do not
	// replace newer ones.
	require.NoError(t, mon.LogMetric(ctx, pincluster.Metric{Name: "x", Peer: other, Weight: 1, ValidUntil: time.Now().AddDate(100, 0, 0)}))
	m, _ = mon.LatestForPeer(ctx, "x", other)
	require.WithinDuration(t, time.Now().Add(5*time.Second), m.ValidUntil, testSlack)
	require.NoError(t, mon.LogMetric(ctx, pincluster.Metric{Name: "x", Peer: other, Weight: 2, ValidUntil: time.Now().Add(time.Second)}))
	m, _ = mon.LatestForPeer(ctx, "x", other)
	require.Equal(t, int64(1), m.Weight, "older metric ignored")

	// Names per peer are bounded.
	for _, name := range []string{"y", "z", "w"} {
		require.NoError(t, mon.LogMetric(ctx, pincluster.Metric{Name: name, Peer: other, ValidUntil: time.Now().Add(time.Minute)}))
	}
	_, ok = mon.LatestForPeer(ctx, "w", other)
	require.False(t, ok, "fourth name of a peer dropped")
	require.Equal(t, uint64(2), mon.Stats().Dropped)

	// Alert overflow: five metrics expire at once into a buffer of two;
	// the three oldest alerts are dropped.
	var ids []peer.ID
	for range 5 {
		ids = append(ids, tpidReal(t)) // keys first: the expiry must not pass while logging
	}
	soon := time.Now().Add(500 * time.Millisecond)
	for _, p := range ids {
		require.NoError(t, mon.LogMetric(ctx, pincluster.Metric{Name: pincluster.MetricPing, Peer: p, ValidUntil: soon}))
	}
	// The alert count rises before the oldest queued alert is dropped:
	// wait for both counters.
	waitFor(t, 5*time.Second, "five alerts raised, three dropped", func() bool {
		st := mon.Stats()
		return st.Alerts == 5 && st.AlertsDropped == 3
	})
	slices.Sort(ids)
	a1, a2 := <-mon.Alerts(), <-mon.Alerts()
	require.Equal(t, ids[3:], []peer.ID{a1.Metric.Peer, a2.Metric.Peer}, "the newest alerts are kept")
	// Metrics that arrive already expired raise no alert.
	require.NoError(t, mon.LogMetric(ctx, pincluster.Metric{Name: pincluster.MetricPing, Peer: tpidReal(t), ValidUntil: time.Now().Add(-time.Second)}))
	require.Empty(t, collectAlerts(mon.Alerts(), 3*testCheck))

	// Shutdown: idempotent, methods refuse, the alerts channel closes.
	require.NoError(t, mon.Shutdown(ctx))
	require.ErrorIs(t, mon.Shutdown(ctx), pincluster.ErrClosed)
	require.ErrorIs(t, mon.LogMetric(ctx, pincluster.Metric{Name: "x", Peer: other}), pincluster.ErrClosed)
	require.ErrorIs(t, mon.PublishMetric(ctx, pincluster.Metric{Name: "x"}), pincluster.ErrClosed)
	require.Nil(t, mon.LatestMetrics(ctx, pincluster.MetricPing))
	_, open := <-mon.Alerts()
	require.False(t, open)

	// The topic and validator were released: a new monitor can join.
	n.startMonitor(t, cfg)
}

func TestPubsubMonitorConfig(t *testing.T) {
	n := newTestNode(t, newKey(t))
	for _, cfg := range []pincluster.PubsubMonitorConfig{
		{Interval: time.Second, TTL: time.Second},
		{Interval: -1},
		{TTL: time.Minute, MaxTTL: time.Second},
		{AlertBuffer: -1},
		{Informers: []pincluster.Informer{nil}},
	} {
		_, err := pincluster.NewPubsubMonitor(n.h, n.ps, cfg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := pincluster.NewPubsubMonitor(nil, n.ps, pincluster.PubsubMonitorConfig{})
	require.Error(t, err)
	// A second monitor of the same cluster on one pubsub is refused.
	n.startMonitor(t, pincluster.PubsubMonitorConfig{})
	_, err = pincluster.NewPubsubMonitor(n.h, n.ps, pincluster.PubsubMonitorConfig{})
	require.Error(t, err)
}

// Peers that connect after their monitors started learn each other's
// metrics when they join the topic, not an Interval later (an hour here):
// the first publication of each went to nobody.
func TestPubsubMonitorPublishesOnJoin(t *testing.T) {
	cfg := monitorConfig(countInformer(t, 7))
	cfg.Interval, cfg.TTL, cfg.CheckInterval = time.Hour, 2*time.Hour, time.Minute
	a, b := newTestNode(t, newKey(t)), newTestNode(t, newKey(t))
	a.startMonitor(t, cfg)
	b.startMonitor(t, cfg)
	connectAll(t, a, b)
	waitFor(t, 10*time.Second, "each peer's metrics on the other", func() bool {
		return hasValid(a.mon, pincluster.MetricNumPin, b.h.ID()) && hasValid(b.mon, pincluster.MetricNumPin, a.h.ID())
	})
}
