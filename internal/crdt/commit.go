package crdt

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
)

// op is one local write.
type op struct {
	key     string
	value   []byte
	decoded any // see KV.decoded
	del     bool
}

// writeReq is a group of ops waiting for the committer.
type writeReq struct {
	ops   []op
	batch bool // an explicit Batch: committed on its own
	done  chan error
	// seq is the number of the committed group holding ops (see
	// syncState), set before a nil error is sent on done.
	seq uint64
	// state is reqWaiting until answered (reqAnswered) or abandoned by
	// its writer (reqAbandoned): the hooks of an abandoned request's
	// commit are delivered by the hook loop.
	state atomic.Int32
}

const (
	reqWaiting int32 = iota
	reqAnswered
	reqAbandoned
)

// submit hands ops to the committer and waits until they are durable.
func (s *Datastore) submit(ctx context.Context, name string, ops []op, batch bool) error {
	if err := s.enter(name); err != nil {
		return err
	}
	s.writers.Add(1)
	defer s.writers.Add(-1)
	r := &writeReq{ops: ops, batch: batch, done: make(chan error, 1)}
	gctx := s.g.Context()
	select {
	case s.wq <- r:
	case <-ctx.Done():
		return fmt.Errorf("crdt: %s: %w", name, ctx.Err())
	case <-gctx.Done():
		return fmt.Errorf("crdt: %s: %w", name, ErrClosed)
	}
	select {
	case err := <-r.done:
		return s.finish(ctx, name, r, err)
	case <-ctx.Done():
		if !r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			// Answered meanwhile: take the answer.
			return s.finish(ctx, name, r, <-r.done)
		}
		return fmt.Errorf("crdt: %s: %w", name, ctx.Err())
	case <-gctx.Done():
		// The committer may have committed this request just before
		// stopping; prefer its answer.
		select {
		case err := <-r.done:
			if err == nil {
				return s.finish(ctx, name, r, nil)
			}
		default:
		}
		return fmt.Errorf("crdt: %s: %w", name, ErrClosed)
	}
}

// finish completes a request the committer answered with err: a
// committed request waits until it is durable (durable), then the writer
// runs the queued hooks (unless another writer or the hook loop does)
// before answering, outside applyMu.
func (s *Datastore) finish(ctx context.Context, name string, r *writeReq, err error) error {
	if err == nil {
		err = s.durable(ctx, r.seq)
		if err != nil && err == ctx.Err() {
			// Stopped waiting for another writer's sync: the hook loop
			// delivers this commit's hooks.
			s.kickHooks()
			return fmt.Errorf("crdt: %s: %w", name, err)
		}
	}
	s.deliverHooks()
	if err != nil {
		return fmt.Errorf("crdt: %s: %w", name, err)
	}
	return nil
}

// syncState orders the syncs that make local commits durable. The
// committer numbers the groups it commits; a writer whose group is
// committed runs a sync itself when none is running (one hand-off per
// write, committer to writer) and otherwise waits for the running one,
// or, if that one began before its commit, for it to end and then syncs
// (or waits for whoever did). Meanwhile the committer commits the next
// groups (pipelined group commit).
type syncState struct {
	mu        sync.Mutex
	committed uint64     // groups committed
	synced    uint64     // groups up to this one are durable
	running   *syncRound // the sync in progress, if any
	closed    bool       // the committer stopped: no sync starts
}

// syncRound is one sync of the store.
type syncRound struct {
	upto uint64        // groups committed before the sync began
	done chan struct{} // closed once the sync returned
	err  error         // set before done is closed
}

// durable returns once a sync begun after group seq was committed has
// returned (nil, or that sync's error), running the sync itself when none
// is running. It returns ctx.Err() if ctx ends while it waits for another
// writer's sync, and ErrClosed if the replica closed before a sync
// covered seq.
func (s *Datastore) durable(ctx context.Context, seq uint64) error {
	ss := &s.syncs
	ss.mu.Lock()
	for {
		if ss.synced >= seq {
			ss.mu.Unlock()
			return nil
		}
		if r := ss.running; r != nil {
			ss.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.upto >= seq {
				return r.err
			}
			ss.mu.Lock()
			continue
		}
		if ss.closed {
			ss.mu.Unlock()
			return ErrClosed
		}
		r := ss.begin()
		ss.mu.Unlock()
		s.runSync(ctx, r)
		return r.err
	}
}

// begin starts a sync round covering every group committed so far. Called
// under s.syncs.mu with no round running.
func (ss *syncState) begin() *syncRound {
	r := &syncRound{upto: ss.committed, done: make(chan struct{})}
	ss.running = r
	return r
}

// runSync syncs the store for round r (begun with begin) and ends it.
func (s *Datastore) runSync(ctx context.Context, r *syncRound) {
	err := s.store.Sync(context.WithoutCancel(ctx), ds.NewKey("/"))
	ss := &s.syncs
	ss.mu.Lock()
	if err != nil {
		r.err = fmt.Errorf("sync local deltas: %w", err)
	} else if r.upto > ss.synced {
		ss.synced = r.upto
	}
	ss.running = nil
	ss.mu.Unlock()
	close(r.done)
}

// closeSyncs stops new syncs once the committer has stopped: it waits for
// the running sync and syncs what is committed and not yet durable, so
// that no sync outlives Close.
func (s *Datastore) closeSyncs(ctx context.Context) {
	ss := &s.syncs
	ss.mu.Lock()
	ss.closed = true
	for ss.running != nil {
		r := ss.running
		ss.mu.Unlock()
		<-r.done
		ss.mu.Lock()
	}
	if ss.synced >= ss.committed {
		ss.mu.Unlock()
		return
	}
	r := ss.begin()
	ss.mu.Unlock()
	s.runSync(ctx, r)
}

// commitLoop is the group committer: it takes the first waiting request,
// adds every individual write already waiting (up to MaxBatchSize, and,
// with MaxBatchAge > 0, waiting up to that long for more), commits them as
// one delta, and answers them all; each writer then waits for its sync
// (durable) while this loop commits the next group. Under a stream of
// writes (see gatherState) it waits up to GatherWait for more. A batch
// takes the batches and writes already waiting behind it, without waiting
// for more (commitGroup keeps each batch that fits in a delta in one).
func (s *Datastore) commitLoop(ctx context.Context) {
	var held *writeReq
	var gs gatherState
	defer func() {
		// Fail whatever is still queued.
		if held != nil {
			held.done <- ErrClosed
		}
		for {
			select {
			case r := <-s.wq:
				r.done <- ErrClosed
			default:
				s.closeSyncs(ctx)
				return
			}
		}
	}()
	adaptive := s.cfg.GatherWait > 0 && s.cfg.MaxBatchAge == 0
	for {
		var first *writeReq
		if held != nil {
			first, held = held, nil
		} else {
			select {
			case first = <-s.wq:
			case <-ctx.Done():
				return
			}
		}
		quiet := true
		if adaptive {
			quiet = time.Since(gs.lastEnd) > streamGap*s.cfg.GatherWait
		}
		group := []*writeReq{first}
		if !first.batch {
			if s.writers.Load() > int64(len(s.wq))+1 {
				// Let other writers (those answered by the previous
				// commit) queue their next write, so that a busy store
				// forms larger deltas. A lone writer is not made to wait
				// behind unrelated goroutines.
				runtime.Gosched()
			}
			n := len(first.ops)
			var timeout <-chan time.Time
			var timer *time.Timer
			if s.cfg.MaxBatchAge > 0 {
				timer = time.NewTimer(s.cfg.MaxBatchAge)
				timeout = timer.C
			}
			target := 0 // requests that end a stream's gather early
			probing := false
		gather:
			for n < s.cfg.MaxBatchSize {
				var r *writeReq
				if timeout == nil {
					select {
					case r = <-s.wq:
					default:
						if adaptive && target == 0 && !quiet && gs.streaming(s.writers.Load(), len(group)) {
							target, probing = gs.target(), gs.probe()
							if !s.gathered(group, target, probing) {
								timer = time.NewTimer(s.cfg.GatherWait)
								timeout = timer.C
								continue
							}
						}
						break gather
					}
				} else {
					select {
					case r = <-s.wq:
					case <-timeout:
						break gather
					case <-ctx.Done():
						break gather
					}
				}
				if r.batch {
					held = r
					break gather
				}
				group = append(group, r)
				n += len(r.ops)
				if target > 0 && s.gathered(group, target, probing) {
					// Take what is queued and commit.
					timeout = nil
				}
			}
			if timer != nil {
				timer.Stop()
			}
			if adaptive {
				gs.record(len(group), target > 0 && len(group) < target, probing)
			}
		} else {
			// Batches (bulk imports, several at once) and writes queued
			// behind this batch join its group: one commit round and one
			// sync for all, and small batches share deltas.
			n := len(first.ops)
		batches:
			for n < batchGroupOps*s.cfg.MaxBatchSize {
				select {
				case r := <-s.wq:
					group = append(group, r)
					n += len(r.ops)
				default:
					break batches
				}
			}
		}
		ok := 0
		err := s.waitJoined(ctx)
		if err != nil {
			err = ErrClosed
		} else {
			ok, err = s.commitGroup(ctx, group)
		}
		if ok > 0 {
			// Committed, not yet durable: each writer waits for a sync
			// begun after this commit (durable).
			s.syncs.mu.Lock()
			s.syncs.committed++
			seq := s.syncs.committed
			s.syncs.mu.Unlock()
			for _, r := range group[:ok] {
				r.seq = seq
			}
		}
		s.answer(group[:ok], nil)
		s.answer(group[ok:], err)
		if adaptive {
			gs.lastEnd = time.Now()
		}
	}
}

// streamGap, times GatherWait, is the longest the committer may be idle
// between two groups of a stream: under load the groups of a stream of
// 8 HTTP clients came 3-6 ms apart (the writers in their sync and round
// trip), so an idle spell of one GatherWait did not end a stream.
const streamGap = 20

// gatherState is what the committer remembers of the recent groups to
// tell a stream of writes from a lone or a sequential writer.
//
// A stream: writes arrive while others are still inside submit (queued,
// committed and waiting for their sync, or delivering their hooks), or
// the previous group held several, and the committer was not idle for
// more than streamGap × GatherWait. Then the committer waits up to
// GatherWait for more writes, and ends the wait early once the group holds
// one request more than the largest of the last groups (so a group grows
// while more writers keep coming), or as many as the largest and no other
// writer is inside submit (see gathered). Writers that come back one by one (clients in a network
// round trip, each with one write at a time) are otherwise committed in
// small groups, each a delta that costs every replica a commit, a sync, a
// signature check and an apply.
//
// A lone write (the committer idle for longer than streamGap ×
// GatherWait) and a sequential writer (no other writer inside submit, the
// previous group a single write) are committed at once, as before.
//
// The second early end cannot see writers outside submit (clients in their
// round trip), so a stream can settle into cohorts: 8 clients that came
// back as two groups of 4 always find 4 in the group and nobody else
// inside submit, and are committed as two groups of 4 for ever. So after
// probeFirst groups in a row of the same size ended that way, one wait
// ignores that end (a probe): when it gathers more, the target grows with
// it; when it does not (64 goroutines writing in a loop are all in the
// group already, and the probe waits GatherWait for nothing), the next
// probe comes twice as many groups later, up to probeMax.
type gatherState struct {
	lastEnd time.Time // when the previous group was answered
	sizes   [8]int    // requests in the last groups (a ring)
	next    int       // index in sizes of the next group
	last    int       // requests in the previous group
	same    int       // groups in a row of size last that ended with every writer in them
	every   int       // same that starts a probe (0: probeFirst)
}

// probeFirst and probeMax bound the groups between two probes (see
// gatherState).
const probeFirst, probeMax = 4, 1024

// probe reports whether the next stream wait is a probe: it ignores the
// early end for a group holding every writer inside submit.
func (g *gatherState) probe() bool { return g.same >= max(g.every, probeFirst) }

// streaming reports whether the writes look like a stream: other writers
// are inside submit than the inGroup requests taken, or the previous group
// held several.
func (g *gatherState) streaming(writers int64, inGroup int) bool {
	return writers > int64(inGroup) || g.last >= 2
}

// target returns the group size that ends a wait early: one more than the
// largest recent group.
func (g *gatherState) target() int {
	m := 1
	for _, n := range g.sizes {
		m = max(m, n)
	}
	return m + 1
}

// gathered reports whether a stream's wait for group can end: it holds
// target requests (one more than the largest recent group), or as many as
// the largest recent group and no other writer is inside submit (all of
// them are in the group: 64 goroutines writing in a loop, say).
// A probe waits for target only.
func (s *Datastore) gathered(group []*writeReq, target int, probing bool) bool {
	n := len(group)
	return n >= target || !probing && n >= target-1 && s.writers.Load() <= int64(n)
}

// record notes a group of n requests; allIn: its wait ended early with
// every writer inside submit in it; probed: the wait was a probe.
func (g *gatherState) record(n int, allIn, probed bool) {
	switch {
	case probed && n > g.last: // the probe found more writers
		g.same, g.every = 0, 0
	case probed:
		g.same, g.every = 0, min(2*max(g.every, probeFirst), probeMax)
	case allIn && n == g.last:
		g.same++
	default:
		g.same = 0
	}
	g.sizes[g.next] = n
	g.next = (g.next + 1) % len(g.sizes)
	g.last = n
}

// answer sends err to every request of group; when a writer stopped
// waiting, the hook loop delivers the hooks it would have.
func (s *Datastore) answer(group []*writeReq, err error) {
	kick := false
	for _, r := range group {
		if !r.state.CompareAndSwap(reqWaiting, reqAnswered) {
			kick = true
		}
		r.done <- err
	}
	if kick {
		s.kickHooks()
	}
}

// batchGroupOps, times MaxBatchSize, is how many operations of queued
// batches the committer takes into one group (it takes a batch whole).
const batchGroupOps = 8

// commitGroup commits the requests of group, in order, and returns how
// many of them (a prefix) were committed. Consecutive requests share a
// delta while together they fit in one (MaxBatchSize, MaxBlockSize), so
// that a batch that fits in a delta is never split across two; a request
// too large for one is split by commitOps, as when alone. On an error the
// requests from the one whose delta failed on are not committed (a batch
// split across deltas may be in part).
func (s *Datastore) commitGroup(ctx context.Context, group []*writeReq) (int, error) {
	budget := s.cfg.MaxBlockSize - s.cfg.MaxLinks*48 - 1024
	var ops []op
	from, size := 0, 0 // the first request of ops; its size in bytes
	for i, r := range group {
		rsize := 0
		for _, o := range r.ops {
			rsize += len(o.key) + len(o.value) + 16
		}
		if len(ops) > 0 && (len(ops)+len(r.ops) > s.cfg.MaxBatchSize || size+rsize > budget) {
			if err := s.commitOps(ctx, ops); err != nil {
				return from, err
			}
			ops, from, size = ops[:0], i, 0
		}
		ops = append(ops, r.ops...)
		size += rsize
	}
	if err := s.commitOps(ctx, ops); err != nil {
		return from, err
	}
	return len(group), nil
}

// commitOps commits ops, in order, as one or more deltas (split by
// MaxBatchSize and MaxBlockSize).
func (s *Datastore) commitOps(ctx context.Context, ops []op) error {
	budget := s.cfg.MaxBlockSize - s.cfg.MaxLinks*48 - 1024
	start, size := 0, 0
	for i, o := range ops {
		sz := len(o.key) + len(o.value) + 16
		if i > start && (i-start >= s.cfg.MaxBatchSize || size+sz > budget) {
			if err := s.commitDelta(ctx, ops[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += sz
	}
	if start < len(ops) {
		return s.commitDelta(ctx, ops[start:])
	}
	return nil
}

// commitDelta builds one delta from ops (the last op per key wins), stores
// its block and applies it; its writers make it durable (durable).
func (s *Datastore) commitDelta(ctx context.Context, ops []op) error {
	final := make(map[string]op, len(ops))
	for _, o := range ops {
		final[o.key] = o
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.snap.halfMerged.Load() {
		return fmt.Errorf("snapshot merge interrupted: %w", ErrClosed)
	}
	d := &Delta{}
	removeBytes := 0
	recs := make(map[string]keyRecord, len(keys)) // read once: applyDelta takes them
	for _, k := range keys {
		o := final[k]
		rec, ids, err := s.liveIDs(ctx, k)
		if err != nil {
			return fmt.Errorf("read %q: %w", truncate(k), err)
		}
		recs[k] = rec
		if len(ids) > 0 {
			d.Removes = append(d.Removes, Remove{Key: k, IDs: ids})
			removeBytes += len(ids) * 40
		}
		if !o.del {
			d.Puts = append(d.Puts, KV{Key: k, Value: o.value, decoded: o.decoded})
		}
	}
	if len(d.Puts) == 0 && len(d.Removes) == 0 {
		return nil // only deletes of absent keys
	}
	d.Links, d.Priority = s.headsByPriority(s.cfg.MaxLinks)
	d.Priority++
	id, raw, err := EncodeDelta(d)
	if err != nil {
		return err
	}
	if len(raw) > s.cfg.MaxBlockSize {
		if len(ops) > 1 {
			// Tombstone lists made it too big: split and retry.
			s.applyMu.Unlock()
			err := s.commitOps2(ctx, ops)
			s.applyMu.Lock()
			return err
		}
		return fmt.Errorf("delta of %d bytes exceeds MaxBlockSize: %w", len(raw), ErrValueTooLarge)
	}
	if err := s.dag.Put(ctx, id, raw); err != nil {
		return fmt.Errorf("store delta block %s: %w", id, err)
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		return err
	}
	var ch nodeChanges
	if err := s.applyDelta(ctx, b, id, d, true, recs, &ch); err != nil {
		return fmt.Errorf("apply local delta %s: %w", id, err)
	}
	if err := s.markProcessed(ctx, b, id, d.Priority, d.Links, &ch); err != nil {
		return fmt.Errorf("record local delta %s: %w", id, err)
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("commit local delta %s: %w", id, err)
	}
	// Synced before the writers return (durable).
	s.afterCommit(id, true, &ch)
	s.st.localDeltas.Add(1)
	s.queueOutgoing(id, raw)
	s.kickBroadcast()
	return nil
}

// commitOps2 splits ops in halves (used when tombstones overflow a block).
func (s *Datastore) commitOps2(ctx context.Context, ops []op) error {
	h := len(ops) / 2
	if err := s.commitDelta(ctx, ops[:h]); err != nil {
		return err
	}
	return s.commitDelta(ctx, ops[h:])
}

func (s *Datastore) kickBroadcast() {
	select {
	case s.bcastKick <- struct{}{}:
	default:
	}
}

// Batch returns a batch whose Commit writes all its operations as one delta
// (several if they exceed MaxBatchSize or MaxBlockSize; the split is not
// atomic). Batches and writes committed at the same time share deltas and
// syncs: the delta of a batch may hold other writes. Commit returns once
// its operations are durable.
func (s *Datastore) Batch(ctx context.Context) (ds.Batch, error) {
	if err := s.enter("batch"); err != nil {
		return nil, err
	}
	return &batch{s: s}, nil
}

type batch struct {
	s   *Datastore
	mu  sync.Mutex
	ops []op
}

var _ ds.Batch = (*batch)(nil)

// Put adds a put to the batch.
func (b *batch) Put(ctx context.Context, key ds.Key, value []byte) error {
	return b.add("put", op{key: key.String(), value: append([]byte{}, value...)})
}

// PutDecoded adds a put of a value the caller has validated and decoded
// (see Datastore.PutDecoded); value is not copied.
func (b *batch) PutDecoded(ctx context.Context, key ds.Key, value []byte, decoded any) error {
	return b.add("put", op{key: key.String(), value: value, decoded: decoded})
}

// Delete adds a delete to the batch.
func (b *batch) Delete(ctx context.Context, key ds.Key) error {
	return b.add("delete", op{key: key.String(), del: true})
}

// add checks o and appends it to the batch.
func (b *batch) add(name string, o op) error {
	if err := b.s.checkOp(&o); err != nil {
		return fmt.Errorf("crdt: batch %s: %w", name, err)
	}
	b.mu.Lock()
	b.ops = append(b.ops, o)
	b.mu.Unlock()
	return nil
}

// Commit writes the batch's operations and empties it.
func (b *batch) Commit(ctx context.Context) error {
	b.mu.Lock()
	ops := b.ops
	b.ops = nil
	b.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	return b.s.submit(ctx, "batch commit", ops, true)
}
