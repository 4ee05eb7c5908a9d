package badgerds

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// Benchmarks compare this package with go-ds-pebble on the same workload:
// keys "/pins/<12 digits>", 200-byte values, written in batches of 10,000.
//
//	go test -run '^$' -bench 'PutBatched' -benchtime 1000000x ./internal/badgerds/
//	go test -run '^$' -bench 'Get|QueryPrefix' -benchtime 3x ./internal/badgerds/   (QueryPrefix: 1,000,000 keys)
//	go test -run '^$' -bench 'ReopenRSS/lean' -benchtime 1x ./internal/badgerds/    (one variant per process)

const (
	benchValueSize = 200
	benchBatchSize = 10_000
	benchQueryKeys = 1_000_000
)

type benchStore struct {
	name string
	open func(b *testing.B, dir string) ds.Batching
}

var benchStores = []benchStore{
	{"badger", func(b *testing.B, dir string) ds.Batching {
		d, err := New(dir, &Options{GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		return d
	}},
	{"pebble", func(b *testing.B, dir string) ds.Batching {
		d, err := pebbleds.NewDatastore(dir)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}},
}

func benchKey(i int) ds.Key { return ds.RawKey(fmt.Sprintf("/pins/%012d", i)) }

func benchValue(r *rand.Rand) []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

// load writes keys [0, n) in batches.
func load(b *testing.B, d ds.Batching, n int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	val := benchValue(r)
	batch, err := d.Batch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		val[i%benchValueSize] ^= byte(i) // vary values, reuse the buffer
		if err := batch.Put(ctx, benchKey(i), val); err != nil {
			b.Fatal(err)
		}
		if (i+1)%benchBatchSize == 0 || i == n-1 {
			if err := batch.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			if batch, err = d.Batch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkPutBatched(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			d := s.open(b, b.TempDir())
			defer d.Close()
			b.SetBytes(benchValueSize)
			b.ResetTimer()
			load(b, d, b.N)
			if err := d.Sync(context.Background(), ds.NewKey("/")); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const n = 100_000
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			d := s.open(b, b.TempDir())
			defer d.Close()
			load(b, d, n)
			ctx := context.Background()
			r := rand.New(rand.NewPCG(3, 4))
			b.ResetTimer()
			for range b.N {
				if _, err := d.Get(ctx, benchKey(r.IntN(n))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQueryPrefix iterates 1,000,000 keys (with values) per op, then
// reports the growth of the live heap seen during one more iteration.
func BenchmarkQueryPrefix(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			d := s.open(b, b.TempDir())
			defer d.Close()
			load(b, d, benchQueryKeys)
			// Another prefix, so the prefix matters.
			ctx := context.Background()
			_ = d.Put(ctx, ds.NewKey("/other/x"), []byte("x"))
			b.ResetTimer()
			for range b.N {
				if n := scan(b, d, nil); n != benchQueryKeys {
					b.Fatalf("iterated %d keys, want %d", n, benchQueryKeys)
				}
			}
			// Memory pass, untimed: live heap (after GC) every 100,000
			// entries, against the live heap before the query.
			b.StopTimer()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base, peak := ms.HeapAlloc, ms.HeapAlloc
			scan(b, d, func() {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			})
			b.ReportMetric(float64(peak-base)/(1<<20), "peak-live-heap-growth-MiB")
			b.ReportMetric(float64(base)/(1<<20), "live-heap-before-MiB")
			b.ReportMetric(float64(benchQueryKeys), "keys/op")
		})
	}
}

// BenchmarkReopenRSS loads 1,000,000 keys, closes, and measures reopening
// (the restart path) and the process RSS after one full iteration. Run one
// variant per process: RSS is process-wide.
func BenchmarkReopenRSS(b *testing.B) {
	variants := map[string]*Options{
		"lean": {GCInterval: -1},
		"badgerdefaults": {GCInterval: -1, Tune: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(64 << 20).WithNumMemtables(5).
				WithBlockCacheSize(256 << 20).WithIndexCacheSize(0).WithNumCompactors(4)
		}},
	}
	for _, name := range []string{"lean", "badgerdefaults"} {
		b.Run(name, func(b *testing.B) {
			opts := variants[name]
			for range b.N {
				dir := b.TempDir()
				d, err := New(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				load(b, d, benchQueryKeys)
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
				debug.FreeOSMemory()
				anonBefore, _ := rssBytes(b)
				start := time.Now()
				d, err = New(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				reopen := time.Since(start)
				res, err := d.Query(context.Background(), dsq.Query{Prefix: "/pins"})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for r := range res.Next() {
					if r.Error != nil {
						b.Fatal(r.Error)
					}
					n++
				}
				debug.FreeOSMemory() // return freed heap pages, count only live memory
				anon, file := rssBytes(b)
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "go-heap-live-MiB")
				b.ReportMetric(reopen.Seconds(), "reopen-s")
				b.ReportMetric(float64(anon)/(1<<20), "rss-anon-MiB")
				b.ReportMetric(float64(anon-min(anon, anonBefore))/(1<<20), "rss-anon-growth-MiB")
				b.ReportMetric(float64(file)/(1<<20), "rss-file-MiB")
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
				if n != benchQueryKeys {
					b.Fatalf("scanned %d keys", n)
				}
			}
		})
	}
}

// rssBytes returns the process's resident set: anonymous memory (heap,
// stacks, badger's own allocations) and file-backed pages (mmapped tables
// and logs, reclaimable by the kernel).
func rssBytes(b *testing.B) (anon, file uint64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, field := range []struct {
			name string
			dst  *uint64
		}{{"RssAnon:", &anon}, {"RssFile:", &file}} {
			if rest, ok := strings.CutPrefix(sc.Text(), field.name); ok {
				kb, _ := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
				*field.dst = kb << 10
			}
		}
	}
	return anon, file
}

// scan iterates every /pins key with its value, calling every (if not nil)
// each 100,000 entries, and returns how many it saw.
func scan(b *testing.B, d ds.Datastore, every func()) int {
	res, err := d.Query(context.Background(), dsq.Query{Prefix: "/pins"})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	n := 0
	for {
		r, ok := res.NextSync()
		if !ok {
			return n
		}
		if r.Error != nil {
			b.Fatal(r.Error)
		}
		n++
		if every != nil && n%100_000 == 0 {
			every()
		}
	}
}
