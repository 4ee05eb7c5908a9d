package crdt_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

// pinValue is a value of the size of an encoded Pin (~200 bytes).
var pinValue = make([]byte, 200)

// BenchmarkWrites measures acknowledged writes/s on one peer (in-memory
// pebble store) with 64 concurrent writers.
func BenchmarkWrites(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  crdt.Config
	}{
		{"batch=1", crdt.Config{MaxBatchSize: 1}},
		{"batch=100", crdt.Config{MaxBatchSize: 100}},
		{"batch=1000", crdt.Config{MaxBatchSize: 1000}},
		{"adaptive", crdt.Config{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newCluster(b, 1, 1, bc.cfg).rs[0]
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if err := s.Put(ctx, key(int(i)), pinValue); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			b.ReportMetric(float64(b.N)/float64(s.Stats().LocalDeltas), "ops/delta")
		})
	}
	b.Run("explicit-batch=1000", func(b *testing.B) {
		s := newCluster(b, 1, 1, crdt.Config{}).rs[0]
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i += 1000 {
			bt, _ := s.Batch(ctx)
			for j := i; j < i+1000 && j < b.N; j++ {
				_ = bt.Put(ctx, key(j), pinValue)
			}
			require.NoError(b, bt.Commit(ctx))
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
	})
	// Four bulk importers at once, each committing batches of 250.
	b.Run("explicit-batch=250x4", func(b *testing.B) {
		s := newCluster(b, 1, 1, crdt.Config{}).rs[0]
		ctx := context.Background()
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range 4 {
			wg.Go(func() {
				for {
					i := int(next.Add(250)) - 250
					if i >= b.N {
						return
					}
					bt, _ := s.Batch(ctx)
					for j := i; j < i+250 && j < b.N; j++ {
						_ = bt.Put(ctx, key(j), pinValue)
					}
					if err := bt.Commit(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		b.ReportMetric(float64(b.N)/float64(s.Stats().LocalDeltas), "ops/delta")
	})
}

// BenchmarkSequentialPut is one writer, one write at a time (latency of a
// local commit).
func BenchmarkSequentialPut(b *testing.B) {
	s := newCluster(b, 1, 1, crdt.Config{}).rs[0]
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Put(ctx, key(i), pinValue); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisibleLatency: one write on an idle 3-peer cluster (mocknet,
// real gossipsub and the pubsub broadcaster): time until both other peers
// have applied it.
func BenchmarkVisibleLatency(b *testing.B) {
	seen := make(chan ds.Key, 1024)
	cfg := crdt.Config{PutHook: func(k ds.Key, _ []byte) { seen <- k }}
	pc := newPSCluster(b, 3, cfg, nil)
	ctx := context.Background()
	// Warm up the mesh.
	require.NoError(b, pc.rs[0].Put(ctx, key(-1), []byte("warm")))
	for range 3 {
		<-seen
	}
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		start := time.Now()
		require.NoError(b, pc.rs[0].Put(ctx, key(i), pinValue))
		for n := 0; n < 3; {
			k := <-seen
			if k == key(i) {
				n++
			}
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/visible")
}

// BenchmarkReplicate100k: 100,000 keys written on one peer (64 concurrent
// writers, adaptive batching) until 4 other peers hold them all (mocknet,
// real gossipsub).
func BenchmarkReplicate100k(b *testing.B) {
	const n = 100_000
	for range b.N {
		var applied atomic.Int64
		done := make(chan struct{})
		cfg := crdt.Config{PutHook: func(ds.Key, []byte) {
			if applied.Add(1) == 5*n {
				close(done)
			}
		}}
		pc := newPSCluster(b, 5, cfg, nil)
		ctx := context.Background()
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > n {
						return
					}
					if err := pc.rs[0].Put(ctx, key(int(i)), pinValue); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		written := time.Since(start)
		<-done
		all := time.Since(start)
		b.ReportMetric(written.Seconds(), "s-written")
		b.ReportMetric(all.Seconds(), "s-on-all-5")
		b.ReportMetric(float64(pc.rs[0].Stats().LocalDeltas), "deltas")
		for _, r := range pc.rs {
			_ = r.Close()
		}
	}
}

// BenchmarkJoin100k: a fresh peer joins a 2-peer cluster holding 100,000
// keys; time until it holds them all. Variants: keys written in 1,000-key
// batches (100 deltas) and by 64 concurrent writers (adaptive batching,
// thousands of deltas).
func BenchmarkJoin100k(b *testing.B) {
	const n = 100_000
	for _, mode := range []string{"batches", "adaptive"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				c := newCluster(b, 2, 1, crdt.Config{})
				ctx := context.Background()
				if mode == "batches" {
					for i := 0; i < n; i += 1000 {
						bt, _ := c.rs[0].Batch(ctx)
						for j := i; j < i+1000; j++ {
							_ = bt.Put(ctx, key(j), pinValue)
						}
						require.NoError(b, bt.Commit(ctx))
					}
				} else {
					var next atomic.Int64
					var wg sync.WaitGroup
					for range 64 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := next.Add(1); i <= n; i = next.Add(1) {
								_ = c.rs[0].Put(ctx, key(int(i)), pinValue)
							}
						}()
					}
					wg.Wait()
				}
				waitFor(b, 5*time.Minute, "p1 synced", func() bool { return converged(b, c.rs) })
				var applied atomic.Int64
				done := make(chan struct{})
				start := time.Now()
				c.add("joiner", crdt.Config{PutHook: func(ds.Key, []byte) {
					if applied.Add(1) == n {
						close(done)
					}
				}})
				<-done
				b.ReportMetric(time.Since(start).Seconds(), "s-to-sync")
				b.ReportMetric(float64(c.rs[0].Stats().DAGNodes), "dag-nodes")
				for _, r := range c.rs {
					_ = r.Close()
				}
			}
		})
	}
}
