package crdt

import (
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// ErrClosed is returned by every method of a Datastore (and of its Batch)
// called after Close, and by writes whose commit was cut short by Close.
// It is also returned by PubSubBroadcaster.Broadcast and Next after Close.
var ErrClosed = errors.New("crdt: closed")

// ErrValueTooLarge is returned by Put and Batch.Put when a value is larger
// than Config.MaxValueSize, or a key longer than Config.MaxKeySize.
var ErrValueTooLarge = errors.New("crdt: value or key too large")

// ErrInvalidValue is wrapped, together with the hook's own error, when
// Config.ValidateValue rejects a value: returned by Put and Batch.Put, and
// found (with ErrInvalidDelta) in the log line of a rejected delta.
var ErrInvalidValue = errors.New("crdt: invalid value")

// ErrInvalidDelta is wrapped by DecodeDelta (and logged and counted by the
// Datastore) when a block is not a valid delta: bad CBOR, wrong schema,
// limits exceeded, duplicate keys or links, bad priority.
var ErrInvalidDelta = errors.New("crdt: invalid delta")

// ErrInvalidMessage is wrapped by DecodeMessage when a broadcast message is
// malformed or carries more heads than allowed.
var ErrInvalidMessage = errors.New("crdt: invalid broadcast message")

// ErrBlockMismatch is wrapped when the bytes a DAG returned for a CID do not
// hash to that CID (a corrupt or lying source). The fetch is retried.
var ErrBlockMismatch = errors.New("crdt: block does not match its cid")

// NodeError reports a problem with one DAG node (fetch, decode or
// validation). It is found in logs and in Stats.Stuck.
type NodeError struct {
	Cid cid.Cid
	Op  string // "fetch", "decode", "validate", "apply"
	Err error
}

// Error implements error.
func (e *NodeError) Error() string {
	return fmt.Sprintf("crdt: %s node %s: %v", e.Op, e.Cid, e.Err)
}

// Unwrap returns the underlying error.
func (e *NodeError) Unwrap() error { return e.Err }

// ErrInvalidKey is returned by Put, Delete and Batch methods for a key that
// is not valid UTF-8 (keys travel as CBOR text strings).
var ErrInvalidKey = errors.New("crdt: invalid key")

// ErrNotSettled is returned by Datastore.Snapshot while DAG nodes are
// pending (a walk is in progress) or the replica is still joining: the
// state is not yet the state of a set of heads.
var ErrNotSettled = errors.New("crdt: replica not settled")
