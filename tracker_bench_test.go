package pincluster

import (
	"context"
	"iter"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

// benchConn is the smallest in-memory connector the tracker needs.
type benchConn struct {
	IPFSConnector
	mu   sync.Mutex
	pins map[cid.Cid]struct{}
}

func (c *benchConn) ID(context.Context) (IPFSID, error) { return IPFSID{}, nil }

func (c *benchConn) Pin(_ context.Context, p Pin, _ func(PinProgress)) error {
	c.mu.Lock()
	c.pins[p.Cid] = struct{}{}
	c.mu.Unlock()
	return nil
}

func (c *benchConn) Unpin(_ context.Context, ci cid.Cid) error {
	c.mu.Lock()
	delete(c.pins, ci)
	c.mu.Unlock()
	return nil
}

func (c *benchConn) PinLs(context.Context, ...IPFSPinStatus) iter.Seq2[IPFSPinInfo, error] {
	return func(func(IPFSPinInfo, error) bool) {}
}

// stateOnly is a Consensus whose only working method is State.
type stateOnly struct {
	Consensus
	st *DatastoreState
}

func (s stateOnly) State(context.Context) (ReadOnly, error) { return s.st, nil }

func benchTracker(b *testing.B, n int) (*opTracker, *DatastoreState, []cid.Cid) {
	return benchTracker2(b, n)
}

func benchTracker2(b testing.TB, n int) (*opTracker, *DatastoreState, []cid.Cid) {
	ctx := context.Background()
	st := NewMemoryState()
	batch, err := st.Batch(ctx)
	require.NoError(b, err)
	cids := make([]cid.Cid, n)
	for i := range cids {
		cids[i] = idxCID(b, i)
		require.NoError(b, batch.Add(ctx, NewPin(cids[i], PinOptions{Name: "p", ReplicationMin: -1, ReplicationMax: -1})))
	}
	require.NoError(b, batch.Commit(ctx))
	cfg := defaultConfig()
	tr, err := newOpTracker("self", "bench", &benchConn{pins: map[cid.Cid]struct{}{}}, stateOnly{st: st}, &cfg)
	require.NoError(b, err)
	b.Cleanup(func() { _ = tr.Shutdown(ctx) })
	return tr.(*opTracker), st, cids
}

// BenchmarkTrackerPins: 100,000 pins tracked and pinned on an in-memory
// connector; ops/s and the heap in use at the end.
func BenchmarkTrackerPins(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		tr, st, cids := benchTracker(b, n)
		ctx := context.Background()
		b.StartTimer()
		start := time.Now()
		for _, ci := range cids {
			p, err := st.Get(ctx, ci)
			if err != nil {
				b.Fatal(err)
			}
			if err := tr.Track(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		for tr.numHeld() < n {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "ops/s")
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.StartTimer()
	}
}

// BenchmarkTrackerStatusAll streams the status of every pin of the state
// (all pinned here). In the held10M cases the held set also has the
// fingerprints of 9M other CIDs, so that its lookups meet the cache
// misses of a ten-million-pin peer (80 MB of fingerprints) while the
// state stays small enough to build in a benchmark.
func BenchmarkTrackerStatusAll(b *testing.B) {
	for _, c := range []struct {
		name    string
		n, pads int
	}{{"100000", 100_000, 0}, {"1000000", 1_000_000, 0}, {"1000000-held10M", 1_000_000, 9_000_000}} {
		n := c.n
		b.Run(c.name, func(b *testing.B) {
			tr, _, cids := benchTracker(b, n)
			tr.mu.Lock()
			hb := heldBuilder{seed: tr.held.seed}
			for _, ci := range cids {
				hb.add(ci, IPFSPinStatusRecursive)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range c.pads {
				hb.es = append(hb.es, rng.Uint64()|1)
			}
			tr.held = hb.set()
			tr.loaded = true
			tr.mu.Unlock()
			ctx := context.Background()
			cpu0 := processCPU()
			for b.Loop() {
				k := 0
				for pi, err := range tr.StatusAll(ctx, 0) {
					if err != nil || pi.Status != TrackerStatusPinned {
						b.Fatal(pi.Status, err)
					}
					k++
				}
				if k != n {
					b.Fatal(k)
				}
			}
			// CPU time (all threads, the GC's included) is steadier than
			// wall time on a shared machine.
			if cpu0 >= 0 {
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*n), "cpu-ns/pin")
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "pins/s")
		})
	}
}
