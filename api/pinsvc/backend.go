package pinsvc

import (
	"context"

	cid "github.com/ipfs/go-cid"
	host "github.com/libp2p/go-libp2p/core/host"

	"github.com/pincluster/pincluster"
)

// Backend is what the Pinning Service API needs from a cluster peer: the
// subset of *pincluster.Cluster's methods it calls, with the same
// signatures, so a *pincluster.Cluster is a Backend. Tests may pass a
// fake. Host gives the delegates: the host's addresses with /p2p/<id>.
type Backend interface {
	Host() host.Host
	Pin(ctx context.Context, ci cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error)
	Unpin(ctx context.Context, ci cid.Cid) (pincluster.Pin, error)
	PinGet(ctx context.Context, ci cid.Cid) (pincluster.Pin, error)
	Status(ctx context.Context, ci cid.Cid, local bool) (pincluster.GlobalPinInfo, error)
}

var _ Backend = (*pincluster.Cluster)(nil)
