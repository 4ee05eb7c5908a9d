package pincluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// PinAllocator chooses the peers that hold a pin from their metrics.
//
// The Cluster asks it only when a pin needs new peers. Re-pins first
// follow the re-pin rule, IPFS Cluster's with two differences (a lower
// ReplicationMax trims the kept allocations, and user allocations outside
// the current ones cause a new allocation, where IPFS Cluster keeps the
// current ones in both cases): when the pin already has allocations, as
// many of them are live (their peers publish metrics) as ReplicationMin
// asks, and every user allocation is among them, the current allocations
// are kept as they are — the dead ones too, since their data is still
// there and self-healing moves it when the peer is declared lost —
// trimmed to ReplicationMax, live ones first. Otherwise the live current
// peers are kept and the allocator's best candidates are added up to
// ReplicationMax.
//
// Allocate receives three disjoint groups of peers with their metrics
// (free space promised to recent allocations is subtracted, and peers
// whose known free space is below the pin's size are left out) and returns the eligible ones, best
// first; it never fails because too few peers are eligible. The Cluster
// trims the answer to ReplicationMax, user allocations first in the user's
// order, then current peers, then the rest in the allocator's order, and
// fails the pin with an *AllocationError when fewer than ReplicationMin
// are eligible. A PinAllocator must be deterministic: the same metrics
// give the same answer on every peer.
type PinAllocator interface {
	Component
	// Metrics lists the metric names the allocator uses, in order.
	Metrics() []string
	// Allocate returns peers for c, best first: current holds the metrics
	// of peers that already hold it, candidates those of the other
	// eligible peers, priority those of peers the user asked for. The
	// caller trims the result to the replication factors.
	Allocate(ctx context.Context, c cid.Cid, current, candidates, priority map[peer.ID]MetricsSet) ([]peer.ID, error)
}

// Defaults of BalancedConfig.
var defaultAllocateBy = []string{MetricTagPrefix + "group", MetricFreeSpace}

// BalancedConfig configures a BalancedAllocator. The zero value is usable.
type BalancedConfig struct {
	// AllocateBy lists the metrics the allocator partitions and orders
	// peers by, most significant first (see BalancedAllocator). Default:
	// ["tag:group", "freespace"], as IPFS Cluster.
	AllocateBy []string
	// LowerIsBetter names numeric metrics for which a lower weight is
	// better, besides MetricNumPin and MetricPinQueue which always are.
	// Default: none.
	LowerIsBetter []string
}

// BalancedAllocator is the default PinAllocator. It is safe for
// concurrent use. Its rules:
//
// BalancedAllocator.Allocate orders peers in three blocks, and the result
// is their concatenation:
//
//  1. priority peers (the user's allocations) that are eligible;
//  2. current peers (those already allocated) that are still alive — they
//     are kept whatever their free space, because the data is, or is being,
//     stored there;
//  3. the eligible candidates, in balanced order (below).
//
// A peer appearing in several maps counts in the first of priority,
// current, candidates where it qualifies (a user allocation that is full
// but already holds the pin is kept as a current peer). A peer is alive when its MetricsSet holds at least
// one valid (unexpired) metric. It is eligible when it is alive and, if
// MetricFreeSpace is among the allocator's metrics, it has a valid
// freespace metric with a positive weight: a full peer, or one whose free
// space is unknown, is never allocated. (The Cluster further requires
// free space of at least the pin's size when the size is known.)
//
// Balanced order. The names in BalancedConfig.AllocateBy are of two kinds:
//
//   - partitionable metrics (tags: the name starts with MetricTagPrefix, or
//     the metric has Partitionable set) split the peers into groups by the
//     metric's Value, level after level in their listed order — e.g. by
//     region, then by group inside a region; a peer without the metric
//     joins the group of the empty value;
//   - numeric metrics order the peers inside a group, compared one after
//     the other in their listed order. Direction: MetricFreeSpace higher
//     first; MetricNumPin and MetricPinQueue lower first, as are the names
//     in BalancedConfig.LowerIsBetter; any other numeric metric higher
//     first. A peer without a numeric metric comes after those with it.
//     Peers equal on every metric are ordered by a hash of the CID and
//     the peer ID (rendezvous hashing), so that equal peers share the pins
//     evenly yet each CID's order is fixed; the peer ID breaks the last
//     tie, so the order is total.
//
// Peers are then taken one at a time, greedily: at each partition level
// the group holding the fewest peers already chosen (counting the priority
// and current peers kept in blocks 1 and 2) is entered, ties going to the
// group whose best remaining peer is better, then to the smaller Value;
// inside the last level the best remaining peer is taken. With AllocateBy
// ["tag:region", "freespace"] and replication 3 over three regions, the
// first three peers are the emptiest peer of each region; a region that
// already holds a current allocation receives the next replica only after
// the others did. Blocks 1 and 2 are themselves in balanced order.
//
// The allocator is a pure function of its input: it keeps no state between
// calls and starts no goroutine.
type BalancedAllocator struct {
	allocateBy []string
	lower      map[string]bool
	useSpace   bool
	closed     atomic.Bool
}

var _ PinAllocator = (*BalancedAllocator)(nil)

// NewBalancedAllocator returns a balanced allocator. The configuration is
// copied; empty names in AllocateBy are ignored.
func NewBalancedAllocator(cfg BalancedConfig) *BalancedAllocator {
	by := cfg.AllocateBy
	if len(by) == 0 {
		by = defaultAllocateBy
	}
	a := &BalancedAllocator{lower: map[string]bool{MetricNumPin: true, MetricPinQueue: true}}
	for _, n := range by {
		if n != "" && !slices.Contains(a.allocateBy, n) {
			a.allocateBy = append(a.allocateBy, n)
		}
	}
	for _, n := range cfg.LowerIsBetter {
		a.lower[n] = true
	}
	a.useSpace = slices.Contains(a.allocateBy, MetricFreeSpace)
	return a
}

// Metrics implements PinAllocator: a copy of AllocateBy.
func (a *BalancedAllocator) Metrics() []string { return slices.Clone(a.allocateBy) }

// Shutdown implements Component. After it Allocate returns ErrClosed; a
// second call returns an error wrapping ErrClosed.
func (a *BalancedAllocator) Shutdown(context.Context) error {
	if a.closed.Swap(true) {
		return fmt.Errorf("pincluster: allocator: shutdown: %w", ErrClosed)
	}
	return nil
}

// Allocate implements PinAllocator with the balanced rules. It returns an
// error only after Shutdown (ErrClosed) or when ctx is done.
func (a *BalancedAllocator) Allocate(ctx context.Context, c cid.Cid, current, candidates, priority map[peer.ID]MetricsSet) ([]peer.ID, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("pincluster: allocate: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pincluster: allocate: %w", err)
	}
	now := time.Now()
	parts := a.partitionLevels(now, priority, current, candidates)
	seen := make(map[peer.ID]bool, len(current)+len(candidates)+len(priority))
	pick := func(set map[peer.ID]MetricsSet, keep func(MetricsSet) bool) []*allocPeer {
		var out []*allocPeer
		for p, ms := range set {
			if !seen[p] && keep(ms) {
				seen[p] = true
				out = append(out, a.newAllocPeer(c, p, ms, parts, now))
			}
		}
		return out
	}
	eligible := func(ms MetricsSet) bool { return a.eligible(ms, now) }
	prio := pick(priority, eligible)
	cur := pick(current, func(ms MetricsSet) bool { return alive(ms, now) })
	cand := pick(candidates, eligible)

	out := make([]peer.ID, 0, len(prio)+len(cur)+len(cand))
	var chosen []*allocPeer
	for _, block := range [][]*allocPeer{prio, cur, cand} {
		ordered := a.balance(block, chosen)
		for _, p := range ordered {
			out = append(out, p.id)
		}
		chosen = append(chosen, ordered...)
	}
	return out, nil
}

// alive reports whether ms holds a valid metric.
func alive(ms MetricsSet, now time.Time) bool {
	for _, ms := range ms {
		for _, m := range ms {
			if m.Valid(now) {
				return true
			}
		}
	}
	return false
}

func (a *BalancedAllocator) eligible(ms MetricsSet, now time.Time) bool {
	if !alive(ms, now) {
		return false
	}
	if a.useSpace {
		m, ok := latestValid(ms, MetricFreeSpace, now)
		return ok && m.Weight > 0
	}
	return true
}

// latestValid returns the valid metric of the name in ms that expires
// last.
func latestValid(ms MetricsSet, name string, now time.Time) (Metric, bool) {
	var best Metric
	ok := false
	for _, m := range ms[name] {
		if m.Valid(now) && (!ok || m.ValidUntil.After(best.ValidUntil)) {
			best, ok = m, true
		}
	}
	return best, ok
}

// allocPeer is a peer with the values the balanced order needs.
type allocPeer struct {
	id     peer.ID
	groups []string // one value per partition level
	keys   []int64  // one per numeric metric, already oriented: lower is better
	has    []bool   // whether the numeric metric is present
	tie    [sha256.Size]byte
}

// partitionLevels returns which of the allocator's metrics split peers
// into groups: tag names, and names for which some peer's valid metric is
// partitionable.
func (a *BalancedAllocator) partitionLevels(now time.Time, sets ...map[peer.ID]MetricsSet) map[string]bool {
	parts := make(map[string]bool)
	for _, name := range a.allocateBy {
		if IsTagMetric(name) {
			parts[name] = true
			continue
		}
	search:
		for _, set := range sets {
			for _, ms := range set {
				for _, m := range ms[name] {
					if m.Partitionable && m.Valid(now) {
						parts[name] = true
						break search
					}
				}
			}
		}
	}
	return parts
}

func (a *BalancedAllocator) newAllocPeer(c cid.Cid, id peer.ID, ms MetricsSet, parts map[string]bool, now time.Time) *allocPeer {
	p := &allocPeer{id: id, tie: sha256.Sum256(append(c.Bytes(), id...))}
	for _, name := range a.allocateBy {
		m, ok := latestValid(ms, name, now)
		if parts[name] {
			p.groups = append(p.groups, m.Value)
			continue
		}
		w := m.Weight
		if !a.lower[name] {
			w = -w // higher is better: negate so that lower sorts first
			if m.Weight == -1<<63 {
				w = 1<<63 - 1
			}
		}
		p.keys = append(p.keys, w)
		p.has = append(p.has, ok)
	}
	return p
}

// compare orders peers: present before missing, lower key first, then
// the per-CID tie-break (rendezvous hash of CID and peer: peers with equal
// metrics share the pins instead of the lowest peer ID taking them all),
// then peer ID.
func (p *allocPeer) compare(q *allocPeer) int {
	for i := range p.keys {
		if i >= len(q.keys) {
			break
		}
		if p.has[i] != q.has[i] {
			if p.has[i] {
				return -1
			}
			return 1
		}
		if p.keys[i] != q.keys[i] {
			if p.keys[i] < q.keys[i] {
				return -1
			}
			return 1
		}
	}
	if c := bytes.Compare(p.tie[:], q.tie[:]); c != 0 {
		return c
	}
	return strings.Compare(string(p.id), string(q.id))
}

// allocNode is one group of the partition tree.
type allocNode struct {
	value    string
	children []*allocNode // sorted by value; empty at the last level
	peers    []*allocPeer // leaf only: sorted best first
	next     int          // leaf only: index of the best remaining peer
	used     int          // peers already chosen in this group
}

// head returns the best remaining peer of the group, or nil.
func (n *allocNode) head() *allocPeer {
	if len(n.children) == 0 {
		if n.next < len(n.peers) {
			return n.peers[n.next]
		}
		return nil
	}
	var best *allocPeer
	for _, c := range n.children {
		if h := c.head(); h != nil && (best == nil || h.compare(best) < 0) {
			best = h
		}
	}
	return best
}

// take removes and returns the next peer of the group, entering at each
// level the least used child (then the one with the better head, then the
// smaller value).
func (n *allocNode) take() *allocPeer {
	n.used++
	if len(n.children) == 0 {
		p := n.peers[n.next]
		n.next++
		return p
	}
	var best *allocNode
	var bestHead *allocPeer
	for _, c := range n.children {
		h := c.head()
		if h == nil {
			continue
		}
		if best == nil || c.used < best.used || (c.used == best.used && h.compare(bestHead) < 0) {
			best, bestHead = c, h
		}
	}
	return best.take()
}

// balance returns peers in balanced order, counting the peers of chosen
// (already placed, not to be returned) in the usage of their groups.
func (a *BalancedAllocator) balance(peers, chosen []*allocPeer) []*allocPeer {
	if len(peers) == 0 {
		return nil
	}
	root := &allocNode{}
	find := func(p *allocPeer, create bool) *allocNode {
		n := root
		for _, v := range p.groups {
			i, ok := slices.BinarySearchFunc(n.children, v, func(c *allocNode, v string) int { return strings.Compare(c.value, v) })
			if !ok {
				if !create {
					return nil
				}
				n.children = slices.Insert(n.children, i, &allocNode{value: v})
			}
			n = n.children[i]
		}
		return n
	}
	for _, p := range peers {
		leaf := find(p, true)
		leaf.peers = append(leaf.peers, p)
	}
	// Count the already chosen peers along their path where it exists.
	for _, p := range chosen {
		n := root
		for _, v := range p.groups {
			i, ok := slices.BinarySearchFunc(n.children, v, func(c *allocNode, v string) int { return strings.Compare(c.value, v) })
			if !ok {
				break
			}
			n = n.children[i]
			n.used++
		}
	}
	var sortLeaves func(n *allocNode)
	sortLeaves = func(n *allocNode) {
		if len(n.children) == 0 {
			slices.SortFunc(n.peers, (*allocPeer).compare)
			return
		}
		for _, c := range n.children {
			sortLeaves(c)
		}
	}
	sortLeaves(root)
	out := make([]*allocPeer, 0, len(peers))
	for range peers {
		out = append(out, root.take())
	}
	return out
}

// allocationRequest describes one allocation for allocatePeers.
type allocationRequest struct {
	// Cid is the pin's root.
	Cid cid.Cid
	// Size is the pin's expected size in bytes (from a DAGSizer), or 0
	// when unknown. Peers with a valid freespace metric below Size are not
	// allocated, and Reservations (when set) record Size on each newly
	// chosen peer.
	Size uint64
	// Min is the replication minimum: fewer eligible peers make
	// allocatePeers fail with an *AllocationError. Max is the number of
	// peers to return at most. Min -1 and Max -1 mean "every peer": the
	// pin has no allocations and allocatePeers returns nil, nil. Max must
	// otherwise be positive and at least Min; Min 0 accepts any number.
	Min, Max int
	// Metrics holds the metrics of every known live peer (see
	// collectMetrics). Peers absent from it are considered gone.
	Metrics map[peer.ID]MetricsSet
	// Current are the peers the pin is allocated to now: those still in
	// Metrics are kept, after Priority.
	Current []peer.ID
	// Priority are the user's allocations, in the user's order: those the
	// allocator finds eligible come first, in this order.
	Priority []peer.ID
	// Exclude are peers never to allocate anew (a peer declared lost):
	// they are no candidates and do not count as live current
	// allocations, but when the current allocations are kept (the re-pin
	// rule of allocatePeers) they stay among them, as in IPFS Cluster.
	Exclude []peer.ID
	// Remove are peers to take out of the allocations altogether (a peer
	// removed from the cluster): as Exclude, and dropped from kept
	// allocations too.
	Remove []peer.ID
	// Reservations, when not nil, is the ledger of space promised to
	// recent allocations: it is subtracted from the freespace metrics
	// before allocating, and Size is reserved on the newly chosen peers.
	// Allocations sharing a ledger are serialised.
	Reservations *reservationLedger
}

// allocatePeers runs one allocation. Re-pins first follow IPFS Cluster's
// rule (two differences: a lower Max trims the kept allocations, and user
// allocations outside the current ones cause a new allocation, where IPFS
// Cluster keeps the current ones in both cases): when the pin already has allocations (req.Current, less Exclude),
// as many of them are live (present in req.Metrics) as req.Min asks, and
// every user allocation (req.Priority) is among them, the current
// allocations are kept as they are — the dead ones too, since their data
// is still there and self-healing moves it when the peer is declared lost
// — trimmed to req.Max, live ones first; nothing is reserved. Otherwise
// the live current peers are kept and the best candidates are added up to
// req.Max, as follows.
//
// It splits req.Metrics into the
// priority, current and candidate groups (leaving out Exclude), subtracts
// outstanding reservations from free space, leaves out peers whose known
// free space is below req.Size, asks alloc, and trims the answer to
// req.Max, priority peers first in the user's order, then current peers,
// then the rest in the allocator's order. When fewer than req.Min peers
// are eligible it returns an *AllocationError (wrapping ErrNotEnoughPeers)
// with Needed = req.Min and Available = the number of eligible peers, and
// reserves nothing. Fewer than req.Max peers is not an error. Impossible
// factors return a *ValidationError wrapping ErrInvalidReplication; errors
// of alloc are returned wrapped.
func allocatePeers(ctx context.Context, alloc PinAllocator, req allocationRequest) ([]peer.ID, error) {
	if req.Min == -1 && req.Max == -1 {
		return nil, nil
	}
	if req.Min < 0 || req.Max <= 0 || req.Min > req.Max {
		return nil, &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("cannot allocate with min %d, max %d", req.Min, req.Max)}
	}
	if alloc == nil {
		return nil, errors.New("pincluster: allocate: nil allocator")
	}
	if kept, ok := keepCurrent(req); ok {
		return kept, nil
	}
	if len(req.Remove) > 0 {
		req.Exclude = append(slices.Clone(req.Exclude), req.Remove...)
	}
	metrics := req.Metrics
	if r := req.Reservations; r != nil {
		r.alloc.Lock()
		defer r.alloc.Unlock()
		metrics = r.Adjust(metrics)
	}
	now := time.Now()
	current := make(map[peer.ID]MetricsSet)
	priority := make(map[peer.ID]MetricsSet)
	candidates := make(map[peer.ID]MetricsSet)
	fits := func(ms MetricsSet) bool {
		if req.Size == 0 {
			return true
		}
		m, ok := latestValid(ms, MetricFreeSpace, now)
		return !ok || m.Weight >= 0 && uint64(m.Weight) >= req.Size
	}
	for _, p := range req.Priority {
		if ms, ok := metrics[p]; ok && !slices.Contains(req.Exclude, p) && fits(ms) {
			priority[p] = ms
		}
	}
	for _, p := range req.Current {
		if ms, ok := metrics[p]; ok && !slices.Contains(req.Exclude, p) {
			current[p] = ms // may also be in priority: Allocate takes the first that qualifies
		}
	}
	for p, ms := range metrics {
		_, inPrio := priority[p]
		_, inCur := current[p]
		if !inPrio && !inCur && !slices.Contains(req.Exclude, p) &&
			!slices.Contains(req.Priority, p) && fits(ms) {
			candidates[p] = ms
		}
	}
	got, err := alloc.Allocate(ctx, req.Cid, current, candidates, priority)
	if err != nil {
		return nil, fmt.Errorf("pincluster: allocate %s: %w", req.Cid, err)
	}
	// Keep only what was offered, once, and order the blocks.
	offered := func(p peer.ID) bool {
		_, a := priority[p]
		_, b := current[p]
		_, c := candidates[p]
		return a || b || c
	}
	returned := make(map[peer.ID]bool, len(got))
	var cur, rest []peer.ID
	for _, p := range got {
		if returned[p] || !offered(p) {
			continue
		}
		returned[p] = true
		switch {
		case slices.Contains(req.Priority, p):
			// placed below, in the user's order
		case slices.Contains(req.Current, p):
			cur = append(cur, p)
		default:
			rest = append(rest, p)
		}
	}
	var out []peer.ID
	for _, p := range req.Priority {
		if returned[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	out = append(append(out, cur...), rest...)
	if len(out) < req.Min {
		return nil, &AllocationError{Needed: req.Min, Available: len(out)}
	}
	if len(out) > req.Max {
		out = out[:req.Max]
	}
	if r := req.Reservations; r != nil && req.Size > 0 {
		for _, p := range out {
			if !slices.Contains(req.Current, p) {
				r.Reserve(p, req.Size)
			}
		}
	}
	return out, nil
}

// keepCurrent applies the keep-current rule of allocatePeers: it returns
// the allocations to keep and true, or false when a new allocation is
// needed.
func keepCurrent(req allocationRequest) ([]peer.ID, bool) {
	var live, dead []peer.ID
	for _, p := range req.Current {
		if slices.Contains(req.Remove, p) || slices.Contains(live, p) || slices.Contains(dead, p) {
			continue
		}
		if _, ok := req.Metrics[p]; ok && !slices.Contains(req.Exclude, p) {
			live = append(live, p)
		} else {
			dead = append(dead, p)
		}
	}
	if len(live)+len(dead) == 0 || len(live) < req.Min {
		return nil, false
	}
	for _, p := range req.Priority {
		if !slices.Contains(live, p) && !slices.Contains(dead, p) {
			return nil, false // the user asks for other peers
		}
	}
	if len(live)+len(dead) > req.Max { // a lower max: keep the live first
		var out []peer.ID
		for _, p := range req.Current {
			if slices.Contains(live, p) && !slices.Contains(out, p) && len(out) < req.Max {
				out = append(out, p)
			}
		}
		for _, p := range req.Current {
			if slices.Contains(dead, p) && !slices.Contains(out, p) && len(out) < req.Max {
				out = append(out, p)
			}
		}
		return out, true
	}
	var out []peer.ID
	for _, p := range req.Current {
		if (slices.Contains(live, p) || slices.Contains(dead, p)) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, true
}

// collectMetrics gathers from mon the latest valid metrics of the given
// names and of MetricPing, grouped by peer: the Metrics of an
// allocationRequest. Typically names is the allocator's Metrics().
func collectMetrics(ctx context.Context, mon PeerMonitor, names []string) map[peer.ID]MetricsSet {
	out := make(map[peer.ID]MetricsSet)
	seen := map[string]bool{}
	for _, name := range append(slices.Clone(names), MetricPing) {
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, m := range mon.LatestMetrics(ctx, name) {
			ms := out[m.Peer]
			if ms == nil {
				ms = MetricsSet{}
				out[m.Peer] = ms
			}
			ms[name] = append(ms[name], m)
		}
	}
	return out
}

// Defaults of reservationLedgerConfig.
const (
	// defaultReservationGrace: a freespace metric issued this long after a
	// reservation is trusted to include it (the pin had time to reach the
	// peer's queue, which its free space informer subtracts).
	defaultReservationGrace = 10 * time.Second
	// defaultReservationMaxAge: a reservation older than this is dropped
	// whatever the metrics say.
	defaultReservationMaxAge = 10 * time.Minute
)

// reservationLedgerConfig configures a reservationLedger. The zero value
// is usable.
type reservationLedgerConfig struct {
	// MetricTTL is the TTL the peers give their freespace metrics (the
	// monitor's TTL): a metric's issue time is taken as its ValidUntil
	// minus MetricTTL. Default: 30 s (twice the default monitor interval).
	MetricTTL time.Duration
	// Grace is how long after a reservation a freespace metric must have
	// been issued to replace it: time for the pin to reach the peer and be
	// counted by its informer. Default: 10 s.
	Grace time.Duration
	// MaxAge drops reservations older than this even without a fresher
	// metric (the peer went silent, or the pin never reached it).
	// Default: 10 min.
	MaxAge time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// reservationLedger is a ledger of free space promised to recent allocations
// and not yet visible in the peers' freespace metrics. Without it, a burst
// of pins allocated within one monitor interval would all see the same
// free space and overfill the emptiest peers. allocatePeers uses it when
// given one: outstanding reservations are subtracted from the freespace
// weights (Adjust), and the pin's size is reserved on each newly chosen
// peer (Reserve). A reservation on a peer is dropped when a freespace
// metric from that peer issued at least Grace after it is seen, or after
// MaxAge. It is safe for concurrent use.
type reservationLedger struct {
	cfg reservationLedgerConfig

	alloc sync.Mutex // serialises allocatePeers calls sharing the ledger

	mu     sync.Mutex
	byPeer map[peer.ID][]reservation
}

type reservation struct {
	bytes uint64
	at    time.Time
}

// newReservationLedger returns an empty ledger.
func newReservationLedger(cfg reservationLedgerConfig) *reservationLedger {
	if cfg.MetricTTL <= 0 {
		cfg.MetricTTL = defaultMonitorTTLFactor * defaultMonitorInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = defaultReservationGrace
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = defaultReservationMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &reservationLedger{cfg: cfg, byPeer: make(map[peer.ID][]reservation)}
}

// Reserve records that bytes are expected on p.
func (r *reservationLedger) Reserve(p peer.ID, bytes uint64) {
	if bytes == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byPeer[p] = append(r.byPeer[p], reservation{bytes: bytes, at: r.cfg.Now()})
}

// Release removes one reservation of bytes on p (the newest of that size),
// for an allocation that was not committed. It reports whether one was
// found.
func (r *reservationLedger) Release(p peer.ID, bytes uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.byPeer[p]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].bytes == bytes {
			r.byPeer[p] = slices.Delete(rs, i, i+1)
			if len(r.byPeer[p]) == 0 {
				delete(r.byPeer, p)
			}
			return true
		}
	}
	return false
}

// Outstanding returns the bytes reserved on p and not yet covered by a
// metric.
func (r *reservationLedger) Outstanding(p peer.ID) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum uint64
	for _, x := range r.byPeer[p] {
		sum += x.bytes
	}
	return sum
}

// Observe drops the reservations on m.Peer that a freespace metric m
// already accounts for: those made more than Grace before m was issued
// (ValidUntil − MetricTTL). Other metrics are ignored. Adjust calls it for
// every freespace metric it sees.
func (r *reservationLedger) Observe(m Metric) {
	if m.Name != MetricFreeSpace {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observeLocked(m.Peer, m, r.cfg.Now())
}

func (r *reservationLedger) observeLocked(p peer.ID, m Metric, now time.Time) {
	rs := r.byPeer[p]
	if len(rs) == 0 {
		return
	}
	issued := m.ValidUntil.Add(-r.cfg.MetricTTL)
	rs = slices.DeleteFunc(rs, func(x reservation) bool {
		return issued.After(x.at.Add(r.cfg.Grace)) || now.Sub(x.at) > r.cfg.MaxAge
	})
	if len(rs) == 0 {
		delete(r.byPeer, p)
	} else {
		r.byPeer[p] = rs
	}
}

// Adjust returns a copy of sets in which the freespace metrics are reduced
// by the outstanding reservations of their peer (never below 0), after
// dropping the reservations they already account for (Observe). The input
// is not modified; unchanged sets are shared with it.
func (r *reservationLedger) Adjust(sets map[peer.ID]MetricsSet) map[peer.ID]MetricsSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	out := make(map[peer.ID]MetricsSet, len(sets))
	for p, ms := range sets {
		out[p] = ms
		fs := ms[MetricFreeSpace]
		if len(fs) == 0 {
			continue
		}
		for _, m := range fs {
			r.observeLocked(p, m, now)
		}
		var sum uint64
		for _, x := range r.byPeer[p] {
			sum += x.bytes
		}
		if sum == 0 {
			continue
		}
		adj := make(MetricsSet, len(ms))
		for k, v := range ms {
			adj[k] = v
		}
		nfs := slices.Clone(fs)
		for i := range nfs {
			w := nfs[i].Weight
			if w < 0 || uint64(w) <= sum {
				w = 0
			} else {
				w -= int64(sum)
			}
			nfs[i].Weight = w
			nfs[i].Value = strconv.FormatInt(w, 10)
		}
		adj[MetricFreeSpace] = nfs
		out[p] = adj
	}
	return out
}

// allocate chooses the peers of a pin from the monitor's metrics: the
// user's allocations first, then the current ones, then the allocator's
// choice, never one of exclude. It asks the connector for the DAG's size
// (DAGSizer; 0 when unknown), reserves it on newly chosen peers and
// returns it, for the pin record (Pin.Size), from which each holder
// reserves it in turn.
func (c *Cluster) allocate(ctx context.Context, ci cid.Cid, opts PinOptions, current, exclude, remove []peer.ID) (_ []peer.ID, size uint64, _ error) {
	if s, ok := c.connector.(DAGSizer); ok {
		if n, err := s.DAGSize(ctx, ci); err == nil {
			size = n
		}
	}
	allocs, err := allocatePeers(ctx, c.allocator, allocationRequest{
		Cid:          ci,
		Size:         size,
		Min:          opts.ReplicationMin,
		Max:          opts.ReplicationMax,
		Metrics:      collectMetrics(ctx, c.monitor, c.allocator.Metrics()),
		Current:      current,
		Priority:     opts.UserAllocations,
		Exclude:      exclude,
		Remove:       remove,
		Reservations: c.reservations,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("allocate: %w", err)
	}
	return allocs, size, nil
}
