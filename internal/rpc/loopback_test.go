package rpc

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// newLoopbackPair connects two real libp2p hosts over TCP on 127.0.0.1
// (yamux, noise), with a server on the first and a client on the second.
func newLoopbackPair(tb testing.TB, scfg, ccfg Config) *pair {
	tb.Helper()
	hs := make([]host.Host, 2)
	for i := range hs {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.DisableRelay(),
		)
		if err != nil {
			tb.Fatal(err)
		}
		hs[i] = h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs[1].Connect(ctx, peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
		tb.Fatal(err)
	}
	p := &pair{srvHost: hs[0], cliHost: hs[1]}
	var err error
	if p.srv, err = NewServer(hs[0], scfg); err != nil {
		tb.Fatal(err)
	}
	if p.cli, err = NewClient(hs[1], ccfg, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.cli.Close(ctx); err != nil {
			tb.Errorf("client close: %v", err)
		}
		if err := p.srv.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			tb.Errorf("server close: %v", err)
		}
		for _, h := range hs {
			_ = h.Close()
		}
	})
	return p
}

// TestLoopbackTCP runs the flow-control-sensitive cases over real yamux
// streams: a refused call whose body is larger than yamux's initial window
// still gets its permission error, and deadlines apply.
func TestLoopbackTCP(t *testing.T) {
	p := newLoopbackPair(t, Config{MaxFrameSize: 1 << 10}, Config{MaxFrameSize: 8 << 20})
	_ = p.srv.Register("Echo", Open, func(_ context.Context, r Request) ([]byte, error) { return r.Body, nil })
	_ = p.srv.Register("Trusted", Trusted, func(context.Context, Request) ([]byte, error) {
		t.Error("trusted handler ran for an untrusted peer")
		return nil, nil
	})
	_ = p.srv.Register("Block", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx := ctxT(t)
	out, err := p.cli.Call(ctx, p.srvHost.ID(), "Echo", []byte("hi"))
	if err != nil || string(out) != "hi" {
		t.Fatalf("Echo = %q, %v", out, err)
	}
	huge := bytes.Repeat([]byte{1}, 4<<20) // far above yamux's initial 256 KiB window
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Trusted", huge); !errors.Is(err, ErrPermission) {
		t.Fatalf("untrusted call with a 4 MiB body: %v, want ErrPermission", err)
	}
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Echo", huge); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("4 MiB body to a 1 KiB server: %v, want ErrFrameTooLarge", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := p.cli.Call(dctx, p.srvHost.ID(), "Block", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Block: %v, want DeadlineExceeded", err)
	}
}

// BenchmarkUnaryLoopback measures sequential unary calls (16-byte request
// and response) between two libp2p hosts over TCP on 127.0.0.1, and reports
// calls/s and the p50 and p99 latency.
//
//	go test -run '^$' -bench UnaryLoopback -benchtime 5000x ./internal/rpc/
func BenchmarkUnaryLoopback(b *testing.B) {
	p := newLoopbackPair(b, Config{}, Config{})
	_ = p.srv.Register("Echo", Open, func(_ context.Context, r Request) ([]byte, error) { return r.Body, nil })
	ctx := context.Background()
	body := bytes.Repeat([]byte{7}, 16)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Echo", body); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkUnaryLoopbackParallel measures throughput with concurrent
// callers (GOMAXPROCS × 4 goroutines).
func BenchmarkUnaryLoopbackParallel(b *testing.B) {
	p := newLoopbackPair(b, Config{}, Config{})
	_ = p.srv.Register("Echo", Open, func(_ context.Context, r Request) ([]byte, error) { return r.Body, nil })
	body := bytes.Repeat([]byte{7}, 16)
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.cli.Call(context.Background(), p.srvHost.ID(), "Echo", body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
