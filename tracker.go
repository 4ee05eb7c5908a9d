package pincluster

import (
	"context"
	"iter"

	cid "github.com/ipfs/go-cid"
)

// PinTracker makes the local IPFS node hold the pins allocated to this peer
// and reports each pin's status. Status is computed from the shared state,
// the IPFS node's pinset and the operations in flight.
type PinTracker interface {
	Component
	// Track starts tracking pin: it is pinned if allocated here, marked
	// remote otherwise. ErrQueueFull when the queue is at its bound.
	Track(ctx context.Context, pin Pin) error
	// Untrack stops tracking c, unpinning it if it was pinned here.
	Untrack(ctx context.Context, c cid.Cid) error
	// StatusAll streams the status of every tracked pin whose status is in
	// filter (0: all).
	StatusAll(ctx context.Context, filter TrackerStatus) iter.Seq2[PinInfo, error]
	// Status returns the status of one CID.
	Status(ctx context.Context, c cid.Cid) (PinInfo, error)
	// SyncAll reconciles every tracked pin with the IPFS node and streams
	// the ones whose status changed.
	SyncAll(ctx context.Context) iter.Seq2[PinInfo, error]
	// Sync reconciles one CID with the IPFS node.
	Sync(ctx context.Context, c cid.Cid) (PinInfo, error)
	// RecoverAll re-queues every errored operation and streams the
	// resulting statuses.
	RecoverAll(ctx context.Context) iter.Seq2[PinInfo, error]
	// Recover re-queues the errored operation of c, if any.
	Recover(ctx context.Context, c cid.Cid) (PinInfo, error)
	// PinQueueSize returns how many pin operations are queued.
	PinQueueSize(ctx context.Context) (int64, error)
}
