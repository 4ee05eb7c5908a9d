package optracker

import (
	"strconv"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
)

// OpType is the kind of an operation. The values are bit flags so that a
// Filter can match several.
type OpType uint8

// The operation types.
const (
	// OpPin pins a CID on the owner's IPFS node.
	OpPin OpType = 1 << iota
	// OpUnpin unpins a CID on the owner's IPFS node.
	OpUnpin
)

// String returns "pin", "unpin" or "optype(N)".
func (t OpType) String() string {
	switch t {
	case OpPin:
		return "pin"
	case OpUnpin:
		return "unpin"
	}
	return "optype(" + strconv.Itoa(int(t)) + ")"
}

// Phase is where an operation stands. The values are bit flags so that a
// Filter can match several.
type Phase uint8

// The phases.
const (
	// PhaseQueued: waiting for a worker (first attempt, retry or recovery),
	// or for a superseded operation on the same CID to return.
	PhaseQueued Phase = 1 << iota
	// PhaseInProgress: the operation function is running.
	PhaseInProgress
	// PhaseError: the last attempt failed. NextRetry says when it is
	// retried; zero means never (retries exhausted: Recover it).
	PhaseError
	// PhaseDone: the operation succeeded. Done operations leave the
	// tracker; this phase is seen only in the result of Wait.
	PhaseDone
	// PhaseCancelled: the operation was superseded, cancelled, or
	// interrupted by Close. Seen only in the result of Wait.
	PhaseCancelled
)

// String returns the phase's lower-case name.
func (p Phase) String() string {
	switch p {
	case PhaseQueued:
		return "queued"
	case PhaseInProgress:
		return "in_progress"
	case PhaseError:
		return "error"
	case PhaseDone:
		return "done"
	case PhaseCancelled:
		return "cancelled"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Progress is what an operation function reports: cumulative totals so
// far (not increments).
type Progress struct {
	// Bytes fetched or processed so far.
	Bytes uint64
	// Blocks fetched or processed so far.
	Blocks uint64
}

// ProgressFunc reports progress of a running operation; each call resets
// its idle timer. It is safe for concurrent use and cheap (no lock).
type ProgressFunc func(Progress)

// Op is a snapshot of an operation, returned by Enqueue, Get, Wait and the
// listings. It does not change when the operation does.
type Op struct {
	// ID identifies the operation; IDs grow with creation order.
	ID uint64
	// Cid is the operation's CID.
	Cid cid.Cid
	// Type is OpPin or OpUnpin.
	Type OpType
	// Phase is where the operation stands.
	Phase Phase
	// Err is the error of the last failed attempt. It stays set while the
	// operation waits for a retry or runs again, and is nil once it
	// succeeded or never failed.
	Err error
	// Attempts is how many times the operation function was started.
	Attempts int
	// Created is when Enqueue created the operation.
	Created time.Time
	// Updated is the last phase change or progress report.
	Updated time.Time
	// Started is when the current or last attempt started (zero before the
	// first).
	Started time.Time
	// NextRetry is when an errored operation is queued again; zero when no
	// retry is scheduled.
	NextRetry time.Time
	// Progress is the last progress reported by the current or last
	// attempt.
	Progress Progress
	// Meta is the opaque value the owner passed to Enqueue.
	Meta any
}

// op is the tracker's mutable operation. Fields other than the atomics are
// guarded by Tracker.mu.
type op struct {
	id   uint64
	seq  uint64 // queue order: renewed each time the op is (re)queued
	c    cid.Cid
	meta any
	err  error

	cancel    func(error) // cancels the running attempt
	done      chan struct{}
	blockedBy *op // a superseded op on the same cid that is still running

	created, updated, started, nextRetry int64 // unix nanoseconds; 0: unset
	timerAt                              int64 // timer heap key

	bytes, blocks atomic.Uint64
	lastProgress  atomic.Int64 // unix nanoseconds of the last report
	token         atomic.Int32 // attempt number while running, 0 otherwise

	attempts int32
	failures int32 // failures since the last fresh queueing (priority, backoff)
	qidx     int32 // index in its queue heap; -1 when not in it
	tidx     int32 // index in the timer heap; -1 when not in it
	pos      int32 // index in Tracker.slots; -1 when removed

	typ      OpType
	phase    Phase
	timedOut bool
	final    bool // left the tracker (done, cancelled, or failed for good)
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// snapshot copies o; the caller holds Tracker.mu.
func (o *op) snapshot() Op {
	upd := max(o.updated, o.lastProgress.Load())
	return Op{
		ID:        o.id,
		Cid:       o.c,
		Type:      o.typ,
		Phase:     o.phase,
		Err:       o.err,
		Attempts:  int(o.attempts),
		Created:   fromNanos(o.created),
		Updated:   fromNanos(upd),
		Started:   fromNanos(o.started),
		NextRetry: fromNanos(o.nextRetry),
		Progress:  Progress{Bytes: o.bytes.Load(), Blocks: o.blocks.Load()},
		Meta:      o.meta,
	}
}
