// Package gorun is the one tracked goroutine starter of pincluster.
//
// Every goroutine a component starts goes through a Group: Go refuses once
// Close has begun, and Close cancels the group's context and waits until
// every goroutine started through it has returned. This is what lets
// Shutdown promise that nothing the library started is still running.
package gorun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is returned by Go after Close (or Stop) has been called.
var ErrClosed = errors.New("gorun: group closed")

// Group starts goroutines, hands them a context that is cancelled when the
// group closes, and waits for them. The zero value is not usable; use New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running int
	wg      sync.WaitGroup
}

// New returns a Group whose context is independent of any caller's context:
// only Stop or Close cancel it.
func New() *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel}
}

// Context returns the group's context, cancelled when Stop or Close is
// called. Use it for work that must end with the group.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs fn in a new goroutine with the group's context. It returns
// ErrClosed, and does not run fn, once Stop or Close has been called.
func (g *Group) Go(fn func(ctx context.Context)) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.running++
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.done()
		fn(g.ctx)
	}()
	return nil
}

func (g *Group) done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.wg.Done()
}

// Running reports how many goroutines of the group have not returned yet.
func (g *Group) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// Closed reports whether Stop or Close has been called.
func (g *Group) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Stop refuses new goroutines and cancels the group's context without
// waiting. It reports whether this call was the one that stopped the group.
func (g *Group) Stop() bool {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	return first
}

// Close stops the group and waits until every goroutine started with Go has
// returned, or until ctx is done, in which case it returns an error wrapping
// ctx.Err() that says how many goroutines were still running. Calling Close
// again is harmless and waits again.
func (g *Group) Close(ctx context.Context) error {
	g.Stop()
	return g.Wait(ctx)
}

// Wait waits, without stopping the group, until every goroutine started
// with Go has returned or ctx is done.
func (g *Group) Wait(ctx context.Context) error {
	waited := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gorun: %d goroutines still running: %w", g.Running(), ctx.Err())
	}
}

// Sleep waits d, or less if ctx ends first; it reports whether the whole
// of d passed (false: ctx ended). The goroutines of a Group pause with it
// between retries, so that Close never waits out a backoff.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
