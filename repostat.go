package pincluster

import (
	"context"
	"sync"

	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/rpc"
)

// rpcRepoStat asks a peer for its IPFS node's storage usage (trusted
// peers only: it tells what a peer stores).
const rpcRepoStat = "IPFS.RepoStat"

type repoStatWire struct {
	RepoSize, StorageMax, NumObjects uint64
}

func (c *Cluster) repoStatHandler() rpc.Handler {
	return rpc.Handle(func(ctx context.Context, _ peer.ID, _ struct{}) (repoStatWire, error) {
		st, err := c.connector.RepoStat(ctx)
		if err != nil {
			return repoStatWire{}, err
		}
		return repoStatWire(st), nil
	})
}

// PeerRepoStat is one peer's answer to Cluster.RepoStatAll.
type PeerRepoStat struct {
	// Peer is the cluster peer asked.
	Peer peer.ID
	// RepoStat is its IPFS node's storage usage, when Err is nil.
	RepoStat
	// Err is why the peer could not answer.
	Err error
}

// RepoStatAll asks every peer of the consensus, this one first, for the
// storage usage of its IPFS node (what the IPFS proxy's cluster-wide
// repo/stat adds up). A peer that cannot answer is listed with Err set.
func (c *Cluster) RepoStatAll(ctx context.Context) ([]PeerRepoStat, error) {
	if err := c.live("repo stat"); err != nil {
		return nil, err
	}
	peers, err := c.peersToAsk(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PeerRepoStat, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			out[i].Peer = p
			if p == c.host.ID() {
				out[i].RepoStat, out[i].Err = c.connector.RepoStat(ctx)
				return
			}
			w, err := rpc.Call[struct{}, repoStatWire](ctx, c.rpcClient, p, rpcRepoStat, struct{}{})
			if err != nil {
				out[i].Err = wrapRPC(p, err)
				return
			}
			out[i].RepoStat = RepoStat(w)
		})
	}
	wg.Wait()
	return out, nil
}
