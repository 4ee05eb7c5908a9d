package ipfsnode

import (
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

var (
	// ErrClosed is returned by every method of a Node after Close, and by
	// a second Close.
	ErrClosed = errors.New("ipfsnode: node closed")
	// ErrNotPinned is returned by Unpin and GetPin when the CID has no
	// direct or recursive pin. Unpin changes nothing then.
	ErrNotPinned = errors.New("ipfsnode: not pinned")
	// ErrStorageFull is returned (wrapped) by BlockPut, Add, Pin and the
	// blockstore's Put when storing would exceed Config.StorageMax.
	ErrStorageFull = errors.New("ipfsnode: storage full")
	// ErrNotFound is returned (wrapped) by BlockGet when a block is not
	// stored locally and could not be fetched, and by Resolve when a path
	// names no entry.
	ErrNotFound = errors.New("ipfsnode: not found")
	// ErrNotDirectory is returned (wrapped) by Resolve when a path goes
	// through something that is not a UnixFS directory.
	ErrNotDirectory = errors.New("ipfsnode: not a directory")
	// ErrUnsupportedCodec is returned (wrapped) by Pin and Fetch when a
	// block of the DAG has a codec whose links the node cannot read
	// (known: dag-pb, raw, dag-cbor, dag-json).
	ErrUnsupportedCodec = errors.New("ipfsnode: unsupported codec")
	// ErrBadPath is returned (wrapped) by Resolve for a path that is not
	// /ipfs/<cid>[/...] or a bare CID.
	ErrBadPath = errors.New("ipfsnode: bad path")
)

// CorruptBlockError reports a block whose bytes do not hash to its CID,
// found in the store or offered by a caller. Such a block is never served,
// stored or pinned. Test with errors.As.
type CorruptBlockError struct {
	// Cid is the CID the block was stored or offered under.
	Cid cid.Cid
}

// Error implements error.
func (e *CorruptBlockError) Error() string {
	return fmt.Sprintf("ipfsnode: block %s: data does not match its cid", e.Cid)
}
