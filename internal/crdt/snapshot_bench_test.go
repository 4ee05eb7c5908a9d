package crdt_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// remoteDAG fetches from src without keeping a copy; Put goes to own.
type remoteDAG struct{ src, own *crdttest.PeerDAG }

func (d *remoteDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if d.own.Has(c) {
		return d.own.Get(ctx, c)
	}
	return d.src.Get(ctx, c)
}

func (d *remoteDAG) Put(ctx context.Context, c cid.Cid, b []byte) error { return d.own.Put(ctx, c, b) }

// newDiskStore opens a pebble datastore in a fresh directory.
func newDiskStore(tb testing.TB) (ds.Batching, string) {
	dir := tb.TempDir()
	d, err := pebbleds.NewDatastore(dir)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = d.Close() })
	return d, dir
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// vmHWM returns the process's peak RSS in bytes (Linux), or 0.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// BenchmarkSnapshotJoin: a fresh replica joins a store whose state holds
// 100,000 or 1,000,000 keys (history: 1,000-key batches plus 1,000
// single-key updates and deletes, 100 more deltas above the snapshot),
// from the snapshot ("snapshot") and by replaying the history ("replay").
// Reports the seconds until the joiner has settled (nothing pending, same
// height) — its state digest is then checked equal —, the joiner's peak Go
// heap growth during the join, its datastore size on disk, and the source
// peer's blocks before and after compaction. Stores are pebble on disk;
// blocks live in the in-memory crdttest.Network (so the process RSS,
// also reported, includes every peer's blocks). The heap figure is the
// growth of the whole process's HeapInuse, so it includes the garbage
// collector's headroom over that live heap (+53 MiB at 100k with the
// default GOGC, +17 MiB with GOGC=20): it is not the joiner's own
// memory, which BenchmarkJoinerRSS measures in a separate process. The
// 1M variant builds its history for about a minute:
//
//	go test -run '^$' -bench 'SnapshotJoin/100k' -benchtime 1x ./internal/crdt/
//	go test -run '^$' -bench 'SnapshotJoin/1M' -benchtime 1x -timeout 30m ./internal/crdt/
func BenchmarkSnapshotJoin(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			for range b.N {
				benchJoin(b, size.n)
			}
		})
	}
}

func benchJoin(b *testing.B, n int) {
	ctx := context.Background()
	c := &cluster{t: b, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	st0, dir0 := newDiskStore(b)
	base := fastCfg()
	base.RebroadcastInterval = 200 * time.Millisecond
	base.LivePeers = func() []peer.ID { return nil } // compaction by hand below
	base.CompactInterval = time.Hour
	p0 := c.open("p0", st0, base)
	t0 := time.Now()
	writeBatches(b, p0, 0, n, 1000, pinValue)
	for i := range 1000 {
		if i%4 == 0 {
			require.NoError(b, p0.Delete(ctx, key(i*997%n)))
		} else {
			require.NoError(b, p0.Put(ctx, key(i*991%n), pinValue[:100]))
		}
	}
	t1 := time.Now()
	info, err := p0.Snapshot(ctx)
	require.NoError(b, err)
	snapTook := time.Since(t1)
	for i := range 100 {
		require.NoError(b, p0.Put(ctx, key(n+i), pinValue))
	}
	want, keys := digest(b, p0)
	b.Logf("history: %d keys, %d deltas, written in %v; snapshot: %d blocks, %.1f MiB, produced in %v",
		keys, p0.Stats().DAGNodes, t1.Sub(t0).Round(time.Millisecond), info.Blocks, float64(info.Bytes)/(1<<20), snapTook.Round(time.Millisecond))
	b.ReportMetric(snapTook.Seconds(), "s-produce")

	for _, mode := range []string{"snapshot", "replay"} {
		if mode == "replay" && n > 100_000 && os.Getenv("PINCLUSTER_LONG") == "" {
			b.Logf("replay of %d keys skipped: set PINCLUSTER_LONG=1", n)
			continue
		}
		cfg := base
		cfg.SnapshotCatchUp = mode == "snapshot"
		st, dir := newDiskStore(b)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap0, peak := ms.HeapInuse, ms.HeapInuse
		start := time.Now()
		// The joiner reads blocks straight from p0's store, without
		// keeping in-memory copies (a real blockstore keeps them on disk),
		// so the heap growth is the joiner's own.
		cfg.Logger = testLogger(b)
		jdag := &remoteDAG{src: c.net.DAG("p0"), own: c.net.DAG("join-" + mode)}
		js, err := crdt.New(ctx, st, jdag, c.bus.Endpoint("join-"+mode), cfg)
		require.NoError(b, err)
		j := &replica{name: "join-" + mode, store: st, Datastore: js}
		tick := time.NewTicker(50 * time.Millisecond)
		for {
			<-tick.C
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			s := j.Stats()
			if !s.Joining && s.QueuedJobs == 0 && s.InFlight == 0 && s.Height == p0.Stats().Height && s.Heads == 1 {
				break
			}
			if time.Since(start) > 20*time.Minute {
				b.Fatal("join timed out")
			}
		}
		tick.Stop()
		took := time.Since(start)
		got, _ := digest(b, j)
		require.Equal(b, want, got, mode)
		require.NoError(b, j.Close())
		b.ReportMetric(took.Seconds(), "s-join-"+mode)
		b.ReportMetric(float64(peak-heap0)/(1<<20), "MiB-heap-"+mode)
		b.ReportMetric(float64(dirSize(dir))/(1<<20), "MiB-disk-"+mode)
		b.Logf("%s join of %d keys: %v, +%.0f MiB Go heap at peak, %.0f MiB on disk, remote nodes %d",
			mode, keys, took.Round(time.Millisecond), float64(peak-heap0)/(1<<20), float64(dirSize(dir))/(1<<20), j.Stats().RemoteNodes)
	}
	b.ReportMetric(float64(vmHWM())/(1<<20), "MiB-process-peak-RSS")
	before := c.net.Bytes("p0")
	deleted, err := p0.Compact(ctx)
	require.NoError(b, err)
	after := c.net.Bytes("p0")
	b.ReportMetric(float64(before)/(1<<20), "MiB-blocks-before-compact")
	b.ReportMetric(float64(after)/(1<<20), "MiB-blocks-after-compact")
	b.Logf("p0 blocks: %.1f MiB before compaction, %.1f MiB after (%d blocks deleted); p0 datastore on disk %.0f MiB",
		float64(before)/(1<<20), float64(after)/(1<<20), deleted, float64(dirSize(dir0))/(1<<20))
}
