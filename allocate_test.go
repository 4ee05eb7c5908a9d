package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

const gib = int64(1) << 30

// testCid is a fixed CID for allocation tests (the balanced allocator does
// not look at it).
var testCid = cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")

// fakePeer describes a peer's metrics for allocation tests.
type fakePeer struct {
	id     peer.ID
	free   int64 // -1: no freespace metric
	numpin int64 // -1: no numpin metric
	tags   map[string]string
}

func tpid(i int) peer.ID { return peer.ID(fmt.Sprintf("peer-%02d", i)) }

func (f fakePeer) set(validUntil time.Time) pincluster.MetricsSet {
	ms := pincluster.MetricsSet{}
	add := func(m pincluster.Metric) {
		m.Peer, m.ValidUntil = f.id, validUntil
		ms[m.Name] = append(ms[m.Name], m)
	}
	add(pincluster.Metric{Name: pincluster.MetricPing})
	if f.free >= 0 {
		add(pincluster.Metric{Name: pincluster.MetricFreeSpace, Value: strconv.FormatInt(f.free, 10), Weight: f.free})
	}
	if f.numpin >= 0 {
		add(pincluster.Metric{Name: pincluster.MetricNumPin, Value: strconv.FormatInt(f.numpin, 10), Weight: f.numpin})
	}
	for k, v := range f.tags {
		add(pincluster.Metric{Name: pincluster.MetricTagPrefix + k, Value: v, Partitionable: true})
	}
	return ms
}

func metricsOf(peers []fakePeer) map[peer.ID]pincluster.MetricsSet {
	return metricsAt(peers, time.Now().Add(time.Hour))
}

// metricsAt returns the peers' metrics valid until vu.
func metricsAt(peers []fakePeer, vu time.Time) map[peer.ID]pincluster.MetricsSet {
	out := make(map[peer.ID]pincluster.MetricsSet, len(peers))
	for _, p := range peers {
		out[p.id] = p.set(vu)
	}
	return out
}

// tenPeersThreeRegions: regions eu (4 peers), us (3), ap (3); free space
// differs per peer.
func tenPeersThreeRegions() []fakePeer {
	regions := []string{"eu", "eu", "eu", "eu", "us", "us", "us", "ap", "ap", "ap"}
	frees := []int64{50, 80, 70, 60, 30, 90, 40, 20, 10, 25}
	var out []fakePeer
	for i := range regions {
		out = append(out, fakePeer{id: tpid(i), free: frees[i] * gib, numpin: -1, tags: map[string]string{"region": regions[i]}})
	}
	return out
}

func regionAllocator() *pincluster.BalancedAllocator {
	return pincluster.NewBalancedAllocator(pincluster.BalancedConfig{
		AllocateBy: []string{"tag:region", pincluster.MetricFreeSpace},
	})
}

func TestBalancedOneReplicaPerRegionEmptiestFirst(t *testing.T) {
	ctx := context.Background()
	peers := tenPeersThreeRegions()
	got, err := pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 3, Max: 3, Metrics: metricsOf(peers),
	})
	require.NoError(t, err)
	// Emptiest (most free) per region: eu peer-01 (80), us peer-05 (90),
	// ap peer-09 (25). Order: the region whose best peer is best first.
	require.Equal(t, []peer.ID{tpid(5), tpid(1), tpid(9)}, got)

	// Replication 4: the fourth goes to the next best peer of the region
	// whose best remaining peer is best (eu peer-02, 70).
	got, err = pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 1, Max: 4, Metrics: metricsOf(peers),
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(5), tpid(1), tpid(9), tpid(2)}, got)
}

// simulate allocates n pins of size bytes on peers with AllocateBy by and
// replication repl, updating the peers' metrics after each allocation, and
// returns the number of pins per peer.
func simulate(t *testing.T, peers []fakePeer, by []string, n, repl int, size int64) map[peer.ID]int {
	t.Helper()
	ctx := context.Background()
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: by})
	idx := make(map[peer.ID]int)
	for i, p := range peers {
		idx[p.id] = i
	}
	counts := make(map[peer.ID]int)
	for range n {
		got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
			Cid: testCid, Size: uint64(size), Min: repl, Max: repl, Metrics: metricsOf(peers),
		})
		require.NoError(t, err)
		require.Len(t, got, repl)
		for _, p := range got {
			counts[p]++
			fp := &peers[idx[p]]
			if fp.free >= 0 {
				fp.free -= size
			}
			if fp.numpin >= 0 {
				fp.numpin++
			}
		}
	}
	return counts
}

func spread(t *testing.T, peers []fakePeer, counts map[peer.ID]int) float64 {
	t.Helper()
	lo, hi := -1, 0
	for _, p := range peers {
		c := counts[p.id]
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	require.Positive(t, lo, "a peer got no pin: %v", counts)
	return float64(hi) / float64(lo)
}

func TestBalancedSpreadsRepeatedPinsEvenly(t *testing.T) {
	t.Run("freespace", func(t *testing.T) {
		peers := tenPeersThreeRegions()
		for i := range peers {
			peers[i].free += 2000 * gib // differences small relative to the load
		}
		counts := simulate(t, peers, []string{"tag:region", pincluster.MetricFreeSpace}, 3000, 3, gib)
		ratio := spread(t, peers, counts)
		t.Logf("pins per peer: %v; max/min %.2f", readable(counts), ratio)
		require.LessOrEqual(t, ratio, 1.5)
		// One replica per region for every pin: each region got 3,000.
		perRegion := map[string]int{}
		for _, p := range peers {
			perRegion[p.tags["region"]] += counts[p.id]
		}
		require.Equal(t, map[string]int{"eu": 3000, "us": 3000, "ap": 3000}, perRegion)
	})
	t.Run("numpin", func(t *testing.T) {
		peers := tenPeersThreeRegions()
		for i := range peers {
			peers[i].free, peers[i].numpin = -1, int64(i%3)
		}
		counts := simulate(t, peers, []string{"tag:region", pincluster.MetricNumPin}, 3000, 3, 0)
		ratio := spread(t, peers, counts)
		t.Logf("pins per peer: %v; max/min %.2f", readable(counts), ratio)
		require.LessOrEqual(t, ratio, 1.5)
	})
	t.Run("no partition", func(t *testing.T) {
		// Free space, not pin count, is balanced: the peers that received
		// pins end at the same level of free space (within two pin
		// sizes), and no peer left out has more free space than that —
		// except peers that got every pin (a pin cannot use a peer twice).
		peers := tenPeersThreeRegions()
		const size = 10 << 20
		counts := simulate(t, peers, []string{pincluster.MetricFreeSpace}, 3000, 3, size)
		level := int64(-1)
		for _, p := range peers {
			if counts[p.id] > 0 && (level < 0 || p.free < level) {
				level = p.free
			}
		}
		for _, p := range peers {
			if counts[p.id] < 3000 {
				require.LessOrEqual(t, p.free, level+2*size, "peer %s (%d pins)", p.id, counts[p.id])
			}
		}
		t.Logf("pins per peer: %v; free-space level %.2f GiB", readable(counts), float64(level)/float64(gib))
	})
}

func TestAllocatePeersNotEnoughPeers(t *testing.T) {
	peers := tenPeersThreeRegions()[:2]
	peers = append(peers, fakePeer{id: tpid(50), free: 0, numpin: -1}, fakePeer{id: tpid(51), free: -1, numpin: -1})
	_, err := pincluster.AllocatePeers(context.Background(), regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 3, Max: 5, Metrics: metricsOf(peers),
	})
	require.ErrorIs(t, err, pincluster.ErrNotEnoughPeers)
	var ae *pincluster.AllocationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 3, ae.Needed)
	require.Equal(t, 2, ae.Available, "full peer and peer without free space are not available")

	// Fewer than max is fine.
	got, err := pincluster.AllocatePeers(context.Background(), regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 2, Max: 5, Metrics: metricsOf(peers),
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
}

func TestAllocatePeersFactors(t *testing.T) {
	ctx := context.Background()
	m := metricsOf(tenPeersThreeRegions())
	got, err := pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{Cid: testCid, Min: -1, Max: -1, Metrics: m})
	require.NoError(t, err)
	require.Nil(t, got, "everywhere pins have no allocations")
	for _, f := range [][2]int{{0, 0}, {3, 2}, {-1, 3}, {-2, -2}} {
		_, err := pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{Cid: testCid, Min: f[0], Max: f[1], Metrics: m})
		require.ErrorIs(t, err, pincluster.ErrInvalidReplication, "min %d max %d", f[0], f[1])
	}
}

func TestAllocatePeersKeepsCurrentAndPutsUserFirst(t *testing.T) {
	ctx := context.Background()
	peers := tenPeersThreeRegions()
	m := metricsOf(peers)

	// Current allocations are kept even if others have more space.
	got, err := pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 3, Max: 3, Metrics: m, Current: []peer.ID{tpid(0), tpid(8)},
	})
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.ElementsMatch(t, []peer.ID{tpid(0), tpid(8)}, got[:2])
	// eu and ap are used: the third replica goes to us' emptiest.
	require.Equal(t, tpid(5), got[2])

	// A current peer that is gone (no metrics) is replaced.
	gone := tpid(99)
	got, err = pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 3, Max: 3, Metrics: m, Current: []peer.ID{gone, tpid(0)},
	})
	require.NoError(t, err)
	require.NotContains(t, got, gone)
	require.Equal(t, tpid(0), got[0])

	// User allocations come first, in the user's order, then current.
	got, err = pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 3, Max: 4, Metrics: m,
		Priority: []peer.ID{tpid(8), tpid(3)}, Current: []peer.ID{tpid(6)},
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(8), tpid(3), tpid(6)}, got[:3])
	require.Len(t, got, 4)
	require.Equal(t, tpid(5), got[3], "regions: ap, eu, us used once each; us' best is taken next by free space")

	// Excluded peers are never chosen, even as current or user allocations.
	got, err = pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 1, Max: 10, Metrics: m,
		Priority: []peer.ID{tpid(5)}, Current: []peer.ID{tpid(1)}, Exclude: []peer.ID{tpid(5), tpid(1)},
	})
	require.NoError(t, err)
	require.Len(t, got, 8)
	require.NotContains(t, got, tpid(5))
	require.NotContains(t, got, tpid(1))

	// Max below the number of user allocations keeps the first ones.
	got, err = pincluster.AllocatePeers(ctx, regionAllocator(), pincluster.AllocationRequest{
		Cid: testCid, Min: 1, Max: 1, Metrics: m, Priority: []peer.ID{tpid(8), tpid(3)},
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(8)}, got)
}

func TestAllocateNeverChoosesFullOrTooSmallPeers(t *testing.T) {
	ctx := context.Background()
	peers := []fakePeer{
		{id: tpid(0), free: 0, numpin: -1},            // full
		{id: tpid(1), free: 5 * gib, numpin: -1},      // too small for 6 GiB
		{id: tpid(2), free: 100 * gib, numpin: -1},    // fine
		{id: tpid(3), free: -1, numpin: -1},           // unknown space
		{id: tpid(4), free: 6 * gib, numpin: -1},      // exactly enough
		{id: tpid(5), free: -5 * gib, numpin: -1},     // nonsense negative
		{id: tpid(6), free: 200 * gib, numpin: -1},    // fine, but the user asks for full tpid(0) too
		{id: tpid(7), free: 1 << 62, numpin: 1 << 62}, // huge
	}
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{pincluster.MetricFreeSpace}})
	got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: testCid, Size: uint64(6 * gib), Min: 1, Max: 8, Metrics: metricsOf(peers), Priority: []peer.ID{tpid(0)},
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(7), tpid(6), tpid(2), tpid(4)}, got)

	// Size unknown: only the full, unknown and negative ones are out.
	got, err = pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: testCid, Min: 1, Max: 8, Metrics: metricsOf(peers),
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(7), tpid(6), tpid(2), tpid(4), tpid(1)}, got)

	// A full peer that already holds the pin is kept as current (min 2:
	// one current peer is not enough to keep the allocations as they are).
	got, err = pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: testCid, Min: 2, Max: 2, Metrics: metricsOf(peers), Current: []peer.ID{tpid(0)}, Priority: []peer.ID{tpid(0)},
	})
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(0), tpid(7)}, got)
}

func TestAllocateExpiredMetricsIgnored(t *testing.T) {
	ctx := context.Background()
	alive := fakePeer{id: tpid(0), free: 10 * gib, numpin: -1}
	stale := fakePeer{id: tpid(1), free: 90 * gib, numpin: -1}
	m := map[peer.ID]pincluster.MetricsSet{
		alive.id: alive.set(time.Now().Add(time.Minute)),
		stale.id: stale.set(time.Now().Add(-time.Second)),
	}
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{})
	got, err := alloc.Allocate(ctx, testCid, map[peer.ID]pincluster.MetricsSet{stale.id: m[stale.id]}, m, nil)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{alive.id}, got, "expired peer neither kept as current nor chosen")
}

func TestAllocateDeterministic(t *testing.T) {
	ctx := context.Background()
	base := tenPeersThreeRegions()
	for i := range 20 { // more peers, ties included
		base = append(base, fakePeer{id: tpid(20 + i), free: int64(i%4) * gib, numpin: int64(i % 3),
			tags: map[string]string{"region": []string{"eu", "us", "ap"}[i%3], "group": strconv.Itoa(i % 2)}})
	}
	vu := time.Now().Add(time.Hour)
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{
		AllocateBy: []string{"tag:region", "tag:group", pincluster.MetricFreeSpace, pincluster.MetricNumPin},
	})
	var want []peer.ID
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 100 {
		order := slices.Clone(base)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		m := make(map[peer.ID]pincluster.MetricsSet)
		for _, p := range order {
			m[p.id] = p.set(vu)
		}
		got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
			Cid: testCid, Min: 2, Max: 30, Metrics: m, Current: []peer.ID{tpid(3)},
		})
		require.NoError(t, err)
		if run == 0 {
			want = got
			require.Len(t, want, 25, "5 peers have no free space")
			continue
		}
		require.Equal(t, want, got, "run %d", run)
	}
}

func TestBalancedPartitionableFlagAndDirections(t *testing.T) {
	ctx := context.Background()
	vu := time.Now().Add(time.Hour)
	mk := func(id peer.ID, zone string, load int64) pincluster.MetricsSet {
		return pincluster.MetricsSet{
			"zone": {{Name: "zone", Peer: id, Value: zone, Partitionable: true, ValidUntil: vu}},
			"load": {{Name: "load", Peer: id, Value: strconv.FormatInt(load, 10), Weight: load, ValidUntil: vu}},
		}
	}
	m := map[peer.ID]pincluster.MetricsSet{
		tpid(0): mk(tpid(0), "a", 5), tpid(1): mk(tpid(1), "a", 1),
		tpid(2): mk(tpid(2), "b", 9), tpid(3): mk(tpid(3), "b", 3),
	}
	higher := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{"zone", "load"}})
	got, err := higher.Allocate(ctx, testCid, nil, m, nil)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(2), tpid(0), tpid(3), tpid(1)}, got, "unknown metric: higher first, alternating zones")

	lower := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{"zone", "load"}, LowerIsBetter: []string{"load"}})
	got, err = lower.Allocate(ctx, testCid, nil, m, nil)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(1), tpid(3), tpid(0), tpid(2)}, got)
	require.Equal(t, []string{"zone", "load"}, lower.Metrics())

	def := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{})
	require.Equal(t, []string{"tag:group", "freespace"}, def.Metrics())
}

func TestBalancedAllocatorShutdown(t *testing.T) {
	ctx := context.Background()
	a := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{})
	require.NoError(t, a.Shutdown(ctx))
	require.ErrorIs(t, a.Shutdown(ctx), pincluster.ErrClosed)
	_, err := a.Allocate(ctx, testCid, nil, metricsOf(tenPeersThreeRegions()), nil)
	require.ErrorIs(t, err, pincluster.ErrClosed)
	_, err = pincluster.AllocatePeers(ctx, a, pincluster.AllocationRequest{Cid: testCid, Min: 1, Max: 1, Metrics: metricsOf(tenPeersThreeRegions())})
	require.ErrorIs(t, err, pincluster.ErrClosed)
}

// burstPeers: 4 peers with 20 GiB free each, as their (stale) metrics say
// during a burst.
func burstPeers() []fakePeer {
	var out []fakePeer
	for i := range 4 {
		out = append(out, fakePeer{id: tpid(i), free: 20 * gib, numpin: -1})
	}
	return out
}

func TestReservationsBurstNeverOverfills(t *testing.T) {
	ctx := context.Background()
	peers := burstPeers()
	// Metrics issued just before the burst, valid for the default TTL;
	// they do not change during the burst.
	m := metricsAt(peers, time.Now().Add(30*time.Second))
	ledger := pincluster.NewReservations(pincluster.ReservationsConfig{})
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{pincluster.MetricFreeSpace}})
	used := map[peer.ID]int64{}
	ok, failed := 0, 0
	for i := range 100 {
		got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
			Cid: testCid, Size: uint64(gib), Min: 2, Max: 2, Metrics: m, Reservations: ledger,
		})
		if err != nil {
			require.ErrorIs(t, err, pincluster.ErrNotEnoughPeers, "pin %d", i)
			failed++
			continue
		}
		ok++
		require.Len(t, got, 2)
		for _, p := range got {
			used[p] += gib
			require.LessOrEqual(t, used[p], 20*gib, "peer %s over its free space at pin %d", p, i)
		}
	}
	require.Equal(t, 40, ok, "4 peers × 20 GiB / (2 × 1 GiB)")
	require.Equal(t, 60, failed)
	for _, p := range peers {
		require.Equal(t, 20*gib, used[p.id])
		require.Equal(t, uint64(20*gib), ledger.Outstanding(p.id))
	}
}

func TestReservationsBurstConcurrent(t *testing.T) {
	ctx := context.Background()
	m := metricsAt(burstPeers(), time.Now().Add(30*time.Second))
	ledger := pincluster.NewReservations(pincluster.ReservationsConfig{})
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{pincluster.MetricFreeSpace}})
	var mu sync.Mutex
	used := map[peer.ID]int64{}
	ok := 0
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			got, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
				Cid: testCid, Size: uint64(gib), Min: 2, Max: 2, Metrics: m, Reservations: ledger,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if !errors.Is(err, pincluster.ErrNotEnoughPeers) {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			ok++
			for _, p := range got {
				used[p] += gib
			}
		})
	}
	wg.Wait()
	require.Equal(t, 40, ok)
	for p, u := range used {
		require.LessOrEqual(t, u, 20*gib, "peer %s", p)
	}
}

func TestReservationsDroppedByFresherMetric(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ttl := 30 * time.Second
	ledger := pincluster.NewReservations(pincluster.ReservationsConfig{MetricTTL: ttl, Grace: 10 * time.Second, MaxAge: time.Hour, Now: clock})
	p := tpid(0)
	ledger.Reserve(p, uint64(3*gib))
	reservedAt := now

	metric := func(issued time.Time, free int64) map[peer.ID]pincluster.MetricsSet {
		return map[peer.ID]pincluster.MetricsSet{p: {pincluster.MetricFreeSpace: {{
			Name: pincluster.MetricFreeSpace, Peer: p, Weight: free, Value: strconv.FormatInt(free, 10), ValidUntil: issued.Add(ttl),
		}}}}
	}
	// A metric issued before the reservation (or within the grace) does
	// not include it: subtracted.
	now = reservedAt.Add(5 * time.Second)
	in := metric(reservedAt.Add(5*time.Second), 10*gib)
	adj := ledger.Adjust(in)
	require.Equal(t, 7*gib, adj[p][pincluster.MetricFreeSpace][0].Weight)
	require.Equal(t, strconv.FormatInt(7*gib, 10), adj[p][pincluster.MetricFreeSpace][0].Value)
	require.Equal(t, 10*gib, in[p][pincluster.MetricFreeSpace][0].Weight, "input not modified")
	require.Equal(t, uint64(3*gib), ledger.Outstanding(p))

	// Never below zero.
	adj = ledger.Adjust(metric(reservedAt, gib))
	require.Zero(t, adj[p][pincluster.MetricFreeSpace][0].Weight)

	// A metric issued after reservation + grace accounts for it: dropped.
	now = reservedAt.Add(20 * time.Second)
	adj = ledger.Adjust(metric(reservedAt.Add(11*time.Second), 7*gib))
	require.Equal(t, 7*gib, adj[p][pincluster.MetricFreeSpace][0].Weight)
	require.Zero(t, ledger.Outstanding(p))

	// MaxAge drops forgotten reservations; Release undoes one.
	ledger.Reserve(p, 1)
	ledger.Reserve(p, 2)
	require.True(t, ledger.Release(p, 2))
	require.False(t, ledger.Release(p, 2))
	require.Equal(t, uint64(1), ledger.Outstanding(p))
	now = now.Add(2 * time.Hour)
	ledger.Observe(pincluster.Metric{Name: pincluster.MetricFreeSpace, Peer: p, ValidUntil: reservedAt})
	require.Zero(t, ledger.Outstanding(p))
}

func TestCollectMetrics(t *testing.T) {
	// A static monitor stand-in: CollectMetrics only uses LatestMetrics.
	vu := time.Now().Add(time.Minute)
	mon := staticMonitor{
		pincluster.MetricFreeSpace: {{Name: pincluster.MetricFreeSpace, Peer: tpid(0), Weight: 5, ValidUntil: vu}},
		pincluster.MetricPing:      {{Name: pincluster.MetricPing, Peer: tpid(0), ValidUntil: vu}, {Name: pincluster.MetricPing, Peer: tpid(1), ValidUntil: vu}},
	}
	got := pincluster.CollectMetrics(context.Background(), mon, []string{pincluster.MetricFreeSpace, "tag:group"})
	require.Len(t, got, 2)
	require.Len(t, got[tpid(0)], 2)
	require.Len(t, got[tpid(1)], 1)
	require.Equal(t, int64(5), got[tpid(0)][pincluster.MetricFreeSpace][0].Weight)
}

type staticMonitor map[string][]pincluster.Metric

func (s staticMonitor) Shutdown(context.Context) error                         { return nil }
func (s staticMonitor) LogMetric(context.Context, pincluster.Metric) error     { return nil }
func (s staticMonitor) PublishMetric(context.Context, pincluster.Metric) error { return nil }
func (s staticMonitor) LatestMetrics(_ context.Context, name string) []pincluster.Metric {
	return s[name]
}
func (s staticMonitor) LatestForPeer(context.Context, string, peer.ID) (pincluster.Metric, bool) {
	return pincluster.Metric{}, false
}
func (s staticMonitor) MetricNames(context.Context) []string { return nil }
func (s staticMonitor) Alerts() <-chan pincluster.Alert      { return nil }

var _ pincluster.PeerMonitor = staticMonitor(nil)

// readable keys counts by the raw peer ID strings ("peer-05") for logs.
func readable(counts map[peer.ID]int) map[string]int {
	out := make(map[string]int, len(counts))
	for p, c := range counts {
		out[string(p)] = c
	}
	return out
}

// BenchmarkAllocatePeers measures one allocation (replication 3, regions
// then free space) among n peers.
func BenchmarkAllocatePeers(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var peers []fakePeer
			for i := range n {
				peers = append(peers, fakePeer{id: tpid(i), free: int64(1000+i%97) * gib, numpin: -1,
					tags: map[string]string{"region": []string{"eu", "us", "ap"}[i%3]}})
			}
			m := metricsAt(peers, time.Now().Add(time.Hour))
			alloc := regionAllocator()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
					Cid: testCid, Size: 1 << 20, Min: 3, Max: 3, Metrics: m,
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The re-pin rule: current allocations are kept while their live ones
// meet Min (dead ones too, trimmed to Max live first); below Min, or when
// the user asks for other peers, the live ones stay and candidates are
// added. Exclude counts as dead; Remove drops the peer.
func TestAllocateKeepsCurrentWhileMinIsMet(t *testing.T) {
	ctx := context.Background()
	var peers []fakePeer
	for i := range 6 {
		peers = append(peers, fakePeer{id: tpid(i), free: int64(10+i) * gib, numpin: -1})
	}
	m := metricsOf(peers)
	delete(m, tpid(1)) // dead
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{AllocateBy: []string{pincluster.MetricFreeSpace}})
	req := func(min, max int, current []peer.ID) pincluster.AllocationRequest {
		return pincluster.AllocationRequest{Cid: testCid, Min: min, Max: max, Metrics: m, Current: current}
	}
	cur := []peer.ID{tpid(0), tpid(1), tpid(2)}

	got, err := pincluster.AllocatePeers(ctx, alloc, req(2, 3, cur))
	require.NoError(t, err)
	require.Equal(t, cur, got, "2 live of 3 meet min 2: kept, the dead one too")

	got, err = pincluster.AllocatePeers(ctx, alloc, req(1, 2, cur))
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(0), tpid(2)}, got, "a lower max keeps the live ones first")

	got, err = pincluster.AllocatePeers(ctx, alloc, req(3, 3, cur))
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.ElementsMatch(t, []peer.ID{tpid(0), tpid(2)}, got[:2], "below min: live ones kept...")
	require.Equal(t, tpid(5), got[2], "... and the best candidate added")

	r := req(2, 3, cur)
	r.Priority = []peer.ID{tpid(4)}
	got, err = pincluster.AllocatePeers(ctx, alloc, r)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, tpid(4), got[0], "other user allocations: allocated anew, the user's first")
	require.ElementsMatch(t, []peer.ID{tpid(0), tpid(2)}, got[1:], "then the live current ones")

	r = req(1, 3, cur)
	r.Exclude = []peer.ID{tpid(2)}
	got, err = pincluster.AllocatePeers(ctx, alloc, r)
	require.NoError(t, err)
	require.Equal(t, cur, got, "an excluded (lost) peer stays while min is met")

	r = req(1, 3, cur)
	r.Remove = []peer.ID{tpid(2)}
	got, err = pincluster.AllocatePeers(ctx, alloc, r)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(0), tpid(1)}, got, "a removed peer is dropped")

	r = req(2, 3, cur)
	r.Remove = []peer.ID{tpid(2)}
	got, err = pincluster.AllocatePeers(ctx, alloc, r)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{tpid(0), tpid(5), tpid(4)}, got, "a removed peer is replaced when below min")
}
