package raft

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkCommitLoopback measures pins committed through the leader of 3
// voters on loopback TCP: latency of sequential LogPin calls (p50, p99) and
// throughput with 64 concurrent callers.
//
//	go test -run '^$' -bench CommitLoopback -benchtime 2000x ./consensus/raft/
func BenchmarkCommitLoopback(b *testing.B) {
	var hosts []host.Host
	var ids []peer.ID
	for range 3 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		hosts = append(hosts, h)
		ids = append(ids, h.ID())
	}
	ctx := context.Background()
	for _, a := range hosts {
		for _, o := range hosts {
			if a != o {
				if err := a.Connect(ctx, peer.AddrInfo{ID: o.ID(), Addrs: o.Addrs()}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	var cons []*Consensus
	for _, h := range hosts {
		c, err := New(ctx, h, Config{Peers: ids, HeartbeatTimeout: 200 * time.Millisecond,
			ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Shutdown(ctx)
		cons = append(cons, c)
	}
	var leader *Consensus
	waitUntil(b, 30*time.Second, "a leader", func() bool {
		for i, c := range cons {
			if l, err := c.Leader(ctx); err == nil && l == ids[i] {
				leader = c
			}
		}
		return leader != nil
	})
	b.Run("sequential", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			if err := leader.LogPin(ctx, testPin(b, i)); err != nil {
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
					if err := leader.LogPin(ctx, testPin(b, 1_000_000+i)); err != nil {
						panic(fmt.Sprint(err))
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pins/s")
	})
}
