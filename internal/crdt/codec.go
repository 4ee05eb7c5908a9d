package crdt

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"

	cbor "github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Wire format version of deltas and broadcast messages.
const wireVersion = 1

// CodecDagCBOR is the multicodec of delta blocks (dag-cbor).
const CodecDagCBOR = 0x71

// cidTag is the CBOR tag of an IPLD link in dag-cbor.
const cidTag = 42

// Delta is one decoded delta block.
type Delta struct {
	// Priority is the height of the node: 1 + the highest priority among
	// Links (1 when there are none).
	Priority uint64
	// Links are the heads this delta supersedes.
	Links []cid.Cid
	// Puts set keys (each key at most once).
	Puts []KV
	// Removes tombstone, per key, the element ids (CIDs of the deltas that
	// added them) the writer had observed.
	Removes []Remove
}

// KV is one put of a Delta.
type KV struct {
	Key   string
	Value []byte

	// decoded is Config.DecodeValue's result for Value, when the writer
	// or DecodeDelta has it in hand (never encoded).
	decoded any
}

// Remove is the tombstone list of one key.
type Remove struct {
	Key string
	IDs []cid.Cid
}

// Limits bound what DecodeDelta and DecodeMessage accept.
type Limits struct {
	MaxBlockSize int // bytes of the whole block
	MaxLinks     int // links of one delta, heads of one message
	MaxKeySize   int
	MaxValueSize int
	// ValidateValue, if not nil, is called for every put of a delta (and
	// every live element of a snapshot chunk); an error rejects the whole
	// block. See Config.ValidateValue.
	ValidateValue func(key string, value []byte) error
	// DecodeValue, if not nil, is used instead of ValidateValue and its
	// result is kept with the put (see Config.DecodeValue).
	DecodeValue func(key string, value []byte) (any, error)
}

func (c Config) limits() Limits {
	return Limits{MaxBlockSize: c.MaxBlockSize, MaxLinks: c.MaxLinks, MaxKeySize: c.MaxKeySize, MaxValueSize: c.MaxValueSize, ValidateValue: c.ValidateValue, DecodeValue: c.DecodeValue}
}

// validateValue runs lim.DecodeValue or lim.ValidateValue, if any, on one
// put, and returns the decoded value (nil without DecodeValue).
func (lim Limits) validateValue(key string, value []byte) (any, error) {
	var decoded any
	var err error
	switch {
	case lim.DecodeValue != nil:
		decoded, err = lim.DecodeValue(key, value)
	case lim.ValidateValue != nil:
		err = lim.ValidateValue(key, value)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrInvalidValue, truncate(key), err)
	}
	return decoded, nil
}

// wire types (dag-cbor). Map keys are single letters; canonical (length
// first, then bytewise) order equals dag-cbor order.
type wireDelta struct {
	V uint64       `cbor:"v"`
	P uint64       `cbor:"p"`
	L []cbor.Tag   `cbor:"l"`
	A []wireKV     `cbor:"a"`
	R []wireRemove `cbor:"r"`
}

type wireKV struct {
	_ struct{} `cbor:",toarray"`
	K string
	V []byte
}

type wireRemove struct {
	_   struct{} `cbor:",toarray"`
	K   string
	IDs [][]byte
}

type wireMessage struct {
	V uint64     `cbor:"v"`
	H []cbor.Tag `cbor:"h"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CanonicalEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	encMode, err = eo.EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:             cbor.DupMapKeyEnforcedAPF,
		IndefLength:           cbor.IndefLengthForbidden,
		TagsMd:                cbor.TagsAllowed,
		MaxNestedLevels:       8,
		MaxArrayElements:      1 << 20,
		MaxMapPairs:           16,
		ExtraReturnErrors:     cbor.ExtraDecErrorUnknownField,
		DefaultByteStringType: reflect.TypeOf([]byte(nil)),
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

func linkTag(c cid.Cid) cbor.Tag {
	b := c.Bytes()
	content := make([]byte, 1+len(b))
	copy(content[1:], b)
	return cbor.Tag{Number: cidTag, Content: content}
}

func tagLink(t cbor.Tag) (cid.Cid, error) {
	if t.Number != cidTag {
		return cid.Undef, fmt.Errorf("tag %d is not a link", t.Number)
	}
	b, ok := t.Content.([]byte)
	if !ok || len(b) < 2 || b[0] != 0 {
		return cid.Undef, fmt.Errorf("malformed link")
	}
	return castCid(b[1:])
}

func castCid(b []byte) (cid.Cid, error) {
	n, c, err := cid.CidFromBytes(b)
	if err != nil {
		return cid.Undef, err
	}
	if n != len(b) {
		return cid.Undef, fmt.Errorf("trailing bytes after cid")
	}
	return c, nil
}

// EncodeDelta returns the dag-cbor block of d and its CID (CIDv1, dag-cbor,
// sha2-256). Puts and Removes are sorted by key; Links by bytes.
func EncodeDelta(d *Delta) (cid.Cid, []byte, error) {
	w := wireDelta{V: wireVersion, P: d.Priority}
	links := append([]cid.Cid(nil), d.Links...)
	sort.Slice(links, func(i, j int) bool { return bytes.Compare(links[i].Bytes(), links[j].Bytes()) < 0 })
	for _, l := range links {
		w.L = append(w.L, linkTag(l))
	}
	for _, kv := range d.Puts {
		w.A = append(w.A, wireKV{K: kv.Key, V: kv.Value})
	}
	sort.Slice(w.A, func(i, j int) bool { return w.A[i].K < w.A[j].K })
	for _, r := range d.Removes {
		ids := make([][]byte, len(r.IDs))
		for i, id := range r.IDs {
			ids[i] = id.Bytes()
		}
		sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i], ids[j]) < 0 })
		w.R = append(w.R, wireRemove{K: r.Key, IDs: ids})
	}
	sort.Slice(w.R, func(i, j int) bool { return w.R[i].K < w.R[j].K })
	for i := range w.A {
		if w.A[i].V == nil {
			w.A[i].V = []byte{}
		}
	}
	raw, err := encMode.Marshal(w)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("crdt: encode delta: %w", err)
	}
	c, err := blockCid(raw)
	if err != nil {
		return cid.Undef, nil, err
	}
	return c, raw, nil
}

func blockCid(raw []byte) (cid.Cid, error) {
	h, err := mh.Sum(raw, mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, fmt.Errorf("crdt: hash block: %w", err)
	}
	return cid.NewCidV1(CodecDagCBOR, h), nil
}

// verifyBlock checks that raw hashes to c.
func verifyBlock(c cid.Cid, raw []byte) error {
	got, err := c.Prefix().Sum(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBlockMismatch, err)
	}
	if !got.Equals(c) {
		return ErrBlockMismatch
	}
	return nil
}

// DecodeDelta parses and checks a delta block against lim. Every error
// wraps ErrInvalidDelta. It checks the schema, the version, the limits,
// that keys are unique in Puts and in Removes, that links are unique, and
// that the priority is consistent with having links (>= 2 with links,
// exactly 1 without), and that lim.ValidateValue (if set) accepts every
// put's value (its error is then wrapped too, with ErrInvalidValue).
func DecodeDelta(raw []byte, lim Limits) (*Delta, error) {
	if lim.MaxBlockSize > 0 && len(raw) > lim.MaxBlockSize {
		return nil, fmt.Errorf("%w: block of %d bytes exceeds %d", ErrInvalidDelta, len(raw), lim.MaxBlockSize)
	}
	var w wireDelta
	if err := decMode.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDelta, err)
	}
	if w.V != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidDelta, w.V)
	}
	if lim.MaxLinks > 0 && len(w.L) > lim.MaxLinks {
		return nil, fmt.Errorf("%w: %d links exceed %d", ErrInvalidDelta, len(w.L), lim.MaxLinks)
	}
	d := &Delta{Priority: w.P}
	if len(w.L) == 0 && w.P != 1 {
		return nil, fmt.Errorf("%w: priority %d without links (want 1)", ErrInvalidDelta, w.P)
	}
	if len(w.L) > 0 && w.P < 2 {
		return nil, fmt.Errorf("%w: priority %d with links", ErrInvalidDelta, w.P)
	}
	seen := make(map[string]struct{}, len(w.L))
	for _, t := range w.L {
		c, err := tagLink(t)
		if err != nil {
			return nil, fmt.Errorf("%w: link: %v", ErrInvalidDelta, err)
		}
		if _, dup := seen[c.KeyString()]; dup {
			return nil, fmt.Errorf("%w: duplicate link %s", ErrInvalidDelta, c)
		}
		seen[c.KeyString()] = struct{}{}
		d.Links = append(d.Links, c)
	}
	keys := make(map[string]struct{}, len(w.A))
	for _, kv := range w.A {
		if err := checkKey(kv.K, lim); err != nil {
			return nil, err
		}
		if lim.MaxValueSize > 0 && len(kv.V) > lim.MaxValueSize {
			return nil, fmt.Errorf("%w: value of %d bytes exceeds %d", ErrInvalidDelta, len(kv.V), lim.MaxValueSize)
		}
		if _, dup := keys[kv.K]; dup {
			return nil, fmt.Errorf("%w: duplicate put of key %q", ErrInvalidDelta, kv.K)
		}
		keys[kv.K] = struct{}{}
		v := kv.V
		if v == nil {
			v = []byte{}
		}
		decoded, err := lim.validateValue(kv.K, v)
		if err != nil {
			return nil, fmt.Errorf("%w: put: %w", ErrInvalidDelta, err)
		}
		d.Puts = append(d.Puts, KV{Key: kv.K, Value: v, decoded: decoded})
	}
	clear(keys)
	for _, r := range w.R {
		if err := checkKey(r.K, lim); err != nil {
			return nil, err
		}
		if _, dup := keys[r.K]; dup {
			return nil, fmt.Errorf("%w: duplicate remove of key %q", ErrInvalidDelta, r.K)
		}
		keys[r.K] = struct{}{}
		if len(r.IDs) == 0 {
			return nil, fmt.Errorf("%w: empty remove of key %q", ErrInvalidDelta, r.K)
		}
		rm := Remove{Key: r.K, IDs: make([]cid.Cid, 0, len(r.IDs))}
		for _, b := range r.IDs {
			c, err := castCid(b)
			if err != nil {
				return nil, fmt.Errorf("%w: element id: %v", ErrInvalidDelta, err)
			}
			rm.IDs = append(rm.IDs, c)
		}
		d.Removes = append(d.Removes, rm)
	}
	return d, nil
}

// checkKey accepts the canonical string form of a ds.Key ("/a/b").
func checkKey(k string, lim Limits) error {
	if lim.MaxKeySize > 0 && len(k) > lim.MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidDelta, len(k), lim.MaxKeySize)
	}
	if k == "" || k[0] != '/' || cleanKey(k) != k {
		return fmt.Errorf("%w: key %q is not a clean datastore key", ErrInvalidDelta, truncate(k))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// EncodeMessage returns the broadcast message announcing heads.
func EncodeMessage(heads []cid.Cid) ([]byte, error) {
	w := wireMessage{V: wireVersion}
	for _, h := range heads {
		w.H = append(w.H, linkTag(h))
	}
	b, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("crdt: encode message: %w", err)
	}
	return b, nil
}

// DecodeMessage parses a broadcast message. It rejects (wrapping
// ErrInvalidMessage) malformed input, an unknown version, more than
// maxHeads heads (when maxHeads > 0), and duplicate heads.
func DecodeMessage(data []byte, maxHeads int) ([]cid.Cid, error) {
	if maxHeads > 0 && len(data) > 16+maxHeads*80 {
		return nil, fmt.Errorf("%w: %d bytes is too long for %d heads", ErrInvalidMessage, len(data), maxHeads)
	}
	var w wireMessage
	if err := decMode.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if w.V != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidMessage, w.V)
	}
	if maxHeads > 0 && len(w.H) > maxHeads {
		return nil, fmt.Errorf("%w: %d heads exceed %d", ErrInvalidMessage, len(w.H), maxHeads)
	}
	out := make([]cid.Cid, 0, len(w.H))
	seen := make(map[string]struct{}, len(w.H))
	for _, t := range w.H {
		c, err := tagLink(t)
		if err != nil {
			return nil, fmt.Errorf("%w: head: %v", ErrInvalidMessage, err)
		}
		if _, dup := seen[c.KeyString()]; dup {
			return nil, fmt.Errorf("%w: duplicate head %s", ErrInvalidMessage, c)
		}
		seen[c.KeyString()] = struct{}{}
		out = append(out, c)
	}
	return out, nil
}
