package pincluster

import (
	"context"
	"io"
	"iter"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// IPFSConnector talks to one IPFS node: the in-process node by default, or
// Kubo over its RPC API (package connector/kubo). Every method returns an
// error wrapping ErrIPFSUnavailable when the node cannot be reached, one
// wrapping ErrClosed after Shutdown, and one wrapping the ctx's error when
// ctx ends the call. Package connector/connectortest checks the behaviour the
// implementations share.
type IPFSConnector interface {
	Component
	// ID identifies the IPFS node.
	ID(ctx context.Context) (IPFSID, error)
	// Pin pins pin.Cid with pin.MaxDepth (-1 recursive, 0 direct, n
	// levels), connecting to pin.Origins first. progress, when not nil,
	// is called as blocks arrive so that a caller can detect a stuck pin.
	Pin(ctx context.Context, pin Pin, progress func(PinProgress)) error
	// Unpin removes the pin of c; ErrNotPinned when there is none.
	Unpin(ctx context.Context, c cid.Cid) error
	// PinLsCid reports how the node holds pin.Cid.
	PinLsCid(ctx context.Context, pin Pin) (IPFSPinStatus, error)
	// PinLs streams the node's pins whose type is in types (empty: direct
	// and recursive).
	PinLs(ctx context.Context, types ...IPFSPinStatus) iter.Seq2[IPFSPinInfo, error]
	// ConnectSwarms connects the IPFS node to the given peers (the IPFS
	// nodes of the other cluster peers, or a pin's origins).
	ConnectSwarms(ctx context.Context, peers []peer.AddrInfo) error
	// SwarmPeers lists the peers the IPFS node is connected to.
	SwarmPeers(ctx context.Context) ([]peer.ID, error)
	// ConfigKey returns one value of the IPFS node's configuration, e.g.
	// "Datastore.StorageMax". Implementations document the keys they know.
	ConfigKey(ctx context.Context, key string) (any, error)
	// RepoStat reports the node's storage usage.
	RepoStat(ctx context.Context) (RepoStat, error)
	// Resolve resolves an /ipfs/ path (or a bare CID) to the CID it names.
	Resolve(ctx context.Context, path string) (cid.Cid, error)
	// BlockPut stores one block and returns its CID (built with prefix
	// when its Version is not 0, else CIDv1 raw sha2-256).
	BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error)
	// BlockGet returns the bytes of one block.
	BlockGet(ctx context.Context, c cid.Cid) ([]byte, error)
}

// PinUpdater is an optional ability of an IPFSConnector: replace the pin of
// from with a pin of to, fetching only the difference.
type PinUpdater interface {
	PinUpdate(ctx context.Context, from, to cid.Cid, unpin bool) error
}

// RepoGCer is an optional ability of an IPFSConnector: run garbage
// collection on the IPFS node and report what was removed.
type RepoGCer interface {
	RepoGC(ctx context.Context) (RepoGC, error)
}

// RepoGC reports a garbage collection run.
type RepoGC struct {
	// Removed are the CIDs of the blocks removed (may be truncated).
	Removed []cid.Cid
	// RemovedCount is how many blocks were removed.
	RemovedCount uint64
	// FreedBytes is how many bytes were freed, when known.
	FreedBytes uint64
}

// AddParams controls a UnixFS import (Cluster.Add, the REST /add endpoint).
type AddParams struct {
	// PinOptions are the options of the resulting pin.
	PinOptions
	// Chunker is "size-N" (default size-262144) or "rabin-min-avg-max".
	Chunker string
	// RawLeaves stores leaf data as raw blocks (default with CIDVersion 1).
	RawLeaves bool
	// CIDVersion is 0 or 1.
	CIDVersion int
	// Trickle selects the trickle layout instead of balanced.
	Trickle bool
	// HashFun is the multihash name (default "sha2-256").
	HashFun string
	// Wrap wraps the added files in a directory.
	Wrap bool
	// Local makes this peer the pin's first user allocation (when
	// PinOptions has none): the data imported here is one replica, and
	// the other peers the replication factors ask for are allocated as
	// usual.
	Local bool
	// NoPin imports the files without pinning the result (IPFS Cluster's
	// no-pin): the blocks stay on this peer's IPFS node until collected.
	NoPin bool
}

// AddedFile is one entry produced by an import.
type AddedFile struct {
	// Name is the file's path inside the import ("" for a wrapping dir).
	Name string
	// Cid is the file's (or directory's) root.
	Cid cid.Cid
	// Size is the UnixFS file size in bytes.
	Size uint64
	// Bytes is the number of bytes read for it.
	Bytes uint64
}

// Adder is an optional ability of an IPFSConnector: import files as UnixFS
// directly into the node (the in-process node has it).
type Adder interface {
	// Add imports the named files (name -> content) and returns one entry
	// per file, then (when params.Wrap is set) each inner directory after
	// its contents and the wrapping directory; the
	// last entry is the root.
	Add(ctx context.Context, files iter.Seq2[string, io.Reader], params AddParams) ([]AddedFile, error)
}

// DAGSizer is an optional ability of an IPFSConnector: tell the total size
// of a DAG before pinning it, so that allocation can reserve space on the
// chosen peers. It returns an error wrapping ErrNotFound when the size is
// not known without fetching the DAG. The Cluster asks it once per
// allocation (pins with a replication factor), on the allocating peer
// only, and records the answer in the pin (Pin.Size); it never asks it for
// pins without allocations (replication -1) nor on the holders.
type DAGSizer interface {
	DAGSize(ctx context.Context, c cid.Cid) (uint64, error)
}

// Catter is an optional ability of an IPFSConnector: read a UnixFS file
// (or raw block) from the node, fetching it as it is read. The in-process
// node has it; it is what Cluster.Cat uses.
type Catter interface {
	Cat(ctx context.Context, c cid.Cid) (io.ReadSeekCloser, error)
}
