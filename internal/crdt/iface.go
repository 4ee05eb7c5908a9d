package crdt

import (
	"context"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// Message is one broadcast received from the network.
type Message struct {
	// From is the peer that signed (originated) the message; it may be
	// empty for broadcasters that do not know it.
	From peer.ID
	// Data is the encoded broadcast message (see DecodeMessage).
	Data []byte
}

// Broadcaster carries head announcements between replicas. The Datastore
// calls Broadcast from one goroutine and Next from another. Next must
// return when ctx is cancelled. The Datastore does not close its
// Broadcaster: whoever created it closes it, after closing the Datastore.
type Broadcaster interface {
	// Broadcast sends data to the other replicas. Delivery is best effort:
	// messages may be lost, duplicated or reordered.
	Broadcast(ctx context.Context, data []byte) error
	// Next blocks until a message from another replica arrives, ctx is
	// cancelled, or the broadcaster is closed (then it returns an error).
	Next(ctx context.Context) (Message, error)
}

// DAG stores and fetches the delta blocks. In production it is the IPFS
// node's blockstore plus bitswap, so that other peers can fetch the blocks
// this replica writes. The Datastore does not close its DAG.
type DAG interface {
	// Get returns the raw bytes of the block, from the local store or the
	// network. It must honour ctx. The Datastore verifies that the bytes
	// hash to c.
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	// Put stores a block so that Get (here and on other peers) can find it.
	// It must be durable when it returns.
	Put(ctx context.Context, c cid.Cid, data []byte) error
}

// DAGDeleter is an optional ability of a DAG, found by type assertion:
// deleting a block from the local store. Compaction (Config.LivePeers)
// needs it; without it the history is kept.
type DAGDeleter interface {
	// Delete removes the block from the local store. Deleting a block
	// that is not there is not an error.
	Delete(ctx context.Context, c cid.Cid) error
}
