package crdt

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
)

// On-disk layout inside the datastore given to New (see the package doc).
const (
	nsValues  = "/v"   // /v<key>            -> visible value
	nsWinner  = "/s/w" // /s/w/<ek>          -> key record (see keyRecord.encode)
	nsElems   = "/s/e" // /s/e/<ek>/<id>     -> uvarint priority ++ value (live elements)
	nsTombs   = "/s/t" // /s/t/<ek>/<id>     -> empty (tombstoned element ids)
	nsHeads   = "/h"   // /h/<cid>           -> uvarint priority
	nsBlocks  = "/b"   // /b/<cid>           -> uvarint priority (processed nodes)
	nsChild   = "/c"   // /c/<cid>           -> empty (some processed node links to cid)
	nsPending = "/q"   // /q/<cid>           -> uvarint bound (journal of nodes still to fetch)
	keyDirty  = "/m/dirty"
	keyNodes  = "/m/nodes"
)

// encKey escapes a user key into one path segment.
func encKey(k string) string { return base64.RawURLEncoding.EncodeToString([]byte(k)) }

// decodeKeySegment reverses encKey.
func decodeKeySegment(ek string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(ek)
	return string(b), err
}

func cleanKey(k string) string { return ds.NewKey(k).String() }

func valueKey(k string) ds.Key { return ds.RawKey(nsValues + k) }
func winnerKey(ek string) ds.Key {
	return ds.RawKey(nsWinner + "/" + ek)
}
func elemPrefix(ek string) string          { return nsElems + "/" + ek + "/" }
func elemKey(ek string, id cid.Cid) ds.Key { return ds.RawKey(elemPrefix(ek) + id.String()) }
func tombKey(ek string, id cid.Cid) ds.Key { return ds.RawKey(nsTombs + "/" + ek + "/" + id.String()) }
func cidKey(ns string, c cid.Cid) ds.Key   { return ds.RawKey(ns + "/" + c.String()) }

func putUvarint(v uint64, rest []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(rest))
	b = binary.AppendUvarint(b, v)
	return append(b, rest...)
}

var errCorrupt = errors.New("crdt: corrupt record in datastore")

func readUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errCorrupt
	}
	return v, b[n:], nil
}

// winner is the current visible element of a key.
type winner struct {
	prio  uint64
	id    cid.Cid
	value []byte
}

// beats reports whether a wins over b: higher priority, then larger value
// bytes, then larger id bytes.
func (a winner) beats(b winner) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if c := compareBytes(a.value, b.value); c != 0 {
		return c > 0
	}
	return compareBytes(a.id.Bytes(), b.id.Bytes()) > 0
}

// keyRecord is the per-key metadata (at /s/w/<ek>): the winning element,
// if the key has live elements, and whether any tombstone exists for it.
type keyRecord struct {
	hasWinner bool
	hasTombs  bool
	prio      uint64
	id        cid.Cid
}

const (
	recWinner = 1
	recTombs  = 2
)

func (r keyRecord) equal(o keyRecord) bool {
	return r.hasWinner == o.hasWinner && r.hasTombs == o.hasTombs && r.prio == o.prio && r.id.Equals(o.id)
}

// encode: uvarint flags (1 = has winner, 2 = has tombstones), then, with a
// winner, uvarint priority ++ winner id (CID bytes).
func (r keyRecord) encode() []byte {
	var flags uint64
	if r.hasWinner {
		flags |= recWinner
	}
	if r.hasTombs {
		flags |= recTombs
	}
	b := binary.AppendUvarint(nil, flags)
	if r.hasWinner {
		b = binary.AppendUvarint(b, r.prio)
		b = append(b, r.id.Bytes()...)
	}
	return b
}

func decodeRecord(b []byte) (keyRecord, error) {
	flags, rest, err := readUvarint(b)
	if err != nil || flags > recWinner|recTombs {
		return keyRecord{}, errCorrupt
	}
	r := keyRecord{hasWinner: flags&recWinner != 0, hasTombs: flags&recTombs != 0}
	if !r.hasWinner {
		if len(rest) != 0 {
			return keyRecord{}, errCorrupt
		}
		return r, nil
	}
	if r.prio, rest, err = readUvarint(rest); err != nil {
		return keyRecord{}, err
	}
	if r.id, err = castCid(rest); err != nil {
		return keyRecord{}, fmt.Errorf("%w: winner id: %v", errCorrupt, err)
	}
	return r, nil
}
