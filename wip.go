package pincluster

// Transitional: the default components are being built in parallel
// (internal/ipfsnode, internal/crdt, internal/optracker, internal/rpc, the
// monitor and allocator). Until each lands, New without the matching
// With* option fails with errNotBuilt. This file disappears as they land.

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	routing "github.com/libp2p/go-libp2p/core/routing"
)

var errNotBuilt = errors.New("pincluster: default component not available yet: pass it with its With* option")

// pingMetricName is the monitor's liveness metric.
const pingMetricName = "ping"

type nodeConnector struct{ IPFSConnector }

func newNodeConnector(context.Context, host.Host, routing.Routing, ds.Batching, *config) (*nodeConnector, error) {
	return nil, fmt.Errorf("in-process ipfs node: %w", errNotBuilt)
}

func newCRDTConsensus(context.Context, host.Host, *pubsub.PubSub, ds.Batching, *nodeConnector, *config) (Consensus, error) {
	return nil, fmt.Errorf("crdt consensus: %w", errNotBuilt)
}

func newOpTracker(peer.ID, string, IPFSConnector, Consensus, *config) (PinTracker, error) {
	return nil, fmt.Errorf("tracker: %w", errNotBuilt)
}

func (c *Cluster) defaultInformers() []Informer { return nil }

func (c *Cluster) defaultMonitor() (PeerMonitor, error) {
	return nil, fmt.Errorf("monitor: %w", errNotBuilt)
}

func (c *Cluster) defaultAllocator() PinAllocator { return nil }

func (c *Cluster) allocate(ctx context.Context, ci cid.Cid, opts PinOptions, current, exclude []peer.ID) ([]peer.ID, error) {
	return nil, fmt.Errorf("allocate: %w", errNotBuilt)
}
