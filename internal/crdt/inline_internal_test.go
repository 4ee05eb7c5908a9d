package crdt

import (
	"bytes"
	"errors"
	"testing"

	cid "github.com/ipfs/go-cid"
)

// A heads message carrying blocks: the blocks come back with the CIDs of
// their bytes (a sender cannot pair a block with another CID), and
// hostile messages are refused with ErrInvalidMessage.
func TestDeltasMessage(t *testing.T) {
	id, raw, err := EncodeDelta(&Delta{Priority: 1, Puts: []KV{{Key: "/k", Value: []byte("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := encodeDeltas([]cid.Cid{id}, []inlineBlock{{id: id, raw: raw}})
	if err != nil {
		t.Fatal(err)
	}
	if v := messageVersion(data); v != deltasVersion {
		t.Fatalf("version %d", v)
	}
	heads, blocks, err := decodeDeltas(data, 16, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != 1 || !heads[0].Equals(id) || len(blocks) != 1 || !blocks[0].id.Equals(id) || !bytes.Equal(blocks[0].raw, raw) {
		t.Fatalf("got %v %v", heads, blocks)
	}
	// A block paired with another CID by the sender: the CID is computed.
	other, _, _ := EncodeDelta(&Delta{Priority: 1, Puts: []KV{{Key: "/x", Value: []byte("y")}}})
	data, _ = encodeDeltas([]cid.Cid{other}, []inlineBlock{{id: other, raw: raw}})
	_, blocks, err = decodeDeltas(data, 16, 1<<20)
	if err != nil || !blocks[0].id.Equals(id) {
		t.Fatalf("block id %v, err %v: want %s", blocks, err, id)
	}

	bad := map[string][]byte{}
	bad["block over the limit"], _ = encodeDeltas([]cid.Cid{id}, []inlineBlock{{id: id, raw: raw}})
	many := make([]inlineBlock, maxInlineBlocks+1)
	for i := range many {
		many[i] = inlineBlock{id: id, raw: []byte{1}}
	}
	bad["too many blocks"], _ = encodeDeltas([]cid.Cid{id}, many)
	bad["not cbor"] = []byte{0xff, 0x00}
	bad["too long"] = make([]byte, 16+16*80+maxInlineBytes+maxInlineBlocks*8+1)
	for name, data := range bad {
		if _, _, err := decodeDeltas(data, 16, len(raw)-1); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err %v, want ErrInvalidMessage", name, err)
		}
	}
}

// The received blocks held are bounded in bytes: the oldest go first.
func TestInlineInboxBounded(t *testing.T) {
	s := &Datastore{}
	big := make([]byte, maxInlineHeld/4+1)
	var ids []cid.Cid
	for i := range 5 {
		big[0] = byte(i)
		id, err := blockCid(big)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		s.holdIncoming(id, append([]byte(nil), big...))
	}
	if s.inline.inBytes > maxInlineHeld {
		t.Fatalf("%d bytes held, bound %d", s.inline.inBytes, maxInlineHeld)
	}
	if _, ok := s.takeIncoming(ids[0]); ok {
		t.Fatal("the oldest block is still held")
	}
	if _, ok := s.takeIncoming(ids[4]); !ok {
		t.Fatal("the newest block was dropped")
	}
	if _, ok := s.takeIncoming(ids[4]); ok {
		t.Fatal("a block is taken once")
	}
}
