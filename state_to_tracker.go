package pincluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	cid "github.com/ipfs/go-cid"
)

// The state-to-tracker bridge: every change of the shared state reaches
// the index and the tracker (onStateChange, called by the consensus's
// StateWatcher in apply order), and the state sync hands the whole state
// to the tracker at start (every pin of the shared state is handed to the
// tracker, which ignores what it already handles, and tracked CIDs that
// left the state are untracked, so a restarted peer catches up), then
// every state sync interval has the tracker re-check its node, and lists
// the state again only when a change may have been missed
// (periodicStateSync).

// runStateSync hands the state to the tracker at start and every state
// sync interval until ctx ends.
func (c *Cluster) runStateSync(ctx context.Context) {
	t := time.NewTicker(c.cfg.stateSyncInterval)
	defer t.Stop()
	for first := true; ; first = false {
		_ = c.periodicStateSync(ctx, first) // logged
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// periodicStateSync is one run of the periodic state sync: the whole pass
// (stateSyncOnce) the first time, when state changes do not all reach the
// tracker (the consensus is no everyChangeWatcher: only the default CRDT
// consensus is one), or when one could not be handed to it since the last
// whole pass began (Track or Untrack failed, e.g. its queue was full, or
// the listing failed), or when Cluster.SyncAll took changes of the node
// that the light pass would have handed on; otherwise the light pass
// (stateSyncLight), which does not list the state. The tracker is
// given every change in apply order (onStateChange), so when none was
// missed the listing would hand it nothing new, yet it costs a read and a
// Track of every pin: at 10M pins, 74 % of a core for a peer otherwise
// idle with the 1-minute interval (issue 19).
func (c *Cluster) periodicStateSync(ctx context.Context, first bool) error {
	if first || !c.watching.Load() || c.syncMisses.Load() > 0 {
		return c.stateSyncOnce(ctx)
	}
	return c.stateSyncLight(ctx)
}

// StateSync runs now what the peer's loops do periodically: the tracker
// compares what it believes with the IPFS node and is handed the whole
// shared state (pins lost by the node are queued again, pins that left the
// state are unpinned; WithStateSyncInterval), and, unless the peer is a
// follower, the expired pins it is responsible for are unpinned
// (WithExpiryInterval), as IPFS Cluster's StateSync. It waits for Ready
// (bounded by ctx) and returns the first error met; pins are queued, not
// awaited.
func (c *Cluster) StateSync(ctx context.Context) error {
	if err := c.live("state sync"); err != nil {
		return err
	}
	if err := c.WaitReady(ctx); err != nil {
		return fmt.Errorf("pincluster: state sync: %w", err)
	}
	if err := c.stateSyncOnce(ctx); err != nil {
		return fmt.Errorf("pincluster: state sync: %w", err)
	}
	c.expireOnce(ctx)
	return ctx.Err()
}

// stateSyncOnce hands the state to the tracker; it returns the first
// error met (logged too), going on past errors where it can.
func (c *Cluster) stateSyncOnce(ctx context.Context) error {
	st, err := c.state(ctx)
	if err != nil {
		c.syncMisses.Add(1) // the next periodic sync lists the state
		return err
	}
	// The listing below begins after this: a change missed before it is
	// covered by it; one missed from now on makes the next sync whole.
	c.syncMisses.Store(0)
	// First let the tracker compare what it believes with the IPFS node
	// (pins removed behind its back become unexpectedly_unpinned); the
	// Track calls below then queue them again.
	_, first := c.trackerSync(ctx)
	c.beginChangeRecord()
	defer c.endChangeRecord()
	start := c.changeSeq.Load()
	for pin, err := range st.List(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			c.log.Warn("state sync: listing the state", "err", err)
			c.syncMisses.Add(1)
			if first == nil {
				first = err
			}
			continue
		}
		c.syncListed(ctx, pin, start)
	}
	c.untrackGone(ctx, st)
	return first
}

// stateSyncLight is the state sync when every change of the state since
// the last whole pass reached the tracker: the tracker compares what it
// believes with the IPFS node (pins removed behind its back, which no
// state change reports), each pin that changed there is handed to it
// again as the state holds it now, and tracked CIDs that left the state
// are untracked; the state is not listed.
func (c *Cluster) stateSyncLight(ctx context.Context) error {
	st, err := c.state(ctx)
	if err != nil {
		return err
	}
	changed, first := c.trackerSync(ctx)
	for _, ci := range changed {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.recheck(ctx, ci)
	}
	c.untrackGone(ctx, st)
	return first
}

// trackerSync has the tracker compare what it believes with the IPFS node
// and returns the CIDs whose status that changed, and its error (logged).
func (c *Cluster) trackerSync(ctx context.Context) (changed []cid.Cid, err error) {
	for pi, err := range c.tracker.SyncAll(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("state sync: tracker sync", "err", err)
			}
			return changed, err
		}
		changed = append(changed, pi.Cid)
	}
	return changed, nil
}

// untrackGone untracks what the tracker handles but st no longer has.
func (c *Cluster) untrackGone(ctx context.Context, st ReadOnly) {
	// Untrack what the tracker still handles but the state no longer has.
	// Our tracker lists only its operations for that: a pin removed from
	// the state since the listing above is untracked by its notification,
	// so reading every pin of the state again (StatusAll) finds nothing
	// more, at the cost of a second pass over the pinset.
	statuses := c.tracker.StatusAll(ctx, 0)
	if ot, ok := c.tracker.(*opTracker); ok {
		statuses = ot.opsNotIn(ctx, st)
	}
	var gone []cid.Cid
	for pi, err := range statuses {
		if err != nil || ctx.Err() != nil {
			break
		}
		if pi.Status.Match(TrackerStatusUnpinned | TrackerStatusUnpinning | TrackerStatusUnpinQueued | TrackerStatusRemote) {
			continue
		}
		if ok, err := st.Has(ctx, pi.Cid); err == nil && !ok {
			gone = append(gone, pi.Cid)
		}
	}
	for _, ci := range gone {
		c.recheck(ctx, ci)
	}
}

// onStateChange feeds one change of the shared state to the index and the
// tracker. The consensus reports changes in apply order, after it has
// released its own locks, with the pin it applied (the CRDT hands on the
// pin decoded once; removed: pin has only Cid set), so nothing is read
// again. The per-CID lock orders the change against the state sync's
// listing (syncListed).
func (c *Cluster) onStateChange(ctx context.Context, pin Pin, removed bool) {
	h := changeHash(pin.Cid)
	i := stripeOf(h)
	c.changeLocks[i].Lock()
	defer c.changeLocks[i].Unlock()
	c.changeAt[i] = c.changeSeq.Add(1)
	c.changed[i].add(h)
	c.applyPin(ctx, pin, removed)
}

// recheck gives the index and the tracker what the state holds now for
// ci: the state sync found it gone, but it may have come back since.
func (c *Cluster) recheck(ctx context.Context, ci cid.Cid) {
	i := changeStripe(ci)
	c.changeLocks[i].Lock()
	defer c.changeLocks[i].Unlock()
	c.applyCurrent(ctx, ci)
}

// syncListed hands a pin read by the state sync's listing (which began
// when changeSeq was start) to the tracker. The listing may be older than
// a change applied meanwhile, which must not be undone: when the pin
// itself changed after start (a notification of its lock stripe came
// after start and the stripe's record of changed CIDs names it, or the
// record overflowed), the pin is read again; otherwise the listed pin is
// current, as any later change will be followed by its own notification.
// Before, any change of the stripe made the pin be read again: while pins
// were being written every stripe changed all the time, so each state
// sync read the whole pinset a second time, one Get per pin, and the CPU
// per written pin grew with the pinset (issue 19).
func (c *Cluster) syncListed(ctx context.Context, pin Pin, start uint64) {
	h := changeHash(pin.Cid)
	i := stripeOf(h)
	c.changeLocks[i].Lock()
	defer c.changeLocks[i].Unlock()
	if c.changeAt[i] > start && c.changed[i].has(h) {
		c.applyCurrent(ctx, pin.Cid)
		return
	}
	if err := c.tracker.Track(ctx, pin); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		c.syncMisses.Add(1)
		c.log.Warn("state sync: track", "cid", pin.Cid, "err", err)
	}
}

// applyCurrent reads ci from the state and gives the index and the
// tracker what it holds now. The caller holds ci's stripe lock.
func (c *Cluster) applyCurrent(ctx context.Context, ci cid.Cid) {
	st, err := c.state(ctx)
	if err != nil {
		return
	}
	cur, err := st.Get(ctx, ci)
	switch {
	case errors.Is(err, ErrNotFound):
		c.applyPin(ctx, Pin{Cid: ci}, true)
	case err == nil:
		c.applyPin(ctx, cur, false)
	}
}

// applyPin gives the index and the tracker pin (removed: its CID left the
// state). The caller holds the pin's stripe lock.
func (c *Cluster) applyPin(ctx context.Context, pin Pin, removed bool) {
	var err error
	if removed {
		c.index.update(Pin{Cid: pin.Cid}, true)
		err = c.tracker.Untrack(ctx, pin.Cid)
	} else {
		c.index.update(pin, false)
		err = c.tracker.Track(ctx, pin)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		c.syncMisses.Add(1) // the next periodic state sync lists the state
		c.log.Warn("tracking a state change", "cid", pin.Cid, "err", err)
	}
}

// changeStripe picks the lock of a CID among Cluster.changeLocks.
func changeStripe(ci cid.Cid) int { return stripeOf(changeHash(ci)) }

// changeHash is the 64-bit FNV-1a hash of a CID's bytes: its stripe and
// its fingerprint in a changedSet.
func changeHash(ci cid.Cid) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(ci.Bytes())
	return h.Sum64()
}

// stripeOf is the stripe of a CID of hash h.
func stripeOf(h uint64) int { return int(h % uint64(len(Cluster{}.changeLocks))) }

// maxChangedPerStripe bounds a changedSet: 64 stripes of 8,192
// fingerprints, about 12 MB, hold the changes of a sync's listing at
// thousands of writes a second for a minute or more; past it the stripe
// falls back to reading every listed pin of it again.
const maxChangedPerStripe = 8192

// changedSet records the fingerprints (changeHash) of the CIDs of one
// stripe changed while a state sync lists the state. A fingerprint shared
// by two CIDs only makes a pin be read again needlessly.
type changedSet struct {
	fps      map[uint64]struct{}
	overflow bool
}

// add records h; a nil set (no sync listing) records nothing.
func (s *changedSet) add(h uint64) {
	switch {
	case s == nil || s.overflow:
	case len(s.fps) >= maxChangedPerStripe:
		s.overflow, s.fps = true, nil
	default:
		s.fps[h] = struct{}{}
	}
}

// has reports whether h may have changed since the set was made: true
// when recorded, when the set overflowed, or when there is no set.
func (s *changedSet) has(h uint64) bool {
	if s == nil || s.overflow {
		return true
	}
	_, ok := s.fps[h]
	return ok
}

// beginChangeRecord makes every stripe record its changed CIDs until the
// matching endChangeRecord (syncs may overlap: the record then holds the
// changes since the first began, more than each needs).
func (c *Cluster) beginChangeRecord() {
	c.recordMu.Lock()
	defer c.recordMu.Unlock()
	c.recording++
	if c.recording > 1 {
		return
	}
	for i := range c.changeLocks {
		c.changeLocks[i].Lock()
		c.changed[i] = &changedSet{fps: map[uint64]struct{}{}}
		c.changeLocks[i].Unlock()
	}
}

// endChangeRecord ends a beginChangeRecord; the last one drops the record.
func (c *Cluster) endChangeRecord() {
	c.recordMu.Lock()
	defer c.recordMu.Unlock()
	c.recording--
	if c.recording > 0 {
		return
	}
	for i := range c.changeLocks {
		c.changeLocks[i].Lock()
		c.changed[i] = nil
		c.changeLocks[i].Unlock()
	}
}
