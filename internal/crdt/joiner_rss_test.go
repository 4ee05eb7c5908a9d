package crdt_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// Environment of the TestHelperJoiner child process.
const (
	joinURLEnv    = "CRDT_JOIN_URL"    // base URL of the parent's block server
	joinHeightEnv = "CRDT_JOIN_HEIGHT" // height the joiner must reach
	joinProfEnv   = "CRDT_JOIN_HEAPPROF"
)

// diskDAG is a dsDAG that can also delete blocks (for compaction).
type diskDAG struct{ dsDAG }

func (b diskDAG) Delete(ctx context.Context, c cid.Cid) error {
	return b.d.Delete(ctx, ds.NewKey(c.String()))
}

var _ crdt.DAGDeleter = diskDAG{}

// httpDAG fetches blocks from the parent's block server over loopback
// HTTP (a stand-in for bitswap). Put is refused: the joiner writes
// nothing of its own.
type httpDAG struct {
	url string
	cl  *http.Client
}

func (h httpDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/block/"+c.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s: %w", c, resp.Status, crdttest.ErrNotFound)
	}
	return io.ReadAll(resp.Body)
}

// Put does nothing: the blocks stay in the joiner's own blockstore.
func (h httpDAG) Put(context.Context, cid.Cid, []byte) error { return nil }

// httpBroadcaster relays the parent's announcement and heads: Next
// returns them alternately (only the heads with headsOnly), one every
// 100 ms. Broadcast discards.
type httpBroadcaster struct {
	url       string
	cl        *http.Client
	n         int
	headsOnly bool
}

func (h *httpBroadcaster) Broadcast(context.Context, []byte) error { return nil }

func (h *httpBroadcaster) Next(ctx context.Context) (crdt.Message, error) {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return crdt.Message{}, ctx.Err()
	case <-t.C:
	}
	path := "/heads"
	if h.n%2 == 0 && !h.headsOnly {
		path = "/ann"
	}
	h.n++
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	if err != nil {
		return crdt.Message{}, err
	}
	resp, err := h.cl.Do(req)
	if err != nil {
		return crdt.Message{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return crdt.Message{}, err
	}
	return crdt.Message{From: "p0", Data: b}, nil
}

// streamDigest hashes the visible contents of s in key order without
// holding them in memory.
func streamDigest(tb testing.TB, s ds.Datastore) (string, int) {
	tb.Helper()
	res, err := s.Query(context.Background(), dsq.Query{Orders: []dsq.Order{dsq.OrderByKey{}}})
	require.NoError(tb, err)
	defer res.Close()
	h := sha256.New()
	n := 0
	for e := range res.Next() {
		require.NoError(tb, e.Error)
		fmt.Fprintf(h, "%d:%s%d:", len(e.Key), e.Key, len(e.Value))
		h.Write(e.Value)
		n++
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// joinResult is what the TestHelperJoiner child reports on stdout.
type joinResult struct {
	Seconds       float64 `json:"seconds"`
	PeakRSS       int64   `json:"peak_rss"`        // VmHWM once settled (bytes)
	FinalRSS      int64   `json:"final_rss"`       // VmHWM after Compact and the digest (bytes)
	PeakHeap      uint64  `json:"peak_heap"`       // highest HeapInuse sampled (bytes)
	DiskState     int64   `json:"disk_state"`      // datastore, pebbleLive
	DiskBlocks    int64   `json:"disk_blocks"`     // blockstore, pebbleLive
	DiskRawState  int64   `json:"disk_raw_state"`  // datastore directory before the pebble compaction
	DiskRawBlocks int64   `json:"disk_raw_blocks"` // blockstore directory before the pebble compaction
	Compacted     int     `json:"compacted"`       // blocks deleted by the joiner's Compact
	Digest        string  `json:"digest"`          // streamDigest of the joined state
	Keys          int     `json:"keys"`            // visible keys
	RemoteNodes   uint64  `json:"remote_nodes"`    // deltas walked above the snapshot
}

// BenchmarkJoinerRSS measures a joiner alone: the parent builds the
// source (history: 1,000-key batches of 200-byte values, 1,000
// single-key updates and deletes, a snapshot, 100 deltas above it; pebble
// on disk for the state and for the blocks) and serves its blocks,
// announcement and heads over loopback HTTP; a child process (this test
// binary, TestHelperJoiner) joins from the snapshot into its own pebble
// datastore and blockstore on disk, compacts, and reports its peak RSS
// (VmHWM), peak Go heap, the join time and its disk use. The parent
// checks the joined state's digest and reports the source's blockstore
// size before and after its own compaction. Values are zero bytes
// ("zero", as in BenchmarkSnapshotJoin; pebble's compression shrinks them)
// or random bytes ("random": incompressible, the worst case for disk).
// The 1M variants need PINCLUSTER_LONG=1 (about 3 minutes each), the 10M
// ones (issue 19) PINCLUSTER_10M=1 as well:
//
//	go test -run '^$' -bench 'JoinerRSS/100k' -benchtime 1x ./internal/crdt/
//	PINCLUSTER_LONG=1 go test -run '^$' -bench 'JoinerRSS/1M' -benchtime 1x -timeout 30m ./internal/crdt/
//	PINCLUSTER_LONG=1 PINCLUSTER_10M=1 go test -run '^$' -bench 'JoinerRSS/10M/zero' -benchtime 1x -timeout 300m ./internal/crdt/
//
// CRDT_JOIN_HEAPPROF=<file> makes the child write a heap profile each
// time its heap grows by a quarter.
func BenchmarkJoinerRSS(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100k", 100_000}, {"1M", 1_000_000}, {"10M", 10_000_000}} {
		for _, random := range []bool{false, true} {
			name := size.name + "/zero"
			if random {
				name = size.name + "/random"
			}
			b.Run(name, func(b *testing.B) {
				if size.n > 100_000 && os.Getenv("PINCLUSTER_LONG") == "" {
					b.Skip("long variant: set PINCLUSTER_LONG=1")
				}
				if size.n > 1_000_000 && os.Getenv("PINCLUSTER_10M") == "" {
					b.Skip("ten-million variant: set PINCLUSTER_10M=1 (and PINCLUSTER_LONG=1)")
				}
				for range b.N {
					benchJoinerRSS(b, size.n, random)
				}
			})
		}
	}
}

// valueFor returns the value of key i (n bytes): zeros, or bytes drawn
// from a generator seeded by i and salt.
func valueFor(i, salt, n int, random bool) []byte {
	v := make([]byte, n)
	if random {
		r := rand.New(rand.NewPCG(uint64(i), uint64(salt)))
		for j := range v {
			v[j] = byte(r.Uint32())
		}
	}
	return v
}

func benchJoinerRSS(b *testing.B, n int, random bool) {
	ctx := context.Background()
	st0, dir0 := newDiskStore(b)
	bs0, bdir0 := newDiskStore(b)
	dag0 := diskDAG{dsDAG{d: bs0}}
	bus := crdttest.NewBus(1)
	cfg := fastCfg()
	cfg.RebroadcastInterval = 200 * time.Millisecond
	cfg.LivePeers = func() []peer.ID { return nil } // compaction by hand below
	cfg.CompactInterval = time.Hour
	cfg.Logger = testLogger(b)
	ep := bus.Endpoint("p0")
	s0, err := crdt.New(ctx, st0, dag0, ep, cfg)
	require.NoError(b, err)
	defer s0.Close()
	p0 := &replica{name: "p0", store: st0, Datastore: s0}
	t0 := time.Now()
	for i := 0; i < n; i += 1000 {
		bt, err := p0.Batch(ctx)
		require.NoError(b, err)
		for j := i; j < min(i+1000, n); j++ {
			require.NoError(b, bt.Put(ctx, key(j), valueFor(j, 0, len(pinValue), random)))
		}
		require.NoError(b, bt.Commit(ctx))
	}
	for i := range 1000 {
		if i%4 == 0 {
			require.NoError(b, p0.Delete(ctx, key(i*997%n)))
		} else {
			require.NoError(b, p0.Put(ctx, key(i*991%n), valueFor(i, 1, 100, random)))
		}
	}
	info, err := p0.Snapshot(ctx)
	require.NoError(b, err)
	for i := range 100 {
		require.NoError(b, p0.Put(ctx, key(n+i), valueFor(n+i, 2, len(pinValue), random)))
	}
	want, keys := streamDigest(b, p0)
	height := p0.Stats().Height
	b.Logf("source: %d keys, %d deltas, height %d, built in %v; snapshot %d blocks, %.1f MiB",
		keys, p0.Stats().DAGNodes, height, time.Since(t0).Round(time.Millisecond), info.Blocks, float64(info.Bytes)/(1<<20))

	mux := sourceMux(dag0.Get, p0.Heads, nil)
	mux.HandleFunc("GET /ann", func(w http.ResponseWriter, r *http.Request) {
		sn, _ := p0.NewestSnapshot()
		a, err := crdt.EncodeAnnouncement(crdt.Announcement{Root: sn.Root, Height: sn.Height, Nodes: sn.Nodes, Acked: true})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(a)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := runJoiner(b, srv.URL, height)
	require.Equal(b, want, res.Digest, "joined state")
	b.ReportMetric(res.Seconds, "s-join")
	b.ReportMetric(float64(res.PeakRSS)/(1<<20), "MiB-joiner-peak-RSS")
	b.ReportMetric(float64(res.PeakHeap)/(1<<20), "MiB-joiner-peak-heap")
	b.ReportMetric(float64(res.DiskState)/(1<<20), "MiB-joiner-datastore")
	b.ReportMetric(float64(res.DiskBlocks)/(1<<20), "MiB-joiner-blocks")
	b.ReportMetric(float64(res.FinalRSS)/(1<<20), "MiB-joiner-peak-RSS-incl-compact")
	b.Logf("joiner (child process): %d keys in %.1fs, peak RSS %.0f MiB (%.0f MiB including its compaction and a full scan), peak Go heap %.0f MiB, datastore %.0f MiB, blockstore %.1f MiB after compaction (%d blocks deleted, %d deltas walked above the snapshot; directories before pebble's own compaction: %.0f + %.0f MiB)",
		res.Keys, res.Seconds, float64(res.PeakRSS)/(1<<20), float64(res.FinalRSS)/(1<<20), float64(res.PeakHeap)/(1<<20),
		float64(res.DiskState)/(1<<20), float64(res.DiskBlocks)/(1<<20), res.Compacted, res.RemoteNodes,
		float64(res.DiskRawState)/(1<<20), float64(res.DiskRawBlocks)/(1<<20))

	// The source's blockstore before and after its compaction.
	srv.Close()
	before := pebbleLive(b, bs0)
	deleted, err := p0.Compact(ctx)
	require.NoError(b, err)
	after := pebbleLive(b, bs0)
	b.ReportMetric(float64(before)/(1<<20), "MiB-source-blocks-before-compact")
	b.ReportMetric(float64(after)/(1<<20), "MiB-source-blocks-after-compact")
	b.Logf("source blockstore (pebble live size): %.1f MiB before compaction, %.1f MiB after (%d blocks deleted); source datastore %.0f MiB",
		float64(before)/(1<<20), float64(after)/(1<<20), deleted, float64(pebbleLive(b, st0))/(1<<20))
	_, _ = dir0, bdir0
}

// pebbleLive flushes d's memtable, compacts its whole key range (so that
// overwritten and deleted entries leave the disk) and returns the bytes
// of its live tables and WAL: the steady-state disk use, without the
// obsolete files pebble deletes in the background.
func pebbleLive(tb testing.TB, d ds.Batching) int64 {
	pd := d.(*pebbleds.Datastore)
	require.NoError(tb, pd.DB.Flush())
	require.NoError(tb, pd.DB.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, true))
	m := pd.DB.Metrics()
	return int64(m.Table.Local.LiveSize + m.BlobFiles.Local.LiveSize + m.WAL.PhysicalSize)
}

// runJoiner runs TestHelperJoiner in a child process and returns its
// report.
func runJoiner(tb testing.TB, url string, height uint64) joinResult {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperJoiner$", "-test.count=1", "-test.timeout=40m", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+tb.TempDir(), joinURLEnv+"="+url, joinHeightEnv+"="+strconv.FormatUint(height, 10))
	out, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	cmd.Stderr = os.Stderr
	require.NoError(tb, cmd.Start())
	var res *joinResult
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		if j, ok := strings.CutPrefix(line, "JOINRESULT "); ok {
			res = new(joinResult)
			require.NoError(tb, json.Unmarshal([]byte(j), res))
		} else {
			lines = append(lines, line)
		}
	}
	err = cmd.Wait()
	require.NoError(tb, err, "joiner child:\n%s", strings.Join(lines, "\n"))
	require.NotNil(tb, res, "joiner child reported nothing:\n%s", strings.Join(lines, "\n"))
	return *res
}

// TestHelperJoiner is the child of BenchmarkJoinerRSS (runs only with its
// environment set): a fresh replica that joins from the parent's snapshot.
func TestHelperJoiner(t *testing.T) {
	url, dir := os.Getenv(joinURLEnv), os.Getenv(helperEnv)
	if url == "" || dir == "" {
		t.Skip("helper process for BenchmarkJoinerRSS")
	}
	height, err := strconv.ParseUint(os.Getenv(joinHeightEnv), 10, 64)
	require.NoError(t, err)
	ctx := context.Background()
	stDir, bsDir := filepath.Join(dir, "state"), filepath.Join(dir, "blocks")
	st, err := pebbleds.NewDatastore(stDir)
	require.NoError(t, err)
	bs, err := pebbleds.NewDatastore(bsDir)
	require.NoError(t, err)
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	dag := diskDAG{dsDAG{d: bs, net: httpDAG{url: url, cl: cl}}}
	cfg := crdt.Config{
		RebroadcastInterval: 200 * time.Millisecond,
		SnapshotCatchUp:     true,
		LivePeers:           func() []peer.ID { return nil },
		CompactInterval:     time.Hour,
		Logger:              testLogger(t),
	}
	start := time.Now()
	j, err := crdt.New(ctx, st, dag, &httpBroadcaster{url: url, cl: cl}, cfg)
	require.NoError(t, err)
	prof := os.Getenv(joinProfEnv)
	var ms runtime.MemStats
	var peakHeap, profiled uint64
	tick := time.NewTicker(20 * time.Millisecond)
	for {
		<-tick.C
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		if prof != "" && ms.HeapInuse > profiled+profiled/4 {
			profiled = ms.HeapInuse
			f, err := os.Create(prof)
			require.NoError(t, err)
			require.NoError(t, pprof.WriteHeapProfile(f))
			require.NoError(t, f.Close())
		}
		s := j.Stats()
		if !s.Joining && s.QueuedJobs == 0 && s.InFlight == 0 && s.Height == height && s.Heads == 1 {
			break
		}
		require.Less(t, time.Since(start), 30*time.Minute, "join timed out: %+v", s)
	}
	tick.Stop()
	res := joinResult{Seconds: time.Since(start).Seconds(), PeakRSS: vmHWM(), PeakHeap: peakHeap, RemoteNodes: j.Stats().RemoteNodes}
	res.Compacted, err = j.Compact(ctx)
	require.NoError(t, err)
	res.Digest, res.Keys = streamDigest(t, j)
	res.FinalRSS = vmHWM()
	require.NoError(t, j.Close())
	res.DiskRawState, res.DiskRawBlocks = dirSize(stDir), dirSize(bsDir)
	res.DiskState, res.DiskBlocks = pebbleLive(t, st), pebbleLive(t, bs)
	require.NoError(t, st.Close())
	require.NoError(t, bs.Close())
	cl.CloseIdleConnections()
	out, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("JOINRESULT %s\n", out)
}

// sourceMux serves a source replica to a child process over loopback
// HTTP: GET /block/{cid} from get (counted in served, when not nil) and
// GET /heads, the heads message of heads().
func sourceMux(get func(context.Context, cid.Cid) ([]byte, error), heads func() []cid.Cid, served *atomic.Int64) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /block/{cid}", func(w http.ResponseWriter, r *http.Request) {
		id, err := cid.Decode(r.PathValue("cid"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, err := get(r.Context(), id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if served != nil {
			served.Add(1)
		}
		_, _ = w.Write(raw)
	})
	mux.HandleFunc("GET /heads", func(w http.ResponseWriter, r *http.Request) {
		m, err := crdt.EncodeMessage(heads())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(m)
	})
	return mux
}
