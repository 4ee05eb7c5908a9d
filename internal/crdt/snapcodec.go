package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	cbor "github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
)

// Wire version of snapshot announcements (broadcast messages carrying
// "v": 2). Version-1 messages (heads) are unchanged; a version-1-only
// receiver ignores (and counts) version-2 to 4 messages and keeps reading
// the heads messages, which are still sent separately.
const announceVersion = 2

// Wire versions of the join handshake: a fresh replica broadcasts a join
// request (version 3) carrying a random nonce; replicas that are not
// joining answer with a join reply (version 4) that echoes the nonces it
// answers and names the newest snapshot the sender knows, or none. A reply
// echoing the joiner's nonce was sent after its request, so unlike a
// heads message that pubsub delivers late (gossip replays a few seconds
// of history to a new subscriber), it tells what the sender knows now.
const (
	joinRequestVersion = 3
	joinReplyVersion   = 4
)

// Join handshake limits: a nonce is exactly JoinNonceSize bytes and a
// reply echoes at most MaxJoinNonces of them.
const (
	JoinNonceSize = 16
	MaxJoinNonces = 16
)

// snapType marks a snapshot root block, so that it can never be mistaken
// for a delta (a delta decoder rejects the unknown field, and the other
// way round).
const snapType = "crdt-snapshot"

// ErrInvalidSnapshot is wrapped when a snapshot block (root or chunk) is
// malformed, over the limits, or inconsistent (unsorted or duplicate rows,
// counts that do not match). The load is abandoned and the replica waits
// for another announcement.
var ErrInvalidSnapshot = errors.New("crdt: invalid snapshot")

// wireSnapRoot is the root block of a snapshot.
type wireSnapRoot struct {
	V uint64     `cbor:"v"`
	T string     `cbor:"t"` // snapType
	P uint64     `cbor:"p"` // height: highest priority among H
	N uint64     `cbor:"n"` // nodes covered
	K uint64     `cbor:"k"` // key rows
	H []cbor.Tag `cbor:"h"` // heads covered, sorted by bytes
	R []cbor.Tag `cbor:"r"` // record chunks, in key order
	C []cbor.Tag `cbor:"c"` // covered-node chunks
}

// wireSnapChunk is one chunk: either rows (R) or covered nodes (C).
type wireSnapChunk struct {
	V uint64     `cbor:"v"`
	R []wireRow  `cbor:"r"`
	C []wireNode `cbor:"c"`
}

// wireRow is the whole OR-set state of one key: its live elements and the
// tombstones of elements whose delta is not covered.
type wireRow struct {
	_ struct{} `cbor:",toarray"`
	K string
	E []wireElem
	T [][]byte
}

type wireElem struct {
	_  struct{} `cbor:",toarray"`
	ID []byte
	P  uint64
	V  []byte
}

type wireNode struct {
	_  struct{} `cbor:",toarray"`
	ID []byte
	P  uint64
}

// wireAnnounce is a version-2 broadcast: the newest snapshot the sender
// knows, and whether the sender has processed every head it covers (its
// acknowledgement, used for compaction).
type wireAnnounce struct {
	V uint64   `cbor:"v"`
	S cbor.Tag `cbor:"s"`
	P uint64   `cbor:"p"`
	N uint64   `cbor:"n"`
	A bool     `cbor:"a"`
}

// Announcement is a decoded snapshot announcement.
type Announcement struct {
	Root   cid.Cid // snapshot root block
	Height uint64  // highest priority among its heads
	Nodes  uint64  // DAG nodes it covers
	Acked  bool    // the sender has processed every head it covers
}

// EncodeAnnouncement returns the version-2 broadcast message of a.
func EncodeAnnouncement(a Announcement) ([]byte, error) {
	b, err := encMode.Marshal(wireAnnounce{V: announceVersion, S: linkTag(a.Root), P: a.Height, N: a.Nodes, A: a.Acked})
	if err != nil {
		return nil, fmt.Errorf("crdt: encode announcement: %w", err)
	}
	return b, nil
}

// DecodeAnnouncement parses a version-2 broadcast message; errors wrap
// ErrInvalidMessage.
func DecodeAnnouncement(data []byte) (Announcement, error) {
	var w wireAnnounce
	if err := decodeBroadcast(data, 256, "announcement", &w, &w.V, announceVersion); err != nil {
		return Announcement{}, err
	}
	c, err := tagLink(w.S)
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: root: %v", ErrInvalidMessage, err)
	}
	return Announcement{Root: c, Height: w.P, Nodes: w.N, Acked: w.A}, nil
}

type wireJoinRequest struct {
	V uint64 `cbor:"v"`
	J []byte `cbor:"j"`
}

type wireJoinReply struct {
	V uint64    `cbor:"v"`
	E [][]byte  `cbor:"e"`
	S *cbor.Tag `cbor:"s,omitempty"`
	P uint64    `cbor:"p,omitempty"`
	N uint64    `cbor:"n,omitempty"`
}

// JoinReply is a decoded join reply: the nonces it answers and the newest
// snapshot its sender knows (Snapshot.Root undefined: none).
type JoinReply struct {
	Nonces   [][]byte
	Snapshot Announcement // Acked is not carried
}

// EncodeJoinRequest returns the version-3 broadcast asking the replicas
// that are not joining for the newest snapshot they know.
func EncodeJoinRequest(nonce []byte) ([]byte, error) {
	if len(nonce) != JoinNonceSize {
		return nil, fmt.Errorf("crdt: encode join request: nonce of %d bytes, want %d", len(nonce), JoinNonceSize)
	}
	b, err := encMode.Marshal(wireJoinRequest{V: joinRequestVersion, J: nonce})
	if err != nil {
		return nil, fmt.Errorf("crdt: encode join request: %w", err)
	}
	return b, nil
}

// DecodeJoinRequest parses a version-3 broadcast and returns its nonce;
// errors wrap ErrInvalidMessage.
func DecodeJoinRequest(data []byte) ([]byte, error) {
	var w wireJoinRequest
	if err := decodeBroadcast(data, 64, "join request", &w, &w.V, joinRequestVersion); err != nil {
		return nil, err
	}
	if len(w.J) != JoinNonceSize {
		return nil, fmt.Errorf("%w: join nonce of %d bytes, want %d", ErrInvalidMessage, len(w.J), JoinNonceSize)
	}
	return w.J, nil
}

// EncodeJoinReply returns the version-4 broadcast of r.
func EncodeJoinReply(r JoinReply) ([]byte, error) {
	if len(r.Nonces) == 0 || len(r.Nonces) > MaxJoinNonces {
		return nil, fmt.Errorf("crdt: encode join reply: %d nonces, want 1 to %d", len(r.Nonces), MaxJoinNonces)
	}
	w := wireJoinReply{V: joinReplyVersion, E: r.Nonces}
	if r.Snapshot.Root.Defined() {
		t := linkTag(r.Snapshot.Root)
		w.S, w.P, w.N = &t, r.Snapshot.Height, r.Snapshot.Nodes
	}
	b, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("crdt: encode join reply: %w", err)
	}
	return b, nil
}

// DecodeJoinReply parses a version-4 broadcast; errors wrap
// ErrInvalidMessage.
func DecodeJoinReply(data []byte) (JoinReply, error) {
	var w wireJoinReply
	if err := decodeBroadcast(data, 512, "join reply", &w, &w.V, joinReplyVersion); err != nil {
		return JoinReply{}, err
	}
	if len(w.E) == 0 || len(w.E) > MaxJoinNonces {
		return JoinReply{}, fmt.Errorf("%w: join reply with %d nonces", ErrInvalidMessage, len(w.E))
	}
	for _, n := range w.E {
		if len(n) != JoinNonceSize {
			return JoinReply{}, fmt.Errorf("%w: join nonce of %d bytes, want %d", ErrInvalidMessage, len(n), JoinNonceSize)
		}
	}
	r := JoinReply{Nonces: w.E}
	if w.S != nil {
		c, err := tagLink(*w.S)
		if err != nil {
			return JoinReply{}, fmt.Errorf("%w: root: %v", ErrInvalidMessage, err)
		}
		r.Snapshot = Announcement{Root: c, Height: w.P, Nodes: w.N}
	} else if w.P != 0 || w.N != 0 {
		return JoinReply{}, fmt.Errorf("%w: join reply with a height and no snapshot", ErrInvalidMessage)
	}
	return r, nil
}

// decodeBroadcast decodes a broadcast message of at most limit bytes into
// w, whose version field v must then be want; errors wrap
// ErrInvalidMessage.
func decodeBroadcast(data []byte, limit int, what string, w any, v *uint64, want uint64) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %s of %d bytes", ErrInvalidMessage, what, len(data))
	}
	if err := decMode.Unmarshal(data, w); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidMessage, what, err)
	}
	if *v != want {
		return fmt.Errorf("%w: %s version %d", ErrInvalidMessage, what, *v)
	}
	return nil
}

// messageVersion returns the "v" field of a broadcast message without
// decoding the rest (0 if there is none).
func messageVersion(data []byte) uint64 {
	var w struct {
		V uint64 `cbor:"v"`
	}
	if err := lenientDec.Unmarshal(data, &w); err != nil {
		return 0
	}
	return w.V
}

var lenientDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return m
}()

// snapRoot is a decoded root block.
type snapRoot struct {
	height uint64
	nodes  uint64
	keys   uint64
	heads  []cid.Cid
	rows   []cid.Cid
	cover  []cid.Cid
}

func encodeSnapRoot(r *snapRoot) (cid.Cid, []byte, error) {
	w := wireSnapRoot{V: wireVersion, T: snapType, P: r.height, N: r.nodes, K: r.keys}
	heads := append([]cid.Cid(nil), r.heads...)
	sort.Slice(heads, func(i, j int) bool { return bytes.Compare(heads[i].Bytes(), heads[j].Bytes()) < 0 })
	for _, h := range heads {
		w.H = append(w.H, linkTag(h))
	}
	for _, c := range r.rows {
		w.R = append(w.R, linkTag(c))
	}
	for _, c := range r.cover {
		w.C = append(w.C, linkTag(c))
	}
	raw, err := encMode.Marshal(w)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("crdt: encode snapshot root: %w", err)
	}
	c, err := blockCid(raw)
	return c, raw, err
}

func decodeSnapRoot(raw []byte, lim Limits) (*snapRoot, error) {
	if lim.MaxBlockSize > 0 && len(raw) > lim.MaxBlockSize {
		return nil, fmt.Errorf("%w: root of %d bytes", ErrInvalidSnapshot, len(raw))
	}
	var w wireSnapRoot
	if err := decMode.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrInvalidSnapshot, err)
	}
	if w.V != wireVersion || w.T != snapType {
		return nil, fmt.Errorf("%w: root version %d type %q", ErrInvalidSnapshot, w.V, w.T)
	}
	if len(w.H) == 0 || (lim.MaxLinks > 0 && len(w.H) > lim.MaxLinks) {
		return nil, fmt.Errorf("%w: %d heads", ErrInvalidSnapshot, len(w.H))
	}
	r := &snapRoot{height: w.P, nodes: w.N, keys: w.K}
	links := func(ts []cbor.Tag) ([]cid.Cid, error) {
		out := make([]cid.Cid, 0, len(ts))
		for _, t := range ts {
			c, err := tagLink(t)
			if err != nil {
				return nil, fmt.Errorf("%w: link: %v", ErrInvalidSnapshot, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	var err error
	if r.heads, err = links(w.H); err != nil {
		return nil, err
	}
	if r.rows, err = links(w.R); err != nil {
		return nil, err
	}
	if r.cover, err = links(w.C); err != nil {
		return nil, err
	}
	if uint64(len(r.cover)) > r.nodes || (r.nodes > 0 && len(r.cover) == 0) {
		return nil, fmt.Errorf("%w: %d covered-node chunks for %d nodes", ErrInvalidSnapshot, len(r.cover), r.nodes)
	}
	return r, nil
}

func encodeSnapChunk(w *wireSnapChunk) (cid.Cid, []byte, error) {
	w.V = wireVersion
	raw, err := encMode.Marshal(w)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("crdt: encode snapshot chunk: %w", err)
	}
	c, err := blockCid(raw)
	return c, raw, err
}

// snapRowOut is a decoded, checked row.
type snapRowOut struct {
	key   string
	elems []winner // value set
	tombs []cid.Cid
}

// decodeSnapChunk parses a chunk and checks it: rows sorted by encoded
// key without duplicates, keys and values within lim, ids that are CIDs.
func decodeSnapChunk(raw []byte, lim Limits) ([]snapRowOut, []wireNode, error) {
	if lim.MaxBlockSize > 0 && len(raw) > lim.MaxBlockSize {
		return nil, nil, fmt.Errorf("%w: chunk of %d bytes", ErrInvalidSnapshot, len(raw))
	}
	var w wireSnapChunk
	if err := decMode.Unmarshal(raw, &w); err != nil {
		return nil, nil, fmt.Errorf("%w: chunk: %v", ErrInvalidSnapshot, err)
	}
	if w.V != wireVersion || (len(w.R) > 0 && len(w.C) > 0) {
		return nil, nil, fmt.Errorf("%w: chunk version %d or mixed content", ErrInvalidSnapshot, w.V)
	}
	rows := make([]snapRowOut, 0, len(w.R))
	prev := ""
	for i, r := range w.R {
		if err := checkKey(r.K, lim); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalidSnapshot, err)
		}
		ek := encKey(r.K) + "/"
		if i > 0 && ek <= prev {
			return nil, nil, fmt.Errorf("%w: rows not sorted at %q", ErrInvalidSnapshot, truncate(r.K))
		}
		prev = ek
		if len(r.E) == 0 && len(r.T) == 0 {
			return nil, nil, fmt.Errorf("%w: empty row %q", ErrInvalidSnapshot, truncate(r.K))
		}
		out := snapRowOut{key: r.K}
		for _, e := range r.E {
			id, err := castCid(e.ID)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: element id: %v", ErrInvalidSnapshot, err)
			}
			if lim.MaxValueSize > 0 && len(e.V) > lim.MaxValueSize {
				return nil, nil, fmt.Errorf("%w: value of %d bytes", ErrInvalidSnapshot, len(e.V))
			}
			if e.P == 0 {
				return nil, nil, fmt.Errorf("%w: element priority 0", ErrInvalidSnapshot)
			}
			v := e.V
			if v == nil {
				v = []byte{}
			}
			if _, err := lim.validateValue(r.K, v); err != nil {
				return nil, nil, fmt.Errorf("%w: element: %w", ErrInvalidSnapshot, err)
			}
			out.elems = append(out.elems, winner{prio: e.P, id: id, value: v})
		}
		for _, t := range r.T {
			id, err := castCid(t)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: tombstone id: %v", ErrInvalidSnapshot, err)
			}
			out.tombs = append(out.tombs, id)
		}
		rows = append(rows, out)
	}
	for _, n := range w.C {
		if _, err := castCid(n.ID); err != nil || n.P == 0 {
			return nil, nil, fmt.Errorf("%w: covered node: %v", ErrInvalidSnapshot, err)
		}
	}
	return rows, w.C, nil
}
