package pincluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ConnectGraph describes who is connected to whom in the cluster, as IPFS
// Cluster's ConnectGraph does (REST GET /health/graph, ipfs-cluster-ctl
// health graph). Every consensus peer is a key of ClusterLinks; a peer
// that could not be asked has an empty list there and no other entry.
type ConnectGraph struct {
	// ClusterID is the peer that built the graph.
	ClusterID peer.ID
	// IDtoPeername maps each cluster peer that answered to its name.
	IDtoPeername map[peer.ID]string
	// IPFSLinks maps an IPFS node's ID to the IPFS nodes it is connected
	// to (empty when its swarm peers could not be listed).
	IPFSLinks map[peer.ID][]peer.ID
	// ClusterLinks maps each cluster peer to the other cluster peers it
	// has a libp2p connection to.
	ClusterLinks map[peer.ID][]peer.ID
	// ClusterTrustLinks says, for each cluster peer, whether this peer
	// trusts it.
	ClusterTrustLinks map[peer.ID]bool
	// ClustertoIPFS maps each cluster peer whose IPFS node answered to
	// that node's ID.
	ClustertoIPFS map[peer.ID]peer.ID
}

// PeerLinks is one peer's view of its connections, the part of a
// ConnectGraph it contributes.
type PeerLinks struct {
	// Peer is the cluster peer.
	Peer peer.ID
	// PeerName is its human name.
	PeerName string
	// ClusterLinks are the other cluster peers it is connected to.
	ClusterLinks []peer.ID
	// IPFS is the ID of its IPFS node; empty when IPFSError is set.
	IPFS peer.ID
	// IPFSError says why the IPFS node could not be identified.
	IPFSError string
	// IPFSLinks are the peers its IPFS node is connected to.
	IPFSLinks []peer.ID
}

// peersAddresses returns the addresses the host knows for the given
// peers other than itself, each with its /p2p/ suffix (ID's
// ClusterPeersAddresses, as IPFS Cluster lists them).
func (c *Cluster) peersAddresses(peers []peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, p := range peers {
		if p == c.host.ID() {
			continue
		}
		as, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: p, Addrs: c.host.Peerstore().Addrs(p)})
		if err == nil {
			out = append(out, as...)
		}
	}
	return out
}

// localLinks is this peer's PeerLinks.
func (c *Cluster) localLinks(ctx context.Context) (PeerLinks, error) {
	if err := c.live("links"); err != nil {
		return PeerLinks{}, err
	}
	self := c.host.ID()
	out := PeerLinks{Peer: self, PeerName: c.cfg.peerName, ClusterLinks: []peer.ID{}}
	members, err := c.consensus.Peers(ctx)
	if err != nil {
		return PeerLinks{}, fmt.Errorf("pincluster: links: %w", err)
	}
	for _, p := range members {
		if p != self && c.host.Network().Connectedness(p) == network.Connected {
			out.ClusterLinks = append(out.ClusterLinks, p)
		}
	}
	id, err := c.connector.ID(ctx)
	if err != nil {
		out.IPFSError = err.Error()
		return out, nil
	}
	out.IPFS = id.ID
	out.IPFSLinks = []peer.ID{}
	if swarm, err := c.connector.SwarmPeers(ctx); err == nil {
		out.IPFSLinks = swarm
	}
	return out, nil
}

// ConnectGraph asks every consensus peer for its connections (cluster
// peers over libp2p, its IPFS node and that node's swarm) and returns the
// graph, with this peer's trust in each. A peer that cannot be asked is
// listed with no links, as IPFS Cluster does; only a failure to list the
// consensus peers is an error.
func (c *Cluster) ConnectGraph(ctx context.Context) (ConnectGraph, error) {
	if err := c.live("connect graph"); err != nil {
		return ConnectGraph{}, err
	}
	members, err := c.peersToAsk(ctx)
	if err != nil {
		return ConnectGraph{}, err
	}
	g := ConnectGraph{
		ClusterID:         c.host.ID(),
		IDtoPeername:      make(map[peer.ID]string),
		IPFSLinks:         make(map[peer.ID][]peer.ID),
		ClusterLinks:      make(map[peer.ID][]peer.ID),
		ClusterTrustLinks: make(map[peer.ID]bool),
		ClustertoIPFS:     make(map[peer.ID]peer.ID),
	}
	links := make([]PeerLinks, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, p := range members {
		wg.Go(func() {
			switch {
			case p == c.host.ID():
				links[i], errs[i] = c.localLinks(ctx)
			case c.remote != nil:
				links[i], errs[i] = c.remote.links(ctx, p)
			default:
				errs[i] = fmt.Errorf("pincluster: no peer-to-peer RPC")
			}
		})
	}
	wg.Wait()
	for i, p := range members {
		g.ClusterTrustLinks[p] = c.consensus.IsTrustedPeer(ctx, p)
		g.ClusterLinks[p] = []peer.ID{}
		if errs[i] != nil {
			c.log.Debug("connect graph: peer did not answer", "peer", p, "err", errs[i])
			continue
		}
		l := links[i]
		if len(l.ClusterLinks) > 0 {
			g.ClusterLinks[p] = l.ClusterLinks
		}
		g.IDtoPeername[p] = l.PeerName
		if l.IPFSError != "" || l.IPFS == "" {
			continue
		}
		g.ClustertoIPFS[p] = l.IPFS
		if l.IPFSLinks == nil {
			l.IPFSLinks = []peer.ID{}
		}
		g.IPFSLinks[l.IPFS] = l.IPFSLinks
	}
	return g, nil
}

// pingJSON is the value of this peer's MetricPing, as IPFS Cluster's: the
// peer's name, its IPFS node's ID and addresses.
type pingJSON struct {
	PeerName      string   `json:"peer_name,omitempty"`
	IPFSID        string   `json:"ipfs_id,omitempty"`
	IPFSAddresses []string `json:"ipfs_addresses,omitempty"`
}

// pingValue is the Value of this peer's MetricPing (see pingJSON). While
// the IPFS node does not answer, the last value with an IPFS ID is kept,
// as IPFS Cluster does.
func (c *Cluster) pingValue(ctx context.Context) string {
	v := pingJSON{PeerName: c.cfg.peerName}
	if id, err := c.connector.ID(ctx); err == nil && id.ID != "" {
		v.IPFSID = id.ID.String()
		for _, a := range id.Addresses {
			if manet.IsPublicAddr(a) {
				v.IPFSAddresses = append(v.IPFSAddresses, a.String())
			}
		}
	}
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	if v.IPFSID == "" && c.lastPing.IPFSID != "" {
		v = c.lastPing
	}
	c.lastPing = v
	b, _ := json.Marshal(v) // strings only: cannot fail
	return string(b)
}
