package pincluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pincluster/pincluster"
)

// benchPins is the size of the State benchmarks' pinset; override with
// PINCLUSTER_BENCH_PINS.
func benchPins() int {
	if n, err := strconv.Atoi(os.Getenv("PINCLUSTER_BENCH_PINS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// heapSampler records how far the live heap (as measured by the last GC,
// runtime/metrics "/gc/heap/live:bytes") grows above its level at start
// while it runs: memory retained, not garbage waiting for the next GC. It
// also records how far the whole heap ("/memory/classes/heap/objects:bytes",
// garbage included) peaks above its level at start: what GC pacing lets
// the listing hold.
type heapSampler struct {
	base    uint64
	baseAll uint64
	peak    atomic.Uint64
	peakAll atomic.Uint64
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stop: make(chan struct{})}
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	s.base, s.baseAll = sample[0].Value.Uint64(), sample[1].Value.Uint64()
	s.peak.Store(s.base)
	s.peakAll.Store(s.baseAll)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > s.peak.Load() {
				s.peak.Store(v)
			}
			if v := sample[1].Value.Uint64(); v > s.peakAll.Load() {
				s.peakAll.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the live-heap growth and the
// whole heap's peak above its level at start (after a GC), in MiB.
func (s *heapSampler) Stop() (growth, peakHeap float64) {
	close(s.stop)
	s.wg.Wait()
	return float64(s.peak.Load()-s.base) / (1 << 20), float64(s.peakAll.Load()-s.baseAll) / (1 << 20)
}

// BenchmarkState1M writes, reads and lists benchPins() pins on each store.
// Run with: go test -run '^$' -bench BenchmarkState1M -benchtime 1x .
func BenchmarkState1M(b *testing.B) {
	n := benchPins()
	ctx := context.Background()
	// Pins are made on the fly: holding a million of them would raise the
	// live heap and hide the listing's own growth behind GC pacing.
	kinds := []struct {
		name string
		opt  func(dir string) pincluster.Option
	}{
		{"memory", func(string) pincluster.Option { return nil }},
		{"badger", pincluster.WithBadger},
		{"pebble", pincluster.WithPebble},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			for range b.N {
				s, err := pincluster.OpenState(k.opt(b.TempDir()))
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				batch, err := s.Batch(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					if err := batch.Add(ctx, mkPin(b, i)); err != nil {
						b.Fatal(err)
					}
					if (i+1)%10_000 == 0 {
						if err := batch.Commit(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := batch.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				addSecs := time.Since(start).Seconds()

				start = time.Now()
				const gets = 100_000
				for i := range gets {
					if _, err := s.Get(ctx, mkCid(b, (i*7919)%n)); err != nil {
						b.Fatal(err)
					}
				}
				getSecs := time.Since(start).Seconds()

				hs := startHeapSampler()
				start = time.Now()
				count := 0
				for _, err := range s.List(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					count++
				}
				listSecs := time.Since(start).Seconds()
				peak, peakHeap := hs.Stop()
				if count != n {
					b.Fatalf("listed %d pins, want %d", count, n)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/addSecs, "adds/s")
				b.ReportMetric(gets/getSecs, "gets/s")
				b.ReportMetric(listSecs, "list-s")
				b.ReportMetric(peak, "list-live-heap-growth-MiB")
				b.ReportMetric(peakHeap, "list-peak-heap-growth-MiB")
				fmt.Fprintf(os.Stderr, "%s: %d pins: add %.2fs, %d gets %.2fs, list %.2fs, list live-heap growth %.1f MiB, whole-heap peak growth %.1f MiB\n",
					k.name, n, addSecs, gets, getSecs, listSecs, peak, peakHeap)
			}
		})
	}
}
