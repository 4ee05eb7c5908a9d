package crdt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/pincluster/pincluster/internal/gorun"
)

// processor holds the in-memory side of the walk: a bounded queue of nodes
// to fetch, the set of nodes queued or being fetched, and the retry state
// of nodes whose fetch failed. The durable side is the journal (/q).
type processor struct {
	mu       sync.Mutex
	jobs     chan cid.Cid
	inflight map[cid.Cid]struct{}
	retries  map[cid.Cid]*retryState
	overflow bool // journal holds nodes not in jobs: scheduler must scan
	kick     chan struct{}
	rejected map[cid.Cid]struct{}
}

type retryState struct {
	attempts int
	next     time.Time
	lastErr  string
}

const maxRejectedMemory = 1 << 16

func (p *processor) init(queue int) {
	p.jobs = make(chan cid.Cid, queue)
	p.inflight = map[cid.Cid]struct{}{}
	p.retries = map[cid.Cid]*retryState{}
	p.kick = make(chan struct{}, 1)
	p.rejected = map[cid.Cid]struct{}{}
}

func (p *processor) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// enqueue queues c unless already queued; when the queue is full it marks
// the overflow (c stays in the journal) and returns false.
func (p *processor) enqueue(c cid.Cid) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inflight[c]; ok {
		return true
	}
	if len(p.jobs) >= cap(p.jobs) {
		if !p.overflow {
			p.overflow = true
			p.wake()
		}
		return false
	}
	p.inflight[c] = struct{}{}
	p.jobs <- c
	return true
}

// enqueueHead queues an announced head if there is room (no overflow
// mark: heads are not in the journal).
func (p *processor) enqueueHead(c cid.Cid) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inflight[c]; ok || len(p.jobs) >= cap(p.jobs) {
		return
	}
	p.inflight[c] = struct{}{}
	p.jobs <- c
}

func (p *processor) done(c cid.Cid) {
	p.mu.Lock()
	delete(p.inflight, c)
	delete(p.retries, c)
	p.mu.Unlock()
}

func (p *processor) isRejected(c cid.Cid) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.rejected[c]
	return ok
}

func (p *processor) reject(c cid.Cid) {
	p.mu.Lock()
	if len(p.rejected) >= maxRejectedMemory {
		clear(p.rejected)
	}
	p.rejected[c] = struct{}{}
	delete(p.inflight, c)
	delete(p.retries, c)
	p.mu.Unlock()
}

func (p *processor) retry(c cid.Cid, err error, min, max time.Duration) {
	p.mu.Lock()
	r := p.retries[c]
	if r == nil {
		r = &retryState{}
		p.retries[c] = r
	}
	r.attempts++
	d := min
	for i := 1; i < r.attempts && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	r.next = time.Now().Add(d)
	r.lastErr = err.Error()
	p.mu.Unlock()
	p.wake()
}

// retryNow makes every node waiting for a retry due at once (after a
// snapshot merge, most of them are known now).
func (p *processor) retryNow() {
	p.mu.Lock()
	now := time.Now()
	for _, r := range p.retries {
		if r.next.After(now) && r.next.Sub(now) < time.Hour/2 { // not already queued
			r.next = now
		}
	}
	p.mu.Unlock()
	p.wake()
}

func (p *processor) snapshot() (int, []StuckNode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var stuck []StuckNode
	for c, r := range p.retries {
		stuck = append(stuck, StuckNode{Cid: c, Attempts: r.attempts, LastError: r.lastErr, NextRetry: r.next})
	}
	return len(p.inflight), stuck
}

// scheduleLoop requeues nodes whose retry is due and refills the queue from
// the journal after an overflow or a restart.
func (s *Datastore) scheduleLoop(ctx context.Context) {
	p := &s.proc
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wait := time.Hour
		p.mu.Lock()
		for c, r := range p.retries {
			if r.next.After(now) {
				wait = min(wait, r.next.Sub(now))
				continue
			}
			if len(p.jobs) >= cap(p.jobs) {
				wait = min(wait, 50*time.Millisecond)
				continue
			}
			r.next = now.Add(time.Hour) // in the queue now
			p.jobs <- c
		}
		scan := p.overflow && len(p.jobs) < cap(p.jobs)/2+1
		if scan {
			p.overflow = false
		}
		p.mu.Unlock()
		if scan {
			if err := s.scanJournal(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("crdt: scan journal", "err", err)
				p.mu.Lock()
				p.overflow = true
				p.mu.Unlock()
			}
		}
		p.mu.Lock()
		if p.overflow {
			wait = min(wait, 50*time.Millisecond)
		}
		p.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// scanJournal queues journal entries until the queue is full.
func (s *Datastore) scanJournal(ctx context.Context) error {
	res, err := s.store.Query(ctx, dsq.Query{Prefix: nsPending, KeysOnly: true})
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		c, err := cid.Decode(r.Key[len(nsPending)+1:])
		if err != nil {
			s.log.Warn("crdt: corrupt journal key", "key", r.Key)
			continue
		}
		if !s.proc.enqueue(c) {
			return nil // full: overflow is set again
		}
	}
	return nil
}

func (s *Datastore) workerLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.proc.jobs:
			if !s.awaitCatchUp(ctx) {
				return // closing: the journal keeps c
			}
			s.processNode(ctx, c)
		}
	}
}

// awaitCatchUp holds a worker while this replica is far behind a snapshot
// or merging one: walking down now would replay what the snapshot holds.
// It returns false when ctx ends.
func (s *Datastore) awaitCatchUp(ctx context.Context) bool {
	if !s.snap.catching.Load() && !s.farBehind() {
		return true
	}
	t := time.NewTicker(min(s.cfg.RebroadcastInterval, 100*time.Millisecond))
	defer t.Stop()
	for s.snap.catching.Load() || s.farBehind() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// processNode fetches, checks and applies one node, and journals its
// unknown links.
func (s *Datastore) processNode(ctx context.Context, c cid.Cid) {
	known, err := s.store.Has(ctx, cidKey(nsBlocks, c))
	if err == nil && known {
		s.applyMu.Lock()
		err = s.dropPending(ctx, c)
		s.applyMu.Unlock()
		if err == nil {
			s.proc.done(c)
			return
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.proc.retry(c, err, s.cfg.RetryMinBackoff, s.cfg.RetryMaxBackoff)
		}
		return
	}
	raw, inline := s.takeIncoming(c)
	if inline {
		// Received with its announcement (checked against c): stored in
		// the DAG as a fetch would have.
		err = s.dag.Put(ctx, c, raw)
	} else {
		fctx, cancel := context.WithTimeout(ctx, s.cfg.DAGSyncerTimeout)
		raw, err = s.dag.Get(fctx, c)
		cancel()
		s.st.fetches.Add(1)
		if err == nil {
			err = verifyBlock(c, raw)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return // closing: the journal keeps c
		}
		s.st.fetchErrors.Add(1)
		s.log.Debug("crdt: fetch failed, will retry", "cid", c, "err", err)
		s.proc.retry(c, &NodeError{Cid: c, Op: "fetch", Err: err}, s.cfg.RetryMinBackoff, s.cfg.RetryMaxBackoff)
		return
	}
	d, err := DecodeDelta(raw, s.cfg.limits())
	if err != nil {
		s.rejectNode(ctx, c, &NodeError{Cid: c, Op: "decode", Err: err})
		return
	}
	s.applyMu.Lock()
	newPending, err := s.applyRemote(ctx, c, d)
	s.applyMu.Unlock()
	s.deliverHooks() // outside applyMu, in apply order
	var ne *NodeError
	switch {
	case errors.As(err, &ne):
		s.rejectNode(ctx, c, ne)
		return
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("crdt: apply failed, will retry", "cid", c, "err", err)
		s.proc.retry(c, err, s.cfg.RetryMinBackoff, s.cfg.RetryMaxBackoff)
		return
	}
	s.proc.done(c)
	for _, l := range newPending {
		s.proc.enqueue(l)
	}
}

// applyRemote checks d's priority against what is known and applies it.
// A *NodeError means d is invalid. Called under applyMu.
func (s *Datastore) applyRemote(ctx context.Context, c cid.Cid, d *Delta) ([]cid.Cid, error) {
	if s.snap.halfMerged.Load() {
		return nil, fmt.Errorf("apply %s: snapshot merge interrupted: %w", c, ErrClosed)
	}
	if known, err := s.store.Has(ctx, cidKey(nsBlocks, c)); err != nil || known {
		if err == nil {
			err = s.dropPending(ctx, c)
		}
		return nil, err
	}
	var bound uint64
	if raw, err := s.store.Get(ctx, cidKey(nsPending, c)); err == nil {
		if bound, _, err = readUvarint(raw); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, ds.ErrNotFound) {
		return nil, err
	}
	invalid := func(format string, a ...any) error {
		return &NodeError{Cid: c, Op: "validate", Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidDelta}, a...)...)}
	}
	if bound > 0 && d.Priority >= bound {
		return nil, invalid("priority %d not below %d of a node linking to it", d.Priority, bound)
	}
	if bound == 0 {
		_, height := s.height()
		if d.Priority > height && d.Priority-height > s.cfg.MaxPriorityJump {
			return nil, invalid("priority %d too far above local height %d", d.Priority, height)
		}
	}
	var maxLink uint64
	allKnown := true
	for _, l := range d.Links {
		raw, err := s.store.Get(ctx, cidKey(nsBlocks, l))
		if errors.Is(err, ds.ErrNotFound) {
			allKnown = false
			continue
		}
		if err != nil {
			return nil, err
		}
		p, _, err := readUvarint(raw)
		if err != nil {
			return nil, err
		}
		if p >= d.Priority {
			return nil, invalid("priority %d not above linked node %s (%d)", d.Priority, l, p)
		}
		maxLink = max(maxLink, p)
	}
	if allKnown && d.Priority != maxLink+1 {
		return nil, invalid("priority %d, want %d (1 + highest link)", d.Priority, maxLink+1)
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		return nil, err
	}
	var ch nodeChanges
	if err := s.applyDelta(ctx, b, c, d, false, nil, &ch); err != nil {
		return nil, fmt.Errorf("apply %s: %w", c, err)
	}
	if err := s.markProcessed(ctx, b, c, d.Priority, d.Links, &ch); err != nil {
		return nil, fmt.Errorf("record %s: %w", c, err)
	}
	if err := b.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	s.afterCommit(c, true, &ch)
	s.st.remoteNodes.Add(1)
	return ch.newPending, nil
}

// dropPending removes c from the journal. Called under applyMu.
func (s *Datastore) dropPending(ctx context.Context, c cid.Cid) error {
	has, err := s.store.Has(ctx, cidKey(nsPending, c))
	if err != nil || !has {
		return err
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		return err
	}
	if err := b.Delete(ctx, cidKey(nsPending, c)); err != nil {
		return err
	}
	if err := s.markDirty(ctx, b, -1); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	s.pending.Add(-1)
	return nil
}

func (s *Datastore) rejectNode(ctx context.Context, c cid.Cid, err error) {
	s.st.rejectedNodes.Add(1)
	s.log.Warn("crdt: rejected node", "cid", c, "err", err)
	s.applyMu.Lock()
	derr := s.dropPending(ctx, c)
	s.applyMu.Unlock()
	if derr != nil && ctx.Err() == nil {
		s.log.Warn("crdt: drop rejected node from journal", "cid", c, "err", derr)
	}
	s.proc.reject(c)
}

// receiveLoop reads broadcasts and journals unknown heads.
func (s *Datastore) receiveLoop(ctx context.Context) {
	for {
		msg, err := s.bc.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("crdt: broadcaster next", "err", err)
			if !gorun.Sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		s.st.receivedBroadcasts.Add(1)
		switch messageVersion(msg.Data) {
		case announceVersion:
			s.handleAnnouncement(ctx, msg.From, msg.Data)
			continue
		case joinRequestVersion:
			s.handleJoinRequest(msg.From, msg.Data)
			continue
		case joinReplyVersion:
			s.handleJoinReply(msg.From, msg.Data)
			continue
		}
		if s.snap.joining.Load() {
			// Joining from a snapshot: the heads come again with the next
			// rebroadcast, once the snapshot is loaded. (Heads say nothing
			// about snapshots: pubsub may deliver them seconds late, so
			// the join handshake asks instead.)
			continue
		}
		if s.snap.catching.Load() || s.farBehind() {
			// Catching up from a snapshot (merging it, or about to): the
			// heads come again once it is merged; walking down now would
			// replay what the snapshot holds.
			continue
		}
		var heads []cid.Cid
		var blocks []inlineBlock
		if messageVersion(msg.Data) == deltasVersion {
			heads, blocks, err = decodeDeltas(msg.Data, s.cfg.MaxHeadsPerBroadcast, s.cfg.MaxBlockSize)
		} else {
			heads, err = DecodeMessage(msg.Data, s.cfg.MaxHeadsPerBroadcast)
		}
		if err != nil {
			s.st.ignoredBroadcasts.Add(1)
			s.log.Warn("crdt: ignored broadcast", "from", msg.From, "err", err)
			continue
		}
		s.heardHeads(heads)
		if err := s.handleDeltas(ctx, heads, blocks); err != nil && ctx.Err() == nil {
			s.log.Warn("crdt: journal heads", "from", msg.From, "err", err)
		}
	}
}

// handleHeads queues the unknown heads. Announced heads are not journaled:
// if this replica stops before applying one, the next rebroadcast brings it
// back; only the links found while walking are journaled. When the queue
// is full a head is dropped for the same reason.
func (s *Datastore) handleHeads(ctx context.Context, heads []cid.Cid) error {
	for _, h := range heads {
		if s.proc.isRejected(h) {
			continue
		}
		known, err := s.store.Has(ctx, cidKey(nsBlocks, h))
		if err != nil {
			return err
		}
		if !known {
			s.proc.enqueueHead(h)
		}
	}
	return nil
}

// rebroadcastRedundancy is how many heads messages equal to this
// replica's own heads it must hear within one rebroadcast interval to
// leave out its periodic rebroadcast.
const rebroadcastRedundancy = 2

// broadcastLoop announces the heads after local commits, at most once per
// BroadcastGap (the commits of one gap share a message), and once per
// RebroadcastInterval (also right after New, so a restarted peer announces
// heads it may not have broadcast before stopping).
//
// The periodic rebroadcast is suppressed as in Trickle (Levis et al.,
// NSDI 2004): it goes out at a random point of the second half of each
// interval, unless during the interval this replica has already sent its
// heads, or has heard rebroadcastRedundancy messages from other replicas
// announcing exactly its heads, or has heard each of its heads named in
// some message (while many replicas write, every head is a fresh delta
// its writer announced). Replicas that agree then send one or two
// messages per interval between them, instead of one each (every message
// is signature-checked by every replica: N replicas sending each
// interval cost N² checks). A replica that holds a head nobody announced
// this interval keeps sending; a replica that is behind still hears the
// heads of the others every interval, since the first to reach its
// point in an interval has heard nothing and sends.
func (s *Datastore) broadcastLoop(ctx context.Context) {
	interval := s.cfg.RebroadcastInterval
	s.sendHeads(ctx)
	start := time.Now()
	t := time.NewTimer(trickleOffset(interval))
	defer t.Stop()
	fired := false // the periodic point of this interval has passed
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.bcastKick:
			s.sendHeads(ctx)
			// Commits made meanwhile kick again and are announced
			// together once the gap has passed.
			if !s.waitGap(ctx) {
				return
			}
			continue
		case <-s.snap.replyKick:
			s.sendJoinReply(ctx)
			// At most one reply per joinReplyInterval: later requests
			// queue and go out together with the next.
			if !gorun.Sleep(ctx, joinReplyInterval) {
				return
			}
			continue
		case <-t.C:
		}
		if !fired {
			fired = true
			if s.trickle.sent.Load() || s.trickle.heardSame.Load() >= rebroadcastRedundancy || s.headsAllHeard() {
				s.st.suppressed.Add(1)
				if ann := s.announcement(); ann != nil {
					s.broadcast(ctx, "announcement", ann) // each replica's acknowledgement counts
				}
			} else {
				s.sendHeads(ctx)
			}
			t.Reset(max(time.Until(start.Add(interval)), 0))
			continue
		}
		// A new interval.
		start, fired = time.Now(), false
		s.trickle.reset()
		t.Reset(trickleOffset(interval))
	}
}

// waitGap waits BroadcastGap after a broadcast of local commits, or less
// if the blocks of the commits made meanwhile fill half of one message (so
// that they go out in one message rather than pile up). It returns false
// when ctx ends.
func (s *Datastore) waitGap(ctx context.Context) bool {
	t := time.NewTimer(s.cfg.BroadcastGap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-s.inline.half:
	}
	return true
}

// trickleState counts, for the current rebroadcast interval, the heads
// messages heard that equal this replica's heads, and whether it sent
// its own.
type trickleState struct {
	heardSame atomic.Int32
	sent      atomic.Bool
	mu        sync.Mutex
	heard     map[cid.Cid]struct{} // heads named in messages heard
}

// maxHeardHeads bounds trickleState.heard (past it, heads are not
// recorded and the rebroadcast is not suppressed by them).
const maxHeardHeads = 1 << 14

func (t *trickleState) reset() {
	t.sent.Store(false)
	t.heardSame.Store(0)
	t.mu.Lock()
	clear(t.heard)
	t.mu.Unlock()
}

// trickleOffset is a random point of the second half of an interval.
func trickleOffset(interval time.Duration) time.Duration {
	return interval/2 + rand.N(interval/2+1)
}

// heardHeads counts a received heads message toward suppressing the
// periodic rebroadcast when it announces exactly this replica's heads.
func (s *Datastore) heardHeads(heads []cid.Cid) {
	s.headsMu.RLock()
	same := len(heads) == len(s.heads)
	for _, h := range heads {
		if !same {
			break
		}
		_, same = s.heads[h]
	}
	s.headsMu.RUnlock()
	if same && len(heads) > 0 {
		s.trickle.heardSame.Add(1)
	}
	s.trickle.record(heads)
}

// record notes heads as announced during this interval.
func (t *trickleState) record(heads []cid.Cid) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.heard == nil {
		t.heard = make(map[cid.Cid]struct{})
	}
	for _, h := range heads {
		if len(t.heard) >= maxHeardHeads {
			return
		}
		t.heard[h] = struct{}{}
	}
}

// headsAllHeard reports whether every current head was named in a
// message heard during this interval.
func (s *Datastore) headsAllHeard() bool {
	s.headsMu.RLock()
	heads := s.heads
	s.headsMu.RUnlock()
	if len(heads) == 0 {
		return false
	}
	t := &s.trickle
	t.mu.Lock()
	defer t.mu.Unlock()
	for h := range heads {
		if _, ok := t.heard[h]; !ok {
			return false
		}
	}
	return true
}

func (s *Datastore) sendHeads(ctx context.Context) {
	if ann := s.announcement(); ann != nil {
		s.broadcast(ctx, "announcement", ann)
	}
	heads, _ := s.headsByPriority(s.cfg.MaxHeadsPerBroadcast)
	if len(heads) == 0 {
		return
	}
	blocks := s.takeOutgoing()
	if len(blocks) == 0 {
		data, err := EncodeMessage(heads)
		if err != nil {
			s.log.Error("crdt: encode heads", "err", err)
			return
		}
		s.broadcast(ctx, "heads", data)
		s.trickle.sent.Store(true)
		return
	}
	// Fresh local deltas travel with their announcement (inline.go), at
	// most maxInlineBlocks and maxInlineBytes per message, oldest first.
	// Each message names only those of its deltas that are still heads:
	// the other heads (mostly other writers' deltas, announced by them)
	// go with the periodic rebroadcast (with many writers the heads are
	// many, and each message would carry them all). A message none of
	// whose deltas is a head names its newest delta when more follow (its
	// receivers walk down from it), and every head when it is the last.
	for len(blocks) > 0 {
		n, size := 0, 0
		for n < len(blocks) && n < maxInlineBlocks && size+len(blocks[n].raw) <= maxInlineBytes {
			size += len(blocks[n].raw)
			n++
		}
		chunk := blocks[:n]
		blocks = blocks[n:]
		named, full := freshHeads(heads, chunk), false
		switch {
		case len(named) > 0:
		case len(blocks) > 0:
			named = []cid.Cid{chunk[n-1].id}
		default:
			named, full = heads, true
		}
		data, err := encodeDeltas(named, chunk)
		if err != nil {
			s.log.Error("crdt: encode heads", "err", err)
			return
		}
		s.broadcast(ctx, "heads", data)
		if full {
			s.trickle.sent.Store(true)
		} else {
			s.trickle.record(named) // announced: as if heard
		}
	}
}

// freshHeads returns the heads among the blocks' CIDs, in the order of
// heads.
func freshHeads(heads []cid.Cid, blocks []inlineBlock) []cid.Cid {
	var out []cid.Cid
	for _, h := range heads {
		for _, b := range blocks {
			if b.id.Equals(h) {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// broadcast sends one message and counts it. A failure is only logged
// (debug): every message is sent again, by the next rebroadcast or the
// next join request.
func (s *Datastore) broadcast(ctx context.Context, what string, data []byte) {
	if err := s.bc.Broadcast(ctx, data); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("crdt: broadcast", "what", what, "err", err)
		}
		return
	}
	s.st.sentBroadcasts.Add(1)
}
