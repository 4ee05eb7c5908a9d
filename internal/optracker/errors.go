package optracker

import "errors"

var (
	// ErrClosed is returned by Enqueue, Recover and Wait after Close, and
	// is the cancellation cause of the operations Close interrupts.
	ErrClosed = errors.New("optracker: closed")
	// ErrQueueFull is returned by Enqueue when Config.MaxQueue operations
	// are already queued.
	ErrQueueFull = errors.New("optracker: queue full")
	// ErrNotFound is returned by Get, Recover, Cancel and Wait when the CID
	// has no operation.
	ErrNotFound = errors.New("optracker: no operation for cid")
	// ErrSuperseded is the cancellation cause (context.Cause) of an
	// operation replaced by a newer one on the same CID, and of one removed
	// by Cancel.
	ErrSuperseded = errors.New("optracker: operation superseded")
	// ErrTimeout is wrapped by the error of an attempt that made no
	// progress for Config.PinTimeout (UnpinTimeout); it is also the
	// cancellation cause seen by the operation function.
	ErrTimeout = errors.New("optracker: idle timeout")
	// ErrInvalidConfig is wrapped by New's error when the Config is
	// unusable.
	ErrInvalidConfig = errors.New("optracker: invalid config")
	// ErrInvalidType is returned by Enqueue for an OpType other than
	// OpPin or OpUnpin.
	ErrInvalidType = errors.New("optracker: invalid operation type")
	// ErrInvalidCid is returned by Enqueue for an undefined CID.
	ErrInvalidCid = errors.New("optracker: undefined cid")
)
