package ipfsnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"sync"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// Pin is one pin of the node. MaxDepth follows the cluster's convention:
// -1 recursive (the whole DAG), 0 direct (the root block only), n > 0 the
// root and n levels below it.
type Pin struct {
	// Cid is the pinned root.
	Cid cid.Cid
	// MaxDepth is -1 (recursive), 0 (direct) or a number of levels.
	MaxDepth int
	// Name is a free label.
	Name string
}

// Recursive reports whether the pin covers the whole DAG.
func (p Pin) Recursive() bool { return p.MaxDepth == -1 }

// PinOptions controls Pin.
type PinOptions struct {
	// MaxDepth is -1 for a recursive pin, 0 for a direct pin, or n > 0
	// to pin the root and n levels below. Zero value: direct.
	MaxDepth int
	// Name labels the pin.
	Name string
	// Progress, when not nil, is called after each block fetched or found
	// locally with the totals so far (serially; keep it quick). A caller
	// can implement "fail when no progress for T" with it.
	Progress func(Progress)
}

// PinType is how a CID is held by the node's pinset.
type PinType int

const (
	// NotPinned: no pin covers the CID.
	NotPinned PinType = iota
	// PinnedDirect: the CID has a direct pin.
	PinnedDirect
	// PinnedRecursive: the CID has a recursive pin (any MaxDepth other
	// than 0).
	PinnedRecursive
	// PinnedIndirect: the CID is inside the DAG of another recursive pin.
	PinnedIndirect
)

// String returns the pin type's name.
func (t PinType) String() string {
	switch t {
	case PinnedDirect:
		return "direct"
	case PinnedRecursive:
		return "recursive"
	case PinnedIndirect:
		return "indirect"
	default:
		return "unpinned"
	}
}

// Pin makes the DAG under c local (fetching what is missing through
// bitswap until ctx ends) and then records the pin. The pin is recorded
// only once every block it covers is stored; until then its blocks are
// held against GC. Pinning again replaces the depth and name. A failing
// fetch leaves any previous pin of c as it was.
func (n *Node) Pin(ctx context.Context, c cid.Cid, opts PinOptions) error {
	if opts.MaxDepth < -1 {
		return fmt.Errorf("ipfsnode: pin %s: max depth %d is invalid", c, opts.MaxDepth)
	}
	if n.closed.Load() {
		return ErrClosed
	}
	h := n.newHold()
	defer h.release()
	// A local root with nothing below it: no wait that closing the node
	// must cut short, so no context of its own.
	if n.fetchLocalLeaf(ctx, c, opts.MaxDepth, h, opts.Progress) {
		return n.recordPin(ctx, c, opts)
	}
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return n.pinDAG(ctx, c, opts, h)
}

// pin is Pin with the caller's hold (an import pins what it holds).
//
// A root with nothing below it that is already local costs one read to
// verify: cheaper than asking first whether the same pin exists (which
// spares the walk of a large DAG, not of one block). Such a pin asked
// again is written again, the same record.
func (n *Node) pin(ctx context.Context, c cid.Cid, opts PinOptions, h *hold) error {
	if n.fetchLocalLeaf(ctx, c, opts.MaxDepth, h, opts.Progress) {
		return n.recordPin(ctx, c, opts)
	}
	return n.pinDAG(ctx, c, opts, h)
}

// pinDAG is pin past the local-leaf case: nothing when the same pin is
// recorded, else the DAG fetched (walked) and the pin recorded.
func (n *Node) pinDAG(ctx context.Context, c cid.Cid, opts PinOptions, h *hold) error {
	if old, err := n.GetPin(ctx, c); err == nil && old.MaxDepth == opts.MaxDepth {
		if old.Name == opts.Name {
			return nil
		}
	} else if err != nil && !errors.Is(err, ErrNotPinned) {
		return fmt.Errorf("ipfsnode: pin %s: %w", c, err)
	}
	if err := n.fetch(ctx, c, opts.MaxDepth, h, opts.Progress); err != nil {
		return n.ctxErr(fmt.Errorf("ipfsnode: pin %s: %w", c, err))
	}
	return n.recordPin(ctx, c, opts)
}

// recordPin writes the pin record of c, whose blocks are local and held.
func (n *Node) recordPin(ctx context.Context, c cid.Cid, opts PinOptions) error {
	// Record under the GC read lock: a running GC has either marked
	// from this record or still sees the holds.
	n.gcMu.RLock()
	err := n.putPin(ctx, Pin{Cid: c, MaxDepth: opts.MaxDepth, Name: opts.Name})
	n.gcMu.RUnlock()
	if err != nil {
		return n.ctxErr(fmt.Errorf("ipfsnode: pin %s: %w", c, err))
	}
	if n.prov != nil {
		n.prov.enqueue(c)
	}
	return nil
}

// Unpin removes the pin of c. It returns an error wrapping ErrNotPinned,
// and changes nothing, when c has no direct or recursive pin. The blocks
// stay until the next GC.
func (n *Node) Unpin(ctx context.Context, c cid.Cid) error {
	if n.closed.Load() {
		return ErrClosed
	}
	n.pinMu.Lock()
	defer n.pinMu.Unlock()
	k := pinKey(c)
	has, err := n.ds.Has(ctx, k)
	if err != nil {
		return fmt.Errorf("ipfsnode: unpin %s: %w", c, err)
	}
	if !has {
		return fmt.Errorf("ipfsnode: unpin %s: %w", c, ErrNotPinned)
	}
	if err := n.ds.Delete(ctx, k); err != nil {
		return fmt.Errorf("ipfsnode: unpin %s: %w", c, err)
	}
	return nil
}

// GetPin returns the direct or recursive pin of c, or an error wrapping
// ErrNotPinned.
func (n *Node) GetPin(ctx context.Context, c cid.Cid) (Pin, error) {
	if n.closed.Load() {
		return Pin{}, ErrClosed
	}
	v, err := n.ds.Get(ctx, pinKey(c))
	if errors.Is(err, ds.ErrNotFound) {
		return Pin{}, fmt.Errorf("ipfsnode: pin %s: %w", c, ErrNotPinned)
	}
	if err != nil {
		return Pin{}, fmt.Errorf("ipfsnode: get pin %s: %w", c, err)
	}
	p, err := decodePin(c, v)
	if err != nil {
		return Pin{}, err
	}
	return p, nil
}

// PinStatus reports how c is pinned. With indirect set and no direct or
// recursive pin of c, it searches the local DAGs of the recursive pins
// (costly with many pins: it reads their blocks).
func (n *Node) PinStatus(ctx context.Context, c cid.Cid, indirect bool) (PinType, error) {
	p, err := n.GetPin(ctx, c)
	switch {
	case err == nil && p.MaxDepth == 0:
		return PinnedDirect, nil
	case err == nil:
		return PinnedRecursive, nil
	case !errors.Is(err, ErrNotPinned):
		return NotPinned, err
	case !indirect:
		return NotPinned, nil
	}
	target := string(c.Hash())
	for p, err := range n.Pins(ctx) {
		if err != nil {
			return NotPinned, err
		}
		if p.MaxDepth == 0 {
			continue
		}
		found := false
		err := n.walkLocal(ctx, p.Cid, p.MaxDepth, map[string]int{}, func(h string) bool {
			found = h == target
			return !found
		})
		if err != nil {
			return NotPinned, err
		}
		if found {
			return PinnedIndirect, nil
		}
	}
	return NotPinned, nil
}

// Pins streams the node's direct and recursive pins (in no particular
// order). Stop early by breaking out of the loop.
func (n *Node) Pins(ctx context.Context) iter.Seq2[Pin, error] {
	return func(yield func(Pin, error) bool) {
		if n.closed.Load() {
			yield(Pin{}, ErrClosed)
			return
		}
		res, err := n.ds.Query(ctx, dsq.Query{Prefix: pinsPrefix.String()})
		if err != nil {
			yield(Pin{}, fmt.Errorf("ipfsnode: listing pins: %w", err))
			return
		}
		defer res.Close()
		for r := range res.Next() {
			if r.Error != nil {
				yield(Pin{}, fmt.Errorf("ipfsnode: listing pins: %w", r.Error))
				return
			}
			c, err := cid.Decode(ds.RawKey(r.Key).BaseNamespace())
			if err != nil {
				if !yield(Pin{}, fmt.Errorf("ipfsnode: listing pins: bad key %q: %w", r.Key, err)) {
					return
				}
				continue
			}
			p, err := decodePin(c, r.Value)
			if !yield(p, err) {
				return
			}
		}
	}
}

func pinKey(c cid.Cid) ds.Key { return pinsPrefix.ChildString(c.String()) }

// pinWrites gathers the pin records written at the same time into one
// datastore batch (group commit): while one writer writes a batch, the
// records of the others queue, and the first of them writes the whole
// queue as the next batch. Pins of local leaves come from many tracker
// workers at once; one datastore commit each, taken in turn under pinMu,
// made them wait for each other's commits.
type pinWrites struct {
	mu      sync.Mutex
	queue   []*pinWrite // records waiting for the next batch
	writing bool        // a batch is being written (queue waits for it)
}

// pinWrite is one record waiting in pinWrites.
type pinWrite struct {
	key  ds.Key
	val  []byte
	done chan pinWriteDone // buffered: the writer of its batch never waits
}

// pinWriteDone answers a pinWrite: its batch was written (err: the
// batch's error), or lead: the writer writes the queue (its record first)
// as the next batch.
type pinWriteDone struct {
	err  error
	lead bool
}

// putPin writes the pin record of p, in one batch with the records
// written at the same time, and returns once that batch is written.
func (n *Node) putPin(ctx context.Context, p Pin) error {
	w := &pinWrite{key: pinKey(p.Cid), val: encodePin(p), done: make(chan pinWriteDone, 1)}
	q := &n.pinq
	q.mu.Lock()
	q.queue = append(q.queue, w)
	if q.writing {
		q.mu.Unlock()
		// Not cut short by ctx: the batch holding w may already be
		// written, and the wait is one datastore commit.
		d := <-w.done
		if !d.lead {
			return d.err
		}
		q.mu.Lock() // w leads: it is first in the queue
	}
	q.writing = true
	batch := q.queue
	q.queue = nil
	q.mu.Unlock()

	err := n.writePins(context.WithoutCancel(ctx), batch)

	q.mu.Lock()
	if len(q.queue) > 0 {
		q.queue[0].done <- pinWriteDone{lead: true}
	} else {
		q.writing = false
	}
	q.mu.Unlock()
	for _, o := range batch {
		if o != w {
			o.done <- pinWriteDone{err: err}
		}
	}
	return err
}

// writePins writes batch's records (the last one of a key wins) under
// pinMu, in one datastore batch when there are several.
func (n *Node) writePins(ctx context.Context, batch []*pinWrite) error {
	n.pinMu.Lock()
	defer n.pinMu.Unlock()
	if len(batch) == 1 {
		return n.ds.Put(ctx, batch[0].key, batch[0].val)
	}
	last := make(map[ds.Key]int, len(batch))
	for i, w := range batch {
		last[w.key] = i
	}
	b, err := n.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for i, w := range batch {
		if last[w.key] != i {
			continue
		}
		if err := b.Put(ctx, w.key, w.val); err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

// Pin record: version byte 1, varint MaxDepth, then the name.
func encodePin(p Pin) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(p.Name))
	b = append(b, 1)
	b = binary.AppendVarint(b, int64(p.MaxDepth))
	return append(b, p.Name...)
}

func decodePin(c cid.Cid, v []byte) (Pin, error) {
	if len(v) < 2 || v[0] != 1 {
		return Pin{}, fmt.Errorf("ipfsnode: pin record of %s: unknown format", c)
	}
	d, k := binary.Varint(v[1:])
	if k <= 0 || d < -1 {
		return Pin{}, fmt.Errorf("ipfsnode: pin record of %s: bad depth", c)
	}
	return Pin{Cid: c, MaxDepth: int(d), Name: string(v[1+k:])}, nil
}
