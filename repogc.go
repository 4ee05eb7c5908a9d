package pincluster

import (
	"context"
	"fmt"
	"sync"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// PeerRepoGC is the result of a garbage collection of one peer's IPFS node.
type PeerRepoGC struct {
	// Peer is the cluster peer.
	Peer peer.ID
	// PeerName is its human name (empty when the peer did not answer).
	PeerName string
	// Keys are the CIDs of the blocks removed (the connector may cut the
	// list; RemovedCount is the full count).
	Keys []cid.Cid
	// RemovedCount is how many blocks were removed.
	RemovedCount uint64
	// FreedBytes is how many bytes were freed, when known.
	FreedBytes uint64
	// Error says why the collection failed on this peer, or why the peer
	// could not be asked; empty on success.
	Error string
}

// GlobalRepoGC is the result of a cluster-wide garbage collection: one
// entry per peer asked.
type GlobalRepoGC struct {
	// PeerMap holds each peer's result.
	PeerMap map[peer.ID]PeerRepoGC
}

// localRepoGC runs garbage collection on this peer's IPFS node. A
// connector without RepoGCer fails with an error wrapping
// ErrNotSupported.
func (c *Cluster) localRepoGC(ctx context.Context) (PeerRepoGC, error) {
	if err := c.live("repo gc"); err != nil {
		return PeerRepoGC{}, err
	}
	gcer, ok := c.connector.(RepoGCer)
	if !ok {
		return PeerRepoGC{}, fmt.Errorf("pincluster: repo gc: %w (the IPFS connector cannot collect garbage)", ErrNotSupported)
	}
	r, err := gcer.RepoGC(ctx)
	if err != nil {
		return PeerRepoGC{}, fmt.Errorf("pincluster: repo gc: %w", err)
	}
	keys := r.Removed
	if keys == nil {
		keys = []cid.Cid{}
	}
	return PeerRepoGC{Peer: c.host.ID(), PeerName: c.cfg.peerName, Keys: keys,
		RemovedCount: r.RemovedCount, FreedBytes: r.FreedBytes}, nil
}

// RepoGC runs garbage collection on the IPFS node of this peer (local) or
// of every consensus peer, in parallel, and returns one entry per peer. A
// peer whose collection fails, or which cannot be asked, has its Error
// set; with local, this peer's failure is returned as the error. Only a
// failure to list the consensus peers is an error otherwise.
func (c *Cluster) RepoGC(ctx context.Context, local bool) (GlobalRepoGC, error) {
	g := GlobalRepoGC{PeerMap: make(map[peer.ID]PeerRepoGC)}
	if local {
		r, err := c.localRepoGC(ctx)
		if err != nil {
			return GlobalRepoGC{}, err
		}
		g.PeerMap[r.Peer] = r
		return g, nil
	}
	if err := c.live("repo gc"); err != nil {
		return GlobalRepoGC{}, err
	}
	members, err := c.peersToAsk(ctx)
	if err != nil {
		return GlobalRepoGC{}, err
	}
	out := make([]PeerRepoGC, len(members))
	var wg sync.WaitGroup
	for i, p := range members {
		wg.Go(func() {
			var r PeerRepoGC
			var err error
			switch {
			case p == c.host.ID():
				r, err = c.localRepoGC(ctx)
			case c.remote != nil:
				r, err = c.remote.repoGC(ctx, p)
			default:
				err = fmt.Errorf("pincluster: no peer-to-peer RPC")
			}
			if err != nil {
				r = PeerRepoGC{Peer: p, Keys: []cid.Cid{}, Error: err.Error()}
				if p == c.host.ID() {
					r.PeerName = c.cfg.peerName
				}
			}
			r.Peer = p
			out[i] = r
		})
	}
	wg.Wait()
	for _, r := range out {
		g.PeerMap[r.Peer] = r
	}
	return g, nil
}
