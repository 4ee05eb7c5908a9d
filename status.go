package pincluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// statusChunk is how many CIDs a global status asks every peer about at
// once: the merged view of one chunk is all that is held in memory.
const statusChunk = 512

// remotePeers is how the Cluster asks other peers; it is implemented over
// internal/rpc (rpc.go). Calls to the local peer do not go through it.
type remotePeers interface {
	// statusMany returns the peer's status of each CID, in order.
	statusMany(ctx context.Context, p peer.ID, cids []cid.Cid) ([]PinInfo, error)
	// recover re-queues the peer's errored operation on c.
	recover(ctx context.Context, p peer.ID, c cid.Cid) (PinInfo, error)
	// recoverAll re-queues every errored operation of the peer and
	// returns how many it re-queued.
	recoverAll(ctx context.Context, p peer.ID) (int, error)
	// id asks the peer to describe itself.
	id(ctx context.Context, p peer.ID) (ID, error)
	// links asks the peer for its connections (graph.go).
	links(ctx context.Context, p peer.ID) (PeerLinks, error)
	// repoGC runs garbage collection on the peer's IPFS node (repogc.go).
	repoGC(ctx context.Context, p peer.ID) (PeerRepoGC, error)
}

// peersToAsk returns the consensus peers, this peer first.
func (c *Cluster) peersToAsk(ctx context.Context) ([]peer.ID, error) {
	peers, err := c.consensus.Peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("pincluster: peers: %w", err)
	}
	self := c.host.ID()
	out := []peer.ID{self}
	for _, p := range peers {
		if p != self && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// clusterErrorInfo is the status reported for a peer that could not be
// asked.
// It carries the peer's last known name and IPFS node (rememberPeer), as
// IPFS Cluster does.
func (c *Cluster) clusterErrorInfo(ci cid.Cid, p peer.ID, err error) PinInfo {
	pi := PinInfo{Cid: ci, Peer: p, PinInfoShort: PinInfoShort{
		Status: TrackerStatusClusterError, TS: time.Now().UTC(), Error: err.Error(),
	}}
	c.cardsMu.Lock()
	card, ok := c.cards[p]
	c.cardsMu.Unlock()
	if ok {
		pi.PeerName, pi.IPFS, pi.IPFSAddresses = card.name, card.ipfs, card.ipfsAddrs
	}
	return pi
}

// peerCard is what a peer last said about itself.
type peerCard struct {
	name      string
	ipfs      peer.ID
	ipfsAddrs []ma.Multiaddr
}

// maxPeerCards bounds the remembered peer cards.
const maxPeerCards = 4096

// rememberPeer records the name and IPFS node a peer answered with, for
// the statuses reported when it stops answering.
func (c *Cluster) rememberPeer(p peer.ID, name string, ipfs peer.ID, addrs []ma.Multiaddr) {
	if name == "" && ipfs == "" {
		return
	}
	c.cardsMu.Lock()
	defer c.cardsMu.Unlock()
	if c.cards == nil {
		c.cards = map[peer.ID]peerCard{}
	}
	if _, ok := c.cards[p]; !ok && len(c.cards) >= maxPeerCards {
		return
	}
	c.cards[p] = peerCard{name: name, ipfs: ipfs, ipfsAddrs: slices.Clone(addrs)}
}

// localStatusMany is statusMany for this peer.
func (c *Cluster) localStatusMany(ctx context.Context, cids []cid.Cid) ([]PinInfo, error) {
	out := make([]PinInfo, 0, len(cids))
	for _, ci := range cids {
		pi, err := c.tracker.Status(ctx, ci)
		if err != nil {
			return nil, err
		}
		out = append(out, pi)
	}
	return out, nil
}

// statusChunkAll asks every peer about cids and merges the answers.
func (c *Cluster) statusChunkAll(ctx context.Context, peers []peer.ID, cids []cid.Cid) []GlobalPinInfo {
	merged := make([]GlobalPinInfo, len(cids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			var infos []PinInfo
			var err error
			if p == c.host.ID() {
				infos, err = c.localStatusMany(ctx, cids)
			} else if c.remote != nil {
				infos, err = c.remote.statusMany(ctx, p, cids)
			} else {
				err = errors.New("no peer-to-peer RPC")
			}
			if err == nil && len(infos) != len(cids) {
				err = fmt.Errorf("answered %d statuses for %d cids", len(infos), len(cids))
			}
			if err == nil && len(infos) > 0 {
				c.rememberPeer(p, infos[0].PeerName, infos[0].IPFS, infos[0].IPFSAddresses)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, ci := range cids {
				pi := PinInfo{}
				if err != nil {
					pi = c.clusterErrorInfo(ci, p, err)
				} else {
					pi = infos[i]
					pi.Peer = p
				}
				merged[i].Add(pi)
				merged[i].Cid = ci
			}
		})
	}
	wg.Wait()
	return merged
}

// withPinAttrs copies the pin's attributes into the global view. A peer
// that reports the CID unpinned has not received the pin yet (the state
// reaches peers at different times): it shows as pin_queued when the pin
// is allocated to it, remote otherwise.
func withPinAttrs(g *GlobalPinInfo, p Pin) {
	g.Cid, g.Name, g.Allocations, g.Origins, g.Created, g.Metadata =
		p.Cid, p.Name, p.Allocations, p.Origins, p.Timestamp, p.Metadata
	for id, pi := range g.PeerMap {
		if pi.Status != TrackerStatusUnpinned {
			continue
		}
		if p.IsAllocatedTo(id) {
			pi.Status = TrackerStatusPinQueued
		} else {
			pi.Status = TrackerStatusRemote
		}
		g.PeerMap[id] = pi
	}
}

// Status returns the status of ci on every peer (local: on this peer
// only). A peer that cannot be asked appears with TrackerStatusClusterError.
// An error wrapping ErrNotFound means ci is neither in the pinset nor
// tracked here.
func (c *Cluster) Status(ctx context.Context, ci cid.Cid, local bool) (GlobalPinInfo, error) {
	if err := c.live("status"); err != nil {
		return GlobalPinInfo{}, err
	}
	pin, err := c.PinGet(ctx, ci)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return GlobalPinInfo{}, err
	}
	if local {
		pi, err := c.tracker.Status(ctx, ci)
		if err != nil {
			return GlobalPinInfo{}, fmt.Errorf("pincluster: status %s: %w", ci, err)
		}
		var g GlobalPinInfo
		g.Add(pi)
		if pin.Defined() {
			withPinAttrs(&g, pin)
		}
		return g, nil
	}
	peers, err := c.peersToAsk(ctx)
	if err != nil {
		return GlobalPinInfo{}, err
	}
	g := c.statusChunkAll(ctx, peers, []cid.Cid{ci})[0]
	if pin.Defined() {
		withPinAttrs(&g, pin)
	}
	return g, nil
}

// StatusAll streams the status of the pins on every peer (f.Local: on
// this peer only), keeping those with a status in f.Status on at least one
// peer. The global form walks the pinset in chunks and asks all peers
// about each chunk concurrently, so memory does not grow with the pinset.
func (c *Cluster) StatusAll(ctx context.Context, f StatusFilter) iter.Seq2[GlobalPinInfo, error] {
	return func(yield func(GlobalPinInfo, error) bool) {
		if err := c.live("status all"); err != nil {
			yield(GlobalPinInfo{}, err)
			return
		}
		if f.Local {
			c.statusAllLocal(ctx, f, yield)
			return
		}
		peers, err := c.peersToAsk(ctx)
		if err != nil {
			yield(GlobalPinInfo{}, err)
			return
		}
		chunk := make([]Pin, 0, statusChunk)
		flush := func() bool {
			if len(chunk) == 0 {
				return true
			}
			cids := make([]cid.Cid, len(chunk))
			for i, p := range chunk {
				cids[i] = p.Cid
			}
			for i, g := range c.statusChunkAll(ctx, peers, cids) {
				withPinAttrs(&g, chunk[i])
				if g.Match(f.Status) && !yield(g, nil) {
					return false
				}
			}
			chunk = chunk[:0]
			if ctx.Err() != nil {
				yield(GlobalPinInfo{}, ctx.Err())
				return false
			}
			return true
		}
		for p, err := range c.Pins(ctx, PinFilter{Cids: f.Cids}) {
			if err != nil {
				if !yield(GlobalPinInfo{}, err) {
					return
				}
				continue
			}
			if chunk = append(chunk, p); len(chunk) == statusChunk && !flush() {
				return
			}
		}
		flush()
	}
}

func (c *Cluster) statusAllLocal(ctx context.Context, f StatusFilter, yield func(GlobalPinInfo, error) bool) {
	if len(f.Cids) > 0 {
		for _, ci := range f.Cids {
			pi, err := c.tracker.Status(ctx, ci)
			var g GlobalPinInfo
			if err == nil {
				g.Add(pi)
				if !pi.Status.Match(f.Status) {
					continue
				}
			}
			if !yield(g, err) {
				return
			}
		}
		return
	}
	for pi, err := range c.tracker.StatusAll(ctx, f.Status) {
		var g GlobalPinInfo
		if err == nil {
			g.Add(pi)
		}
		if !yield(g, err) {
			return
		}
	}
}

// Recover re-queues the errored operation of ci on every peer (local: on
// this peer only) and returns the resulting statuses.
func (c *Cluster) Recover(ctx context.Context, ci cid.Cid, local bool) (GlobalPinInfo, error) {
	if err := c.live("recover"); err != nil {
		return GlobalPinInfo{}, err
	}
	if c.cfg.follower {
		local = true // as IPFS Cluster: a follower acts on itself only
	}
	if local {
		pi, err := c.tracker.Recover(ctx, ci)
		if err != nil {
			return GlobalPinInfo{}, fmt.Errorf("pincluster: recover %s: %w", ci, err)
		}
		var g GlobalPinInfo
		g.Add(pi)
		return g, nil
	}
	peers, err := c.peersToAsk(ctx)
	if err != nil {
		return GlobalPinInfo{}, err
	}
	var g GlobalPinInfo
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			var pi PinInfo
			var err error
			switch {
			case p == c.host.ID():
				pi, err = c.tracker.Recover(ctx, ci)
			case c.remote != nil:
				pi, err = c.remote.recover(ctx, p, ci)
			default:
				err = errors.New("no peer-to-peer RPC")
			}
			if err != nil {
				pi = c.clusterErrorInfo(ci, p, err)
			} else {
				c.rememberPeer(p, pi.PeerName, pi.IPFS, pi.IPFSAddresses)
			}
			pi.Peer = p
			mu.Lock()
			g.Add(pi)
			mu.Unlock()
		})
	}
	wg.Wait()
	g.Cid = ci
	if pin, err := c.PinGet(ctx, ci); err == nil {
		withPinAttrs(&g, pin)
	}
	return g, nil
}

// RecoverAll re-queues every errored operation on every peer (local: on
// this peer only), then streams the statuses of the pins that are not
// pinned, remote or unpinned.
func (c *Cluster) RecoverAll(ctx context.Context, local bool) iter.Seq2[GlobalPinInfo, error] {
	return func(yield func(GlobalPinInfo, error) bool) {
		if err := c.live("recover all"); err != nil {
			yield(GlobalPinInfo{}, err)
			return
		}
		if c.cfg.follower {
			local = true // as IPFS Cluster: a follower acts on itself only
		}
		if local {
			for pi, err := range c.tracker.RecoverAll(ctx) {
				var g GlobalPinInfo
				if err == nil {
					g.Add(pi)
				}
				if !yield(g, err) {
					return
				}
			}
			return
		}
		peers, err := c.peersToAsk(ctx)
		if err != nil {
			yield(GlobalPinInfo{}, err)
			return
		}
		for _, p := range peers {
			var err error
			if p == c.host.ID() {
				for _, e := range c.tracker.RecoverAll(ctx) {
					if e != nil {
						err = e
					}
				}
			} else if c.remote != nil {
				_, err = c.remote.recoverAll(ctx, p)
			}
			if err != nil && !yield(GlobalPinInfo{}, &PeerError{Peer: p, Err: err}) {
				return
			}
		}
		notDone := TrackerStatusError | TrackerStatusQueued | TrackerStatusPinning | TrackerStatusUnpinning |
			TrackerStatusUnexpectedlyUnpinned
		for g, err := range c.StatusAll(ctx, StatusFilter{Status: notDone}) {
			if !yield(g, err) {
				return
			}
		}
	}
}

// SyncAll reconciles this peer's tracker with its IPFS node and streams the
// statuses that changed. The next periodic state sync hands the whole
// state to the tracker when something changed (pins the node lost are
// queued again then).
func (c *Cluster) SyncAll(ctx context.Context) iter.Seq2[PinInfo, error] {
	return func(yield func(PinInfo, error) bool) {
		if err := c.live("sync all"); err != nil {
			yield(PinInfo{}, err)
			return
		}
		for pi, err := range c.tracker.SyncAll(ctx) {
			if err == nil {
				// Taken from the periodic sync's own SyncAll.
				c.syncMisses.Add(1)
			}
			if !yield(pi, err) {
				return
			}
		}
	}
}

// Peers describes every peer of the consensus, this one first. A peer that
// cannot be asked is listed with ID.Error set.
func (c *Cluster) Peers(ctx context.Context) ([]ID, error) {
	if err := c.live("peers"); err != nil {
		return nil, err
	}
	peers, err := c.peersToAsk(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ID, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			if p == c.host.ID() {
				out[i] = c.ID(ctx)
				return
			}
			id := ID{ID: p, Error: "no peer-to-peer RPC"}
			if c.remote != nil {
				var err error
				if id, err = c.remote.id(ctx, p); err != nil {
					id = ID{ID: p, Error: err.Error()}
				} else {
					c.rememberPeer(p, id.PeerName, id.IPFS.ID, id.IPFS.Addresses)
				}
			}
			out[i] = id
		})
	}
	wg.Wait()
	return out, nil
}
