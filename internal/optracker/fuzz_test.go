package optracker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
)

// FuzzOps drives a tracker with an arbitrary sequence of enqueues,
// cancels, recoveries and time steps, with operation functions that are
// slow, stubborn, failing or stuck, and checks the invariants after every
// step: the two functions never overlap on a CID, the concurrency limits
// hold, Stats agrees with the listing; and once settled, every CID whose
// last action was an enqueue ends in the state that enqueue asked for.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0x00, 0x01, 0x40, 0x41, 0x80, 0x02, 0xc3, 0x10, 0x11, 0x50})
	f.Add([]byte("pin unpin pin unpin cancel recover advance"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 300 {
			data = data[:300]
		}
		synctest.Test(t, func(t *testing.T) { fuzzOps(t, data) })
	})
}

func fuzzOps(t *testing.T, data []byte) {
	const pinN, unpinN = 2, 1
	var mu sync.Mutex
	pinned := map[cid.Cid]bool{}
	running := map[cid.Cid]int{}
	inflight := [2]int{}
	var violation string
	fn := func(want bool) Func {
		k := kUnpin
		if want {
			k = kPin
		}
		return func(ctx context.Context, op Op, progress ProgressFunc) error {
			mu.Lock()
			running[op.Cid]++
			inflight[k]++
			if running[op.Cid] > 1 {
				violation = fmt.Sprintf("two functions at once on %s", op.Cid)
			}
			if inflight[kPin] > pinN || inflight[kUnpin] > unpinN {
				violation = fmt.Sprintf("in flight %v over limits", inflight)
			}
			mu.Unlock()
			defer func() {
				mu.Lock()
				running[op.Cid]--
				inflight[k]--
				mu.Unlock()
			}()
			behaviour := int(op.ID+uint64(op.Attempts)) % 5
			switch behaviour {
			case 0: // quick
			case 1: // slow with progress
				for i := range 3 {
					select {
					case <-time.After(4 * time.Second):
						progress(Progress{Blocks: uint64(i)})
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			case 2: // stubborn
				time.Sleep(3 * time.Second)
			case 3: // fails on first attempts
				if op.Attempts < 3 {
					return errors.New("transient")
				}
			case 4: // stuck on the first attempt: only the idle timeout ends it
				if op.Attempts == 1 {
					<-ctx.Done()
					return ctx.Err()
				}
			}
			mu.Lock()
			pinned[op.Cid] = want
			mu.Unlock()
			return nil
		}
	}
	tr, err := New(Config{Pin: fn(true), Unpin: fn(false), PinConcurrency: pinN, UnpinConcurrency: unpinN,
		MaxQueue: 6, MaxRetries: UnlimitedRetries, BaseBackoff: time.Second, MaxBackoff: 4 * time.Second,
		PinTimeout: 5 * time.Second, UnpinTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	cids := []cid.Cid{testCid("f0"), testCid("f1"), testCid("f2"), testCid("f3")}
	want := map[cid.Cid]OpType{} // last accepted enqueue; absent after cancel
	for _, b := range data {
		c := cids[b&3]
		switch b >> 5 {
		case 0, 1, 2:
			typ := OpPin
			if b&4 != 0 {
				typ = OpUnpin
			}
			if _, err := tr.Enqueue(c, typ, nil); err == nil {
				want[c] = typ
			} else if !errors.Is(err, ErrQueueFull) {
				t.Fatal(err)
			}
		case 3:
			if _, err := tr.Cancel(c); err == nil {
				delete(want, c)
			}
		case 4:
			tr.Recover(c)
		default:
			time.Sleep(time.Duration(b&31) * 500 * time.Millisecond)
		}
		synctest.Wait()
		checkConsistent(t, tr)
	}
	time.Sleep(time.Hour)
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	if violation != "" {
		t.Fatal(violation)
	}
	if s := tr.Stats(); s.Ops != 0 {
		t.Fatalf("not settled: %+v", s)
	}
	for c, typ := range want {
		if pinned[c] != (typ == OpPin) {
			t.Errorf("%s: last enqueue %s, pinned = %v", c, typ, pinned[c])
		}
	}
}

func checkConsistent(t *testing.T, tr *Tracker) {
	t.Helper()
	var queued [2]int
	errs := 0
	total := 0
	for op, err := range tr.All(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		total++
		k := kind(op.Type)
		switch op.Phase {
		case PhaseQueued:
			queued[k]++
		case PhaseError:
			errs++
		case PhaseInProgress:
		default:
			t.Fatalf("listed op in phase %s", op.Phase)
		}
	}
	s := tr.Stats()
	if s.Ops != total || s.PinsQueued != queued[kPin] || s.UnpinsQueued != queued[kUnpin] || s.Errors != errs {
		t.Fatalf("stats %+v disagree with listing: total %d queued %v errors %d", s, total, queued, errs)
	}
}
