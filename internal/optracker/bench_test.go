package optracker

import (
	"context"
	"encoding/binary"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func benchCids(b *testing.B, n int) []cid.Cid {
	b.Helper()
	out := make([]cid.Cid, n)
	var buf [8]byte
	for i := range out {
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		sum, err := mh.Sum(buf[:], mh.SHA2_256, -1)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = cid.NewCidV1(cid.Raw, sum)
	}
	return out
}

// heapSampler records the peak of live heap objects every millisecond.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.peak.Store(heapNow())
	h.wg.Go(func() {
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tk.C:
				if v := heapNow(); v > h.peak.Load() {
					h.peak.Store(v)
				}
			}
		}
	})
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

// BenchmarkPin100k pushes 100,000 pin operations through a tracker with
// default concurrency and an instant no-op pin function, enqueueing while
// the workers drain. One iteration is the whole 100,000; ops/s is the
// throughput, peak-heap-MiB the highest live heap seen (sampled every ms)
// above the level before the iteration.
func BenchmarkPin100k(b *testing.B) {
	const n = 100_000
	cids := benchCids(b, n)
	runtime.GC()
	base := heapNow()
	s := startSampler()
	for b.Loop() {
		var calls atomic.Int64
		all := make(chan struct{})
		pin := func(context.Context, Op, ProgressFunc) error {
			if calls.Add(1) == n {
				close(all)
			}
			return nil
		}
		tr, err := New(Config{Pin: pin, Unpin: noop})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cids {
			if _, err := tr.Enqueue(c, OpPin, nil); err != nil {
				b.Fatal(err)
			}
		}
		<-all
		if err := tr.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		if st := tr.Stats(); st.Done != n || st.Ops != 0 {
			b.Fatalf("done %d ops %d", st.Done, st.Ops)
		}
	}
	peak := s.Stop()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB")
}

// BenchmarkList1M lists and filters a tracker holding 1,000,000 operations
// (one running, the rest queued). held-B/op is the heap the tracker holds
// per operation; listing-heap-KiB is the peak heap growth while listing
// (flat: bounded by one chunk, not by the number of operations).
func BenchmarkList1M(b *testing.B) {
	const n = 1_000_000
	cids := benchCids(b, n)
	block := func(ctx context.Context, _ Op, _ ProgressFunc) error { <-ctx.Done(); return ctx.Err() }
	runtime.GC()
	before := heapNow()
	tr, err := New(Config{Pin: block, Unpin: block, PinConcurrency: 1, UnpinConcurrency: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close(context.Background())
	for _, c := range cids {
		if _, err := tr.Enqueue(c, OpPin, nil); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	held := float64(heapNow()-min(heapNow(), before)) / n
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    Filter
		want int
	}{
		{"all", Filter{}, n},
		{"filter-in-progress", Filter{Phases: PhaseInProgress}, 1},
		{"filter-queued-pins", Filter{Types: OpPin, Phases: PhaseQueued}, n - 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			runtime.GC()
			base := heapNow()
			s := startSampler()
			for b.Loop() {
				k := 0
				for _, err := range tr.Filter(ctx, bc.f) {
					if err != nil {
						b.Fatal(err)
					}
					k++
				}
				if k != bc.want {
					b.Fatalf("listed %d, want %d", k, bc.want)
				}
			}
			peak := s.Stop()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/listed-op")
			b.ReportMetric(float64(peak-min(peak, base))/1024, "listing-heap-KiB")
			b.ReportMetric(held, "held-B/op")
		})
	}
}

// BenchmarkEnqueueSupersede measures Enqueue alone on a saturated tracker,
// flipping pin/unpin over 1,000 CIDs (the supersede path).
func BenchmarkEnqueueSupersede(b *testing.B) {
	cids := benchCids(b, 1000)
	block := func(ctx context.Context, _ Op, _ ProgressFunc) error { <-ctx.Done(); return ctx.Err() }
	tr, err := New(Config{Pin: block, Unpin: block, PinConcurrency: 1, UnpinConcurrency: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close(context.Background())
	i := 0
	for b.Loop() {
		typ := OpPin
		if (i/len(cids))%2 == 1 {
			typ = OpUnpin
		}
		if _, err := tr.Enqueue(cids[i%len(cids)], typ, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
