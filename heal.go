package pincluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// Self-healing, expiry and the tracker's catch-up run in the Cluster's own
// goroutines (started by New, stopped by Shutdown):
//
//   - alerts: when a peer's ping metric expires, the pins allocated to it
//     are re-allocated. For each pin exactly one peer acts: among the live
//     trusted peers that are not followers (a valid ping metric and no
//     valid MetricFollower, and this peer unless it is a follower), the one whose
//     SHA-256 of its ID is closest (XOR) to the SHA-256 of the CID. Every
//     peer computes the same choice from the same metrics; should two
//     views differ, the worst case is a pin logged twice, which is
//     harmless.
//   - expiry: pins whose ExpireAt has passed are unpinned by the same
//     responsible peer.
//   - state sync: every pin of the shared state is handed to the tracker
//     (which ignores what it already handles) and tracked CIDs that left
//     the state are untracked, so a restarted peer catches up.

// alivePeers returns the trusted peers with a valid ping metric, and this
// peer, sorted; exclude is left out.
func (c *Cluster) alivePeers(ctx context.Context, exclude ...peer.ID) []peer.ID {
	self := c.host.ID()
	out := []peer.ID{self}
	now := time.Now()
	for _, m := range c.monitor.LatestMetrics(ctx, MetricPing) {
		if !m.Valid(now) || m.Peer == self || slices.Contains(exclude, m.Peer) || slices.Contains(out, m.Peer) {
			continue
		}
		if !c.consensus.IsTrustedPeer(ctx, m.Peer) {
			continue
		}
		out = append(out, m.Peer)
	}
	if slices.Contains(exclude, self) {
		out = slices.DeleteFunc(out, func(p peer.ID) bool { return p == self })
	}
	slices.Sort(out)
	return out
}

// writers returns the live peers that act for the pinset (alivePeers less
// the followers, which announce themselves with MetricFollower), sorted:
// the candidates of responsibleFor.
func (c *Cluster) writers(ctx context.Context, exclude ...peer.ID) []peer.ID {
	now := time.Now()
	followers := map[peer.ID]bool{}
	for _, m := range c.monitor.LatestMetrics(ctx, MetricFollower) {
		if m.Valid(now) {
			followers[m.Peer] = true
		}
	}
	if c.cfg.follower {
		followers[c.host.ID()] = true
	}
	return slices.DeleteFunc(c.alivePeers(ctx, exclude...), func(p peer.ID) bool { return followers[p] })
}

// responsibleFor returns the peer among candidates that acts for ci.
func responsibleFor(ci cid.Cid, candidates []peer.ID) peer.ID {
	target := sha256.Sum256(ci.Bytes())
	var best peer.ID
	var bestDist [sha256.Size]byte
	for i, p := range candidates {
		h := sha256.Sum256([]byte(p))
		var d [sha256.Size]byte
		for j := range d {
			d[j] = h[j] ^ target[j]
		}
		if i == 0 || bytes.Compare(d[:], bestDist[:]) < 0 {
			best, bestDist = p, d
		}
	}
	return best
}

// runAlerts reacts to the monitor's alerts until ctx ends.
func (c *Cluster) runAlerts(ctx context.Context) {
	alerts := c.monitor.Alerts()
	for {
		select {
		case <-ctx.Done():
			return
		case a, ok := <-alerts:
			if !ok {
				return
			}
			c.recordAlert(a)
			c.log.Info("peer alert", "peer", a.Metric.Peer, "metric", a.Metric.Name)
			// A follower never writes: the trusted peers re-allocate.
			if a.Metric.Name == MetricPing && c.cfg.repinning && !c.cfg.follower {
				c.repinFrom(ctx, a.Metric.Peer)
			}
		}
	}
}

// repinFrom re-allocates the pins allocated to the lost peer for which this
// peer is responsible.
func (c *Cluster) repinFrom(ctx context.Context, lost peer.ID) {
	st, err := c.state(ctx)
	if err != nil {
		c.log.Warn("repin: no state", "err", err)
		return
	}
	alive := c.writers(ctx, lost)
	self := c.host.ID()
	moved := 0
	for pin, err := range st.List(ctx) {
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("repin: listing the state", "err", err)
			continue
		}
		if !slices.Contains(pin.Allocations, lost) || responsibleFor(pin.Cid, alive) != self {
			continue
		}
		if _, err := c.pin(ctx, pin.Cid, pin.PinOptions, []peer.ID{lost}, false); errors.Is(err, ErrNotFound) {
			continue // unpinned meanwhile
		} else if err != nil {
			c.log.Warn("repin failed", "cid", pin.Cid, "lost", lost, "err", err)
			continue
		}
		moved++
	}
	if moved > 0 {
		c.log.Info("repinned pins of a lost peer", "lost", lost, "pins", moved)
	}
}

// runExpiry unpins expired pins every expiry interval until ctx ends.
func (c *Cluster) runExpiry(ctx context.Context) {
	t := time.NewTicker(c.cfg.expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.expireOnce(ctx)
		}
	}
}

func (c *Cluster) expireOnce(ctx context.Context) {
	if c.cfg.follower {
		return // a follower never writes: the trusted peers expire pins
	}
	st, err := c.state(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	alive := c.writers(ctx)
	self := c.host.ID()
	for pin, err := range st.List(ctx) {
		if ctx.Err() != nil {
			return
		}
		if err != nil || !pin.Expired(now) || responsibleFor(pin.Cid, alive) != self {
			continue
		}
		if _, err := c.unpin(ctx, pin.Cid); err != nil && !errors.Is(err, ErrNotFound) {
			c.log.Warn("unpin of expired pin failed", "cid", pin.Cid, "err", err)
		}
	}
}

// runStateSync hands the state to the tracker at start and every state
// sync interval until ctx ends.
func (c *Cluster) runStateSync(ctx context.Context) {
	t := time.NewTicker(c.cfg.stateSyncInterval)
	defer t.Stop()
	for {
		_ = c.stateSyncOnce(ctx) // logged
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
		return err
	}
	var first error
	// First let the tracker compare what it believes with the IPFS node
	// (pins removed behind its back become unexpectedly_unpinned); the
	// Track calls below then queue them again.
	for _, err := range c.tracker.SyncAll(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("state sync: tracker sync", "err", err)
			}
			first = err
			break
		}
	}
	start := c.changeSeq.Load()
	for pin, err := range st.List(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			c.log.Warn("state sync: listing the state", "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		c.syncListed(ctx, pin, start)
	}
	// Untrack what the tracker still handles but the state no longer has.
	var gone []cid.Cid
	for pi, err := range c.tracker.StatusAll(ctx, 0) {
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
		c.onStateChange(ctx, Pin{Cid: ci}, true)
	}
	return first
}

// onStateChange feeds one change of the shared state to the tracker. The
// consensus may report the changes of one CID out of order (hooks of
// concurrently applied deltas), so the change is only a wake-up: the pin
// is read again from the state, under a per-CID lock, and the tracker gets
// what the state holds now. The last notification of a CID runs after its
// last change, so the tracker ends up with the final state.
func (c *Cluster) onStateChange(ctx context.Context, pin Pin, _ bool) {
	i := changeStripe(pin.Cid)
	c.changeLocks[i].Lock()
	defer c.changeLocks[i].Unlock()
	c.changeAt[i] = c.changeSeq.Add(1)
	c.applyCurrent(ctx, pin.Cid)
}

// syncListed hands a pin read by the state sync's listing (which began
// when changeSeq was start) to the tracker. The listing may be older than
// a change applied meanwhile, which must not be undone: when a
// notification of the pin's lock stripe came after start, the pin is
// read again; otherwise the listed pin is current, as any later change
// will be followed by its own notification.
func (c *Cluster) syncListed(ctx context.Context, pin Pin, start uint64) {
	i := changeStripe(pin.Cid)
	c.changeLocks[i].Lock()
	defer c.changeLocks[i].Unlock()
	if c.changeAt[i] > start {
		c.applyCurrent(ctx, pin.Cid)
		return
	}
	if err := c.tracker.Track(ctx, pin); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
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
		c.index.update(Pin{Cid: ci}, true)
		err = c.tracker.Untrack(ctx, ci)
	case err == nil:
		c.index.update(cur, false)
		err = c.tracker.Track(ctx, cur)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		c.log.Warn("tracking a state change", "cid", ci, "err", err)
	}
}

// changeStripe picks the lock of a CID among Cluster.changeLocks.
func changeStripe(ci cid.Cid) int {
	h := fnv.New32a()
	_, _ = h.Write(ci.Bytes())
	return int(h.Sum32() % uint32(len(Cluster{}.changeLocks)))
}
