package pincluster

import (
	"context"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// PinAllocator chooses the peers that hold a pin from their metrics.
type PinAllocator interface {
	Component
	// Metrics lists the metric names the allocator uses, in order.
	Metrics() []string
	// Allocate returns peers for c, best first: current holds the metrics
	// of peers that already hold it, candidates those of the other
	// eligible peers, priority those of peers the user asked for. The
	// caller trims the result to the replication factors.
	Allocate(ctx context.Context, c cid.Cid, current, candidates, priority map[peer.ID]MetricsSet) ([]peer.ID, error)
}
