package ipfsnode_test

// Benchmarks (not run in CI). Commands used for the report:
//
//	go test -run XXX -bench 'Fetch100MiB' -benchtime 3x ./internal/ipfsnode/
//	PINCLUSTER_KUBO=$PWD/.cache/bin/ipfs go test -run XXX -bench 'Kubo' -benchtime 3x ./internal/ipfsnode/
//	go test -run XXX -bench PinLocal10k -benchtime 1x ./internal/ipfsnode/
//	go test -run XXX -bench GC1M -benchtime 1x ./internal/ipfsnode/
//	PINCLUSTER_PEBBLE_TUNED=1 go test -run XXX -bench Fetch100MiB/pebble -benchtime 3x ./internal/ipfsnode/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pebble "github.com/cockroachdb/pebble/v2"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/badgerds"
	"github.com/pincluster/pincluster/internal/ipfsnode"
	"github.com/pincluster/pincluster/internal/kubotest"
)

const fetchSize = 100 << 20

func pebbleDS(b testing.TB) ds.Batching {
	d, err := pebbleds.NewDatastore(b.TempDir(), pebbleds.WithPebbleOpts(pebbleOpts()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = d.Close() })
	return d
}

// Ours -> ours: 100 MiB UnixFS (CIDv1, raw leaves, 256 KiB chunks) added on
// A, pinned recursively by a fresh B over loopback TCP.
func BenchmarkFetch100MiB(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) {
			a := newNode(b, ipfsnode.Config{})
			root := add(b, a, randBytes(40, fetchSize), v1raw)
			b.SetBytes(fetchSize)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				cfg := ipfsnode.Config{}
				if store == "pebble" {
					cfg.Datastore = pebbleDS(b)
				}
				n := newNode(b, cfg)
				connect(b, n, a)
				b.StartTimer()
				require.NoError(b, n.Pin(testCtx(b, 5*time.Minute), root, ipfsnode.PinOptions{MaxDepth: -1}))
				b.StopTimer()
				require.NoError(b, n.Close(context.Background()))
				b.StartTimer()
			}
		})
	}
}

func kuboAdd(b testing.TB, d *kubotest.Daemon, data []byte) string {
	f := filepath.Join(b.TempDir(), "data")
	require.NoError(b, os.WriteFile(f, data, 0o600))
	out, err := d.Run(context.Background(), "add", "-Q", "--cid-version=1", "--raw-leaves", f)
	require.NoError(b, err)
	return strings.TrimSpace(string(out))
}

// Kubo -> Kubo: the same 100 MiB added on one daemon, `pin/add` on a fresh
// second daemon connected to it (Routing.Type none).
func BenchmarkKuboToKubo100MiB(b *testing.B) {
	src := kubotest.Start(b, kubotest.Options{})
	root := kuboAdd(b, src, randBytes(40, fetchSize))
	b.SetBytes(fetchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst := kubotest.Start(b, kubotest.Options{})
		ctx := testCtx(b, 5*time.Minute)
		_, err := dst.RPC(ctx, "swarm/connect", url.Values{"arg": {src.SwarmAddrs[0].String() + "/p2p/" + src.PeerID.String()}})
		require.NoError(b, err)
		b.StartTimer()
		body, err := dst.RPC(ctx, "pin/add", url.Values{"arg": {root}, "recursive": {"true"}})
		b.StopTimer()
		require.NoError(b, err)
		var pins struct{ Pins []string }
		require.NoError(b, json.Unmarshal(body, &pins))
		require.Equal(b, []string{root}, pins.Pins)
		dst.Stop()
		b.StartTimer()
	}
}

// Kubo -> ours: our node pins what a Kubo daemon has.
func BenchmarkKuboToOurs100MiB(b *testing.B) {
	src := kubotest.Start(b, kubotest.Options{})
	root := cid.MustParse(kuboAdd(b, src, randBytes(40, fetchSize)))
	for _, store := range []string{"memory", "pebble"} {
		for _, conc := range []int{32, 128} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", store, conc), func(b *testing.B) {
				b.SetBytes(fetchSize)
				for range b.N {
					b.StopTimer()
					cfg := ipfsnode.Config{FetchConcurrency: conc}
					if store == "pebble" {
						cfg.Datastore = pebbleDS(b)
					}
					n := newNode(b, cfg)
					ctx := testCtx(b, 5*time.Minute)
					require.NoError(b, n.Connect(ctx, src.AddrInfo()))
					b.StartTimer()
					require.NoError(b, n.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: -1}))
					b.StopTimer()
					require.NoError(b, n.Close(context.Background()))
					b.StartTimer()
				}
			})
		}
	}
}

// Pinning 10,000 small DAGs (4 KiB files in 1 KiB chunks: root + 4
// leaves) that are already local.
func BenchmarkPinLocal10k(b *testing.B) {
	const count = 10_000
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				cfg := ipfsnode.Config{}
				if store == "pebble" {
					cfg.Datastore = pebbleDS(b)
				}
				n := newNode(b, cfg)
				roots := make([]cid.Cid, count)
				for i := range roots {
					roots[i] = add(b, n, randBytes(uint64(1000+i), 4096), ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Chunker: "size-1024"})
				}
				ctx := testCtx(b, 5*time.Minute)
				start := time.Now()
				b.StartTimer()
				for _, r := range roots {
					if err := n.Pin(ctx, r, ipfsnode.PinOptions{MaxDepth: -1}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(count/time.Since(start).Seconds(), "pins/s")
				require.NoError(b, n.Close(ctx))
			}
		})
	}
}

// Pinning 1 KiB raw blocks that are already local (the HTTP pin
// benchmark's pins), one at a time.
func BenchmarkPinLocalRaw(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) {
			cfg := ipfsnode.Config{}
			if store == "pebble" {
				cfg.Datastore = pebbleDS(b)
			}
			n := newNode(b, cfg)
			ctx := testCtx(b, 5*time.Minute)
			roots := make([]cid.Cid, b.N)
			for i := range roots {
				roots[i] = add(b, n, randBytes(uint64(i), 1024), ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, r := range roots {
				if err := n.Pin(ctx, r, ipfsnode.PinOptions{MaxDepth: -1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Pinning 1 KiB raw blocks that are already local from 8 goroutines at
// once (the tracker's workers during a burst), on each datastore; cpu-ns/op
// is the process's CPU time per pin.
func BenchmarkPinLocalRawParallel(b *testing.B) {
	for _, store := range []string{"memory", "pebble", "badger"} {
		b.Run(store, func(b *testing.B) {
			cfg := ipfsnode.Config{}
			switch store {
			case "pebble":
				cfg.Datastore = pebbleDS(b)
			case "badger":
				d, err := badgerds.New(b.TempDir(), nil)
				require.NoError(b, err)
				b.Cleanup(func() { _ = d.Close() })
				cfg.Datastore = d
			}
			n := newNode(b, cfg)
			ctx := testCtx(b, 5*time.Minute)
			roots := make([]cid.Cid, b.N)
			for i := range roots {
				roots[i] = add(b, n, randBytes(uint64(i), 1024), v1raw)
			}
			var next atomic.Int64
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := roots[next.Add(1)-1]
					if err := n.Pin(ctx, r, ipfsnode.PinOptions{MaxDepth: -1}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if cpu >= 0 {
				b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// GC of 1,000,000 blocks of which 10% are pinned (1,000 files of 100
// raw 64-byte leaves + root, pinned recursively; 899,000 loose blocks).
func BenchmarkGC1M(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		b.Run(store, func(b *testing.B) { benchGC1M(b, store) })
	}
}

func benchGC1M(b *testing.B, store string) {
	const total, files, leaves, leafSize = 1_000_000, 1_000, 100, 64
	for range b.N {
		b.StopTimer()
		cfg := ipfsnode.Config{}
		if store == "pebble" {
			cfg.Datastore = pebbleDS(b)
		}
		n := newNode(b, cfg)
		ctx := testCtx(b, 10*time.Minute)
		for i := range files {
			a, err := n.Add(ctx, bytes.NewReader(randBytes(uint64(i), leaves*leafSize)), ipfsnode.AddOptions{
				CIDVersion: 1, RawLeaves: true, Chunker: fmt.Sprintf("size-%d", leafSize), Pin: true})
			require.NoError(b, err)
			_ = a
		}
		st, err := n.RepoStat(ctx)
		require.NoError(b, err)
		pinned := st.NumObjects
		loose := total - int(pinned)
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, leafSize)
				for i := w; i < loose; i += 2 {
					copy(buf, fmt.Sprintf("loose block %d", i))
					if _, err := n.BlockPut(ctx, buf, cid.Prefix{}); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		st, err = n.RepoStat(ctx)
		require.NoError(b, err)
		require.Equal(b, uint64(total), st.NumObjects)

		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		var sw sync.WaitGroup
		sw.Add(1)
		go func() {
			defer sw.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
				}
			}
		}()
		start := time.Now()
		b.StartTimer()
		res, err := n.GC(ctx)
		b.StopTimer()
		elapsed := time.Since(start)
		close(stop)
		sw.Wait()
		require.NoError(b, err)
		require.Equal(b, uint64(loose), res.Blocks)
		b.ReportMetric(elapsed.Seconds(), "gc-s")
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapAlloc))/(1<<20), "peak-heap-over-base-MiB")
		b.ReportMetric(float64(base.HeapAlloc)/(1<<20), "base-heap-MiB")
	}
}

// pebbleOpts: pebble's defaults, or with PINCLUSTER_PEBBLE_TUNED=1 a
// 64 MiB memtable and a 64 MiB block cache (blocks of 256 KiB fill the
// default 4 MiB memtable every 16 blocks).
func pebbleOpts() *pebble.Options {
	if os.Getenv("PINCLUSTER_PEBBLE_TUNED") == "" {
		return &pebble.Options{}
	}
	return &pebble.Options{MemTableSize: 64 << 20, Cache: pebble.NewCache(64 << 20)}
}
