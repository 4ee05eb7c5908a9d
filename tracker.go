package pincluster

import (
	"context"
	"iter"
	"time"

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

// TrackerStatsReporter is implemented by PinTrackers that report metrics,
// the default tracker included.
type TrackerStatsReporter interface {
	// Stats returns a snapshot of the tracker's gauges and counters.
	Stats() TrackerStats
}

// TrackerStats is a snapshot of a pin tracker's metrics. Gauges describe
// the moment of the call; counters and timings count since the tracker
// was created.
type TrackerStats struct {
	// Ops is the number of operations tracked (every phase).
	Ops int
	// PinsQueued and UnpinsQueued count the operations waiting for a
	// worker (the queue length).
	PinsQueued, UnpinsQueued int
	// PinsInFlight and UnpinsInFlight count the connector calls running.
	PinsInFlight, UnpinsInFlight int
	// Errors counts the operations in error (pin_error, unpin_error);
	// Retrying counts those among them with a retry scheduled.
	Errors, Retrying int
	// Held is the number of CIDs the tracker knows the IPFS node holds;
	// Lost the number it held that vanished without an unpin of the
	// tracker (unexpectedly_unpinned, when still allocated here).
	Held, Lost int

	// Done counts the operations that succeeded.
	Done uint64
	// TimedOut counts the attempts failed by the idle timeout.
	TimedOut uint64
	// Superseded counts the operations replaced by a newer one.
	Superseded uint64
	// Recovered counts the operations re-queued by Recover and RecoverAll.
	Recovered uint64

	// Pin and Unpin time the connector calls of each kind.
	Pin, Unpin OpTiming
}

// OpTiming summarises the durations of a tracker's attempts of one kind of
// operation, successful or not.
type OpTiming struct {
	// Count is the number of attempts that returned; Failed how many of
	// them returned an error.
	Count, Failed uint64
	// Total and Max are the sum and the maximum of their durations.
	Total, Max time.Duration
}
