package pincluster

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The binary encoding of pins and metrics is CBOR in deterministic (core
// deterministic, RFC 8949 §4.2.1) mode: a map with small integer keys,
// zero values omitted, key 0 holding the encoding version. CIDs, peer IDs
// and multiaddrs are stored as their binary forms; times as Unix
// nanoseconds. Decoding refuses indefinite lengths, duplicate keys, more
// nesting, elements or bytes than a valid record can hold, and any record
// that does not pass Validate.

// EncodingVersion is the version written in every encoded Pin and Metric.
// Decoders refuse higher versions with ErrUnsupportedVersion.
const EncodingVersion = 1

// MaxEncodedPinSize bounds the size of one encoded pin; larger input is
// refused before decoding. A valid pin at every limit (MaxMetadataKeys
// full-size entries, MaxAllocations allocations and user allocations,
// MaxOrigins origins) encodes to under 200 KiB; the bound leaves room and
// lets two records fit in one 1 MiB CRDT delta block.
const MaxEncodedPinSize = 256 << 10

// MaxEncodedMetricSize bounds the size of one encoded metric.
const MaxEncodedMetricSize = 4 << 10

type pinWire struct {
	V         int               `cbor:"0,keyasint"`
	Cid       []byte            `cbor:"1,keyasint,omitempty"`
	Type      uint64            `cbor:"2,keyasint,omitempty"`
	Alloc     [][]byte          `cbor:"3,keyasint,omitempty"`
	MaxDepth  int               `cbor:"4,keyasint,omitempty"`
	Ref       []byte            `cbor:"5,keyasint,omitempty"`
	RMin      int               `cbor:"6,keyasint,omitempty"`
	RMax      int               `cbor:"7,keyasint,omitempty"`
	Name      string            `cbor:"8,keyasint,omitempty"`
	Mode      int               `cbor:"9,keyasint,omitempty"`
	ShardSize uint64            `cbor:"10,keyasint,omitempty"`
	UserAlloc [][]byte          `cbor:"11,keyasint,omitempty"`
	ExpireAt  int64             `cbor:"12,keyasint,omitempty"`
	Metadata  map[string]string `cbor:"13,keyasint,omitempty"`
	PinUpdate []byte            `cbor:"14,keyasint,omitempty"`
	Origins   [][]byte          `cbor:"15,keyasint,omitempty"`
	Timestamp int64             `cbor:"16,keyasint,omitempty"`
	Size      uint64            `cbor:"17,keyasint,omitempty"`
}

type metricWire struct {
	V             int    `cbor:"0,keyasint"`
	Name          string `cbor:"1,keyasint,omitempty"`
	Peer          []byte `cbor:"2,keyasint,omitempty"`
	Value         string `cbor:"3,keyasint,omitempty"`
	Weight        int64  `cbor:"4,keyasint,omitempty"`
	Partitionable bool   `cbor:"5,keyasint,omitempty"`
	ValidUntil    int64  `cbor:"6,keyasint,omitempty"`
}

var (
	cborEnc cbor.EncMode
	cborDec cbor.DecMode
)

func init() {
	var err error
	cborEnc, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	cborDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 2 * MaxAllocations,
		MaxMapPairs:      4 * MaxMetadataKeys,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
}

func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func peersToBytes(ps []peer.ID) [][]byte {
	if len(ps) == 0 {
		return nil
	}
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = []byte(p)
	}
	return out
}

func bytesToPeers(field string, bs [][]byte) ([]peer.ID, error) {
	return (*pinDecoder)(nil).bytesToPeers(field, bs)
}

func (d *pinDecoder) bytesToPeers(field string, bs [][]byte) ([]peer.ID, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]peer.ID, len(bs))
	for i, b := range bs {
		p, err := d.peerID(b)
		if err != nil {
			return nil, &ValidationError{Field: field, Err: ErrInvalidPin, Detail: fmt.Sprintf("entry %d: %v", i, err)}
		}
		out[i] = p
	}
	return out, nil
}

func cidBytes(c cid.Cid) []byte {
	if !c.Defined() {
		return nil
	}
	return c.Bytes()
}

func bytesToCid(field string, b []byte) (cid.Cid, error) {
	if len(b) == 0 {
		return cid.Undef, nil
	}
	n, c, err := cid.CidFromBytes(b)
	if err != nil {
		return cid.Undef, &ValidationError{Field: field, Err: ErrInvalidCID, Detail: err.Error()}
	}
	if n != len(b) {
		return cid.Undef, &ValidationError{Field: field, Err: ErrInvalidCID, Detail: "trailing bytes"}
	}
	return c, nil
}

// MarshalBinary encodes the pin in pincluster's deterministic CBOR form.
// Equal pins always encode to equal bytes.
func (p Pin) MarshalBinary() ([]byte, error) {
	w := pinWire{
		V:         EncodingVersion,
		Cid:       cidBytes(p.Cid),
		Type:      uint64(p.Type),
		Alloc:     peersToBytes(p.Allocations),
		MaxDepth:  p.MaxDepth,
		Ref:       cidBytes(p.Reference),
		RMin:      p.ReplicationMin,
		RMax:      p.ReplicationMax,
		Name:      p.Name,
		Mode:      int(p.Mode),
		ShardSize: p.ShardSize,
		UserAlloc: peersToBytes(p.UserAllocations),
		ExpireAt:  timeToNanos(p.ExpireAt),
		PinUpdate: cidBytes(p.PinUpdate),
		Timestamp: timeToNanos(p.Timestamp),
		Size:      p.Size,
	}
	if len(p.Metadata) > 0 {
		w.Metadata = p.Metadata
	}
	for _, o := range p.Origins {
		w.Origins = append(w.Origins, o.Bytes())
	}
	b, err := cborEnc.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("pincluster: encode pin %s: %w", p.Cid, err)
	}
	return b, nil
}

// UnmarshalBinary decodes a pin written by MarshalBinary. Malformed,
// oversized or invalid input returns an error wrapping ErrCorrupt or
// ErrInvalidPin (never a panic), and leaves p unchanged.
func (p *Pin) UnmarshalBinary(data []byte) error {
	q, err := decodePin(data)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

func decodePin(data []byte) (Pin, error) { return (*pinDecoder)(nil).decode(data) }

// pinDecoder decodes a stream of pin records (a listing of the state),
// reusing the peer IDs it has seen: the pins of a cluster name the same
// few peers over and over, so most of their allocations need neither a
// multihash check nor a copy. A nil *pinDecoder keeps nothing. It is not
// safe for concurrent use.
type pinDecoder struct {
	peers map[string]peer.ID // by their bytes; at most pinDecoderPeers
}

// pinDecoderPeers bounds the peer IDs a pinDecoder keeps.
const pinDecoderPeers = 256

// peerID returns the peer ID of b, checked as peer.IDFromBytes does.
func (d *pinDecoder) peerID(b []byte) (peer.ID, error) {
	if d != nil {
		if p, ok := d.peers[string(b)]; ok {
			return p, nil // the same bytes were checked before
		}
	}
	p, err := peer.IDFromBytes(b)
	if err == nil && d != nil && len(d.peers) < pinDecoderPeers {
		if d.peers == nil {
			d.peers = map[string]peer.ID{}
		}
		d.peers[string(p)] = p
	}
	return p, err
}

func (d *pinDecoder) decode(data []byte) (Pin, error) {
	if len(data) > MaxEncodedPinSize {
		return Pin{}, fmt.Errorf("%w: pin record of %d bytes exceeds %d", ErrCorrupt, len(data), MaxEncodedPinSize)
	}
	var w pinWire
	if !w.decodeFast(data) {
		// Not in MarshalBinary's form, or not valid: the general decoder
		// decides (w is on the heap only then).
		slow := new(pinWire)
		if err := cborDec.Unmarshal(data, slow); err != nil {
			return Pin{}, fmt.Errorf("%w: pin: %v", ErrCorrupt, err)
		}
		w = *slow
	}
	return d.pinFromWire(&w)
}

// pinFromWire checks and converts a decoded record. It copies what it
// keeps of w's byte strings.
func pinFromWire(w *pinWire) (Pin, error) { return (*pinDecoder)(nil).pinFromWire(w) }

func (d *pinDecoder) pinFromWire(w *pinWire) (Pin, error) {
	if w.V != EncodingVersion {
		if w.V > EncodingVersion {
			return Pin{}, fmt.Errorf("%w: pin version %d", ErrUnsupportedVersion, w.V)
		}
		return Pin{}, fmt.Errorf("%w: pin version %d", ErrCorrupt, w.V)
	}
	if w.Mode < 0 || w.Mode > int(PinModeDirect) {
		return Pin{}, &ValidationError{Field: "mode", Err: ErrUnknownMode, Detail: fmt.Sprintf("mode %d", w.Mode)}
	}
	p := Pin{
		Type:      PinType(w.Type),
		MaxDepth:  w.MaxDepth,
		Timestamp: nanosToTime(w.Timestamp),
		Size:      w.Size,
	}
	p.ReplicationMin, p.ReplicationMax = w.RMin, w.RMax
	p.Name, p.Mode, p.ShardSize = w.Name, PinMode(w.Mode), w.ShardSize
	p.ExpireAt = nanosToTime(w.ExpireAt)
	if len(w.Metadata) > 0 {
		p.Metadata = w.Metadata
	}
	var err error
	if p.Cid, err = bytesToCid("cid", w.Cid); err != nil {
		return Pin{}, err
	}
	if p.Reference, err = bytesToCid("reference", w.Ref); err != nil {
		return Pin{}, err
	}
	if p.PinUpdate, err = bytesToCid("pin_update", w.PinUpdate); err != nil {
		return Pin{}, err
	}
	if p.Allocations, err = d.bytesToPeers("allocations", w.Alloc); err != nil {
		return Pin{}, err
	}
	if p.UserAllocations, err = d.bytesToPeers("user_allocations", w.UserAlloc); err != nil {
		return Pin{}, err
	}
	if len(w.Origins) > MaxOrigins {
		return Pin{}, &ValidationError{Field: "origins", Err: ErrTooManyOrigins, Detail: fmt.Sprintf("%d origins", len(w.Origins))}
	}
	for i, b := range w.Origins {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return Pin{}, &ValidationError{Field: "origins", Err: ErrInvalidPin, Detail: fmt.Sprintf("origin %d: %v", i, err)}
		}
		p.Origins = append(p.Origins, a)
	}
	if err := p.Validate(); err != nil {
		return Pin{}, err
	}
	return p, nil
}

// MarshalBinary encodes the metric in deterministic CBOR. ReceivedAt is
// local information and is not encoded.
func (m Metric) MarshalBinary() ([]byte, error) {
	w := metricWire{
		V:             EncodingVersion,
		Name:          m.Name,
		Peer:          []byte(m.Peer),
		Value:         m.Value,
		Weight:        m.Weight,
		Partitionable: m.Partitionable,
		ValidUntil:    timeToNanos(m.ValidUntil),
	}
	b, err := cborEnc.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("pincluster: encode metric %s: %w", m.Name, err)
	}
	return b, nil
}

// MaxMetricNameLen is the longest metric name accepted by the decoder.
const MaxMetricNameLen = 128

// MaxMetricValueLen is the longest metric value accepted by the decoder.
const MaxMetricValueLen = 1024

// UnmarshalBinary decodes a metric written by MarshalBinary. Malformed or
// oversized input returns an error wrapping ErrCorrupt and leaves m
// unchanged.
func (m *Metric) UnmarshalBinary(data []byte) error {
	if len(data) > MaxEncodedMetricSize {
		return fmt.Errorf("%w: metric of %d bytes exceeds %d", ErrCorrupt, len(data), MaxEncodedMetricSize)
	}
	var w metricWire
	if err := cborDec.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: metric: %v", ErrCorrupt, err)
	}
	switch {
	case w.V > EncodingVersion:
		return fmt.Errorf("%w: metric version %d", ErrUnsupportedVersion, w.V)
	case w.V != EncodingVersion:
		return fmt.Errorf("%w: metric version %d", ErrCorrupt, w.V)
	case w.Name == "" || len(w.Name) > MaxMetricNameLen:
		return fmt.Errorf("%w: metric name of %d bytes", ErrCorrupt, len(w.Name))
	case len(w.Value) > MaxMetricValueLen:
		return fmt.Errorf("%w: metric value of %d bytes", ErrCorrupt, len(w.Value))
	}
	p, err := peer.IDFromBytes(w.Peer)
	if err != nil {
		return fmt.Errorf("%w: metric peer: %v", ErrCorrupt, err)
	}
	*m = Metric{
		Name:          w.Name,
		Peer:          p,
		Value:         w.Value,
		Weight:        w.Weight,
		Partitionable: w.Partitionable,
		ValidUntil:    nanosToTime(w.ValidUntil),
	}
	return nil
}

// JSON forms, with IPFS Cluster's field names, for the HTTP APIs and the
// state export format.

type jsonCid struct {
	Slash string `json:"/"`
}

func cidToJSON(c cid.Cid) *jsonCid {
	if !c.Defined() {
		return nil
	}
	return &jsonCid{Slash: c.String()}
}

func cidFromJSON(field string, j *jsonCid) (cid.Cid, error) {
	if j == nil || j.Slash == "" {
		return cid.Undef, nil
	}
	c, err := cid.Decode(j.Slash)
	if err != nil {
		return cid.Undef, &ValidationError{Field: field, Err: ErrInvalidCID, Detail: err.Error()}
	}
	return c, nil
}

type pinJSON struct {
	Cid             *jsonCid          `json:"cid"`
	Type            uint64            `json:"type"`
	Allocations     []peer.ID         `json:"allocations"`
	MaxDepth        int               `json:"max_depth"`
	Reference       *jsonCid          `json:"reference"`
	ReplicationMin  int               `json:"replication_factor_min"`
	ReplicationMax  int               `json:"replication_factor_max"`
	Name            string            `json:"name"`
	Mode            string            `json:"mode"`
	ShardSize       uint64            `json:"shard_size"`
	UserAllocations []peer.ID         `json:"user_allocations"`
	ExpireAt        time.Time         `json:"expire_at"`
	Metadata        map[string]string `json:"metadata"`
	PinUpdate       *jsonCid          `json:"pin_update"`
	Origins         []string          `json:"origins"`
	Timestamp       time.Time         `json:"timestamp"`
}

// MarshalJSON writes the pin with IPFS Cluster's field names (cid as
// {"/": "..."}, replication_factor_min, user_allocations, ...).
func (p Pin) MarshalJSON() ([]byte, error) {
	j := pinJSON{
		Cid:             cidToJSON(p.Cid),
		Type:            uint64(p.Type),
		Allocations:     p.Allocations,
		MaxDepth:        p.MaxDepth,
		Reference:       cidToJSON(p.Reference),
		ReplicationMin:  p.ReplicationMin,
		ReplicationMax:  p.ReplicationMax,
		Name:            p.Name,
		Mode:            p.Mode.String(),
		ShardSize:       p.ShardSize,
		UserAllocations: p.UserAllocations,
		ExpireAt:        p.ExpireAt,
		Metadata:        p.Metadata,
		PinUpdate:       cidToJSON(p.PinUpdate),
		Origins:         []string{},
		Timestamp:       p.Timestamp,
	}
	if j.Allocations == nil {
		j.Allocations = []peer.ID{}
	}
	for _, o := range p.Origins {
		j.Origins = append(j.Origins, o.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form written by MarshalJSON and validates the
// result; invalid input returns a *ValidationError or an error wrapping
// ErrCorrupt, and leaves p unchanged.
func (p *Pin) UnmarshalJSON(data []byte) error {
	var j pinJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("%w: pin json: %v", ErrCorrupt, err)
	}
	mode, err := ParsePinMode(j.Mode)
	if err != nil {
		return err
	}
	q := Pin{Type: PinType(j.Type), Allocations: j.Allocations, MaxDepth: j.MaxDepth, Timestamp: j.Timestamp}
	if q.Type == 0 {
		q.Type = DataType
	}
	q.ReplicationMin, q.ReplicationMax, q.Name, q.Mode = j.ReplicationMin, j.ReplicationMax, j.Name, mode
	q.ShardSize, q.UserAllocations, q.ExpireAt, q.Metadata = j.ShardSize, j.UserAllocations, j.ExpireAt, j.Metadata
	if len(q.Allocations) == 0 {
		q.Allocations = nil
	}
	if q.Cid, err = cidFromJSON("cid", j.Cid); err != nil {
		return err
	}
	if q.Reference, err = cidFromJSON("reference", j.Reference); err != nil {
		return err
	}
	if q.PinUpdate, err = cidFromJSON("pin_update", j.PinUpdate); err != nil {
		return err
	}
	if len(j.Origins) > MaxOrigins {
		return &ValidationError{Field: "origins", Err: ErrTooManyOrigins, Detail: fmt.Sprintf("%d origins", len(j.Origins))}
	}
	for i, s := range j.Origins {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return &ValidationError{Field: "origins", Err: ErrInvalidPin, Detail: fmt.Sprintf("origin %d: %v", i, err)}
		}
		q.Origins = append(q.Origins, a)
	}
	if err := q.Validate(); err != nil {
		return err
	}
	*p = q
	return nil
}

type metricJSON struct {
	Name          string  `json:"name"`
	Peer          peer.ID `json:"peer"`
	Value         string  `json:"value"`
	Weight        int64   `json:"weight"`
	Partitionable bool    `json:"partitionable"`
	Expire        int64   `json:"expire"`
	Valid         bool    `json:"valid"`
}

// MarshalJSON writes the metric with IPFS Cluster's field names (expire in
// Unix nanoseconds).
func (m Metric) MarshalJSON() ([]byte, error) {
	return json.Marshal(metricJSON{
		Name: m.Name, Peer: m.Peer, Value: m.Value, Weight: m.Weight,
		Partitionable: m.Partitionable, Expire: timeToNanos(m.ValidUntil), Valid: m.Valid(time.Now()),
	})
}

// UnmarshalJSON reads the form written by MarshalJSON.
func (m *Metric) UnmarshalJSON(data []byte) error {
	var j metricJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("%w: metric json: %v", ErrCorrupt, err)
	}
	*m = Metric{Name: j.Name, Peer: j.Peer, Value: j.Value, Weight: j.Weight,
		Partitionable: j.Partitionable, ValidUntil: nanosToTime(j.Expire)}
	return nil
}
