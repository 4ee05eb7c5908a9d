package optracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
)

func noop(context.Context, Op, ProgressFunc) error { return nil }

func newTracker(t *testing.T, cfg Config) *Tracker {
	t.Helper()
	if cfg.Pin == nil {
		cfg.Pin = noop
	}
	if cfg.Unpin == nil {
		cfg.Unpin = noop
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Pin: noop, Unpin: noop}
	bad := map[string]Config{
		"no funcs":          {},
		"no unpin":          {Pin: noop},
		"negative conc":     {Pin: noop, Unpin: noop, PinConcurrency: -1},
		"negative queue":    {Pin: noop, Unpin: noop, MaxQueue: -5},
		"bad retries":       {Pin: noop, Unpin: noop, MaxRetries: -3},
		"max below base":    {Pin: noop, Unpin: noop, BaseBackoff: time.Minute, MaxBackoff: time.Second},
		"negative backoff":  {Pin: noop, Unpin: noop, BaseBackoff: -time.Second},
		"negative timeout":  {Pin: noop, Unpin: noop, PinTimeout: -2 * time.Second},
		"negative utimeout": {Pin: noop, Unpin: noop, UnpinTimeout: -2 * time.Second},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New error = %v, want ErrInvalidConfig", name, err)
		}
	}
	got, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.PinConcurrency != DefaultPinConcurrency || got.UnpinConcurrency != DefaultUnpinConcurrency ||
		got.MaxQueue != DefaultMaxQueue || got.MaxRetries != DefaultMaxRetries ||
		got.BaseBackoff != DefaultBaseBackoff || got.MaxBackoff != DefaultMaxBackoff ||
		got.PinTimeout != DefaultPinTimeout || got.UnpinTimeout != DefaultUnpinTimeout || got.Logger == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	// A BaseBackoff above the default MaxBackoff raises the default.
	got, err = Config{Pin: noop, Unpin: noop, BaseBackoff: time.Hour}.withDefaults()
	if err != nil || got.MaxBackoff != time.Hour {
		t.Errorf("MaxBackoff = %v, %v; want 1h", got.MaxBackoff, err)
	}
	tr := newTracker(t, ok)
	_ = tr
}

func TestBackoff(t *testing.T) {
	c := Config{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := c.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := c.backoff(1 << 20); got != 10*time.Second {
		t.Errorf("backoff(huge) = %v", got)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	tr := newTracker(t, Config{})
	if _, err := tr.Enqueue(testCid("a"), OpPin|OpUnpin, nil); !errors.Is(err, ErrInvalidType) {
		t.Errorf("bad type: %v", err)
	}
	if _, err := tr.Enqueue(cid.Undef, OpPin, nil); !errors.Is(err, ErrInvalidCid) {
		t.Errorf("undefined cid: %v", err)
	}
	for _, f := range []func() error{
		func() error { _, err := tr.Get(testCid("zz")); return err },
		func() error { _, err := tr.Cancel(testCid("zz")); return err },
		func() error { _, err := tr.Recover(testCid("zz")); return err },
		func() error { _, err := tr.Wait(context.Background(), testCid("zz")); return err },
	} {
		if err := f(); !errors.Is(err, ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
	}
}

// TestLookup: Lookup reports false where Get reports ErrNotFound, and the
// same snapshot as Get otherwise.
func TestLookup(t *testing.T) {
	block := make(chan struct{})
	tr := newTracker(t, Config{Pin: func(ctx context.Context, _ Op, _ ProgressFunc) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil
	}})
	defer close(block)
	if o, ok := tr.Lookup(testCid("a")); ok {
		t.Fatalf("Lookup of an unknown CID: %+v, true", o)
	}
	if _, err := tr.Enqueue(testCid("a"), OpPin, "meta"); err != nil {
		t.Fatal(err)
	}
	o, ok := tr.Lookup(testCid("a"))
	if !ok || o.Cid != testCid("a") || o.Type != OpPin || o.Meta != "meta" {
		t.Fatalf("Lookup after Enqueue: %+v, %v", o, ok)
	}
	g, err := tr.Get(testCid("a"))
	if err != nil || g.ID != o.ID || g.Type != o.Type {
		t.Fatalf("Get: %+v, %v; Lookup: %+v", g, err, o)
	}
}

// TestConcurrencyLimits checks, with atomic counters, that no more than
// PinConcurrency pins and UnpinConcurrency unpins run at once, and that the
// limits are reached.
func TestConcurrencyLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cur, peak [2]atomic.Int32
		release := make(chan struct{})
		fn := func(k int) Func {
			return func(ctx context.Context, op Op, _ ProgressFunc) error {
				n := cur[k].Add(1)
				for p := peak[k].Load(); n > p && !peak[k].CompareAndSwap(p, n); p = peak[k].Load() {
				}
				defer cur[k].Add(-1)
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				time.Sleep(time.Millisecond) // overlap with others in fake time
				return nil
			}
		}
		tr, err := New(Config{Pin: fn(kPin), Unpin: fn(kUnpin), PinConcurrency: 3, UnpinConcurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		for i := range 50 {
			if _, err := tr.Enqueue(testCid(fmt.Sprint("p", i)), OpPin, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Enqueue(testCid(fmt.Sprint("u", i)), OpUnpin, nil); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		s := tr.Stats()
		if s.PinsInFlight != 3 || s.UnpinsInFlight != 2 || s.PinsQueued != 47 || s.UnpinsQueued != 48 {
			t.Fatalf("stats while blocked: %+v", s)
		}
		if cur[kPin].Load() != 3 || cur[kUnpin].Load() != 2 {
			t.Fatalf("running = %d/%d, want 3/2", cur[kPin].Load(), cur[kUnpin].Load())
		}
		close(release)
		time.Sleep(time.Second)
		synctest.Wait()
		s = tr.Stats()
		if s.Done != 100 || s.Ops != 0 {
			t.Fatalf("after release: %+v", s)
		}
		if peak[kPin].Load() != 3 || peak[kUnpin].Load() != 2 {
			t.Fatalf("peak = %d/%d, want 3/2", peak[kPin].Load(), peak[kUnpin].Load())
		}
	})
}

// TestConcurrencyStress runs in real time under -race: concurrent
// enqueuers flip pins and unpins on a few CIDs; limits hold and the two
// functions never overlap on one CID.
func TestConcurrencyStress(t *testing.T) {
	const pinN, unpinN = 4, 2
	var cur, peak [2]atomic.Int32
	var perCid sync.Map // cid -> *atomic.Int32
	var overlap atomic.Int32
	fn := func(k int) Func {
		return func(ctx context.Context, op Op, progress ProgressFunc) error {
			v, _ := perCid.LoadOrStore(op.Cid, new(atomic.Int32))
			if v.(*atomic.Int32).Add(1) > 1 {
				overlap.Add(1)
			}
			defer v.(*atomic.Int32).Add(-1)
			n := cur[k].Add(1)
			for p := peak[k].Load(); n > p && !peak[k].CompareAndSwap(p, n); p = peak[k].Load() {
			}
			defer cur[k].Add(-1)
			progress(Progress{Blocks: 1})
			select {
			case <-time.After(time.Duration(rand.IntN(200)) * time.Microsecond):
			case <-ctx.Done():
				if rand.IntN(2) == 0 { // sometimes ignore cancellation
					time.Sleep(50 * time.Microsecond)
					return nil
				}
				return ctx.Err()
			}
			if rand.IntN(10) == 0 {
				return errors.New("random failure")
			}
			return nil
		}
	}
	tr := newTracker(t, Config{Pin: fn(kPin), Unpin: fn(kUnpin), PinConcurrency: pinN, UnpinConcurrency: unpinN,
		BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxRetries: UnlimitedRetries})
	cids := make([]cid.Cid, 40)
	for i := range cids {
		cids[i] = testCid(fmt.Sprint("s", i))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 2000 {
				typ := OpPin
				if r.IntN(2) == 0 {
					typ = OpUnpin
				}
				if _, err := tr.Enqueue(cids[r.IntN(len(cids))], typ, nil); err != nil {
					t.Error(err)
					return
				}
				if r.IntN(50) == 0 {
					for range tr.All(context.Background()) {
					}
				}
			}
		})
	}
	wg.Wait()
	for _, c := range cids {
		if _, err := tr.Wait(context.Background(), c); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if peak[kPin].Load() > pinN || peak[kUnpin].Load() > unpinN {
		t.Errorf("peak = %d/%d, limits %d/%d", peak[kPin].Load(), peak[kUnpin].Load(), pinN, unpinN)
	}
	if overlap.Load() != 0 {
		t.Errorf("%d times two functions ran at once on one cid", overlap.Load())
	}
}

// TestLastOperationWins is a model check: whatever the interleaving of
// pins and unpins on a CID, with functions that finish late, ignore
// cancellation or fail, once everything settled the node holds exactly the
// CIDs whose last operation was a pin.
func TestLastOperationWins(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 7))
				var mu sync.Mutex
				pinned := map[cid.Cid]bool{}
				fn := func(want bool) Func {
					return func(ctx context.Context, op Op, _ ProgressFunc) error {
						// 0: quick, 1: slow, 2: stubborn, 3: fail then ok;
						// chosen from the op, so a seed replays the same.
						d := int((op.ID*2654435761 + seed) % 4)
						delay := time.Duration(1+d) * time.Second
						if d != 2 {
							select {
							case <-time.After(delay):
							case <-ctx.Done():
								return ctx.Err()
							}
						} else {
							time.Sleep(2 * delay) // ignores cancellation, then succeeds
						}
						if d == 3 && op.Attempts == 1 {
							return errors.New("transient")
						}
						mu.Lock()
						pinned[op.Cid] = want
						mu.Unlock()
						return nil
					}
				}
				tr, err := New(Config{Pin: fn(true), Unpin: fn(false), PinConcurrency: 3, UnpinConcurrency: 2,
					BaseBackoff: time.Second, MaxRetries: UnlimitedRetries})
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close(context.Background())
				last := map[cid.Cid]OpType{}
				cids := []cid.Cid{testCid("m1"), testCid("m2"), testCid("m3"), testCid("m4")}
				for range 200 {
					c := cids[r.IntN(len(cids))]
					typ := OpPin
					if r.IntN(2) == 0 {
						typ = OpUnpin
					}
					if _, err := tr.Enqueue(c, typ, nil); err != nil {
						t.Fatal(err)
					}
					last[c] = typ
					time.Sleep(time.Duration(r.IntN(1500)) * time.Millisecond)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				if s := tr.Stats(); s.Ops != 0 || s.PinsInFlight+s.UnpinsInFlight != 0 {
					t.Fatalf("not settled: %+v", s)
				}
				for c, typ := range last {
					if pinned[c] != (typ == OpPin) {
						t.Errorf("%s: last op %s, pinned = %v", c, typ, pinned[c])
					}
				}
			})
		})
	}
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan error)
		fn := func(ctx context.Context, op Op, _ ProgressFunc) error {
			select {
			case err := <-gate:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		tr, err := New(Config{Pin: fn, Unpin: fn, MaxRetries: NoRetries})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		a, b, c := testCid("a"), testCid("b"), testCid("c")

		// Done.
		tr.Enqueue(a, OpPin, "meta-a")
		res := make(chan Op, 1)
		go func() { op, _ := tr.Wait(context.Background(), a); res <- op }()
		synctest.Wait()
		gate <- nil
		if op := <-res; op.Phase != PhaseDone || op.Meta != "meta-a" || op.Attempts != 1 {
			t.Errorf("done: %+v", op)
		}

		// Superseded.
		tr.Enqueue(b, OpPin, nil)
		go func() { op, _ := tr.Wait(context.Background(), b); res <- op }()
		synctest.Wait()
		tr.Enqueue(b, OpUnpin, nil)
		if op := <-res; op.Phase != PhaseCancelled || op.Type != OpPin {
			t.Errorf("superseded: %+v", op)
		}
		synctest.Wait()
		gate <- nil // the unpin

		// Failed for good: Wait returns at once afterwards too.
		tr.Enqueue(c, OpPin, nil)
		synctest.Wait()
		gate <- errors.New("boom")
		synctest.Wait()
		op, err := tr.Wait(context.Background(), c)
		if err != nil || op.Phase != PhaseError || op.Err == nil || !op.NextRetry.IsZero() {
			t.Errorf("failed: %+v %v", op, err)
		}

		// ctx done.
		tr.Recover(c)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := tr.Wait(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("wait with deadline: %v", err)
		}

		// Closed.
		go func() {
			_, err := tr.Wait(context.Background(), c)
			if !errors.Is(err, ErrClosed) {
				t.Errorf("wait across close: %v", err)
			}
			res <- Op{}
		}()
		synctest.Wait()
		tr.Close(context.Background())
		<-res
	})
}

func TestProgressAfterReturnIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var saved ProgressFunc
		fn := func(ctx context.Context, op Op, progress ProgressFunc) error {
			progress(Progress{Bytes: 5, Blocks: 1})
			saved = progress
			return errors.New("fail")
		}
		tr, err := New(Config{Pin: fn, Unpin: noop, MaxRetries: NoRetries})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		a := testCid("a")
		tr.Enqueue(a, OpPin, nil)
		synctest.Wait()
		saved(Progress{Bytes: 99})
		op, _ := tr.Get(a)
		if op.Progress != (Progress{Bytes: 5, Blocks: 1}) {
			t.Errorf("progress = %+v", op.Progress)
		}
	})
}

func TestPanicBecomesError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := func(context.Context, Op, ProgressFunc) error { panic("kaboom") }
		tr, err := New(Config{Pin: fn, Unpin: noop, MaxRetries: 1, BaseBackoff: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		a := testCid("a")
		tr.Enqueue(a, OpPin, nil)
		synctest.Wait()
		op, _ := tr.Get(a)
		if op.Phase != PhaseError || op.Err == nil || !strings.Contains(op.Err.Error(), "kaboom") || op.NextRetry.IsZero() {
			t.Errorf("after panic: %+v", op)
		}
	})
}

func TestCloseCancelsAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		causes := make(chan error, 2)
		fn := func(ctx context.Context, op Op, _ ProgressFunc) error {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			<-release // stubborn: returns only when released
			return ctx.Err()
		}
		tr, err := New(Config{Pin: fn, Unpin: fn})
		if err != nil {
			t.Fatal(err)
		}
		tr.Enqueue(testCid("a"), OpPin, nil)
		tr.Enqueue(testCid("b"), OpUnpin, nil)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := tr.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with stuck functions = %v, want deadline exceeded", err)
		}
		for range 2 {
			if c := <-causes; !errors.Is(c, ErrClosed) {
				t.Errorf("cause = %v, want ErrClosed", c)
			}
		}
		if _, err := tr.Enqueue(testCid("c"), OpPin, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("enqueue after close: %v", err)
		}
		close(release)
		if err := tr.Close(context.Background()); err != nil {
			t.Errorf("second Close = %v", err)
		}
		for _, err := range tr.RecoverAll(context.Background()) {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("RecoverAll after close: %v", err)
			}
		}
	})
}

func TestRecoverAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		fn := func(context.Context, Op, ProgressFunc) error {
			if fail.Load() {
				return errors.New("down")
			}
			return nil
		}
		tr, err := New(Config{Pin: fn, Unpin: fn, MaxRetries: NoRetries})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		const n = 600 // more than one listing chunk
		for i := range n {
			tr.Enqueue(testCid(fmt.Sprint(i)), OpPin, nil)
		}
		tr.Enqueue(testCid("u"), OpUnpin, nil)
		synctest.Wait()
		if s := tr.Stats(); s.Errors != n+1 {
			t.Fatalf("errors = %d", s.Errors)
		}
		n1 := 0
		for range tr.Filter(context.Background(), Filter{Types: OpUnpin, Phases: PhaseError}) {
			n1++
		}
		if n1 != 1 {
			t.Errorf("filter unpin errors = %d", n1)
		}
		fail.Store(false)
		got := 0
		for op, err := range tr.RecoverAll(context.Background()) {
			if err != nil {
				t.Fatal(err)
			}
			if op.Phase != PhaseQueued && op.Phase != PhaseInProgress {
				t.Errorf("recovered op phase %s", op.Phase)
			}
			got++
		}
		if got != n+1 {
			t.Errorf("recovered %d, want %d", got, n+1)
		}
		synctest.Wait()
		if s := tr.Stats(); s.Ops != 0 || s.Done != n+1 || s.Recovered != n+1 {
			t.Errorf("after recovery: %+v", s)
		}
	})
}

// TestListingWeaklyConsistent removes and adds operations while a listing
// runs: the operations present throughout are yielded exactly once, in ID
// order.
func TestListingWeaklyConsistent(t *testing.T) {
	block := func(ctx context.Context, _ Op, _ ProgressFunc) error { <-ctx.Done(); return ctx.Err() }
	tr := newTracker(t, Config{Pin: block, Unpin: block, PinConcurrency: 1, UnpinConcurrency: 1})
	const n = 20000
	cids := make([]cid.Cid, n)
	for i := range cids {
		cids[i] = testCid(fmt.Sprint("l", i))
		if _, err := tr.Enqueue(cids[i], OpPin, nil); err != nil {
			t.Fatal(err)
		}
	}
	stable := map[cid.Cid]int{}
	for i := 0; i < n; i += 2 {
		stable[cids[i]] = 0
	}
	var last uint64
	i := 0
	for op, err := range tr.All(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if op.ID <= last {
			t.Fatalf("ids not ascending: %d after %d", op.ID, last)
		}
		last = op.ID
		if _, ok := stable[op.Cid]; ok {
			stable[op.Cid]++
		}
		// Churn: remove odd ones ahead and behind, add new ones.
		if i < n/2 {
			tr.Cancel(cids[(2*i+1)%n])
			tr.Enqueue(testCid(fmt.Sprint("new", i)), OpUnpin, nil)
		}
		i++
	}
	for c, k := range stable {
		if k != 1 {
			t.Fatalf("%s yielded %d times", c, k)
		}
	}
	// Early break and a cancelled ctx.
	for range tr.All(context.Background()) {
		break
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range tr.All(ctx) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("listing with cancelled ctx: %v", err)
		}
	}
	// Filters.
	count := func(f Filter) int {
		k := 0
		for range tr.Filter(context.Background(), f) {
			k++
		}
		return k
	}
	if got := count(Filter{Phases: PhaseInProgress}); got != 2 {
		t.Errorf("in progress = %d, want 2", got)
	}
	s := tr.Stats()
	if got := count(Filter{Types: OpPin, Phases: PhaseQueued}); got != s.PinsQueued {
		t.Errorf("queued pins listed %d, stats %d", got, s.PinsQueued)
	}
	if got := count(Filter{}); got != s.Ops {
		t.Errorf("listed %d, stats %d", got, s.Ops)
	}
}

func TestTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := func(ctx context.Context, op Op, _ ProgressFunc) error {
			time.Sleep(50 * time.Millisecond)
			return nil
		}
		tr, err := New(Config{Pin: fn, Unpin: noop})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		for i := range 4 {
			tr.Enqueue(testCid(fmt.Sprint(i)), OpPin, nil)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		s := tr.Stats()
		if s.Pin.Count != 4 || s.Pin.Max != 50*time.Millisecond || s.Pin.Mean() != 50*time.Millisecond || s.Pin.Buckets[2] != 4 {
			t.Errorf("timing = %+v", s.Pin)
		}
	})
}

func TestOnFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		gates := map[OpType]chan error{OpPin: make(chan error), OpUnpin: make(chan error)}
		fn := func(ctx context.Context, op Op, _ ProgressFunc) error {
			select {
			case err := <-gates[op.Type]:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		tr, err := New(Config{Pin: fn, Unpin: fn, MaxRetries: NoRetries, PinConcurrency: 1,
			OnFinish: func(op Op) {
				mu.Lock()
				got = append(got, fmt.Sprintf("%d %s %s", op.ID, op.Type, op.Phase))
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		a, b := testCid("a"), testCid("b")
		tr.Enqueue(a, OpPin, nil) // 1: runs
		synctest.Wait()
		tr.Enqueue(b, OpPin, nil)   // 2: queued
		tr.Enqueue(a, OpUnpin, nil) // 3: supersedes 1
		synctest.Wait()
		gates[OpUnpin] <- nil // 3 done
		synctest.Wait()
		gates[OpPin] <- errors.New("x") // 2 fails for good
		synctest.Wait()
		tr.Recover(b) // 2 again
		synctest.Wait()
		tr.Cancel(b) // 2 cancelled while running
		synctest.Wait()
		tr.Enqueue(a, OpPin, nil) // 4: runs, then Close interrupts it
		synctest.Wait()
		tr.Close(context.Background())
		want := []string{"1 pin cancelled", "3 unpin done", "2 pin error", "2 pin cancelled", "4 pin cancelled"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("OnFinish calls = %q, want %q", got, want)
		}
	})
}

func TestLookupAgreesWithGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		fn := func(ctx context.Context, _ Op, _ ProgressFunc) error { <-block; return nil }
		tr, err := New(Config{Pin: fn, Unpin: noop})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(context.Background())
		defer close(block)
		a, b := testCid("a"), testCid("b")
		if _, err := tr.Enqueue(a, OpPin, "meta"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		op, ok := tr.Lookup(a)
		got, err := tr.Get(a)
		if !ok || err != nil || op.Cid != a || op.Meta != "meta" || op.Phase != got.Phase || op.Type != got.Type {
			t.Errorf("Lookup(a) = %+v, %v; Get(a) = %+v, %v", op, ok, got, err)
		}
		if op, ok := tr.Lookup(b); ok {
			t.Errorf("Lookup(b) = %+v, true; want none", op)
		}
		if _, err := tr.Get(b); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(b) = %v, want ErrNotFound", err)
		}
	})
}
