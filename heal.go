package pincluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
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
//
// The state sync, which hands the shared state to the tracker, lives with
// the rest of the state-to-tracker bridge in state_to_tracker.go.

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
	expire := func(pin Pin) {
		if !pin.Expired(now) || responsibleFor(pin.Cid, alive) != self {
			return
		}
		if _, err := c.unpin(ctx, pin.Cid); err != nil && !errors.Is(err, ErrNotFound) {
			c.log.Warn("unpin of expired pin failed", "cid", pin.Cid, "err", err)
		}
	}
	if cands, ok := c.index.expiringPins(); ok {
		// The index lists every pin with an expiry: read those only, not
		// the whole pinset.
		for _, ci := range cands {
			if ctx.Err() != nil {
				return
			}
			if pin, err := st.Get(ctx, ci); err == nil {
				expire(pin)
			}
		}
		return
	}
	for pin, err := range st.List(ctx) {
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			expire(pin)
		}
	}
}
