package ipfsnode_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// pinRecordDS counts the writes of pin records (the keys under
// /ipfsnode/pins) and, while gate is set, holds the first such Put until
// the gate is closed; failBatch makes batch commits fail.
type pinRecordDS struct {
	ds.Batching
	gate      atomic.Pointer[chan struct{}]
	entered   chan struct{} // a Put reached the gate
	puts      atomic.Int32  // pin records written by Put
	batches   atomic.Int32  // batches committed holding pin records
	inBatches atomic.Int32  // pin records written by those batches
	failBatch atomic.Bool
}

func isPinKey(k ds.Key) bool { return strings.HasPrefix(k.String(), "/ipfsnode/pins/") }

func (d *pinRecordDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	if isPinKey(k) {
		if g := d.gate.Swap(nil); g != nil {
			d.entered <- struct{}{}
			<-*g
		}
		d.puts.Add(1)
	}
	return d.Batching.Put(ctx, k, v)
}

func (d *pinRecordDS) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &pinRecordBatch{Batch: b, d: d}, nil
}

type pinRecordBatch struct {
	ds.Batch
	d    *pinRecordDS
	pins int32
}

func (b *pinRecordBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	if isPinKey(k) {
		b.pins++
	}
	return b.Batch.Put(ctx, k, v)
}

func (b *pinRecordBatch) Commit(ctx context.Context) error {
	if b.pins > 0 && b.d.failBatch.Load() {
		return errInjected
	}
	if err := b.Batch.Commit(ctx); err != nil {
		return err
	}
	if b.pins > 0 {
		b.d.batches.Add(1)
		b.d.inBatches.Add(b.pins)
	}
	return nil
}

// Pins recorded while another pin's record is being written are written
// together, as one datastore batch, once that write ends; each Pin returns
// after its own record is written, and a failed batch fails every pin in
// it (and records none of them).
func TestPinRecordsWrittenTogether(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			d := &pinRecordDS{Batching: newDS(), entered: make(chan struct{}, 1)}
			n := newNode(t, ipfsnode.Config{Datastore: d})
			ctx := testCtx(t, time.Minute)
			const others = 8
			roots := make([]cid.Cid, others+1)
			for i := range roots {
				roots[i] = add(t, n, randBytes(uint64(100+i), 1024), v1raw)
			}
			gate := make(chan struct{})
			d.gate.Store(&gate)
			d.failBatch.Store(fail)

			errs := make([]error, len(roots))
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = n.Pin(ctx, roots[0], ipfsnode.PinOptions{MaxDepth: -1}) })
			select {
			case <-d.entered:
			case <-ctx.Done():
				t.Fatal("the first pin never wrote its record")
			}
			for i := 1; i < len(roots); i++ {
				wg.Go(func() { errs[i] = n.Pin(ctx, roots[i], ipfsnode.PinOptions{MaxDepth: -1, Name: "n"}) })
			}
			require.Eventually(t, func() bool { return n.QueuedPinWrites() == others },
				30*time.Second, time.Millisecond, "the other pins queue behind the first write")
			close(gate)
			wg.Wait()

			require.NoError(t, errs[0])
			require.EqualValues(t, 1, d.puts.Load(), "the first record alone")
			pins := pinList(t, n)
			require.Contains(t, pins, roots[0])
			if fail {
				require.Zero(t, d.batches.Load())
				for i := 1; i < len(roots); i++ {
					require.ErrorIs(t, errs[i], errInjected)
					require.NotContains(t, pins, roots[i])
				}
				return
			}
			require.EqualValues(t, 1, d.batches.Load(), "the queued records in one batch")
			require.EqualValues(t, others, d.inBatches.Load())
			for i := 1; i < len(roots); i++ {
				require.NoError(t, errs[i])
				require.Equal(t, ipfsnode.Pin{Cid: roots[i], MaxDepth: -1, Name: "n"}, pins[roots[i]])
			}
		})
	}
}

// Pins, unpins and GCs racing on the same and on different CIDs: every
// Pin that returned is recorded until an Unpin after it, every Unpin that
// returned nil removed a record, and a GC never takes a block of a pin
// that is recorded. Each worker owns some CIDs and checks its own view
// after each step; run under -race.
func TestConcurrentPinUnpinGC(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	// A holds every block too: a pin whose block a GC took after an
	// unpin fetches it again from A.
	a := newNode(t, ipfsnode.Config{})
	connect(t, n, a)
	ctx := testCtx(t, 2*time.Minute)
	addBoth := func(seed uint64) cid.Cid {
		data := randBytes(seed, 1024)
		c := add(t, a, data, v1raw)
		require.Equal(t, c, add(t, n, data, v1raw))
		return c
	}
	const workers, perWorker, rounds = 8, 4, 30
	roots := make([][]cid.Cid, workers)
	for w := range roots {
		for i := range perWorker {
			roots[w] = append(roots[w], addBoth(uint64(1000+w*perWorker+i)))
		}
	}
	shared := addBoth(999)
	stop := make(chan struct{})
	var gcs sync.WaitGroup
	gcErr := make(chan error, 1)
	gcs.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := n.GC(ctx); err != nil {
				gcErr <- err
				return
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			check := func() error {
				for r := range rounds {
					c := roots[w][r%perWorker]
					depth := []int{-1, 0}[r%2]
					if err := n.Pin(ctx, c, ipfsnode.PinOptions{MaxDepth: depth}); err != nil {
						return fmt.Errorf("pin: %w", err)
					}
					// The shared CID: pinned and unpinned by everyone.
					if err := n.Pin(ctx, shared, ipfsnode.PinOptions{MaxDepth: -1}); err != nil {
						return fmt.Errorf("pin shared: %w", err)
					}
					p, err := n.GetPin(ctx, c)
					if err != nil {
						return fmt.Errorf("get after pin: %w", err)
					}
					if p.MaxDepth != depth {
						return fmt.Errorf("pin of %s: depth %d, want %d", c, p.MaxDepth, depth)
					}
					if _, err := n.BlockGet(ctx, c); err != nil {
						return fmt.Errorf("block of a pin: %w", err)
					}
					if r%3 == 2 {
						if err := n.Unpin(ctx, c); err != nil {
							return fmt.Errorf("unpin: %w", err)
						}
						if _, err := n.GetPin(ctx, c); err == nil {
							return fmt.Errorf("%s still pinned after Unpin", c)
						}
					}
					if err := n.Unpin(ctx, shared); err != nil && !errors.Is(err, ipfsnode.ErrNotPinned) {
						return fmt.Errorf("unpin shared: %w", err)
					}
				}
				return nil
			}
			if err := check(); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	gcs.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	select {
	case err := <-gcErr:
		require.NoError(t, err)
	default:
	}
	// The final state: what each worker's last step left.
	if _, err := n.GC(ctx); err != nil {
		require.NoError(t, err)
	}
	pins := pinList(t, n)
	for w := range workers {
		for i, c := range roots[w] {
			last := -1 // the last round that touched c
			for r := range rounds {
				if r%perWorker == i {
					last = r
				}
			}
			if last%3 == 2 {
				require.NotContains(t, pins, c)
				continue
			}
			require.Contains(t, pins, c)
			require.Equal(t, []int{-1, 0}[last%2], pins[c].MaxDepth)
			_, err := n.BlockGet(ctx, c)
			require.NoError(t, err, "a pinned block survives GC")
		}
	}
}
