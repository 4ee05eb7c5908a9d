package pincluster

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/rpc"
)

// rpcReg is one method served by startRPC.
type rpcReg struct {
	name string
	perm rpc.Permission
	h    rpc.Handler
}

// maxGCKeys bounds the removed CIDs one peer reports over RPC.
const maxGCKeys = 1 << 16

// maxLinks bounds the peers in one list of a links answer.
const maxLinks = 1 << 14

type linksWire struct {
	Peer      []byte   `cbor:"1,keyasint"`
	PeerName  string   `cbor:"2,keyasint,omitempty"`
	Cluster   [][]byte `cbor:"3,keyasint,omitempty"`
	IPFS      []byte   `cbor:"4,keyasint,omitempty"`
	IPFSError string   `cbor:"5,keyasint,omitempty"`
	IPFSLinks [][]byte `cbor:"6,keyasint,omitempty"`
}

type repoGCWire struct {
	Peer     []byte   `cbor:"1,keyasint"`
	PeerName string   `cbor:"2,keyasint,omitempty"`
	Keys     [][]byte `cbor:"3,keyasint,omitempty"`
	Count    uint64   `cbor:"4,keyasint,omitempty"`
	Freed    uint64   `cbor:"5,keyasint,omitempty"`
}

// graphGCHandlers are the RPC methods of ConnectGraph and RepoGC; both
// need trust (they reveal the peer's connections, and GC costs work).
func (c *Cluster) graphGCHandlers() []rpcReg {
	return []rpcReg{
		{rpcLinks, rpc.Trusted, rpc.Handle(func(ctx context.Context, _ peer.ID, _ struct{}) (linksWire, error) {
			l, err := c.localLinks(ctx)
			if err != nil {
				return linksWire{}, err
			}
			return linksWire{Peer: []byte(l.Peer), PeerName: l.PeerName, Cluster: peersToBytes(l.ClusterLinks),
				IPFS: []byte(l.IPFS), IPFSError: l.IPFSError, IPFSLinks: peersToBytes(l.IPFSLinks)}, nil
		})},
		{rpcRepoGC, rpc.Trusted, rpc.Handle(func(ctx context.Context, _ peer.ID, _ struct{}) (repoGCWire, error) {
			r, err := c.localRepoGC(ctx)
			if err != nil {
				return repoGCWire{}, err
			}
			keys := r.Keys
			if len(keys) > maxGCKeys {
				keys = keys[:maxGCKeys]
			}
			w := repoGCWire{Peer: []byte(r.Peer), PeerName: r.PeerName, Count: r.RemovedCount, Freed: r.FreedBytes}
			for _, k := range keys {
				w.Keys = append(w.Keys, k.Bytes())
			}
			return w, nil
		})},
	}
}

func (r rpcPeers) links(ctx context.Context, p peer.ID) (PeerLinks, error) {
	w, err := rpc.Call[struct{}, linksWire](ctx, r.cli, p, rpcLinks, struct{}{})
	if err != nil {
		return PeerLinks{}, wrapRPC(p, err)
	}
	if len(w.Cluster) > maxLinks || len(w.IPFSLinks) > maxLinks {
		return PeerLinks{}, wrapRPC(p, fmt.Errorf("%w: links: more than %d peers", ErrCorrupt, maxLinks))
	}
	cl, err := bytesToPeers("cluster_links", w.Cluster)
	if err != nil {
		return PeerLinks{}, wrapRPC(p, err)
	}
	il, err := bytesToPeers("ipfs_links", w.IPFSLinks)
	if err != nil {
		return PeerLinks{}, wrapRPC(p, err)
	}
	l := PeerLinks{Peer: p, PeerName: w.PeerName, ClusterLinks: cl, IPFSError: w.IPFSError, IPFSLinks: il}
	if len(w.IPFS) > 0 {
		if l.IPFS, err = peer.IDFromBytes(w.IPFS); err != nil {
			return PeerLinks{}, wrapRPC(p, fmt.Errorf("%w: links: ipfs id: %v", ErrCorrupt, err))
		}
	}
	return l, nil
}

func (r rpcPeers) repoGC(ctx context.Context, p peer.ID) (PeerRepoGC, error) {
	w, err := rpc.Call[struct{}, repoGCWire](ctx, r.cli, p, rpcRepoGC, struct{}{})
	if err != nil {
		return PeerRepoGC{}, wrapRPC(p, err)
	}
	if len(w.Keys) > maxGCKeys {
		return PeerRepoGC{}, wrapRPC(p, fmt.Errorf("%w: repo gc: more than %d keys", ErrCorrupt, maxGCKeys))
	}
	out := PeerRepoGC{Peer: p, PeerName: w.PeerName, Keys: make([]cid.Cid, 0, len(w.Keys)),
		RemovedCount: w.Count, FreedBytes: w.Freed}
	for _, b := range w.Keys {
		k, err := bytesToCid("key", b)
		if err != nil {
			return PeerRepoGC{}, wrapRPC(p, err)
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}
