package pincluster

import (
	"context"

	peer "github.com/libp2p/go-libp2p/core/peer"
)

// Consensus keeps the shared pinset: it logs pins and unpins so that every
// peer's State converges to the same content, and it decides who may write.
// Only the Consensus modifies the shared state; everybody else reads it
// through State.
//
// The default is a Merkle-CRDT over the cluster's pubsub topic (no leader,
// partition tolerant); a Raft implementation is the strongly consistent
// alternative.
type Consensus interface {
	Component
	// Ready is closed once the consensus can serve State and accept
	// writes (for Raft: a leader is known; for CRDT: the local store is
	// open and repaired).
	Ready() <-chan struct{}
	// LogPin adds or replaces pin in the shared state. It returns once the
	// change is durable locally (CRDT) or committed by a quorum (Raft).
	LogPin(ctx context.Context, pin Pin) error
	// LogUnpin removes pin from the shared state, with the same guarantee
	// as LogPin.
	LogUnpin(ctx context.Context, pin Pin) error
	// AddPeer adds a peer to the consensus membership (Raft voters; for
	// CRDT it trusts the peer).
	AddPeer(ctx context.Context, id peer.ID) error
	// RmPeer removes a peer from the membership.
	RmPeer(ctx context.Context, id peer.ID) error
	// State returns a read-only view of the current shared state.
	State(ctx context.Context) (ReadOnly, error)
	// Leader returns the current leader, or ErrNoLeader when there is none
	// (always, for CRDT).
	Leader(ctx context.Context) (peer.ID, error)
	// WaitForSync blocks until the local state has caught up with what is
	// known of the others (Raft: applied index reaches commit index), or
	// ctx is done.
	WaitForSync(ctx context.Context) error
	// Clean removes the consensus' persistent data. Only valid after
	// Shutdown.
	Clean(ctx context.Context) error
	// Peers lists the peers taking part in the consensus.
	Peers(ctx context.Context) ([]peer.ID, error)
	// IsTrustedPeer reports whether id may modify the shared state.
	IsTrustedPeer(ctx context.Context, id peer.ID) bool
	// Trust marks id as trusted.
	Trust(ctx context.Context, id peer.ID) error
	// Distrust removes id from the trusted peers.
	Distrust(ctx context.Context, id peer.ID) error
}

// StateWatcher is an optional ability of a Consensus: it reports changes to
// the shared state as they are applied, so a tracker can react without
// polling. The callbacks must not block for long.
type StateWatcher interface {
	// Watch registers fn to be called after each pin is added or replaced
	// (removed == false) or removed (removed == true, pin has only Cid
	// set). It returns a function that unregisters fn.
	Watch(fn func(pin Pin, removed bool)) (cancel func())
}
