package optracker

import (
	"context"
	"iter"
	"sort"
)

// slot is one entry of the listing index: operations by ascending id.
// Removed operations leave a tombstone (o == nil) until compaction, which
// keeps the order, so an iterator resumes by id after releasing the lock.
type slot struct {
	id uint64
	o  *op
}

const (
	// listChunk is the most snapshots a listing copies under the lock.
	listChunk = 256
	// scanChunk is the most index entries a listing visits under the lock.
	scanChunk = 4096
)

func (t *Tracker) dropSlot(o *op) {
	if o.pos < 0 {
		return
	}
	t.slots[o.pos].o = nil
	o.pos = -1
	t.tombs++
	if t.tombs > 1024 && t.tombs*2 > len(t.slots) {
		t.compactSlots()
	}
}

func (t *Tracker) compactSlots() {
	j := 0
	for _, s := range t.slots {
		if s.o != nil {
			s.o.pos = int32(j)
			t.slots[j] = s
			j++
		}
	}
	clear(t.slots[j:])
	t.slots = t.slots[:j]
	t.tombs = 0
	if cap(t.slots) > 4096 && cap(t.slots) > 4*j {
		t.slots = append(make([]slot, 0, 2*j), t.slots...)
	}
}

// Filter selects operations by type and phase. Zero fields match all.
type Filter struct {
	// Types is a set of OpType flags (OpPin|OpUnpin); 0 matches both.
	Types OpType
	// Phases is a set of Phase flags; 0 matches every phase.
	Phases Phase
}

func (f Filter) match(o *op) bool {
	return (f.Types == 0 || f.Types&o.typ != 0) && (f.Phases == 0 || f.Phases&o.phase != 0)
}

// All streams a snapshot of every operation in the tracker, by ascending
// ID. See Filter for the consistency and memory guarantees.
func (t *Tracker) All(ctx context.Context) iter.Seq2[Op, error] {
	return t.Filter(ctx, Filter{})
}

// Filter streams snapshots of the operations matching f, by ascending ID.
// It copies at most 256 snapshots (and visits at most 4096 index entries)
// under the tracker's lock at a time, so memory stays flat whatever the
// number of operations and writers are never held up long. The listing is
// weakly consistent: an operation present during the whole iteration is
// yielded exactly once; one added or removed meanwhile may or may not be.
// When ctx is done the iterator yields (Op{}, ctx.Err()) and stops.
func (t *Tracker) Filter(ctx context.Context, f Filter) iter.Seq2[Op, error] {
	return t.scan(ctx, f, false)
}

// RecoverAll re-queues every errored operation with fresh priority (see
// Recover) and streams the recovered operations' snapshots. Nothing
// happens until the iterator is ranged over; breaking out of the loop stops
// recovering. It yields ErrClosed after Close, ctx.Err() when ctx is done.
func (t *Tracker) RecoverAll(ctx context.Context) iter.Seq2[Op, error] {
	return t.scan(ctx, Filter{Phases: PhaseError}, true)
}

func (t *Tracker) scan(ctx context.Context, f Filter, doRecover bool) iter.Seq2[Op, error] {
	return func(yield func(Op, error) bool) {
		var after uint64 // last id visited; ids start at 1
		buf := make([]Op, 0, listChunk)
		for {
			if err := ctx.Err(); err != nil {
				yield(Op{}, err)
				return
			}
			buf = buf[:0]
			t.mu.Lock()
			if doRecover && t.closed {
				t.mu.Unlock()
				yield(Op{}, ErrClosed)
				return
			}
			i := sort.Search(len(t.slots), func(i int) bool { return t.slots[i].id > after })
			for n := 0; i < len(t.slots) && len(buf) < listChunk && n < scanChunk; i, n = i+1, n+1 {
				s := t.slots[i]
				after = s.id
				if s.o == nil || !f.match(s.o) {
					continue
				}
				if doRecover {
					t.recoverLocked(s.o)
				}
				buf = append(buf, s.o.snapshot())
			}
			more := i < len(t.slots)
			t.mu.Unlock()
			for _, o := range buf {
				if !yield(o, nil) {
					return
				}
			}
			if !more {
				return
			}
		}
	}
}
