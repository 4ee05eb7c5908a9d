package optracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Tracker queues and runs pin and unpin operations, one per CID. Create it
// with New; all methods are safe for concurrent use.
type Tracker struct {
	cfg Config
	log *slog.Logger
	g   *gorun.Group

	// opCtx is the parent of every attempt's context; Close cancels it
	// with cause ErrClosed.
	opCtx  context.Context
	stopOp context.CancelCauseFunc

	wake chan struct{} // buffered(1): the timer heap's head moved earlier

	mu       sync.Mutex
	closed   bool
	closedCh chan struct{}
	ops      map[cid.Cid]*op // the current operation of each CID
	zombies  map[cid.Cid]*op // removed operations whose function still runs
	slots    []slot          // live operations by ascending id (listing)
	tombs    int             // removed entries in slots
	nextID   uint64
	nextSeq  uint64
	queues   [2]opHeap // runnable operations: [kPin], [kUnpin]
	conds    [2]*sync.Cond
	timers   opHeap // retries waiting for backoff, attempts watched for idleness
	queued   [2]int // operations in PhaseQueued, runnable or blocked
	inflight [2]int // functions running, superseded ones included
	errored  int    // operations in PhaseError
	retrying int    // of those, with a retry scheduled
	finished []Op   // final snapshots for Config.OnFinish, sent after unlocking
	counters counters
}

const (
	kPin   = 0
	kUnpin = 1
)

func kind(t OpType) int {
	if t == OpPin {
		return kPin
	}
	return kUnpin
}

// New validates cfg, fills its defaults and starts the tracker's workers.
// It returns an error wrapping ErrInvalidConfig when cfg is unusable.
func New(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("optracker: new: %w", err)
	}
	t := &Tracker{
		cfg:      cfg,
		log:      cfg.Logger,
		g:        gorun.New(),
		wake:     make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		ops:      make(map[cid.Cid]*op),
		zombies:  make(map[cid.Cid]*op),
		queues:   [2]opHeap{newQueue(), newQueue()},
		timers:   newTimerHeap(),
	}
	t.opCtx, t.stopOp = context.WithCancelCause(context.Background())
	t.conds[kPin] = sync.NewCond(&t.mu)
	t.conds[kUnpin] = sync.NewCond(&t.mu)
	start := func(fn func(context.Context)) {
		if err == nil {
			err = t.g.Go(fn)
		}
	}
	for range cfg.PinConcurrency {
		start(func(context.Context) { t.worker(kPin, cfg.Pin) })
	}
	for range cfg.UnpinConcurrency {
		start(func(context.Context) { t.worker(kUnpin, cfg.Unpin) })
	}
	start(t.timerLoop)
	if err != nil { // cannot happen with a fresh group; be safe anyway
		_ = t.Close(context.Background())
		return nil, fmt.Errorf("optracker: new: %w", err)
	}
	return t, nil
}

// Enqueue asks for operation typ (OpPin or OpUnpin) on c and returns a
// snapshot of the CID's operation afterwards. meta is kept opaque and
// handed back in every snapshot, including the one given to the operation
// function.
//
// If c's current operation has the same type and is queued, in progress or
// errored, Enqueue changes nothing and returns it. Otherwise a new operation
// replaces the current one (see the package documentation, rule 2).
//
// Errors: ErrClosed after Close; ErrQueueFull when Config.MaxQueue
// operations are queued and this one would add to them; ErrInvalidType;
// ErrInvalidCid.
func (t *Tracker) Enqueue(c cid.Cid, typ OpType, meta any) (Op, error) {
	if typ != OpPin && typ != OpUnpin {
		return Op{}, fmt.Errorf("optracker: enqueue %s: %w", typ, ErrInvalidType)
	}
	if !c.Defined() {
		return Op{}, fmt.Errorf("optracker: enqueue %s: %w", typ, ErrInvalidCid)
	}
	t.mu.Lock()
	defer t.unlockAndNotify()
	if t.closed {
		return Op{}, fmt.Errorf("optracker: enqueue %s %s: %w", typ, c, ErrClosed)
	}
	cur := t.ops[c]
	if cur != nil && cur.typ == typ {
		return cur.snapshot(), nil
	}
	grows := cur == nil || cur.phase != PhaseQueued
	if grows && t.queued[kPin]+t.queued[kUnpin] >= t.cfg.MaxQueue {
		return Op{}, fmt.Errorf("optracker: enqueue %s %s: %w (%d queued)", typ, c, ErrQueueFull, t.cfg.MaxQueue)
	}
	now := nanos(time.Now())
	if cur != nil {
		t.log.Debug("optracker: operation superseded", "cid", c, "old", cur.typ, "phase", cur.phase, "new", typ)
		t.removeLocked(cur, ErrSuperseded, now)
	}
	t.nextID++
	o := &op{
		id: t.nextID, c: c, typ: typ, meta: meta,
		created: now, updated: now,
		qidx: -1, tidx: -1,
	}
	o.blockedBy = t.zombies[c]
	t.ops[c] = o
	o.pos = int32(len(t.slots))
	t.slots = append(t.slots, slot{id: o.id, o: o})
	t.queueLocked(o)
	return o.snapshot(), nil
}

// Get returns a snapshot of c's operation, or ErrNotFound.
func (t *Tracker) Get(c cid.Cid) (Op, error) {
	o, ok := t.Lookup(c)
	if !ok {
		return Op{}, fmt.Errorf("optracker: get %s: %w", c, ErrNotFound)
	}
	return o, nil
}

// Lookup returns a snapshot of c's operation and true, or false when c has
// none. It is Get without the error, which costs an allocation and the
// CID's text form: listings ask it once per pin, and most pins have no
// operation.
func (t *Tracker) Lookup(c cid.Cid) (Op, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.ops[c]
	if o == nil {
		return Op{}, false
	}
	return o.snapshot(), true
}

// Cancel removes c's operation whatever its phase, cancelling its context
// (cause ErrSuperseded) if it runs; a later operation on c still waits for
// that function to return. This is how an errored operation is cleared.
// It returns the removed operation's last snapshot, or ErrNotFound.
func (t *Tracker) Cancel(c cid.Cid) (Op, error) {
	t.mu.Lock()
	defer t.unlockAndNotify()
	o := t.ops[c]
	if o == nil {
		return Op{}, fmt.Errorf("optracker: cancel %s: %w", c, ErrNotFound)
	}
	t.removeLocked(o, ErrSuperseded, nanos(time.Now()))
	return o.snapshot(), nil
}

// Recover re-queues c's errored operation at once with fresh priority (as
// if it had never failed; Attempts keeps counting). An operation that is
// queued or in progress is returned unchanged. Errors: ErrNotFound,
// ErrClosed.
func (t *Tracker) Recover(c cid.Cid) (Op, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return Op{}, fmt.Errorf("optracker: recover %s: %w", c, ErrClosed)
	}
	o := t.ops[c]
	if o == nil {
		return Op{}, fmt.Errorf("optracker: recover %s: %w", c, ErrNotFound)
	}
	t.recoverLocked(o)
	return o.snapshot(), nil
}

// Wait blocks until c's current operation (the one present when Wait is
// called) is done, cancelled or superseded, or has failed with no retry
// left, and returns its final snapshot; check its Phase. It returns at
// once for an operation already failed for good. Errors: ErrNotFound when
// c has no operation, ctx.Err(), or ErrClosed (with the last snapshot)
// when the tracker closes first or the operation was interrupted by Close.
//
// An operation that ends before Wait is called is no longer there
// (ErrNotFound, or Wait waits for a newer operation): to observe every
// ending without that race, use Config.OnFinish.
func (t *Tracker) Wait(ctx context.Context, c cid.Cid) (Op, error) {
	t.mu.Lock()
	o := t.ops[c]
	if o == nil {
		t.mu.Unlock()
		return Op{}, fmt.Errorf("optracker: wait %s: %w", c, ErrNotFound)
	}
	if o.phase == PhaseError && o.nextRetry == 0 {
		s := o.snapshot()
		t.mu.Unlock()
		return s, nil
	}
	if o.done == nil {
		o.done = make(chan struct{})
	}
	done := o.done
	t.mu.Unlock()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.closedCh:
		select {
		case <-done:
		default:
			err = fmt.Errorf("optracker: wait %s: %w", c, ErrClosed)
		}
	}
	t.mu.Lock()
	s := o.snapshot()
	t.mu.Unlock()
	if err == nil && s.Phase == PhaseCancelled && errors.Is(s.Err, ErrClosed) {
		err = fmt.Errorf("optracker: wait %s: %w", c, ErrClosed)
	}
	return s, err
}

// Close stops the tracker: Enqueue and Recover fail with ErrClosed from
// now on, running operations have their context cancelled with cause
// ErrClosed, and Close waits until every worker has returned, or until ctx
// is done (then it returns an error wrapping ctx.Err()). Queued operations
// stay listed but never run. Calling Close again is harmless.
func (t *Tracker) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.closedCh)
		t.conds[kPin].Broadcast()
		t.conds[kUnpin].Broadcast()
	}
	t.mu.Unlock()
	t.stopOp(ErrClosed)
	if err := t.g.Close(ctx); err != nil {
		return fmt.Errorf("optracker: close: %w", err)
	}
	return nil
}

// queueLocked puts o in the queued phase with a fresh position in line.
func (t *Tracker) queueLocked(o *op) {
	k := kind(o.typ)
	t.nextSeq++
	o.seq = t.nextSeq
	o.phase = PhaseQueued
	t.queued[k]++
	if o.blockedBy == nil {
		t.queues[k].push(o)
		t.conds[k].Signal()
	}
}

// recoverLocked re-queues o if it is errored, with fresh priority.
func (t *Tracker) recoverLocked(o *op) bool {
	if o.phase != PhaseError {
		return false
	}
	t.leaveErrorLocked(o)
	o.failures = 0
	o.updated = nanos(time.Now())
	t.counters.recovered++
	t.queueLocked(o)
	return true
}

func (t *Tracker) leaveErrorLocked(o *op) {
	t.errored--
	if o.nextRetry != 0 {
		t.retrying--
		o.nextRetry = 0
		t.timers.remove(o)
	}
}

// removeLocked takes o out of the tracker because of cause (a newer
// operation, Cancel). A running o becomes a zombie until its function
// returns.
func (t *Tracker) removeLocked(o *op, cause error, now int64) {
	k := kind(o.typ)
	switch o.phase {
	case PhaseQueued:
		t.queued[k]--
		t.queues[k].remove(o) // no-op when blocked
	case PhaseInProgress:
		o.cancel(cause)
		t.zombies[o.c] = o
	case PhaseError:
		t.leaveErrorLocked(o)
	}
	o.phase = PhaseCancelled
	o.updated = now
	t.counters.superseded++
	t.dropLocked(o)
}

// dropLocked removes o from the CID table and the listing and releases its
// waiters.
func (t *Tracker) dropLocked(o *op) {
	o.final = true
	if t.ops[o.c] == o {
		delete(t.ops, o.c)
	}
	t.dropSlot(o)
	t.notifyLocked(o)
}

// notifyLocked releases o's waiters and queues its final snapshot for
// Config.OnFinish.
func (t *Tracker) notifyLocked(o *op) {
	if o.done != nil {
		close(o.done)
		o.done = nil
	}
	if t.cfg.OnFinish != nil {
		t.finished = append(t.finished, o.snapshot())
	}
}

// unlockAndNotify releases t.mu, then calls Config.OnFinish with the final
// snapshots queued so far.
func (t *Tracker) unlockAndNotify() {
	if len(t.finished) == 0 {
		t.mu.Unlock()
		return
	}
	fin := t.finished
	t.finished = nil
	t.mu.Unlock()
	for _, op := range fin {
		t.cfg.OnFinish(op)
	}
}

func (t *Tracker) wakeTimer() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// worker runs operations of one kind until Close.
func (t *Tracker) worker(k int, fn Func) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		for !t.closed && t.queues[k].Len() == 0 {
			t.conds[k].Wait()
		}
		if t.closed {
			return
		}
		o := t.queues[k].pop()
		t.queued[k]--
		t.inflight[k]++
		start := time.Now()
		now := nanos(start)
		o.phase = PhaseInProgress
		o.attempts++
		o.started, o.updated = now, now
		o.bytes.Store(0)
		o.blocks.Store(0)
		o.lastProgress.Store(now)
		attempt := o.attempts
		o.token.Store(attempt)
		ctx, cancel := context.WithCancelCause(t.opCtx)
		o.cancel = cancel
		if to := t.cfg.timeout(o.typ); to > 0 {
			o.timerAt = now + int64(to)
			t.timers.push(o)
			if o.tidx == 0 {
				t.wakeTimer()
			}
		}
		snap := o.snapshot()
		progress := func(p Progress) {
			if o.token.Load() != attempt {
				return
			}
			o.bytes.Store(p.Bytes)
			o.blocks.Store(p.Blocks)
			o.lastProgress.Store(nanos(time.Now()))
		}
		t.mu.Unlock()

		err := callFn(ctx, fn, snap, progress)
		cancel(nil)
		end := time.Now()

		t.mu.Lock()
		o.token.Store(0)
		t.finishLocked(o, k, err, start, end)
		if len(t.finished) > 0 {
			t.unlockAndNotify()
			t.mu.Lock()
		}
	}
}

func callFn(ctx context.Context, fn Func, snap Op, progress ProgressFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("optracker: %s %s: operation function panicked: %v", snap.Type, snap.Cid, r)
		}
	}()
	return fn(ctx, snap, progress)
}

// finishLocked records the end of an attempt of o.
func (t *Tracker) finishLocked(o *op, k int, err error, start, end time.Time) {
	t.inflight[k]--
	t.timers.remove(o)
	o.cancel = nil
	t.counters.record(k, end.Sub(start), err)
	now := nanos(end)

	if o.final { // superseded or cancelled while running: discard the result
		if t.zombies[o.c] == o {
			delete(t.zombies, o.c)
		}
		if next := t.ops[o.c]; next != nil && next.blockedBy == o {
			next.blockedBy = nil
			if next.phase == PhaseQueued {
				nk := kind(next.typ)
				t.queues[nk].push(next)
				t.conds[nk].Signal()
			}
		}
		t.log.Debug("optracker: superseded operation returned", "cid", o.c, "op", o.typ, "err", err)
		return
	}
	o.updated = now
	if t.closed && err != nil {
		o.phase = PhaseCancelled
		o.err = fmt.Errorf("optracker: %s %s: %w", o.typ, o.c, ErrClosed)
		t.dropLocked(o)
		return
	}
	if err == nil {
		o.phase = PhaseDone
		o.err = nil
		t.counters.done++
		t.dropLocked(o)
		return
	}
	if o.timedOut {
		o.timedOut = false
		t.counters.timedOut++
		terr := fmt.Errorf("optracker: %s %s: no progress for %s: %w", o.typ, o.c, t.cfg.timeout(o.typ), ErrTimeout)
		if errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			err = terr
		} else { // the function said more than "cancelled": keep it
			err = fmt.Errorf("%w: %w", terr, err)
		}
	}
	o.err = err
	o.failures++
	o.phase = PhaseError
	t.errored++
	if t.cfg.retriesLeft(int(o.failures)) {
		t.retrying++
		o.nextRetry = now + int64(t.cfg.backoff(int(o.failures)))
		o.timerAt = o.nextRetry
		t.timers.push(o)
		if o.tidx == 0 {
			t.wakeTimer()
		}
		t.log.Debug("optracker: attempt failed, will retry", "cid", o.c, "op", o.typ, "attempt", o.attempts, "retry_at", fromNanos(o.nextRetry), "err", err)
		return
	}
	t.log.Warn("optracker: operation failed, no retry left", "cid", o.c, "op", o.typ, "attempts", o.attempts, "err", err)
	t.notifyLocked(o)
}

// timerLoop fires retries whose backoff elapsed and checks running
// attempts for idleness.
func (t *Tracker) timerLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		t.mu.Lock()
		now := nanos(time.Now())
		for h := t.timers.peek(); h != nil && h.timerAt <= now; h = t.timers.peek() {
			t.timers.pop()
			t.fireLocked(h, now)
		}
		wait := time.Duration(-1)
		if h := t.timers.peek(); h != nil {
			wait = time.Duration(h.timerAt - now)
		}
		t.mu.Unlock()
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (t *Tracker) fireLocked(o *op, now int64) {
	switch o.phase {
	case PhaseInProgress:
		to := int64(t.cfg.timeout(o.typ))
		last := o.lastProgress.Load()
		if now-last >= to {
			o.timedOut = true
			o.cancel(fmt.Errorf("optracker: %s %s: no progress for %s: %w", o.typ, o.c, time.Duration(to), ErrTimeout))
			return
		}
		o.timerAt = last + to
		t.timers.push(o)
	case PhaseError:
		if o.nextRetry == 0 || t.closed {
			return
		}
		t.leaveErrorLocked(o)
		o.updated = now
		t.queueLocked(o)
	}
}
