package pincluster

import (
	"errors"
	"fmt"
	"time"

	peer "github.com/libp2p/go-libp2p/core/peer"
)

// Sentinel errors. Callers test for them with errors.Is; the functions that
// return them wrap them with the operation's name and details.
var (
	// ErrNotSupported is returned (wrapped) by operations that the
	// configured components cannot do, e.g. Cluster.Cat with a connector
	// that has no Catter ability.
	ErrNotSupported = errors.New("pincluster: not supported by the configured components")
	// ErrInvalidMetric is returned by PeerMonitor.LogMetric and
	// PublishMetric for a metric without a name or peer, or (PublishMetric)
	// about another peer.
	ErrInvalidMetric = errors.New("pincluster: invalid metric")
	// ErrClosed is returned (wrapped) by every method that returns an
	// error of a Cluster, State or component called after its Shutdown or
	// Close began (a second Cluster.Shutdown is the exception: it waits
	// for the first and returns nil). Methods without an error result
	// return empty values then.
	ErrClosed = errors.New("pincluster: closed")

	// ErrFollowerMode is returned (wrapped) by every call that would write
	// to the shared pinset or the membership on a peer started with
	// WithFollowerMode: followers replicate and pin what the trusted peers
	// decide, and never write.
	ErrFollowerMode = errors.New("pincluster: peer is in follower mode and cannot write")

	// ErrNotFound is returned (wrapped) by State.Get, Cluster.PinGet,
	// Cluster.Unpin, Cluster.Allocations and Cluster.Status when the CID
	// is not in the pinset, and by DAGSizer.DAGSize when the size is not
	// known.
	ErrNotFound = errors.New("pincluster: not found")

	// ErrInvalidPin is wrapped by every *ValidationError: a pin or its
	// options broke a documented rule (Pin.Validate, PinOptions.Validate,
	// the decoders, Cluster.Pin).
	ErrInvalidPin = errors.New("pincluster: invalid pin")
	// ErrInvalidCID is returned (inside a *ValidationError) for an
	// undefined or undecodable CID.
	ErrInvalidCID = errors.New("pincluster: invalid cid")
	// ErrInvalidReplication is returned (inside a *ValidationError) when
	// replication min is greater than max, or -1 is used for only one.
	ErrInvalidReplication = errors.New("pincluster: invalid replication factors")
	// ErrTooManyAllocations is returned (inside a *ValidationError) when
	// user allocations exceed replication max or MaxAllocations.
	ErrTooManyAllocations = errors.New("pincluster: too many allocations")
	// ErrMetadataTooLarge is returned (inside a *ValidationError) when
	// metadata exceeds MaxMetadataKeys, MaxMetadataKeyLen or
	// MaxMetadataValueLen.
	ErrMetadataTooLarge = errors.New("pincluster: metadata too large")
	// ErrNameTooLong is returned (inside a *ValidationError) for a name
	// over MaxNameLen bytes.
	ErrNameTooLong = errors.New("pincluster: name too long")
	// ErrUnknownMode is returned (inside a *ValidationError) for a pin mode
	// other than recursive or direct.
	ErrUnknownMode = errors.New("pincluster: unknown pin mode")
	// ErrModeDowngrade is returned (inside a *ValidationError) by
	// Cluster.Pin for a direct pin of a CID pinned recursively: as in IPFS
	// Cluster, a recursive pin is never downgraded (unpin it first). The
	// opposite, direct to recursive, is an upgrade that every holder
	// applies.
	ErrModeDowngrade = errors.New("pincluster: cannot downgrade a recursive pin to direct")
	// ErrExpired is returned (inside a *ValidationError with Field
	// "expire_at") by Cluster.Pin for an ExpireAt that is not in the
	// future, as IPFS Cluster refuses it.
	ErrExpired = errors.New("pincluster: expiry is in the past")
	// ErrTooManyOrigins is returned (inside a *ValidationError) for more
	// than MaxOrigins origins.
	ErrTooManyOrigins = errors.New("pincluster: too many origins")
	// ErrInvalidStatus is returned by ParseTrackerStatus for an unknown
	// status name.
	ErrInvalidStatus = errors.New("pincluster: invalid tracker status")

	// ErrCorrupt is wrapped by every *RecordError: a stored or received
	// record (a pin in the state, a line of an export stream, a metric)
	// could not be decoded.
	ErrCorrupt = errors.New("pincluster: corrupt record")
	// ErrUnsupportedVersion is returned (inside a *RecordError) for a
	// record or stream written by a newer, unknown encoding version.
	ErrUnsupportedVersion = errors.New("pincluster: unsupported encoding version")

	// ErrNotPinned is returned by IPFSConnector.Unpin when the CID is not
	// pinned on the IPFS node.
	ErrNotPinned = errors.New("pincluster: not pinned")
	// ErrIPFSUnavailable is returned by IPFSConnector methods when the
	// IPFS node cannot be reached or answers with a server error.
	ErrIPFSUnavailable = errors.New("pincluster: ipfs node unavailable")
	// ErrQueueFull is returned by PinTracker.Track when its operation
	// queue is at its bound.
	ErrQueueFull = errors.New("pincluster: operation queue full")

	// ErrNotEnoughPeers is wrapped by *AllocationError: fewer peers than
	// replication min could be allocated.
	ErrNotEnoughPeers = errors.New("pincluster: not enough peers to allocate")
	// ErrNotReady is wrapped by every *NotReadyError: a write that needs
	// an allocation came while the peer was starting (before Ready, or
	// before it had heard the metrics of enough peers) and could not be
	// served within a bounded wait. It is transient: retry after
	// NotReadyError.RetryAfter (the HTTP APIs answer 503 with Retry-After).
	ErrNotReady = errors.New("pincluster: peer not ready")
	// ErrNoLeader is returned by Consensus.Leader for consensus components
	// without a leader (CRDT) and by Raft while no leader is elected; Raft's
	// LogPin, LogUnpin, AddPeer and RmPeer wrap it (with the context's
	// error) when the change was not committed before their ctx ended, as
	// in a minority partition.
	ErrNoLeader = errors.New("pincluster: no leader")
	// ErrPermission is returned when an untrusted peer calls a method that
	// needs trust, or an API caller lacks authorisation.
	ErrPermission = errors.New("pincluster: permission denied")

	// ErrOption is wrapped by every *OptionError: options given to New
	// conflict or hold impossible values.
	ErrOption = errors.New("pincluster: invalid option")
)

// ValidationError says which field of a pin broke which rule. It wraps
// ErrInvalidPin and a specific sentinel (Err), so both
// errors.Is(err, ErrInvalidPin) and errors.Is(err, ErrNameTooLong) hold.
type ValidationError struct {
	// Field is the offending field in IPFS Cluster's JSON spelling
	// ("name", "metadata", "replication", ...).
	Field string
	// Err is the specific sentinel (ErrNameTooLong, ...).
	Err error
	// Detail explains the values involved.
	Detail string
}

// Error implements error.
func (e *ValidationError) Error() string {
	msg := "pincluster: invalid pin: " + e.Field
	if e.Err != nil && e.Err != ErrInvalidPin {
		msg += ": " + trimPrefix(e.Err.Error())
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns ErrInvalidPin and the specific sentinel.
func (e *ValidationError) Unwrap() []error {
	if e.Err == nil || e.Err == ErrInvalidPin {
		return []error{ErrInvalidPin}
	}
	return []error{ErrInvalidPin, e.Err}
}

// RecordError names a record that could not be decoded: a state key, or a
// line of an export stream. It wraps ErrCorrupt and the cause.
type RecordError struct {
	// Key is the datastore key of the record, when it has one.
	Key string
	// Line is the 1-based line of an export stream, when it has one.
	Line int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *RecordError) Error() string {
	where := ""
	switch {
	case e.Key != "":
		where = " at key " + e.Key
	case e.Line > 0:
		where = fmt.Sprintf(" at line %d", e.Line)
	}
	return fmt.Sprintf("pincluster: corrupt record%s: %v", where, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *RecordError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// AllocationError says how many peers a pin needed and how many could be
// found. It wraps ErrNotEnoughPeers.
type AllocationError struct {
	// Needed is the replication minimum.
	Needed int
	// Available is how many suitable peers there were.
	Available int
}

// Error implements error.
func (e *AllocationError) Error() string {
	return fmt.Sprintf("pincluster: not enough peers to allocate: needed %d, %d available", e.Needed, e.Available)
}

// Unwrap returns ErrNotEnoughPeers.
func (e *AllocationError) Unwrap() error { return ErrNotEnoughPeers }

// NotReadyError is the transient failure of a write on a peer that is
// still starting: it wraps ErrNotReady and the cause (an *AllocationError
// while the peer has not heard enough peers' metrics yet, or the context's
// error).
type NotReadyError struct {
	// Op is the operation ("pin").
	Op string
	// RetryAfter is a hint of when to try again.
	RetryAfter time.Duration
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *NotReadyError) Error() string {
	msg := fmt.Sprintf("pincluster: %s: peer not ready, retry in %s", e.Op, e.RetryAfter)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrNotReady and the cause.
func (e *NotReadyError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNotReady}
	}
	return []error{ErrNotReady, e.Err}
}

// RetryAfter returns how long to wait before retrying after err: the hint
// of a *NotReadyError in err's chain rounded up to whole seconds (at least
// 1 s), and ok false when err is not transient in that way.
func RetryAfter(err error) (d time.Duration, ok bool) {
	var nr *NotReadyError
	if !errors.As(err, &nr) {
		if errors.Is(err, ErrNotReady) {
			return time.Second, true
		}
		return 0, false
	}
	return max(nr.RetryAfter.Round(time.Second), time.Second), true
}

// PeerError is an error that happened on, or while talking to, one peer.
type PeerError struct {
	// Peer is the peer involved.
	Peer peer.ID
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *PeerError) Error() string { return fmt.Sprintf("peer %s: %v", e.Peer, e.Err) }

// Unwrap returns the cause.
func (e *PeerError) Unwrap() error { return e.Err }

// OptionError names the option (or options) given to New that conflict or
// hold an impossible value. It wraps ErrOption.
type OptionError struct {
	// Options names the options involved, e.g. "WithBadger and WithPebble".
	Options string
	// Detail explains the problem.
	Detail string
}

// Error implements error.
func (e *OptionError) Error() string {
	return "pincluster: invalid option: " + e.Options + ": " + e.Detail
}

// Unwrap returns ErrOption.
func (e *OptionError) Unwrap() error { return ErrOption }

func trimPrefix(s string) string {
	const p = "pincluster: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
