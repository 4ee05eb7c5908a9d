package ipfsnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/verifcid"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
)

// Progress reports how much of a DAG a Pin or Fetch has gathered so far.
type Progress struct {
	// Blocks is the number of blocks fetched or found locally.
	Blocks uint64
	// Bytes is their total size.
	Bytes uint64
}

// Fetch makes every block of the DAG under root, down to maxDepth levels
// (-1: all, 0: root only), local, through one bitswap session with at most
// Config.FetchConcurrency blocks requested at once. progress, when not
// nil, is called after each block with the totals so far (serially, from
// the fetching goroutines: keep it quick). The blocks are not pinned.
func (n *Node) Fetch(ctx context.Context, root cid.Cid, maxDepth int, progress func(Progress)) error {
	if maxDepth < -1 {
		return fmt.Errorf("ipfsnode: fetch %s: max depth %d is invalid", root, maxDepth)
	}
	if n.closed.Load() {
		return ErrClosed
	}
	h := n.newHold()
	defer h.release()
	if n.fetchLocalLeaf(ctx, root, maxDepth, h, progress) {
		return nil
	}
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return n.ctxErr(n.fetch(ctx, root, maxDepth, h, progress))
}

type task struct {
	c     cid.Cid
	depth int // levels still to follow below c; -1: unlimited
}

// walker is one concurrent DAG fetch.
type walker struct {
	n        *Node
	h        *hold
	progress func(Progress)

	// sesMu guards the current bitswap session, the context it lives in
	// and how many times it was replaced (see watch).
	sesMu     sync.Mutex
	ses       *blockservice.Session
	sesCtx    context.Context
	sesCancel context.CancelFunc
	restarts  int

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []task
	active  int            // tasks taken but not finished
	seen    map[string]int // key -> deepest depth queued
	err     error
	prog    Progress
	stopped bool
	workers int // started
	idle    int // waiting for work
	fresh   int // started, not yet looking for work

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// spawn starts workers (w.mu held) while there is more queued work than
// idle workers, up to Config.FetchConcurrency.
func (w *walker) spawn() {
	for w.workers < w.n.cfg.FetchConcurrency && len(w.queue) > w.idle+w.fresh && !w.stopped {
		w.workers++
		w.wg.Add(1)
		if err := w.n.g.Go(func(context.Context) {
			defer w.wg.Done()
			w.work(w.ctx, w.cancel)
		}); err != nil {
			w.wg.Done()
			if w.err == nil {
				w.err = ErrClosed
			}
			w.stopped = true
			w.cancel()
			return
		}
		w.fresh++
	}
}

// fetch walks the DAG and fetches what is missing. Every block it touches
// is added to h before it is requested.
func (n *Node) fetch(ctx context.Context, root cid.Cid, maxDepth int, h *hold, progress func(Progress)) error {
	if maxDepth < -1 {
		return fmt.Errorf("ipfsnode: fetch %s: max depth %d is invalid", root, maxDepth)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &walker{
		n:        n,
		h:        h,
		progress: progress,
		seen:     map[string]int{},
	}
	w.newSession(ctx)
	w.cond = sync.NewCond(&w.mu)
	w.push(task{c: root, depth: maxDepth})

	// Wake the workers when ctx ends so that they see it.
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		w.cond.Broadcast()
	})
	defer stop()

	// Workers start one at a time as the queue grows (see spawn): a DAG
	// already local, or a single block, costs one goroutine, not
	// FetchConcurrency.
	w.ctx, w.cancel = ctx, cancel
	n.walkMu.Lock()
	n.walkers[w] = struct{}{}
	n.walkMu.Unlock()
	defer func() {
		n.walkMu.Lock()
		delete(n.walkers, w)
		n.walkMu.Unlock()
	}()
	w.mu.Lock()
	w.spawn()
	w.mu.Unlock()
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	if n.cfg.FetchStall > 0 {
		go func() {
			defer close(watchDone)
			w.watch(ctx, stopWatch)
		}()
	} else {
		close(watchDone)
	}
	w.wg.Wait()
	close(stopWatch)
	<-watchDone
	w.sesMu.Lock()
	w.sesCancel()
	restarts := w.restarts
	w.sesMu.Unlock()
	if restarts > 0 {
		n.log.Debug("fetch: bitswap session restarted after stalls", "root", root, "restarts", restarts)
	}
	if w.err == nil && len(w.queue) > 0 {
		// Stopped by ctx between blocks: incomplete.
		w.err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if w.err != nil {
		return fmt.Errorf("ipfsnode: fetch %s (%d blocks, %d bytes so far): %w", root, w.prog.Blocks, w.prog.Bytes, w.err)
	}
	return nil
}

// fetchLocalLeaf is the fast path of Fetch and Pin for a DAG that is its root alone (a
// raw block, or depth 0) and already stored: it holds the root, reads and
// verifies it as the walker would (the CID's hash allowed, the data
// matching it), and reports whether that settled the fetch. Anything else
// (not local, corrupt, a disallowed hash) is left to the walker, which
// fetches or fails as usual. It spares a bitswap session, a context and
// two goroutines per pin of a local block.
func (n *Node) fetchLocalLeaf(ctx context.Context, root cid.Cid, maxDepth int, h *hold, progress func(Progress)) bool {
	if maxDepth != 0 && hasLinks(root) {
		return false
	}
	if verifcid.ValidateCid(verifcid.DefaultAllowlist, root) != nil {
		return false
	}
	h.add(root)
	b, err := n.store.Get(ctx, root)
	if err != nil {
		return false
	}
	if progress != nil {
		progress(Progress{Blocks: 1, Bytes: uint64(len(b.RawData()))})
	}
	return true
}

func (w *walker) push(t task) {
	k := t.c.KeyString()
	if d, ok := w.seen[k]; ok && (d == -1 || (t.depth != -1 && d >= t.depth)) {
		return
	}
	w.seen[k] = t.depth
	w.queue = append(w.queue, t)
}

func (w *walker) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.stopped = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *walker) work(ctx context.Context, cancel context.CancelFunc) {
	w.mu.Lock()
	w.fresh--
	w.mu.Unlock()
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && w.active > 0 && !w.stopped {
			w.idle++
			w.cond.Wait()
			w.idle--
		}
		if w.stopped || len(w.queue) == 0 {
			w.mu.Unlock()
			w.cond.Broadcast()
			return
		}
		t := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.active++
		w.mu.Unlock()

		children, size, err := w.visit(ctx, t)

		w.mu.Lock()
		w.active--
		if err != nil {
			if w.err == nil {
				if ctx.Err() != nil && !isCorrupt(err) {
					err = fmt.Errorf("block %s: %w", t.c, errors.Join(context.Cause(ctx), err))
				}
				w.err = err
			}
			w.stopped = true
			w.mu.Unlock()
			cancel()
			w.cond.Broadcast()
			return
		}
		w.prog.Blocks++
		w.prog.Bytes += uint64(size)
		if w.progress != nil {
			w.progress(w.prog)
		}
		next := t.depth - 1
		if t.depth == -1 {
			next = -1
		}
		for _, c := range children {
			w.push(task{c: c, depth: next})
		}
		w.spawn()
		w.mu.Unlock()
		w.cond.Broadcast()
	}
}

// newSession replaces the walker's bitswap session with a new one living
// in a child of ctx, and ends the old one: its pending GetBlock calls
// return and are asked again of the new session (visit).
func (w *walker) newSession(ctx context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	ses := blockservice.NewSession(sctx, w.n.bserv)
	w.sesMu.Lock()
	old := w.sesCancel
	w.ses, w.sesCtx, w.sesCancel = ses, sctx, cancel
	w.sesMu.Unlock()
	if old != nil {
		old()
	}
}

func (w *walker) session() (*blockservice.Session, context.Context) {
	w.sesMu.Lock()
	defer w.sesMu.Unlock()
	return w.ses, w.sesCtx
}

// watch restarts the bitswap session when no block arrived for
// Config.FetchStall (doubling after each restart without progress, up to
// 16 times), until stop is closed or ctx ends. A stalled session only
// rebroadcasts its wants with a growing back-off and searches again once
// a minute; a new one broadcasts them to every connected peer at once.
func (w *walker) watch(ctx context.Context, stop <-chan struct{}) {
	base := w.n.cfg.FetchStall
	wait := base
	w.mu.Lock()
	last := w.prog.Blocks
	w.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		now, pending := w.prog.Blocks, len(w.queue)+w.active
		w.mu.Unlock()
		switch {
		case now != last:
			wait = base // progress: watch again from the start
		case pending > 0:
			w.n.log.Debug("fetch: no block for a while, new bitswap session", "after", wait, "pending", pending)
			w.newSession(ctx)
			w.sesMu.Lock()
			w.restarts++
			w.sesMu.Unlock()
			wait = min(2*wait, 16*base)
		}
		last = now
		t.Reset(wait)
	}
}

// visit gets one block (locally or through the session) and returns the
// links to follow.
func (w *walker) visit(ctx context.Context, t task) ([]cid.Cid, int, error) {
	w.h.add(t.c)
	var b blocks.Block
	for {
		ses, sctx := w.session()
		var err error
		b, err = ses.GetBlock(sctx, t.c)
		if err == nil {
			break
		}
		if sctx.Err() != nil && ctx.Err() == nil {
			continue // the session was replaced (watch): ask the new one
		}
		return nil, 0, err
	}
	if t.depth == 0 || !hasLinks(t.c) {
		return nil, len(b.RawData()), nil
	}
	ls, err := links(t.c, b.RawData())
	if err != nil {
		return nil, 0, err
	}
	return ls, len(b.RawData()), nil
}

func isCorrupt(err error) bool {
	var c *CorruptBlockError
	return errors.As(err, &c)
}
