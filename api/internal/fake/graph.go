package fake

import (
	"context"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// ConnectGraph returns the graph of a one-peer cluster: the peer, trusted,
// with its IPFS node and no links.
func (b *Backend) ConnectGraph(ctx context.Context) (pincluster.ConnectGraph, error) {
	if err := b.enter("ConnectGraph"); err != nil {
		return pincluster.ConnectGraph{}, err
	}
	return pincluster.ConnectGraph{
		ClusterID:         b.self,
		IDtoPeername:      map[peer.ID]string{b.self: "fake"},
		IPFSLinks:         map[peer.ID][]peer.ID{b.ipfs: {}},
		ClusterLinks:      map[peer.ID][]peer.ID{b.self: {}},
		ClusterTrustLinks: map[peer.ID]bool{b.self: true},
		ClustertoIPFS:     map[peer.ID]peer.ID{b.self: b.ipfs},
	}, nil
}

// RepoGC reports a collection on the fake peer that removed nothing.
func (b *Backend) RepoGC(ctx context.Context, local bool) (pincluster.GlobalRepoGC, error) {
	if err := b.enter("RepoGC"); err != nil {
		return pincluster.GlobalRepoGC{}, err
	}
	return pincluster.GlobalRepoGC{PeerMap: map[peer.ID]pincluster.PeerRepoGC{
		b.self: {Peer: b.self, PeerName: "fake", Keys: []cid.Cid{}},
	}}, nil
}

// SetAlerts replaces the alerts Alerts returns.
func (b *Backend) SetAlerts(as ...pincluster.Alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.alerts = as
}
