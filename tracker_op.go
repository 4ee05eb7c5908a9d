package pincluster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"log/slog"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/optracker"
)

// opTracker is the default PinTracker: the operation queue of
// internal/optracker runs pins and unpins on the connector; the status of a
// CID is computed from the shared state, the operation in flight and the
// set of CIDs this peer's IPFS node holds (held).
//
// held is loaded from the connector's pin list at start and by SyncAll,
// and kept current by the tracker's own operations, so Track, Status and
// StatusAll never call the IPFS node (apart from its ID): Track runs inside
// the consensus's apply path and Status is asked about whole chunks of the
// pinset. A pin removed behind the cluster's back is noticed by the next
// Sync of its CID or SyncAll; from then on it is unexpectedly_unpinned (it
// was held, and the tracker did not unpin it: lost records it) until a
// Track or a Recover queues it again.
//
// A pin allocated here that was never held and has no operation (Track
// not called yet, or refused with ErrQueueFull) is pin_queued: the next
// Track queues it.
type opTracker struct {
	self     peer.ID
	peerName string
	conn     IPFSConnector
	cons     Consensus
	ops      *optracker.Tracker
	log      *slog.Logger

	// reloadMu serialises reloads of held.
	reloadMu sync.Mutex
	mu       sync.RWMutex
	// held records each CID the node pins directly or recursively and
	// how (IPFSPinStatusDirect or IPFSPinStatusRecursive): a pin asking
	// for more than the node holds (recursive over a direct pin) is
	// pinned again. It keeps fingerprints, not CIDs (heldSet).
	held   *heldSet
	loaded bool
	// lost holds the CIDs that were held and vanished from the node
	// without an unpin of the tracker, with when that was noticed.
	lost map[cid.Cid]time.Time
	// pending records the changes made to held while a reload lists the
	// node's pins (nil when no reload runs); they win over the listing
	// (IPFSPinStatusUnpinned: removed).
	pending  map[cid.Cid]IPFSPinStatus
	ipfsID   IPFSID
	haveIPFS bool
	// ipfsFailedAt is when asking the node for its ID last failed.
	ipfsFailedAt time.Time
}

var (
	_ PinTracker           = (*opTracker)(nil)
	_ TrackerStatsReporter = (*opTracker)(nil)
)

// newOpTracker builds the default tracker for the peer self.
func newOpTracker(self peer.ID, peerName string, conn IPFSConnector, cons Consensus, cfg *config) (PinTracker, error) {
	t := &opTracker{
		self: self, peerName: peerName, conn: conn, cons: cons,
		log:  cfg.logger.With("component", "tracker"),
		held: newHeldSet(maphash.MakeSeed()),
		lost: map[cid.Cid]time.Time{},
	}
	ops, err := optracker.New(optracker.Config{
		Pin:    t.doPin,
		Unpin:  t.doUnpin,
		Logger: t.log,
	})
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	t.ops = ops
	return t, nil
}

// Shutdown implements Component: running operations are cancelled.
func (t *opTracker) Shutdown(ctx context.Context) error {
	if err := t.ops.Close(ctx); err != nil && !errors.Is(err, optracker.ErrClosed) {
		return fmt.Errorf("tracker: %w", err)
	}
	return nil
}

func (t *opTracker) doPin(ctx context.Context, op optracker.Op, progress optracker.ProgressFunc) error {
	pin, _ := op.Meta.(Pin)
	if !pin.Defined() {
		pin = NewPin(op.Cid, PinOptions{})
	}
	err := t.conn.Pin(ctx, pin, func(p PinProgress) {
		progress(optracker.Progress{Blocks: p.Blocks, Bytes: p.Bytes})
	})
	if err != nil {
		return err
	}
	// A direct pin over a recursive one leaves it recursive (every
	// connector keeps the stronger pin).
	mode := IPFSPinStatusRecursive
	if pin.MaxDepth == 0 && t.heldAs(op.Cid) != IPFSPinStatusRecursive {
		mode = IPFSPinStatusDirect
	}
	t.setHeld(op.Cid, mode)
	return nil
}

func (t *opTracker) doUnpin(ctx context.Context, op optracker.Op, _ optracker.ProgressFunc) error {
	err := t.conn.Unpin(ctx, op.Cid)
	if err != nil && !errors.Is(err, ErrNotPinned) {
		return err
	}
	t.setHeld(op.Cid, IPFSPinStatusUnpinned)
	return nil
}

// setHeld records the result of the tracker's own pin (mode direct or
// recursive) or unpin (IPFSPinStatusUnpinned) of c.
func (t *opTracker) setHeld(c cid.Cid, mode IPFSPinStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil {
		t.pending[c] = mode
	}
	t.held.set(c, mode)
	delete(t.lost, c)
}

// isLost reports whether c was held and vanished from the node, and since
// when.
func (t *opTracker) isLost(c cid.Cid) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	at, ok := t.lost[c]
	return at, ok
}

func (t *opTracker) forget(c cid.Cid) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.lost, c)
}

// isHeld reports whether the node pins c in any mode.
func (t *opTracker) isHeld(c cid.Cid) bool {
	return t.heldAs(c) != IPFSPinStatusUnpinned
}

// heldAs returns how the node pins c: IPFSPinStatusDirect,
// IPFSPinStatusRecursive or IPFSPinStatusUnpinned.
func (t *opTracker) heldAs(c cid.Cid) IPFSPinStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.held.get(c)
}

// holds reports whether the node pins pin.Cid as the pin asks: recursive
// for a recursive (or depth-limited) pin, any pin for a direct one.
func (t *opTracker) holds(pin Pin) bool {
	return t.heldAs(pin.Cid).IsPinned(pin.MaxDepth)
}

// load fills held from the connector once; later reloads come from SyncAll.
func (t *opTracker) load(ctx context.Context) error {
	t.mu.RLock()
	loaded := t.loaded
	t.mu.RUnlock()
	if loaded {
		return nil
	}
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	t.mu.RLock()
	loaded = t.loaded
	t.mu.RUnlock()
	if loaded {
		return nil
	}
	_, err := t.reloadLocked(ctx)
	return err
}

// reload replaces held with the connector's pins and returns the CIDs
// whose membership or mode changed; CIDs that left held are recorded in
// lost. The first load returns none (nothing was known before it). Memory
// stays small: held is rebuilt as fingerprints (heldSet), the CIDs
// returned are only those that changed, and the CIDs that left held are
// found by one listing of the state, when some did (a CID that left held
// and is not in the state is not reported: its status is unpinned either
// way).
func (t *opTracker) reload(ctx context.Context) ([]cid.Cid, error) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	return t.reloadLocked(ctx)
}

func (t *opTracker) reloadLocked(ctx context.Context) ([]cid.Cid, error) {
	t.mu.Lock()
	t.pending = map[cid.Cid]IPFSPinStatus{}
	first := !t.loaded
	seed, size := t.held.seed, t.held.len()
	t.mu.Unlock()
	fresh := heldBuilder{seed: seed, es: make([]uint64, 0, size)}
	var candidates []cid.Cid // listed in another mode than held had
	var listErr error
	for p, err := range t.conn.PinLs(ctx) {
		if err != nil {
			listErr = fmt.Errorf("tracker: listing the ipfs pins: %w", err)
			break
		}
		if p.Type != IPFSPinStatusRecursive && p.Type != IPFSPinStatusDirect {
			continue
		}
		fresh.add(p.Cid, p.Type)
		if !first && t.heldAs(p.Cid) != p.Type {
			candidates = append(candidates, p.Cid)
		}
	}
	t.mu.Lock()
	pending := t.pending
	t.pending = nil
	if listErr != nil {
		t.mu.Unlock()
		return nil, listErr
	}
	next := fresh.set()
	// What the tracker's own operations did meanwhile is newer.
	for c, mode := range pending {
		next.set(c, mode)
	}
	old := t.held
	var changed []cid.Cid
	for _, c := range candidates {
		if old.get(c) != next.get(c) {
			changed = append(changed, c)
		}
	}
	// Fingerprints that left held (both sets share the seed).
	gone := map[uint64]struct{}{}
	if !first {
		next.fold()
		i := 0
		old.entries(func(f uint64) {
			for i < len(next.base) && next.base[i]&^1 < f {
				i++
			}
			if i == len(next.base) || next.base[i]&^1 != f {
				gone[f] = struct{}{}
			}
		})
	}
	for c := range t.lost {
		if next.get(c) != IPFSPinStatusUnpinned {
			delete(t.lost, c)
		}
	}
	t.held, t.loaded = next, true
	t.mu.Unlock()
	if len(gone) == 0 {
		return changed, nil
	}
	lost, err := t.findGone(ctx, old, gone)
	if err != nil {
		return changed, err
	}
	now := time.Now().UTC()
	t.mu.Lock()
	for _, c := range lost {
		if t.held.get(c) == IPFSPinStatusUnpinned { // not pinned again meanwhile
			t.lost[c] = now
			changed = append(changed, c)
		}
	}
	t.mu.Unlock()
	return changed, nil
}

// findGone lists the state and returns the CIDs whose fingerprint in held
// (of the previous load) is in gone.
func (t *opTracker) findGone(ctx context.Context, held *heldSet, gone map[uint64]struct{}) ([]cid.Cid, error) {
	st, err := t.cons.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracker: state: %w", err)
	}
	var out []cid.Cid
	for pin, err := range st.List(ctx) {
		if err != nil {
			return out, fmt.Errorf("tracker: state: %w", err)
		}
		if _, ok := gone[held.fingerprint(pin.Cid)]; ok {
			out = append(out, pin.Cid)
			if len(out) == len(gone) {
				break
			}
		}
	}
	return out, nil
}

// Track implements PinTracker. It never calls the IPFS node (apart from
// the first call, which loads its pin list).
func (t *opTracker) Track(ctx context.Context, pin Pin) error {
	if err := t.load(ctx); err != nil {
		return err
	}
	if pin.IsAllocatedTo(t.self) {
		op, ok := t.ops.Lookup(pin.Cid)
		if !ok && t.holds(pin) {
			return nil // held in the mode asked (a direct pin held only directly is upgraded below)
		}
		if ok && op.Type == optracker.OpPin {
			if old, _ := op.Meta.(Pin); old.Equal(pin) {
				return nil
			}
		}
		return t.enqueue(pin.Cid, optracker.OpPin, pin)
	}
	return t.Untrack(ctx, pin.Cid)
}

// Untrack implements PinTracker: a CID held here or with an operation in
// flight is unpinned; otherwise there is nothing to do.
func (t *opTracker) Untrack(ctx context.Context, c cid.Cid) error {
	if err := t.load(ctx); err != nil {
		return err
	}
	if _, ok := t.ops.Lookup(c); !ok && !t.isHeld(c) {
		t.forget(c)
		return nil
	}
	return t.enqueue(c, optracker.OpUnpin, nil)
}

func (t *opTracker) enqueue(c cid.Cid, typ optracker.OpType, meta any) error {
	_, err := t.ops.Enqueue(c, typ, meta)
	switch {
	case errors.Is(err, optracker.ErrQueueFull):
		return fmt.Errorf("tracker: %s %s: %w", typ, c, ErrQueueFull)
	case errors.Is(err, optracker.ErrClosed):
		return fmt.Errorf("tracker: %s %s: %w", typ, c, ErrClosed)
	case err != nil:
		return fmt.Errorf("tracker: %s %s: %w", typ, c, err)
	}
	return nil
}

func (t *opTracker) ipfs(ctx context.Context) IPFSID {
	t.mu.RLock()
	id, ok, failedAt := t.ipfsID, t.haveIPFS, t.ipfsFailedAt
	t.mu.RUnlock()
	// A node that cannot be reached is asked again after a pause, not
	// once per status of a listing.
	if ok || time.Since(failedAt) < 5*time.Second {
		return id
	}
	id, err := t.conn.ID(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.ipfsFailedAt = time.Now()
		return IPFSID{}
	}
	t.ipfsID, t.haveIPFS = id, true
	return id
}

// info computes the status of c: pin is its state record (undefined when
// the state has none).
func (t *opTracker) info(ctx context.Context, c cid.Cid, pin Pin) PinInfo {
	return t.infoAs(t.ipfs(ctx), c, pin, heldUnknown)
}

// heldUnknown tells infoAs to look c up in held itself.
const heldUnknown IPFSPinStatus = -1

// infoAs is info with the node's ID given, and how the node holds c when
// the caller has looked it up already (heldUnknown: not looked up).
func (t *opTracker) infoAs(id IPFSID, c cid.Cid, pin Pin, held IPFSPinStatus) PinInfo {
	pi := PinInfo{
		Cid:  c,
		Peer: t.self,
		PinInfoShort: PinInfoShort{
			PeerName: t.peerName, IPFS: id.ID, IPFSAddresses: id.Addresses,
			TS: pin.Timestamp,
		},
	}
	if pin.Defined() {
		pi.Name, pi.Allocations, pi.Origins, pi.Created, pi.Metadata =
			pin.Name, pin.Allocations, pin.Origins, pin.Timestamp, pin.Metadata
	}
	if op, ok := t.ops.Lookup(c); ok {
		pi.TS, pi.AttemptCount = op.Updated, op.Attempts
		if op.Err != nil {
			pi.Error = op.Err.Error()
		}
		pin := op.Type == optracker.OpPin
		switch {
		case op.Phase == optracker.PhaseError && pin:
			pi.Status = TrackerStatusPinError
		case op.Phase == optracker.PhaseError:
			pi.Status = TrackerStatusUnpinError
		case op.Phase == optracker.PhaseInProgress && pin:
			pi.Status = TrackerStatusPinning
		case op.Phase == optracker.PhaseInProgress:
			pi.Status = TrackerStatusUnpinning
		case pin:
			pi.Status = TrackerStatusPinQueued
		default:
			pi.Status = TrackerStatusUnpinQueued
		}
		return pi
	}
	// held is read after the operation: the tracker records a pin in
	// held before its operation ends, so a CID whose operation just
	// ended is never taken for not held. A caller's earlier lookup that
	// found it pinned stands: the status is then the one at that
	// lookup, made after the caller read pin.
	if pin.Defined() && pin.IsAllocatedTo(t.self) && (held == heldUnknown || !held.IsPinned(pin.MaxDepth)) {
		held = t.heldAs(c)
	}
	switch {
	case !pin.Defined():
		pi.Status = TrackerStatusUnpinned
	case !pin.IsAllocatedTo(t.self):
		pi.Status = TrackerStatusRemote
	case held.IsPinned(pin.MaxDepth):
		pi.Status = TrackerStatusPinned
	case held != IPFSPinStatusUnpinned:
		// Held directly, asked recursive: the next Track pins it again.
		pi.Status = TrackerStatusPinQueued
	default:
		if at, lost := t.isLost(c); lost {
			// Held before, gone from the node, not unpinned by the tracker.
			pi.Status, pi.TS = TrackerStatusUnexpectedlyUnpinned, at
		} else {
			// Never held and no operation: the next Track queues it.
			pi.Status = TrackerStatusPinQueued
		}
	}
	if pi.TS.IsZero() {
		pi.TS = time.Now().UTC()
	}
	return pi
}

func (t *opTracker) statePin(ctx context.Context, c cid.Cid) (Pin, error) {
	st, err := t.cons.State(ctx)
	if err != nil {
		return Pin{}, fmt.Errorf("tracker: state: %w", err)
	}
	pin, err := st.Get(ctx, c)
	if errors.Is(err, ErrNotFound) {
		return Pin{}, nil
	}
	if err != nil {
		return Pin{}, fmt.Errorf("tracker: state: %w", err)
	}
	return pin, nil
}

// Status implements PinTracker.
func (t *opTracker) Status(ctx context.Context, c cid.Cid) (PinInfo, error) {
	if err := t.load(ctx); err != nil {
		return PinInfo{}, err
	}
	pin, err := t.statePin(ctx, c)
	if err != nil {
		return PinInfo{}, err
	}
	return t.info(ctx, c, pin), nil
}

// StatusAll implements PinTracker: every pin of the state, then the
// operations on CIDs the state no longer has (unpins in flight), streamed.
func (t *opTracker) StatusAll(ctx context.Context, filter TrackerStatus) iter.Seq2[PinInfo, error] {
	return func(yield func(PinInfo, error) bool) {
		if err := t.load(ctx); err != nil {
			yield(PinInfo{}, err)
			return
		}
		st, err := t.cons.State(ctx)
		if err != nil {
			yield(PinInfo{}, fmt.Errorf("tracker: state: %w", err))
			return
		}
		emit := func(pi PinInfo) bool {
			return filter == 0 || pi.Status.Match(filter)
		}
		// The listed pins are looked up in held by chunks (getMany),
		// under one read lock per chunk: at ten million pins a lookup
		// one at a time was a quarter of StatusAll's CPU, mostly
		// waiting for memory.
		var (
			chunk = make([]Pin, 0, heldBatch)
			fs    = make([]uint64, heldBatch)
			modes = make([]IPFSPinStatus, heldBatch)
		)
		flush := func() bool {
			if len(chunk) == 0 {
				return true
			}
			t.mu.RLock()
			for i, p := range chunk {
				fs[i] = t.held.fingerprint(p.Cid)
			}
			t.held.getMany(fs[:len(chunk)], modes)
			t.mu.RUnlock()
			id := t.ipfs(ctx)
			for i := range chunk {
				pi := t.infoAs(id, chunk[i].Cid, chunk[i], modes[i])
				chunk[i] = Pin{} // no reference kept past its status
				if emit(pi) && !yield(pi, nil) {
					return false
				}
			}
			chunk = chunk[:0]
			return true
		}
		for pin, err := range st.List(ctx) {
			if err != nil {
				if !flush() || !yield(PinInfo{}, fmt.Errorf("tracker: state: %w", err)) {
					return
				}
				continue
			}
			if chunk = append(chunk, pin); len(chunk) == heldBatch && !flush() {
				return
			}
		}
		if !flush() {
			return
		}
		for pi, err := range t.opsNotIn(ctx, st) {
			if err != nil {
				yield(PinInfo{}, err)
				return
			}
			if emit(pi) && !yield(pi, nil) {
				return
			}
		}
	}
}

// opsNotIn streams the status of the operations whose CID st does not
// hold: what StatusAll lists after the state's pins.
func (t *opTracker) opsNotIn(ctx context.Context, st ReadOnly) iter.Seq2[PinInfo, error] {
	return func(yield func(PinInfo, error) bool) {
		for op, err := range t.ops.All(ctx) {
			if err != nil {
				yield(PinInfo{}, fmt.Errorf("tracker: %w", err))
				return
			}
			if ok, err := st.Has(ctx, op.Cid); err != nil || ok {
				continue
			}
			if !yield(t.info(ctx, op.Cid, Pin{}), nil) {
				return
			}
		}
	}
}

// SyncAll implements PinTracker: held is reloaded from the IPFS node and
// the statuses of the CIDs that changed since the previous load are
// streamed (none on the first load, when nothing was known before).
func (t *opTracker) SyncAll(ctx context.Context) iter.Seq2[PinInfo, error] {
	return func(yield func(PinInfo, error) bool) {
		changed, err := t.reload(ctx)
		if err != nil {
			yield(PinInfo{}, err)
			return
		}
		for _, c := range changed {
			pin, err := t.statePin(ctx, c)
			if err != nil {
				yield(PinInfo{}, err)
				return
			}
			if !yield(t.info(ctx, c, pin), nil) {
				return
			}
		}
	}
}

// Sync implements PinTracker: the node is asked about c (the only status
// call that does). A CID that was held and is no longer becomes
// unexpectedly_unpinned.
func (t *opTracker) Sync(ctx context.Context, c cid.Cid) (PinInfo, error) {
	if err := t.load(ctx); err != nil {
		return PinInfo{}, err
	}
	pin, err := t.statePin(ctx, c)
	if err != nil {
		return PinInfo{}, err
	}
	probe := pin
	if !probe.Defined() {
		probe = NewPin(c, PinOptions{})
	}
	if err := t.probe(ctx, probe); err != nil {
		return PinInfo{}, err
	}
	return t.info(ctx, c, pin), nil
}

// probe asks the node whether it holds pin.Cid and updates held and lost.
// An operation of the tracker that ends on the CID while the node is asked
// is newer than the answer, which is then dropped (as in reload).
func (t *opTracker) probe(ctx context.Context, pin Pin) error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	c := pin.Cid
	t.mu.Lock()
	t.pending = map[cid.Cid]IPFSPinStatus{}
	t.mu.Unlock()
	s, err := t.conn.PinLsCid(ctx, pin)
	t.mu.Lock()
	defer t.mu.Unlock()
	_, raced := t.pending[c]
	t.pending = nil
	if err != nil {
		return fmt.Errorf("tracker: sync %s: %w", c, err)
	}
	if raced {
		return nil
	}
	was := t.held.get(c) != IPFSPinStatusUnpinned
	switch on := s == IPFSPinStatusDirect || s == IPFSPinStatusRecursive; {
	case on:
		t.held.set(c, s)
		delete(t.lost, c)
	case was:
		t.held.set(c, IPFSPinStatusUnpinned)
		t.lost[c] = time.Now().UTC()
	}
	return nil
}

// Recover implements PinTracker: an errored operation is retried at once;
// a pin allocated here that the node does not hold (unexpectedly_unpinned,
// or pin_queued without an operation) is queued again.
func (t *opTracker) Recover(ctx context.Context, c cid.Cid) (PinInfo, error) {
	pin, err := t.statePin(ctx, c)
	if err != nil {
		return PinInfo{}, err
	}
	if _, err := t.ops.Recover(c); errors.Is(err, optracker.ErrNotFound) {
		if pin.Defined() && pin.IsAllocatedTo(t.self) && !t.holds(pin) {
			if err := t.enqueue(c, optracker.OpPin, pin); err != nil {
				return PinInfo{}, err
			}
		}
	} else if err != nil {
		return PinInfo{}, fmt.Errorf("tracker: recover %s: %w", c, err)
	}
	return t.info(ctx, c, pin), nil
}

// RecoverAll implements PinTracker: errored operations are retried at
// once, then the unexpectedly unpinned pins still allocated here are
// queued again (lost CIDs the state no longer wants are forgotten).
func (t *opTracker) RecoverAll(ctx context.Context) iter.Seq2[PinInfo, error] {
	return func(yield func(PinInfo, error) bool) {
		for op, err := range t.ops.RecoverAll(ctx) {
			if err != nil {
				yield(PinInfo{}, fmt.Errorf("tracker: recover all: %w", err))
				return
			}
			pin, err := t.statePin(ctx, op.Cid)
			if err != nil {
				yield(PinInfo{}, err)
				return
			}
			if !yield(t.info(ctx, op.Cid, pin), nil) {
				return
			}
		}
		t.mu.RLock()
		lost := make([]cid.Cid, 0, len(t.lost))
		for c := range t.lost {
			lost = append(lost, c)
		}
		t.mu.RUnlock()
		for _, c := range lost {
			if err := ctx.Err(); err != nil {
				yield(PinInfo{}, fmt.Errorf("tracker: recover all: %w", err))
				return
			}
			pin, err := t.statePin(ctx, c)
			if err != nil {
				yield(PinInfo{}, err)
				return
			}
			if !pin.Defined() || !pin.IsAllocatedTo(t.self) {
				t.forget(c)
				continue
			}
			if _, ok := t.ops.Lookup(c); ok || t.holds(pin) {
				continue
			}
			if err := t.enqueue(c, optracker.OpPin, pin); err != nil {
				yield(PinInfo{}, err)
				return
			}
			if !yield(t.info(ctx, c, pin), nil) {
				return
			}
		}
	}
}

// PinQueueSize implements PinTracker.
func (t *opTracker) PinQueueSize(context.Context) (int64, error) {
	return int64(t.ops.Stats().PinsQueued), nil
}

// Stats implements TrackerStatsReporter.
func (t *opTracker) Stats() TrackerStats {
	s := t.ops.Stats()
	t.mu.RLock()
	held, lost := t.held.len(), len(t.lost)
	t.mu.RUnlock()
	timing := func(x optracker.Timing) OpTiming {
		return OpTiming{Count: x.Count, Failed: x.Failed, Total: x.Total, Max: x.Max}
	}
	return TrackerStats{
		Ops: s.Ops, PinsQueued: s.PinsQueued, UnpinsQueued: s.UnpinsQueued,
		PinsInFlight: s.PinsInFlight, UnpinsInFlight: s.UnpinsInFlight,
		Errors: s.Errors, Retrying: s.Retrying,
		Done: s.Done, TimedOut: s.TimedOut, Superseded: s.Superseded, Recovered: s.Recovered,
		Held: held, Lost: lost,
		Pin: timing(s.Pin), Unpin: timing(s.Unpin),
	}
}

// reservedBytes returns the bytes still expected for the pins queued or in
// progress on this peer: for each, the DAG size recorded in the pin by the
// peer that allocated it (Pin.Size, 0 when unknown) minus what has been
// fetched so far. The default free-space informer subtracts it, so that
// pins allocated here show in the published free space before their data
// arrives, whichever peer allocated them. It never asks the IPFS node: a
// size asked per queued pin costs the node a DAG walk each (with Kubo an
// offline dag/stat), which answers only for a DAG already complete
// locally, whose bytes the repository size already counts.
func (t *opTracker) reservedBytes(ctx context.Context) uint64 {
	var total uint64
	f := optracker.Filter{Types: optracker.OpPin, Phases: optracker.PhaseQueued | optracker.PhaseInProgress}
	for op, err := range t.ops.Filter(ctx, f) {
		if err != nil {
			break
		}
		pin, _ := op.Meta.(Pin)
		if pin.Size > op.Progress.Bytes {
			// Saturating: a record's size comes from another peer.
			total = satAdd(total, pin.Size-op.Progress.Bytes)
		}
	}
	return total
}

// satAdd returns a+b, or the largest uint64 when that overflows.
func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<64 - 1
}
