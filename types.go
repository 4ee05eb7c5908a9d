package pincluster

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Limits on user-supplied pin fields. A Pin that exceeds them is refused by
// Validate (and therefore by Cluster.Pin, the APIs and the decoder of pins
// received from other peers) with a *ValidationError.
const (
	// MaxNameLen is the longest pin name accepted, in bytes (the IPFS
	// Pinning Service API allows 255 characters).
	MaxNameLen = 255
	// MaxMetadataKeys is the largest number of metadata entries on one pin.
	MaxMetadataKeys = 64
	// MaxMetadataKeyLen is the longest metadata key, in bytes.
	MaxMetadataKeyLen = 128
	// MaxMetadataValueLen is the longest metadata value, in bytes.
	MaxMetadataValueLen = 1024
	// MaxOrigins is the largest number of origin multiaddresses on one pin
	// (the IPFS Pinning Service API allows 20).
	MaxOrigins = 20
	// MaxAllocations is the largest number of peers a pin may be allocated
	// to or restricted to by the user.
	MaxAllocations = 1024
	// MaxMaxDepth is the deepest bounded pin depth accepted; deeper pins
	// must be fully recursive (MaxDepth -1).
	MaxMaxDepth = 1 << 20
)

// PinType says what a Pin refers to. Only DataType pins are created by
// pincluster today; the other values are kept so that pins exported by IPFS
// Cluster (which shards large DAGs) can be read and listed.
type PinType uint64

// The pin types, with the same numeric values as IPFS Cluster.
const (
	// BadType is the zero value: not a valid pin type.
	BadType PinType = 1 << iota
	// DataType is a regular pin of a DAG: the default.
	DataType
	// MetaType is IPFS Cluster's metadata pin of a sharded DAG.
	MetaType
	// ClusterDAGType is IPFS Cluster's pin of the DAG listing shards.
	ClusterDAGType
	// ShardType is IPFS Cluster's pin of one shard.
	ShardType
)

// String returns the IPFS Cluster name of the pin type.
func (t PinType) String() string {
	switch t {
	case DataType:
		return "pin"
	case MetaType:
		return "meta-pin"
	case ClusterDAGType:
		return "clusterdag-pin"
	case ShardType:
		return "shard-pin"
	default:
		return "bad-type"
	}
}

// PinMode says how deep a pin holds its DAG.
type PinMode int

const (
	// PinModeRecursive pins the root and everything below it (up to
	// Pin.MaxDepth when that is positive). The zero value and the default.
	PinModeRecursive PinMode = iota
	// PinModeDirect pins the root block only.
	PinModeDirect
)

// String returns "recursive" or "direct".
func (m PinMode) String() string {
	switch m {
	case PinModeRecursive:
		return "recursive"
	case PinModeDirect:
		return "direct"
	default:
		return fmt.Sprintf("pinmode(%d)", int(m))
	}
}

// ParsePinMode parses "recursive" (or "") and "direct". Anything else
// returns an error wrapping ErrInvalidPin.
func ParsePinMode(s string) (PinMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "recursive":
		return PinModeRecursive, nil
	case "direct":
		return PinModeDirect, nil
	}
	return 0, &ValidationError{Field: "mode", Err: ErrUnknownMode, Detail: fmt.Sprintf("%q is not recursive or direct", s)}
}

// PinOptions are the user-chosen properties of a pin.
type PinOptions struct {
	// ReplicationMin is the minimum number of peers that must hold the
	// pin; fewer available peers make Pin fail. 0 means the cluster
	// default; -1 means every peer (then ReplicationMax must be -1 or 0).
	ReplicationMin int
	// ReplicationMax is the number of peers the allocator aims for. 0
	// means the cluster default; -1 means every peer.
	ReplicationMax int
	// Name is a human name for the pin, at most MaxNameLen bytes of UTF-8.
	Name string
	// Mode is recursive (default) or direct.
	Mode PinMode
	// ShardSize is kept for compatibility with IPFS Cluster; pincluster
	// does not shard.
	ShardSize uint64
	// UserAllocations are peers that must be tried first, in order. At
	// most ReplicationMax of them when ReplicationMax is positive.
	UserAllocations []peer.ID
	// ExpireAt, when not zero, is when the cluster unpins the pin.
	ExpireAt time.Time
	// Metadata holds user key/values: at most MaxMetadataKeys entries,
	// keys at most MaxMetadataKeyLen bytes, values at most
	// MaxMetadataValueLen bytes.
	Metadata map[string]string
	// PinUpdate, when defined, names an existing pin this one replaces:
	// peers allocated to it fetch only the difference.
	PinUpdate cid.Cid
	// Origins are multiaddresses (with /p2p/) of peers known to hold the
	// data; the IPFS node connects to them before pinning. At most
	// MaxOrigins.
	Origins []ma.Multiaddr
}

// Pin is one entry of the shared pinset: a CID, the options it was pinned
// with, and the peers it is allocated to.
type Pin struct {
	PinOptions
	// Cid is the root of the pinned DAG.
	Cid cid.Cid
	// Type is DataType for every pin pincluster creates.
	Type PinType
	// Allocations are the peers that should hold the pin. Empty with
	// ReplicationMax -1 means every peer.
	Allocations []peer.ID
	// MaxDepth is -1 for a fully recursive pin, 0 for a direct pin and n
	// for a recursive pin limited to n levels below the root.
	MaxDepth int
	// Reference is the CID of a related pin (IPFS Cluster's meta/shard
	// pins); undefined for data pins.
	Reference cid.Cid
	// Timestamp is when the pin was made (set by Cluster.Pin).
	Timestamp time.Time
	// Size is the DAG's size in bytes as the allocating peer's IPFS node
	// told it (DAGSizer) when it chose the allocations, or 0 when unknown
	// (no DAGSizer, the DAG not complete on that node, or no allocation:
	// replication -1). Each holder subtracts it, less what it has
	// fetched, from the free space it publishes while the pin is queued
	// or in progress, without asking its own node. Kept in pincluster's
	// binary encoding only, not in IPFS Cluster's JSON.
	Size uint64
}

// NewPin returns a Pin of c with the given options, DataType, and MaxDepth
// set from the mode (-1 for recursive, 0 for direct).
func NewPin(c cid.Cid, opts PinOptions) Pin {
	p := Pin{PinOptions: opts, Cid: c, Type: DataType, MaxDepth: -1}
	if opts.Mode == PinModeDirect {
		p.MaxDepth = 0
	}
	return p
}

// Defined reports whether the pin has a CID.
func (p Pin) Defined() bool { return p.Cid.Defined() }

// IsRemote reports whether the pin is allocated to some peers but not to
// id. A pin allocated everywhere (no allocations, replication -1) is never
// remote.
func (p Pin) IsRemote(id peer.ID) bool {
	if p.IsPinEverywhere() {
		return false
	}
	return !slices.Contains(p.Allocations, id)
}

// IsAllocatedTo reports whether id should hold the pin.
func (p Pin) IsAllocatedTo(id peer.ID) bool { return !p.IsRemote(id) }

// IsPinEverywhere reports whether the pin is meant for every peer.
func (p Pin) IsPinEverywhere() bool {
	return p.ReplicationMin == -1 && p.ReplicationMax == -1
}

// Expired reports whether the pin has an expiry time at or before now.
func (p Pin) Expired(now time.Time) bool {
	return !p.ExpireAt.IsZero() && !now.Before(p.ExpireAt)
}

// Clone returns a deep copy of the pin: its slices and map are not shared.
func (p Pin) Clone() Pin {
	q := p
	q.UserAllocations = slices.Clone(p.UserAllocations)
	q.Allocations = slices.Clone(p.Allocations)
	q.Origins = slices.Clone(p.Origins)
	if p.Metadata != nil {
		q.Metadata = make(map[string]string, len(p.Metadata))
		for k, v := range p.Metadata {
			q.Metadata[k] = v
		}
	}
	return q
}

// Equal reports whether two pins hold the same values (allocations in the
// same order, times at the same instant).
func (p Pin) Equal(q Pin) bool {
	if !p.Cid.Equals(q.Cid) || p.Type != q.Type || p.MaxDepth != q.MaxDepth ||
		!cidEqual(p.Reference, q.Reference) || !p.Timestamp.Equal(q.Timestamp) || p.Size != q.Size {
		return false
	}
	return p.PinOptions.Equal(q.PinOptions) && slices.Equal(p.Allocations, q.Allocations)
}

// Equal reports whether two sets of options hold the same values.
func (o PinOptions) Equal(q PinOptions) bool {
	if o.ReplicationMin != q.ReplicationMin || o.ReplicationMax != q.ReplicationMax ||
		o.Name != q.Name || o.Mode != q.Mode || o.ShardSize != q.ShardSize ||
		!o.ExpireAt.Equal(q.ExpireAt) || !cidEqual(o.PinUpdate, q.PinUpdate) ||
		!slices.Equal(o.UserAllocations, q.UserAllocations) || len(o.Metadata) != len(q.Metadata) ||
		len(o.Origins) != len(q.Origins) {
		return false
	}
	for k, v := range o.Metadata {
		if w, ok := q.Metadata[k]; !ok || w != v {
			return false
		}
	}
	for i := range o.Origins {
		if !o.Origins[i].Equal(q.Origins[i]) {
			return false
		}
	}
	return true
}

func cidEqual(a, b cid.Cid) bool {
	if !a.Defined() || !b.Defined() {
		return a.Defined() == b.Defined()
	}
	return a.Equals(b)
}

// Validate checks the options against the documented limits. It returns a
// *ValidationError (which wraps ErrInvalidPin and a specific sentinel) for
// the first problem found.
func (o PinOptions) Validate() error {
	switch {
	case o.ReplicationMin < -1 || o.ReplicationMax < -1:
		return &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("min %d, max %d: below -1", o.ReplicationMin, o.ReplicationMax)}
	case (o.ReplicationMin == -1) != (o.ReplicationMax == -1) && o.ReplicationMin != 0 && o.ReplicationMax != 0:
		return &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("min %d, max %d: -1 (everywhere) must be used for both", o.ReplicationMin, o.ReplicationMax)}
	case o.ReplicationMax > 0 && o.ReplicationMin > o.ReplicationMax:
		return &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("min %d is greater than max %d", o.ReplicationMin, o.ReplicationMax)}
	}
	if len(o.Name) > MaxNameLen {
		return &ValidationError{Field: "name", Err: ErrNameTooLong,
			Detail: fmt.Sprintf("%d bytes, limit %d", len(o.Name), MaxNameLen)}
	}
	if !utf8.ValidString(o.Name) {
		return &ValidationError{Field: "name", Err: ErrInvalidPin, Detail: "not valid UTF-8"}
	}
	if o.Mode != PinModeRecursive && o.Mode != PinModeDirect {
		return &ValidationError{Field: "mode", Err: ErrUnknownMode, Detail: o.Mode.String()}
	}
	if len(o.UserAllocations) > MaxAllocations ||
		(o.ReplicationMax > 0 && len(o.UserAllocations) > o.ReplicationMax) {
		return &ValidationError{Field: "user_allocations", Err: ErrTooManyAllocations,
			Detail: fmt.Sprintf("%d user allocations for replication max %d", len(o.UserAllocations), o.ReplicationMax)}
	}
	for i, p := range o.UserAllocations {
		if p == "" {
			return &ValidationError{Field: "user_allocations", Err: ErrInvalidPin, Detail: fmt.Sprintf("entry %d is empty", i)}
		}
	}
	if err := validateMetadata(o.Metadata); err != nil {
		return err
	}
	if len(o.Origins) > MaxOrigins {
		return &ValidationError{Field: "origins", Err: ErrTooManyOrigins,
			Detail: fmt.Sprintf("%d origins, limit %d", len(o.Origins), MaxOrigins)}
	}
	for i, a := range o.Origins {
		if a == nil || len(a.Bytes()) == 0 {
			return &ValidationError{Field: "origins", Err: ErrInvalidPin, Detail: fmt.Sprintf("origin %d is empty", i)}
		}
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return &ValidationError{Field: "metadata", Err: ErrMetadataTooLarge,
			Detail: fmt.Sprintf("%d keys, limit %d", len(md), MaxMetadataKeys)}
	}
	for k, v := range md {
		if k == "" || len(k) > MaxMetadataKeyLen {
			return &ValidationError{Field: "metadata", Err: ErrMetadataTooLarge,
				Detail: fmt.Sprintf("key of %d bytes, limit 1..%d", len(k), MaxMetadataKeyLen)}
		}
		if len(v) > MaxMetadataValueLen {
			return &ValidationError{Field: "metadata", Err: ErrMetadataTooLarge,
				Detail: fmt.Sprintf("value of key %q has %d bytes, limit %d", k, len(v), MaxMetadataValueLen)}
		}
	}
	return nil
}

// Validate checks a whole pin: a defined CID, a known type, a MaxDepth
// consistent with the mode, allocations within limits, and the options. It
// returns a *ValidationError wrapping ErrInvalidPin.
func (p Pin) Validate() error {
	if !p.Cid.Defined() {
		return &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	switch p.Type {
	case DataType, MetaType, ClusterDAGType, ShardType:
	default:
		return &ValidationError{Field: "type", Err: ErrInvalidPin, Detail: fmt.Sprintf("unknown type %d", uint64(p.Type))}
	}
	switch {
	case p.MaxDepth < -1 || p.MaxDepth > MaxMaxDepth:
		return &ValidationError{Field: "max_depth", Err: ErrInvalidPin, Detail: fmt.Sprintf("%d is outside -1..%d", p.MaxDepth, MaxMaxDepth)}
	case p.Mode == PinModeDirect && p.MaxDepth != 0:
		return &ValidationError{Field: "max_depth", Err: ErrInvalidPin, Detail: fmt.Sprintf("direct pin with max depth %d", p.MaxDepth)}
	case p.Mode == PinModeRecursive && p.MaxDepth == 0:
		return &ValidationError{Field: "max_depth", Err: ErrInvalidPin, Detail: "recursive pin with max depth 0"}
	}
	if len(p.Allocations) > MaxAllocations {
		return &ValidationError{Field: "allocations", Err: ErrTooManyAllocations,
			Detail: fmt.Sprintf("%d allocations, limit %d", len(p.Allocations), MaxAllocations)}
	}
	return p.PinOptions.Validate()
}

// TrackerStatus is the state of a pin on one peer. The values are bit flags
// so that a filter can hold several (see Match); the names are IPFS
// Cluster's.
type TrackerStatus int

// The tracker statuses. TrackerStatusError and TrackerStatusQueued are
// filters that match several statuses; they are never reported.
const (
	// TrackerStatusUndefined is the zero value: no status known.
	TrackerStatusUndefined TrackerStatus = 1 << iota
	// TrackerStatusClusterError: the peer could not be asked.
	TrackerStatusClusterError
	// TrackerStatusPinError: pinning failed (see PinInfo.Error).
	TrackerStatusPinError
	// TrackerStatusUnpinError: unpinning failed.
	TrackerStatusUnpinError
	// TrackerStatusPinned: the IPFS node holds the pin.
	TrackerStatusPinned
	// TrackerStatusPinning: the pin is in progress.
	TrackerStatusPinning
	// TrackerStatusUnpinning: the unpin is in progress.
	TrackerStatusUnpinning
	// TrackerStatusUnpinned: the IPFS node does not hold it, as wanted.
	TrackerStatusUnpinned
	// TrackerStatusRemote: the pin is allocated to other peers.
	TrackerStatusRemote
	// TrackerStatusPinQueued: waiting for a pin worker.
	TrackerStatusPinQueued
	// TrackerStatusUnpinQueued: waiting for an unpin worker.
	TrackerStatusUnpinQueued
	// TrackerStatusSharded: IPFS Cluster's sharded pins; never reported.
	TrackerStatusSharded
	// TrackerStatusUnexpectedlyUnpinned: allocated here, pinned before, now
	// missing from the IPFS node.
	TrackerStatusUnexpectedlyUnpinned
)

const (
	// TrackerStatusError matches every error status.
	TrackerStatusError = TrackerStatusClusterError | TrackerStatusPinError | TrackerStatusUnpinError
	// TrackerStatusQueued matches both queued statuses.
	TrackerStatusQueued = TrackerStatusPinQueued | TrackerStatusUnpinQueued
)

var trackerStatusNames = []struct {
	s    TrackerStatus
	name string
}{
	{TrackerStatusUndefined, "undefined"},
	{TrackerStatusClusterError, "cluster_error"},
	{TrackerStatusPinError, "pin_error"},
	{TrackerStatusUnpinError, "unpin_error"},
	{TrackerStatusError, "error"},
	{TrackerStatusPinned, "pinned"},
	{TrackerStatusPinning, "pinning"},
	{TrackerStatusUnpinning, "unpinning"},
	{TrackerStatusUnpinned, "unpinned"},
	{TrackerStatusRemote, "remote"},
	{TrackerStatusPinQueued, "pin_queued"},
	{TrackerStatusUnpinQueued, "unpin_queued"},
	{TrackerStatusQueued, "queued"},
	{TrackerStatusSharded, "sharded"},
	{TrackerStatusUnexpectedlyUnpinned, "unexpectedly_unpinned"},
}

// String returns the IPFS Cluster name of a single status or of the
// TrackerStatusError/TrackerStatusQueued filters; a combination of other
// flags is written as names joined by commas.
func (s TrackerStatus) String() string {
	for _, n := range trackerStatusNames {
		if n.s == s {
			return n.name
		}
	}
	var parts []string
	for _, n := range trackerStatusNames {
		if n.s&(n.s-1) == 0 && s&n.s != 0 { // single flags only
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("trackerstatus(%d)", int(s))
	}
	return strings.Join(parts, ",")
}

// ParseTrackerStatus parses one status name or a comma-separated list of
// them into a filter. An unknown name returns an error wrapping
// ErrInvalidStatus.
func ParseTrackerStatus(s string) (TrackerStatus, error) {
	var out TrackerStatus
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		found := false
		for _, n := range trackerStatusNames {
			if n.name == part {
				out |= n.s
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: %q", ErrInvalidStatus, part)
		}
	}
	return out, nil
}

// Match reports whether s is one of the statuses in filter. A zero filter
// matches everything.
func (s TrackerStatus) Match(filter TrackerStatus) bool {
	return filter == 0 || s&filter != 0
}

// IsError reports whether s is an error status.
func (s TrackerStatus) IsError() bool { return s&TrackerStatusError != 0 }

// MarshalText writes the status name.
func (s TrackerStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a status name or list.
func (s *TrackerStatus) UnmarshalText(b []byte) error {
	v, err := ParseTrackerStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// IPFSPinStatus is how the IPFS node holds a CID.
type IPFSPinStatus int

// The IPFS pin statuses.
const (
	// IPFSPinStatusBug is the zero value: never reported.
	IPFSPinStatusBug IPFSPinStatus = iota
	// IPFSPinStatusError: the node could not be asked.
	IPFSPinStatusError
	// IPFSPinStatusDirect: pinned alone.
	IPFSPinStatusDirect
	// IPFSPinStatusRecursive: pinned with its DAG.
	IPFSPinStatusRecursive
	// IPFSPinStatusIndirect: held as part of another recursive pin.
	IPFSPinStatusIndirect
	// IPFSPinStatusUnpinned: not pinned.
	IPFSPinStatusUnpinned
)

// IsPinned reports whether the status holds the CID as asked by maxDepth:
// -1 (recursive) needs a recursive pin, 0 (direct) any direct or recursive
// pin, n > 0 a recursive pin.
func (s IPFSPinStatus) IsPinned(maxDepth int) bool {
	switch {
	case maxDepth == 0:
		return s == IPFSPinStatusDirect || s == IPFSPinStatusRecursive
	default:
		return s == IPFSPinStatusRecursive
	}
}

// String returns the Kubo name of the status.
func (s IPFSPinStatus) String() string {
	switch s {
	case IPFSPinStatusError:
		return "error"
	case IPFSPinStatusDirect:
		return "direct"
	case IPFSPinStatusRecursive:
		return "recursive"
	case IPFSPinStatusIndirect:
		return "indirect"
	case IPFSPinStatusUnpinned:
		return "unpinned"
	default:
		return "bug"
	}
}

// ParseIPFSPinStatus parses Kubo's pin type names ("direct", "recursive",
// "indirect", "unpinned"); anything else is IPFSPinStatusBug.
func ParseIPFSPinStatus(s string) IPFSPinStatus {
	switch s {
	case "direct":
		return IPFSPinStatusDirect
	case "recursive":
		return IPFSPinStatusRecursive
	case "indirect":
		return IPFSPinStatusIndirect
	case "unpinned":
		return IPFSPinStatusUnpinned
	case "error":
		return IPFSPinStatusError
	}
	return IPFSPinStatusBug
}

// IPFSPinInfo is one entry of the IPFS node's pin listing.
type IPFSPinInfo struct {
	// Cid is the pinned root.
	Cid cid.Cid
	// Type is direct, recursive or indirect.
	Type IPFSPinStatus
	// Name is the pin's name on the IPFS node, if it has one.
	Name string
}

// PinProgress reports how much of a pin's DAG has been fetched so far.
type PinProgress struct {
	// Blocks is the number of blocks fetched or found locally.
	Blocks uint64
	// Bytes is their total size.
	Bytes uint64
}

// PinInfoShort is the status of one pin on one peer.
type PinInfoShort struct {
	// PeerName is the reporting peer's human name.
	PeerName string
	// IPFS is the peer ID of the reporting peer's IPFS node.
	IPFS peer.ID
	// IPFSAddresses are that IPFS node's addresses.
	IPFSAddresses []ma.Multiaddr
	// Status is the tracker status.
	Status TrackerStatus
	// TS is when the status was last updated.
	TS time.Time
	// Error explains an error status.
	Error string
	// AttemptCount is how many times the current operation was tried.
	AttemptCount int
	// PriorityPin is true while the operation is in the priority queue.
	PriorityPin bool
}

// PinInfo is the status of one pin on one peer, with the pin's main
// attributes.
type PinInfo struct {
	PinInfoShort
	// Cid is the pin's root.
	Cid cid.Cid
	// Name is the pin's name.
	Name string
	// Peer is the peer this status is about.
	Peer peer.ID
	// Allocations are the pin's allocations.
	Allocations []peer.ID
	// Origins are the pin's origins.
	Origins []ma.Multiaddr
	// Created is the pin's timestamp.
	Created time.Time
	// Metadata is the pin's metadata.
	Metadata map[string]string
}

// GlobalPinInfo is the status of one pin on every peer that was asked.
type GlobalPinInfo struct {
	// Cid is the pin's root.
	Cid cid.Cid
	// Name is the pin's name.
	Name string
	// Allocations are the pin's allocations.
	Allocations []peer.ID
	// Origins are the pin's origins.
	Origins []ma.Multiaddr
	// Created is the pin's timestamp.
	Created time.Time
	// Metadata is the pin's metadata.
	Metadata map[string]string
	// PeerMap holds each peer's status.
	PeerMap map[peer.ID]PinInfoShort
}

// Add merges a peer's PinInfo into the global view.
func (g *GlobalPinInfo) Add(pi PinInfo) {
	if !g.Cid.Defined() {
		g.Cid, g.Name, g.Allocations, g.Origins, g.Created, g.Metadata =
			pi.Cid, pi.Name, pi.Allocations, pi.Origins, pi.Created, pi.Metadata
	}
	if g.PeerMap == nil {
		g.PeerMap = make(map[peer.ID]PinInfoShort)
	}
	g.PeerMap[pi.Peer] = pi.PinInfoShort
}

// Match reports whether any peer's status is in filter.
func (g GlobalPinInfo) Match(filter TrackerStatus) bool {
	for _, s := range g.PeerMap {
		if s.Status.Match(filter) {
			return true
		}
	}
	return filter == 0
}

// Metric is one measurement a peer publishes about itself, such as its free
// space or its number of pins. Metrics expire: a peer whose metrics are all
// expired is considered gone.
type Metric struct {
	// Name identifies the metric ("freespace", "numpin", "tag:region", "ping").
	Name string
	// Peer is the peer the metric describes.
	Peer peer.ID
	// Value is the measurement as text (a number for ordering metrics).
	Value string
	// Weight is the numeric value used to order peers; for ordering
	// metrics it is Value parsed.
	Weight int64
	// Partitionable is true for metrics that split peers into groups
	// (tags) rather than order them.
	Partitionable bool
	// ValidUntil is when the metric expires.
	ValidUntil time.Time
	// ReceivedAt is when this peer received it (set by the monitor).
	ReceivedAt time.Time
}

// SetTTL sets ValidUntil to now + ttl.
func (m *Metric) SetTTL(ttl time.Duration) { m.ValidUntil = time.Now().Add(ttl) }

// Valid reports whether the metric is set and not expired at now.
func (m Metric) Valid(now time.Time) bool {
	return m.Name != "" && m.Peer != "" && now.Before(m.ValidUntil)
}

// Expired reports whether the metric's validity ended at or before now.
func (m Metric) Expired(now time.Time) bool { return !now.Before(m.ValidUntil) }

// MetricsSet groups metrics by name.
type MetricsSet map[string][]Metric

// Alert says that a peer's metric expired without being renewed.
type Alert struct {
	// Metric is the last metric received before it expired.
	Metric Metric
	// TriggeredAt is when the alert was raised.
	TriggeredAt time.Time
}

// IPFSID identifies the IPFS node a cluster peer uses.
type IPFSID struct {
	// ID is the IPFS node's peer ID.
	ID peer.ID
	// Addresses are its swarm addresses.
	Addresses []ma.Multiaddr
	// Error is set when the node could not be asked.
	Error string
}

// RepoStat is the IPFS node's storage usage.
type RepoStat struct {
	// RepoSize is the bytes used.
	RepoSize uint64
	// StorageMax is the configured maximum, in bytes.
	StorageMax uint64
	// NumObjects is the number of blocks stored.
	NumObjects uint64
}

// FreeSpace returns StorageMax - RepoSize, or 0 when the repository is
// full.
func (r RepoStat) FreeSpace() uint64 {
	if r.RepoSize >= r.StorageMax {
		return 0
	}
	return r.StorageMax - r.RepoSize
}

// ID describes a cluster peer.
type ID struct {
	// ID is the cluster peer's libp2p ID.
	ID peer.ID
	// Addresses are its libp2p addresses.
	Addresses []ma.Multiaddr
	// ClusterPeers are the peers it knows.
	ClusterPeers []peer.ID
	// ClusterPeersAddresses are the known addresses of the other cluster
	// peers, each with its /p2p/ suffix.
	ClusterPeersAddresses []ma.Multiaddr
	// Version is pincluster's version.
	Version string
	// Commit is the source revision, when known.
	Commit string
	// RPCProtocolVersion is the peer-to-peer protocol ID.
	RPCProtocolVersion string
	// Error is set when the peer could not be asked.
	Error string
	// IPFS identifies its IPFS node.
	IPFS IPFSID
	// PeerName is its human name.
	PeerName string
}

// NameMatch says how PinFilter.Name is compared with pin names.
type NameMatch int

const (
	// MatchExact requires equal names. The default.
	MatchExact NameMatch = iota
	// MatchIExact requires names equal ignoring case.
	MatchIExact
	// MatchPrefix requires the name to start with the filter.
	MatchPrefix
	// MatchPartial requires the name to contain the filter.
	MatchPartial
	// MatchIPartial requires the name to contain the filter, ignoring case.
	MatchIPartial
)

// PinFilter selects pins from the shared pinset (Cluster.Pins). Zero
// fields select everything.
type PinFilter struct {
	// Cids, when not empty, keeps only these CIDs.
	Cids []cid.Cid
	// Name, when not empty, keeps pins whose name matches it per Match.
	Name string
	// Match says how Name is compared. Default: MatchExact.
	Match NameMatch
	// Metadata keeps pins having every one of these key/value pairs.
	Metadata map[string]string
	// Before keeps pins made before this time (zero: no bound).
	Before time.Time
	// After keeps pins made after this time (zero: no bound).
	After time.Time
	// Status keeps pins whose status on this peer (its tracker: pinned,
	// remote, pin_error, ...) is in this filter (0: all statuses).
	// Cluster.Pins applies it; MatchPin, which sees only the pin, does not.
	Status TrackerStatus
}

// MatchPin reports whether p passes the filter's CID, name, metadata and
// time conditions.
func (f PinFilter) MatchPin(p Pin) bool {
	if len(f.Cids) > 0 && !slices.ContainsFunc(f.Cids, p.Cid.Equals) {
		return false
	}
	if f.Name != "" && !f.Match.matches(p.Name, f.Name) {
		return false
	}
	for k, v := range f.Metadata {
		if w, ok := p.Metadata[k]; !ok || w != v {
			return false
		}
	}
	if !f.Before.IsZero() && !p.Timestamp.Before(f.Before) {
		return false
	}
	if !f.After.IsZero() && !p.Timestamp.After(f.After) {
		return false
	}
	return true
}

func (m NameMatch) matches(name, filter string) bool {
	switch m {
	case MatchIExact:
		return strings.EqualFold(name, filter)
	case MatchPrefix:
		return strings.HasPrefix(name, filter)
	case MatchPartial:
		return strings.Contains(name, filter)
	case MatchIPartial:
		return strings.Contains(strings.ToLower(name), strings.ToLower(filter))
	default:
		return name == filter
	}
}

// StatusFilter selects pin statuses (Cluster.StatusAll).
type StatusFilter struct {
	// Status keeps pins whose status on at least one peer is in this
	// filter (0: all statuses).
	Status TrackerStatus
	// Cids, when not empty, asks only about these CIDs.
	Cids []cid.Cid
	// Local asks only this peer instead of every peer.
	Local bool
}
