package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// BenchmarkCRDTCommitLoopback is the CRDT side of consensus/raft's
// BenchmarkCommitLoopback: 3 peers on loopback TCP, Cluster.Pin
// (replication -1, so no allocation) on one of them: latency of sequential
// pins until acknowledged (p50, p99), throughput with 64 concurrent
// callers, and the time until the last of those pins is visible on the
// other two peers.
//
//	go test -run '^$' -bench CRDTCommitLoopback -benchtime 2000x .
func BenchmarkCRDTCommitLoopback(b *testing.B) {
	c := clustertest.Start(b, clustertest.Setup{N: 3, TCP: true})
	p := c.Peer(0)
	ctx := context.Background()
	// Every run (-count, and the b.N probes) pins CIDs no earlier run
	// pinned: a re-pin of a known CID is a no-op and would inflate the rate.
	var runs atomic.Int64
	b.Run("sequential", func(b *testing.B) {
		run := runs.Add(1)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			if _, err := p.Pin(ctx, testCID(b, fmt.Sprint("seq-", run, "-", i)), pincluster.PinOptions{}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
	b.Run("concurrent64", func(b *testing.B) {
		run := runs.Add(1)
		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for {
					i := int(next.Add(1))
					if i > b.N {
						return
					}
					if _, err := p.Pin(ctx, testCID(b, fmt.Sprint("conc-", run, "-", i)), pincluster.PinOptions{}); err != nil {
						panic(fmt.Sprint(err))
					}
				}
			})
		}
		wg.Wait()
		acked := time.Since(start)
		b.ReportMetric(float64(b.N)/acked.Seconds(), "pins/s")
		last := testCID(b, fmt.Sprint("conc-", run, "-", b.N))
		for _, q := range c.Peers[1:] {
			for {
				_, err := q.PinGet(ctx, last)
				if err == nil {
					break
				}
				if !errors.Is(err, pincluster.ErrNotFound) {
					b.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()-acked.Milliseconds()), "ms-to-visible-everywhere")
	})
}
