package pincluster

import (
	"context"
	"fmt"
	"hash/maphash"
	"iter"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// heldSet agrees with a map of CIDs through random sets, unsets, mode
// changes and folds, and a builder's set agrees with the same listing.
func TestHeldSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const universe = 20_000
	cids := make([]cid.Cid, universe)
	for i := range cids {
		cids[i] = idxCID(t, i)
	}
	s := newHeldSet(maphash.MakeSeed())
	model := map[cid.Cid]IPFSPinStatus{}
	modes := []IPFSPinStatus{IPFSPinStatusUnpinned, IPFSPinStatusDirect, IPFSPinStatusRecursive}
	check := func() {
		require.Equal(t, len(model), s.len())
		for _, c := range cids {
			want, ok := model[c]
			if !ok {
				want = IPFSPinStatusUnpinned
			}
			require.Equal(t, want, s.get(c), c)
		}
		// getMany answers as get, by chunks of every size up to
		// heldBatch.
		fs := make([]uint64, 0, heldBatch)
		got := make([]IPFSPinStatus, heldBatch)
		for i := 0; i < len(cids); {
			k := min(1+rng.IntN(heldBatch), len(cids)-i)
			fs = fs[:0]
			for _, c := range cids[i : i+k] {
				fs = append(fs, s.fingerprint(c))
			}
			s.getMany(fs, got)
			for j, c := range cids[i : i+k] {
				want, ok := model[c]
				if !ok {
					want = IPFSPinStatusUnpinned
				}
				require.Equal(t, want, got[j], c)
			}
			i += k
		}
	}
	folds := 0
	for round := range 6 {
		for range 30_000 {
			c := cids[rng.IntN(universe)]
			m := modes[rng.IntN(3)]
			before := len(s.base)
			s.set(c, m)
			if len(s.base) != before {
				folds++
			}
			if m == IPFSPinStatusUnpinned {
				delete(model, c)
			} else {
				model[c] = m
			}
		}
		check()
		if round%2 == 1 {
			s.fold()
			require.Empty(t, s.over)
			check()
		}
	}
	require.NotZero(t, folds, "the overlay was never folded by set")

	// A listing with duplicates (a CID listed direct and recursive keeps
	// its recursive pin).
	b := heldBuilder{seed: s.seed}
	want := map[cid.Cid]IPFSPinStatus{}
	for i := range 5000 {
		c := cids[i]
		b.add(c, IPFSPinStatusDirect)
		want[c] = IPFSPinStatusDirect
		if i%3 == 0 {
			b.add(c, IPFSPinStatusRecursive)
			want[c] = IPFSPinStatusRecursive
		}
	}
	built := b.set()
	require.Equal(t, len(want), built.len())
	for _, c := range cids {
		m, ok := want[c]
		if !ok {
			m = IPFSPinStatusUnpinned
		}
		require.Equal(t, m, built.get(c))
	}
}

// The held set's directory finds what slices.BinarySearch finds over the
// base, on even and on skewed entries, for values present, absent, below
// and above them all.
func TestHeldSetDirectory(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sets := map[string][]uint64{"empty": nil, "one": {1 << 40}, "ends": {0, math.MaxUint64 &^ 1}}
	for _, n := range []int{2, 31, 32, 33, 100, 5000, 100_000} {
		even := make([]uint64, n)
		skewed := make([]uint64, n)
		for i := range even {
			even[i] = rng.Uint64() &^ 1
			// Most entries crowded at the bottom, a few spread high.
			skewed[i] = (rng.Uint64() >> uint(rng.IntN(64))) &^ 1
		}
		slices.Sort(even)
		slices.Sort(skewed)
		sets[fmt.Sprint("even/", n)] = even
		sets[fmt.Sprint("skewed/", n)] = skewed
		sets[fmt.Sprint("equal/", n)] = slices.Repeat([]uint64{1 << 20}, n)
	}
	for name, b := range sets {
		var s heldSet
		s.setBase(b)
		probes := []uint64{0, 1, 2, math.MaxUint64, math.MaxUint64 - 1, 1 << 20, 1<<20 + 1}
		for _, e := range b {
			probes = append(probes, e, e+1, e|1, e-1)
		}
		for range 2000 {
			probes = append(probes, rng.Uint64())
		}
		for _, f := range probes {
			want, _ := slices.BinarySearch(b, f)
			if got := s.search(f); got != want {
				t.Fatalf("%s: search(%#x) = %d, want %d", name, f, got, want)
			}
		}
	}
}

// genConn is a connector whose PinLs lists n CIDs made on the fly (it
// keeps none in memory).
type genConn struct {
	benchConn
	n    int
	from int
}

func (c *genConn) PinLs(context.Context, ...IPFSPinStatus) iter.Seq2[IPFSPinInfo, error] {
	return func(yield func(IPFSPinInfo, error) bool) {
		for i := c.from; i < c.from+c.n; i++ {
			if !yield(IPFSPinInfo{Cid: idxCID(nil, i), Type: IPFSPinStatusRecursive}, nil) {
				return
			}
		}
	}
}

// The tracker's record of what the IPFS node holds costs a few bytes per
// CID, not a CID each (a map of 200,000 CIDs held about 20 MiB, 100 bytes
// per CID; ten million would not fit the idle-memory target of issue 19).
func TestTrackerHeldMemoryPerCID(t *testing.T) {
	const n = 200_000
	ctx := context.Background()
	cfg := defaultConfig()
	conn := &genConn{benchConn: benchConn{pins: map[cid.Cid]struct{}{}}, n: n}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	tr, err := newOpTracker("self", "t", conn, stateOnly{st: NewMemoryState()}, &cfg)
	require.NoError(t, err)
	defer func() { _ = tr.Shutdown(ctx) }()
	ot := tr.(*opTracker)
	require.NoError(t, ot.load(ctx))
	require.Equal(t, n, ot.Stats().Held)
	require.True(t, ot.isHeld(idxCID(t, 123)))
	require.False(t, ot.isHeld(idxCID(t, n+1)))
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := float64(int64(ms.HeapAlloc)-int64(before)) / n
	t.Logf("held set: %.1f bytes per CID", per)
	require.Less(t, per, 24.0, "bytes of heap per held CID")
	runtime.KeepAlive(ot)
}

// SyncAll after a restart-like first load reports nothing; a later one
// reports the CIDs that appeared on the node and those that vanished
// (found through the state: they become unexpectedly_unpinned).
func TestTrackerSyncAllReportsChangesOnly(t *testing.T) {
	ctx := context.Background()
	cfg := defaultConfig()
	st := NewMemoryState()
	for i := range 100 {
		require.NoError(t, st.Add(ctx, NewPin(idxCID(t, i), PinOptions{ReplicationMin: -1, ReplicationMax: -1})))
	}
	conn := &genConn{benchConn: benchConn{pins: map[cid.Cid]struct{}{}}, n: 100}
	tr, err := newOpTracker("self", "t", conn, stateOnly{st: st}, &cfg)
	require.NoError(t, err)
	defer func() { _ = tr.Shutdown(ctx) }()
	collect := func() map[cid.Cid]TrackerStatus {
		out := map[cid.Cid]TrackerStatus{}
		for pi, err := range tr.SyncAll(ctx) {
			require.NoError(t, err)
			out[pi.Cid] = pi.Status
		}
		return out
	}
	require.Empty(t, collect(), "first load")
	// The node now holds 10..109: 0..9 vanished, 100..109 appeared.
	conn.from = 10
	got := collect()
	require.Len(t, got, 20)
	for i := range 10 {
		require.Equal(t, TrackerStatusUnexpectedlyUnpinned, got[idxCID(t, i)], i)
		require.Equal(t, TrackerStatusUnpinned, got[idxCID(t, 100+i)], 100+i) // not in the state
	}
	require.Empty(t, collect(), "nothing changed since")
}

// endlessState is a ReadOnly whose List yields pins made on the fly and
// never ends until its consumer stops: a pinset larger than memory.
type endlessState struct{ ReadOnly }

func (endlessState) List(ctx context.Context) iter.Seq2[Pin, error] {
	return func(yield func(Pin, error) bool) {
		for i := 0; ctx.Err() == nil; i++ {
			if !yield(NewPin(idxCID(nil, i), PinOptions{ReplicationMin: -1, ReplicationMax: -1}), nil) {
				return
			}
		}
	}
}

type endlessOnly struct{ Consensus }

func (endlessOnly) State(context.Context) (ReadOnly, error) { return endlessState{}, nil }

// StatusAll streams: statuses come out while the state is still being
// listed (here a listing that never ends), and the heap stays flat over a
// million of them.
func TestTrackerStatusAllStreams(t *testing.T) {
	ctx := context.Background()
	cfg := defaultConfig()
	conn := &genConn{benchConn: benchConn{pins: map[cid.Cid]struct{}{}}, n: 1000}
	tr, err := newOpTracker("self", "t", conn, endlessOnly{}, &cfg)
	require.NoError(t, err)
	defer func() { _ = tr.Shutdown(ctx) }()
	var ms runtime.MemStats
	var base uint64
	const n = 1_000_000
	k := 0
	for pi, err := range tr.StatusAll(ctx, 0) {
		require.NoError(t, err)
		if k < 1000 {
			require.Equal(t, TrackerStatusPinned, pi.Status, k)
		}
		k++
		if k == 1000 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base = ms.HeapAlloc
		}
		if k == n {
			break
		}
	}
	require.Equal(t, n, k)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - int64(base)
	t.Logf("live heap grew by %d bytes over %d statuses", grown, n)
	require.Less(t, grown, int64(8<<20), "StatusAll kept what it streamed")
}

// BenchmarkHeldSetLookup looks up held fingerprints in a set of ten
// million in a random order (a status listing's order is unrelated to the
// set's): one at a time (getF) and by chunks (getMany). ns/op is per
// lookup.
func BenchmarkHeldSetLookup(b *testing.B) {
	const n = 10_000_000
	rng := rand.New(rand.NewPCG(3, 4))
	hb := heldBuilder{es: make([]uint64, n)}
	for i := range hb.es {
		hb.es[i] = rng.Uint64()
	}
	s := hb.set()
	probe := make([]uint64, 1<<20)
	for i := range probe {
		probe[i] = s.base[rng.IntN(len(s.base))] &^ 1
	}
	b.Run("getF", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if s.getF(probe[i&(len(probe)-1)]) == IPFSPinStatusUnpinned {
				b.Fatal("not held")
			}
			i++
		}
	})
	b.Run("getMany", func(b *testing.B) {
		modes := make([]IPFSPinStatus, heldBatch)
		i := 0
		for b.Loop() {
			if i%heldBatch == 0 {
				j := i & (len(probe) - 1)
				s.getMany(probe[j:j+heldBatch], modes)
				if modes[0] == IPFSPinStatusUnpinned {
					b.Fatal("not held")
				}
			}
			i++
		}
	})
}
