package rest

import (
	"context"
	"errors"
	"fmt"

	"github.com/pincluster/pincluster"
)

// pinPath pins an /ipfs/ path within Config.ResolveTimeout: resolving a
// path may wait on the network for blocks nobody has, and the client
// must not be able to hold a request (and its connection) that long.
func (a *API) pinPath(ctx context.Context, path string, opts pincluster.PinOptions) (pincluster.Pin, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ResolveTimeout)
	defer cancel()
	pin, err := a.backend.PinPath(ctx, path, opts)
	return pin, a.resolveErr(ctx, err)
}

// unpinPath unpins an /ipfs/ path within Config.ResolveTimeout.
func (a *API) unpinPath(ctx context.Context, path string) (pincluster.Pin, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ResolveTimeout)
	defer cancel()
	pin, err := a.backend.UnpinPath(ctx, path)
	return pin, a.resolveErr(ctx, err)
}

// resolveErr turns any error of a request whose ResolveTimeout ran out
// into one that says so and wraps context.DeadlineExceeded only (answered
// 504): the node may report the cut-off lookup as not found.
func (a *API) resolveErr(ctx context.Context, err error) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("path not resolved and pinned within %s (ResolveTimeout): %w (%v)", a.cfg.ResolveTimeout, context.DeadlineExceeded, err)
}
