package badgerds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newDS(t testing.TB, path string, opts *Options) *Datastore {
	t.Helper()
	d, err := New(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

func TestSuiteInMemory(t *testing.T) {
	dstest.SubtestAll(t, newDS(t, "", nil))
}

func TestSuiteOnDisk(t *testing.T) {
	dstest.SubtestAll(t, newDS(t, t.TempDir(), nil))
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{GCDiscardRatio: 1},
		{GCDiscardRatio: -0.1},
		{MemTableSize: 1000},
		{NumMemtables: -1},
		{Tune: func(o badger.Options) badger.Options { return o.WithInMemory(false) }},
		{BlockCacheSize: -1, Tune: func(o badger.Options) badger.Options { return o.WithCompression(1) }},
	}
	for i, o := range bad {
		d, err := New("", &o)
		if err == nil {
			d.Close()
			t.Errorf("options %d: New succeeded, want an error", i)
		}
	}
	got, err := (*Options)(nil).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.GCInterval != DefaultGCInterval || got.GCDiscardRatio != DefaultGCDiscardRatio ||
		got.MemTableSize != DefaultMemTableSize || got.BlockCacheSize != DefaultBlockCacheSize {
		t.Fatalf("defaults not applied: %+v", got)
	}
	// A lean cache-less configuration opens.
	newDS(t, "", &Options{BlockCacheSize: -1, IndexCacheSize: -1, GCInterval: -1})
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := New(dir, &Options{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ds.NewKey("/a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Batch(ctx)
	for i := range 100 {
		if err := b.Put(ctx, ds.NewKey(fmt.Sprintf("/b/%03d", i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, ds.NewKey("/b/007")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = newDS(t, dir, nil)
	v, err := d.Get(ctx, ds.NewKey("/a"))
	if err != nil || string(v) != "1" {
		t.Fatalf("Get /a = %q, %v", v, err)
	}
	res, err := d.Query(ctx, dsq.Query{Prefix: "/b", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 99 {
		t.Fatalf("got %d keys under /b after reopen, want 99", len(all))
	}
	if _, err := d.Get(ctx, ds.NewKey("/b/007")); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("deleted key: err = %v, want ErrNotFound", err)
	}
	n, err := d.DiskUsage(ctx)
	if err != nil || n == 0 {
		t.Fatalf("DiskUsage = %d, %v; want > 0", n, err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx, ds.NewKey("/")); err != nil {
		t.Fatal(err)
	}
}

func TestInMemoryDiskUsageAndGC(t *testing.T) {
	ctx := context.Background()
	d := newDS(t, "", nil)
	if n, err := d.DiskUsage(ctx); err != nil || n != 0 {
		t.Fatalf("DiskUsage = %d, %v; want 0", n, err)
	}
	if err := d.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if d.group.Running() != 0 {
		t.Fatal("a GC loop runs for an in-memory datastore")
	}
}

// fill puts keys into both stores.
func fill(t *testing.T, stores []ds.Datastore, keys []string) {
	t.Helper()
	for i, k := range keys {
		for _, s := range stores {
			if err := s.Put(context.Background(), ds.NewKey(k), []byte(fmt.Sprintf("v%03d", (i*37)%101))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type valueFilter struct{ sub string }

func (f valueFilter) Filter(e dsq.Entry) bool { return strings.Contains(string(e.Value), f.sub) }

// TestQueryMatchesNaive compares every query shape with go-datastore's
// reference implementation over a map datastore.
func TestQueryMatchesNaive(t *testing.T) {
	d := newDS(t, "", nil)
	ref := ds.NewMapDatastore()
	keys := []string{"/a", "/a/b", "/a/b/c", "/a/c", "/a-b", "/a0", "/a0/x", "/ab", "/b/1", "/b/2", "/b/3",
		"/a/\xff", "/a/\xff\xff", "/z"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("/a/n%02d", i))
	}
	fill(t, []ds.Datastore{d, ref}, keys)

	prefixes := []string{"", "/", "/a", "a", "/a/", "/a/./", "/a/../a", "/./a", "/a/b", "/b", "/nothing", "/a0", "//a"}
	orderSets := [][]dsq.Order{nil, {dsq.OrderByKey{}}, {dsq.OrderByKeyDescending{}},
		{dsq.OrderByValue{}}, {dsq.OrderByValueDescending{}, dsq.OrderByKey{}}}
	for _, prefix := range prefixes {
		for oi, orders := range orderSets {
			for _, shape := range []struct {
				offset, limit int
				keysOnly      bool
				sizes         bool
				filters       []dsq.Filter
			}{
				{}, {offset: 3}, {limit: 5}, {offset: 2, limit: 4}, {keysOnly: true}, {keysOnly: true, sizes: true},
				{filters: []dsq.Filter{valueFilter{"1"}}}, {filters: []dsq.Filter{dsq.FilterKeyCompare{Op: dsq.GreaterThan, Key: "/a/n10"}}, limit: 3},
			} {
				q := dsq.Query{Prefix: prefix, Orders: orders, Offset: shape.offset, Limit: shape.limit,
					KeysOnly: shape.keysOnly, ReturnsSizes: shape.sizes, Filters: shape.filters}
				name := fmt.Sprintf("prefix=%q orders=%d %+v", prefix, oi, shape)
				want := runQuery(t, ref, q)
				got := runQuery(t, d, q)
				if len(orders) == 0 {
					// Unordered: compare as sets unless offset/limit make it ill-defined.
					if shape.offset != 0 || shape.limit != 0 {
						if len(got) != len(want) {
							t.Errorf("%s: got %d entries, want %d", name, len(got), len(want))
						}
						continue
					}
					slices.Sort(got)
					slices.Sort(want)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q", name, got, want)
				}
			}
		}
	}
}

func runQuery(t *testing.T, s ds.Datastore, q dsq.Query) []string {
	t.Helper()
	res, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out []string
	for r := range res.Next() {
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		out = append(out, fmt.Sprintf("%s=%s/%d", r.Key, r.Value, r.Size))
	}
	return out
}

func TestQueryCloseEarly(t *testing.T) {
	ctx := context.Background()
	d := newDS(t, "", nil)
	for i := range 2000 {
		if err := d.Put(ctx, ds.NewKey(fmt.Sprintf("/k/%05d", i)), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// Synchronous reads, then Close.
	res, err := d.Query(ctx, dsq.Query{Prefix: "/k"})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if r, ok := res.NextSync(); !ok || r.Error != nil {
			t.Fatalf("NextSync = %v, %v", r, ok)
		}
	}
	res.Close()
	// Channel reads with a residual order (collector goroutines), then Close.
	res, err = d.Query(ctx, dsq.Query{Prefix: "/k", Orders: []dsq.Order{dsq.OrderByValue{}}, Limit: 1500})
	if err != nil {
		t.Fatal(err)
	}
	<-res.Next()
	res.Close()
	if n := len(d.live); n != 0 {
		t.Fatalf("%d live queries after Close of results", n)
	}
	// A cancelled context ends the query with its error.
	cctx, cancel := context.WithCancel(ctx)
	res, err = d.Query(cctx, dsq.Query{Prefix: "/k", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	res.NextSync()
	cancel()
	r, ok := res.NextSync()
	if !ok || !errors.Is(r.Error, context.Canceled) {
		t.Fatalf("after cancel: %v, %v; want context.Canceled", r, ok)
	}
	if _, ok := res.NextSync(); ok {
		t.Fatal("results continue after an error")
	}
}

func TestTxn(t *testing.T) {
	ctx := context.Background()
	d := newDS(t, "", nil)
	if err := d.Put(ctx, ds.NewKey("/x"), []byte("0")); err != nil {
		t.Fatal(err)
	}

	// Read-write: own writes visible inside, not outside until commit.
	tx, err := d.NewTransaction(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(ctx, ds.NewKey("/t/1"), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(ctx, ds.NewKey("/x")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tx.Has(ctx, ds.NewKey("/t/1")); !ok {
		t.Fatal("txn does not see its own write")
	}
	if _, err := tx.Get(ctx, ds.NewKey("/x")); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("txn sees deleted key: %v", err)
	}
	if n, err := tx.GetSize(ctx, ds.NewKey("/t/1")); n != 1 || err != nil {
		t.Fatalf("GetSize = %d, %v", n, err)
	}
	if ok, _ := d.Has(ctx, ds.NewKey("/t/1")); ok {
		t.Fatal("uncommitted write visible outside the txn")
	}
	res, err := tx.Query(ctx, dsq.Query{Prefix: "/t"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := res.Rest()
	if err != nil || len(all) != 1 {
		t.Fatalf("txn query = %v, %v", all, err)
	}
	// A query left open at commit is ended with ErrTxnDone.
	open, err := tx.Query(ctx, dsq.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := open.NextSync(); !ok || !errors.Is(r.Error, ErrTxnDone) {
		t.Fatalf("open query after commit: %v, %v; want ErrTxnDone", r, ok)
	}
	open.Close()
	if err := tx.Put(ctx, ds.NewKey("/t/2"), nil); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Put after Commit: %v, want ErrTxnDone", err)
	}
	tx.Discard(ctx) // harmless
	if v, err := d.Get(ctx, ds.NewKey("/t/1")); err != nil || string(v) != "a" {
		t.Fatalf("committed write: %q, %v", v, err)
	}

	// Discard drops writes.
	tx, _ = d.NewTransaction(ctx, false)
	_ = tx.Put(ctx, ds.NewKey("/t/3"), []byte("c"))
	tx.Discard(ctx)
	if ok, _ := d.Has(ctx, ds.NewKey("/t/3")); ok {
		t.Fatal("discarded write is visible")
	}

	// Conflict: a key read by tx is written by someone else first.
	tx, _ = d.NewTransaction(ctx, false)
	if _, err := tx.Get(ctx, ds.NewKey("/t/1")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(ctx, ds.NewKey("/t/1"), []byte("tx")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ds.NewKey("/t/1"), []byte("other")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, badger.ErrConflict) {
		t.Fatalf("Commit = %v, want ErrConflict", err)
	}

	// Read-only transactions refuse writes.
	ro, _ := d.NewTransaction(ctx, true)
	if err := ro.Put(ctx, ds.NewKey("/t/4"), nil); !errors.Is(err, badger.ErrReadOnlyTxn) {
		t.Fatalf("read-only Put = %v, want ErrReadOnlyTxn", err)
	}
	if err := ro.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(d.live); n != 0 {
		t.Fatalf("%d live objects after all transactions ended", n)
	}
}

func TestBatchCopiesValues(t *testing.T) {
	ctx := context.Background()
	d := newDS(t, "", nil)
	b, err := d.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("aaaa")
	for i := range 50 {
		if err := b.Put(ctx, ds.NewKey(fmt.Sprintf("/c/%02d", i)), buf); err != nil {
			t.Fatal(err)
		}
		copy(buf, fmt.Sprintf("%04d", i)) // the caller reuses its buffer
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	v, _ := d.Get(ctx, ds.NewKey("/c/00"))
	if string(v) != "aaaa" {
		t.Fatalf("value of /c/00 = %q; the batch kept the caller's slice", v)
	}
	// The batch can be reused after Commit.
	if err := b.Delete(ctx, ds.NewKey("/c/00")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Has(ctx, ds.NewKey("/c/00")); ok {
		t.Fatal("batch delete after reuse not applied")
	}
}

func TestOpsAfterClose(t *testing.T) {
	ctx := context.Background()
	d, err := New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		_ = d.Put(ctx, ds.NewKey(fmt.Sprintf("/k/%03d", i)), []byte("v"))
	}
	// Objects open across Close.
	res, _ := d.Query(ctx, dsq.Query{})
	res.NextSync()
	tx, _ := d.NewTransaction(ctx, false)
	_ = tx.Put(ctx, ds.NewKey("/tx"), []byte("v"))
	txRes, _ := tx.Query(ctx, dsq.Query{})
	b, _ := d.Batch(ctx)
	_ = b.Put(ctx, ds.NewKey("/batch"), []byte("v"))

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	k := ds.NewKey("/k/001")
	checks := map[string]error{}
	_, checks["Get"] = d.Get(ctx, k)
	_, checks["Has"] = d.Has(ctx, k)
	_, checks["GetSize"] = d.GetSize(ctx, k)
	checks["Put"] = d.Put(ctx, k, nil)
	checks["Delete"] = d.Delete(ctx, k)
	_, checks["Query"] = d.Query(ctx, dsq.Query{})
	checks["Sync"] = d.Sync(ctx, k)
	_, checks["Batch"] = d.Batch(ctx)
	_, checks["NewTransaction"] = d.NewTransaction(ctx, true)
	_, checks["DiskUsage"] = d.DiskUsage(ctx)
	checks["Check"] = d.Check(ctx)
	checks["CollectGarbage"] = d.CollectGarbage(ctx)
	_, checks["txn.Get"] = tx.Get(ctx, k)
	checks["txn.Put"] = tx.Put(ctx, k, nil)
	checks["txn.Commit"] = tx.Commit(ctx)
	checks["batch.Put"] = b.Put(ctx, k, nil)
	checks["batch.Commit"] = b.Commit(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	tx.Discard(ctx)
	for name, r := range map[string]dsq.Results{"query": res, "txn query": txRes} {
		got, ok := r.NextSync()
		if !ok || !errors.Is(got.Error, ErrClosed) {
			t.Errorf("%s after Close: %v, %v; want ErrClosed", name, got, ok)
		}
		if _, ok := r.NextSync(); ok {
			t.Errorf("%s continues after ErrClosed", name)
		}
		r.Close()
	}
}

// TestConcurrentCloseNoPanic races Close against readers and writers.
func TestConcurrentCloseNoPanic(t *testing.T) {
	ctx := context.Background()
	d, err := New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			<-start
			for i := 0; ; i++ {
				k := ds.NewKey(fmt.Sprintf("/w%d/%d", w, i))
				if err := d.Put(ctx, k, []byte("v")); errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					t.Error(err)
					return
				}
				res, err := d.Query(ctx, dsq.Query{Prefix: fmt.Sprintf("/w%d", w), Limit: 5})
				if errors.Is(err, ErrClosed) {
					return
				}
				for r := range res.Next() {
					if r.Error != nil && !errors.Is(r.Error, ErrClosed) {
						t.Error(r.Error)
					}
				}
			}
		})
	}
	close(start)
	// Let the workers do some work before closing.
	for {
		if n, _ := d.Query(ctx, dsq.Query{KeysOnly: true}); n != nil {
			all, _ := n.Rest()
			if len(all) > 200 {
				break
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestGCLoop(t *testing.T) {
	passes := make(chan error, 8)
	d := newDS(t, t.TempDir(), &Options{
		GCInterval: time.Millisecond,
		onGC: func(err error) {
			select {
			case passes <- err:
			default:
			}
		},
	})
	for range 3 {
		select {
		case err := <-passes:
			if err != nil {
				t.Fatalf("gc pass: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no GC pass within 10s")
		}
	}
	if d.group.Running() != 1 {
		t.Fatalf("GC goroutines running = %d, want 1", d.group.Running())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.group.Running() != 0 {
		t.Fatal("GC goroutine still running after Close")
	}
	// Close while the loop is busy, repeatedly: Close must not deadlock
	// with a GC pass waiting to enter.
	for range 10 {
		ran := make(chan struct{}, 1)
		d, err := New(t.TempDir(), &Options{GCInterval: time.Microsecond, onGC: func(error) {
			select {
			case ran <- struct{}{}:
			default:
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		<-ran
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Disabled loop.
	d2 := newDS(t, t.TempDir(), &Options{GCInterval: -1})
	if d2.group.Running() != 0 {
		t.Fatal("GC loop runs although disabled")
	}
}

type recordHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.lines = append(h.lines, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLoggerRoutesBadger(t *testing.T) {
	h := &recordHandler{}
	d, err := New(t.TempDir(), &Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.lines) == 0 {
		t.Fatal("no badger log line reached the slog logger")
	}
	for _, l := range h.lines {
		if strings.HasPrefix(l, "INFO") || strings.HasSuffix(l, "\n") {
			t.Errorf("badger line not routed at debug or not trimmed: %q", l)
		}
	}
}

func TestBinaryValuesRoundTrip(t *testing.T) {
	ctx := context.Background()
	d := newDS(t, t.TempDir(), nil)
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	// In memory there is no value log: values above 1 MiB are refused
	// with an error.
	mem := newDS(t, "", nil)
	if err := mem.Put(ctx, ds.NewKey("/big"), big); err == nil {
		t.Fatal("in-memory Put of a 2 MiB value succeeded, want an error")
	}
	vals := [][]byte{nil, {}, {0}, {0xff, 0xfe, 0, 1}, big}
	for i, v := range vals {
		k := ds.NewKey(fmt.Sprintf("/bin/%d", i))
		if err := d.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		got, err := d.Get(ctx, k)
		if err != nil || len(got) != len(v) || string(got) != string(v) {
			t.Fatalf("value %d: got %d bytes, %v", i, len(got), err)
		}
		if n, err := d.GetSize(ctx, k); n != len(v) || err != nil {
			t.Fatalf("GetSize %d = %d, %v", i, n, err)
		}
	}
}
