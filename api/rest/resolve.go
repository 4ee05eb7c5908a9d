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

// resolveErr says that ResolveTimeout ran out when it did, and makes sure
// the error wraps context.DeadlineExceeded (answered 504).
func (a *API) resolveErr(ctx context.Context, err error) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("path not resolved and pinned within %s (ResolveTimeout): %w", a.cfg.ResolveTimeout, err)
	}
	return fmt.Errorf("path not resolved and pinned within %s (ResolveTimeout): %w (%w)", a.cfg.ResolveTimeout, err, context.DeadlineExceeded)
}
