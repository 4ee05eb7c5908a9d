package crdt

import (
	"context"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
)

// Fresh local deltas travel inside the broadcast that announces them, so
// that a replica applies a new delta without fetching its block from the
// DAG first (a fetch through the IPFS node is a round trip of several
// milliseconds, most of the time one pin takes to reach every replica).
// The block is still checked against its CID, stored in the receiver's
// DAG and processed as if fetched; a message from a replica that does not
// attach blocks, or a block not attached, is fetched as before.

// deltasVersion is the "v" of a heads message carrying blocks:
// {"v": 10, "h": [heads as tag-42 links], "b": [raw delta blocks]}.
const deltasVersion = 10

const (
	// maxInlineBytes bounds the blocks attached to one broadcast (pubsub
	// messages are limited to 1 MiB).
	maxInlineBytes = 512 << 10
	// maxInlineBlocks bounds how many blocks one broadcast carries.
	maxInlineBlocks = 64
	// maxOutboxBlocks and maxOutboxBytes bound the local blocks waiting
	// for a broadcast (sent in as many messages as they fill): the
	// broadcast loop may not be scheduled for many commits under load.
	maxOutboxBlocks = 16 * maxInlineBlocks
	maxOutboxBytes  = 8 << 20
	// maxInlineHeld bounds the received blocks held until processed
	// (bytes); past it the oldest are dropped (they are fetched instead).
	maxInlineHeld = 8 << 20
)

type wireDeltas struct {
	V uint64     `cbor:"v"`
	H []cbor.Tag `cbor:"h"`
	B [][]byte   `cbor:"b"`
}

// inlineBlock is one delta block.
type inlineBlock struct {
	id  cid.Cid
	raw []byte
}

// inlineState is the outbox of local delta blocks not broadcast yet and
// the inbox of received blocks not processed yet.
type inlineState struct {
	mu       sync.Mutex
	out      []inlineBlock
	outBytes int
	// half holds a token once the outbox fills half of one message: the
	// broadcast loop then ends its BroadcastGap early. Taking the outbox
	// takes the token.
	half    chan struct{}
	in      map[cid.Cid][]byte
	inOrder []cid.Cid
	inBytes int
}

// queueOutgoing keeps a committed local delta's block for the next
// broadcast; the oldest are dropped past maxOutboxBytes or
// maxOutboxBlocks (their receivers fetch them). Once they fill half of
// one message, the broadcast loop is told to end its BroadcastGap.
func (s *Datastore) queueOutgoing(id cid.Cid, raw []byte) {
	if s.cfg.NoInlineDeltas || len(raw) > maxInlineBytes {
		return
	}
	st := &s.inline
	st.mu.Lock()
	defer st.mu.Unlock()
	st.out = append(st.out, inlineBlock{id, raw})
	st.outBytes += len(raw)
	for st.outBytes > maxOutboxBytes || len(st.out) > maxOutboxBlocks {
		st.outBytes -= len(st.out[0].raw)
		st.out = st.out[1:]
	}
	if 2*st.outBytes >= maxInlineBytes || 2*len(st.out) >= maxInlineBlocks {
		select {
		case st.half <- struct{}{}:
		default:
		}
	}
}

// takeOutgoing returns the blocks to attach to a broadcast and empties
// the outbox.
func (s *Datastore) takeOutgoing() []inlineBlock {
	st := &s.inline
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.out
	st.out, st.outBytes = nil, 0
	select {
	case <-st.half:
	default:
	}
	return out
}

// holdIncoming keeps a received block until processNode takes it.
func (s *Datastore) holdIncoming(id cid.Cid, raw []byte) {
	st := &s.inline
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.in == nil {
		st.in = make(map[cid.Cid][]byte)
	}
	if _, ok := st.in[id]; ok {
		return
	}
	st.in[id] = raw
	st.inOrder = append(st.inOrder, id)
	st.inBytes += len(raw)
	for st.inBytes > maxInlineHeld && len(st.inOrder) > 0 {
		old := st.inOrder[0]
		st.inOrder = st.inOrder[1:]
		if b, ok := st.in[old]; ok {
			st.inBytes -= len(b)
			delete(st.in, old)
		}
	}
	if len(st.inOrder) > 2*len(st.in)+64 {
		// Taken entries leave their ids in inOrder: compact.
		kept := st.inOrder[:0]
		for _, c := range st.inOrder {
			if _, ok := st.in[c]; ok {
				kept = append(kept, c)
			}
		}
		st.inOrder = kept
	}
}

// takeIncoming returns and forgets the received block of id, if held.
func (s *Datastore) takeIncoming(id cid.Cid) ([]byte, bool) {
	st := &s.inline
	st.mu.Lock()
	defer st.mu.Unlock()
	raw, ok := st.in[id]
	if ok {
		delete(st.in, id)
		st.inBytes -= len(raw)
	}
	return raw, ok
}

// encodeDeltas encodes a heads message carrying blocks.
func encodeDeltas(heads []cid.Cid, blocks []inlineBlock) ([]byte, error) {
	w := wireDeltas{V: deltasVersion}
	for _, h := range heads {
		w.H = append(w.H, linkTag(h))
	}
	for _, b := range blocks {
		w.B = append(w.B, b.raw)
	}
	b, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("crdt: encode message: %w", err)
	}
	return b, nil
}

// decodeDeltas parses a heads message carrying blocks: the heads as
// DecodeMessage checks them, and the blocks with their CIDs (computed
// here, so they cannot lie). Every error wraps ErrInvalidMessage.
func decodeDeltas(data []byte, maxHeads, maxBlock int) ([]cid.Cid, []inlineBlock, error) {
	if len(data) > 16+maxHeads*80+maxInlineBytes+maxInlineBlocks*8 {
		return nil, nil, fmt.Errorf("%w: %d bytes is too long", ErrInvalidMessage, len(data))
	}
	var w wireDeltas
	if err := decMode.Unmarshal(data, &w); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if w.V != deltasVersion {
		return nil, nil, fmt.Errorf("%w: version %d", ErrInvalidMessage, w.V)
	}
	if len(w.B) > maxInlineBlocks {
		return nil, nil, fmt.Errorf("%w: %d blocks exceed %d", ErrInvalidMessage, len(w.B), maxInlineBlocks)
	}
	// The heads alone, checked as a plain heads message.
	hm, err := encMode.Marshal(wireMessage{V: wireVersion, H: w.H})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	heads, err := DecodeMessage(hm, maxHeads)
	if err != nil {
		return nil, nil, err
	}
	blocks := make([]inlineBlock, 0, len(w.B))
	for _, raw := range w.B {
		if len(raw) > maxBlock {
			return nil, nil, fmt.Errorf("%w: block of %d bytes exceeds %d", ErrInvalidMessage, len(raw), maxBlock)
		}
		id, err := blockCid(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
		}
		blocks = append(blocks, inlineBlock{id, raw})
	}
	return heads, blocks, nil
}

// handleDeltas holds the unknown blocks of a heads message carrying them
// and queues its heads.
func (s *Datastore) handleDeltas(ctx context.Context, heads []cid.Cid, blocks []inlineBlock) error {
	for _, b := range blocks {
		if s.proc.isRejected(b.id) {
			continue
		}
		known, err := s.store.Has(ctx, cidKey(nsBlocks, b.id))
		if err != nil {
			return err
		}
		if !known {
			s.holdIncoming(b.id, b.raw)
		}
	}
	return s.handleHeads(ctx, heads)
}
