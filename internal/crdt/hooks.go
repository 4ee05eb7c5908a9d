package crdt

import (
	"context"
	"sync"

	ds "github.com/ipfs/go-datastore"
)

// hookEvent is a visible change to report to the hooks after a commit.
type hookEvent struct {
	key     string
	value   []byte // nil: deleted
	decoded any    // Config.DecodeValue's result for value, when in hand
	del     bool
}

// hookQueue hands committed changes to the hooks outside applyMu, in apply
// order. Changes are queued under applyMu (so the queue's order is the
// apply order) and delivered by whoever calls deliver next: the writer or
// worker that committed them, right after releasing applyMu, or the hook
// loop for changes committed on paths that do not deliver themselves
// (catch-up, snapshot merge and load). deliver holds run while it calls
// the hooks, so hooks never run concurrently and a caller of deliver
// returns only once every change queued before the call was delivered
// (by itself, or by the holder of run it waited for).
type hookQueue struct {
	mu   sync.Mutex // guards q
	q    []hookEvent
	run  sync.Mutex // held while hooks run
	kick chan struct{}
}

// queueHooks queues events for delivery. Called under applyMu.
func (s *Datastore) queueHooks(events []hookEvent) {
	if len(events) == 0 || (s.cfg.PutHook == nil && s.cfg.PutValueHook == nil && s.cfg.DeleteHook == nil) {
		return
	}
	s.hooks.mu.Lock()
	s.hooks.q = append(s.hooks.q, events...)
	s.hooks.mu.Unlock()
}

// kickHooks asks the hook loop to deliver what is queued (for paths that
// queue under applyMu and do not call deliverHooks themselves).
func (s *Datastore) kickHooks() {
	select {
	case s.hooks.kick <- struct{}{}:
	default:
	}
}

// deliverHooks runs the hooks for every queued change, in order. It must
// not be called under applyMu.
func (s *Datastore) deliverHooks() {
	s.hooks.run.Lock()
	defer s.hooks.run.Unlock()
	for {
		s.hooks.mu.Lock()
		events := s.hooks.q
		s.hooks.q = nil
		s.hooks.mu.Unlock()
		if len(events) == 0 {
			return
		}
		for _, e := range events {
			switch {
			case e.del:
				if s.cfg.DeleteHook != nil {
					s.cfg.DeleteHook(ds.RawKey(e.key))
				}
			case s.cfg.PutValueHook != nil:
				s.cfg.PutValueHook(ds.RawKey(e.key), e.value, e.decoded)
			case s.cfg.PutHook != nil:
				s.cfg.PutHook(ds.RawKey(e.key), e.value)
			}
		}
	}
}

// hookLoop delivers changes queued by paths that only kick it, until ctx
// ends; what is left is delivered on the way out.
func (s *Datastore) hookLoop(ctx context.Context) {
	defer s.deliverHooks()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.hooks.kick:
			s.deliverHooks()
		}
	}
}
