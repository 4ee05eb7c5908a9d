package raft

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/internal/rpc"
)

// Forwarding carries a follower's operation (an opWire) to the leader as
// one internal/rpc call of methodApply, a Trusted method that the leader
// serves only to the current voters. The rpc service has its own name,
// forwardName(ClusterName), so that it does not replace the Cluster's own
// RPC service on the same host.

// methodApply is the forwarded operation: request opWire, empty response.
const methodApply = "Raft.Apply"

// forwardErrors keeps the identity of the leader's errors across the wire
// (internal/rpc Config.Errors); both sides register the same codes.
var forwardErrors = map[string]error{
	"raft/retry":       errRetry,
	"raft/no-leader":   pincluster.ErrNoLeader,
	"raft/invalid-pin": pincluster.ErrInvalidPin,
}

// forwardName returns the internal/rpc name of the forwarding service of a
// cluster: "raft.<cluster>", or "raft." and a hash of the cluster name when
// that would exceed internal/rpc's 64 bytes.
func forwardName(cluster string) string {
	n := "raft." + cluster
	if len(n) > 64 {
		sum := sha256.Sum256([]byte(cluster))
		n = "raft." + hex.EncodeToString(sum[:16])
	}
	return n
}

// startForward serves methodApply and prepares the client that forwards to
// the leader.
func (c *Consensus) startForward() error {
	cfg := rpc.Config{
		Name:           forwardName(c.cfg.ClusterName),
		Authorize:      c.isVoter,
		MaxHandlerTime: maxWait,
		Errors:         forwardErrors,
		Logger:         c.log,
	}
	srv, err := rpc.NewServer(c.h, cfg)
	if err != nil {
		return fmt.Errorf("raft: forward server: %w", err)
	}
	if err := srv.Register(methodApply, rpc.Trusted, rpc.Handle(c.serveApply)); err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("raft: forward server: %w", err)
	}
	cli, err := rpc.NewClient(c.h, cfg, srv)
	if err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("raft: forward client: %w", err)
	}
	c.rpcSrv, c.rpcCli = srv, cli
	return nil
}

// stopForward ends running forwards and stops serving them.
func (c *Consensus) stopForward(ctx context.Context) error {
	cerr := c.rpcCli.Close(ctx)
	if err := c.rpcSrv.Close(ctx); err != nil {
		return fmt.Errorf("raft: forward server: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("raft: forward client: %w", cerr)
	}
	return nil
}

// isVoter reports whether p is a voter of the current configuration: the
// peers allowed to forward operations to this one.
func (c *Consensus) isVoter(p peer.ID) bool {
	if c.isClosed() {
		return false
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == hraft.Voter && string(s.ID) == p.String() {
			return true
		}
	}
	return false
}

// serveApply runs a forwarded operation if this peer is the leader.
// Failures another attempt may overcome (not the leader, leadership lost,
// shutting down) wrap errRetry, so that the caller tries again.
func (c *Consensus) serveApply(ctx context.Context, _ peer.ID, op opWire) (struct{}, error) {
	if addr, id := c.raft.LeaderWithID(); addr == "" || string(id) != c.h.ID().String() {
		return struct{}{}, fmt.Errorf("%w: %s is not the leader", errRetry, c.h.ID())
	}
	err := c.applyLocal(ctx, op)
	if errors.Is(err, pincluster.ErrClosed) {
		return struct{}{}, fmt.Errorf("%w: leader %s is shutting down", errRetry, c.h.ID())
	}
	return struct{}{}, err
}

// forward sends op to the leader and waits for its answer. Failures of the
// connection, a busy or closing leader and the leader's retryable errors
// wrap errRetry; a refusal wraps pincluster.ErrPermission.
func (c *Consensus) forward(ctx context.Context, leader peer.ID, op opWire) error {
	_, err := rpc.Call[opWire, struct{}](ctx, c.rpcCli, leader, methodApply, op)
	var remote *rpc.RemoteError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("raft: forward to %s: %w", leader, ctx.Err())
	case errors.Is(err, rpc.ErrPermission):
		return fmt.Errorf("raft: forward to %s: %w: %w", leader, pincluster.ErrPermission, err)
	case errors.Is(err, errRetry), errors.Is(err, pincluster.ErrNoLeader), errors.Is(err, rpc.ErrClosed),
		errors.Is(err, rpc.ErrBusy), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: forward to %s: %v", errRetry, leader, err)
	case !errors.As(err, &remote) && !errors.Is(err, rpc.ErrFrameTooLarge) && !errors.Is(err, rpc.ErrMalformed):
		// The leader could not be reached or went away: it may have lost
		// its leadership, so ask again who leads.
		return fmt.Errorf("%w: forward to %s: %v", errRetry, leader, err)
	default:
		return fmt.Errorf("raft: forward to %s: %w", leader, err)
	}
}
