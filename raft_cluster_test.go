package pincluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/consensus/raft"
)

// The Cluster on the Raft consensus: pins through any peer (followers
// forward to the leader) are placed and pinned; the leader stops, a new
// one is elected, pins go on, and the stopped leader's pins are re-placed.
func TestClusterOnRaft(t *testing.T) {
	cons := make([]*raft.Consensus, 3)
	c := clustertest.Start(t, clustertest.Setup{N: 3,
		NewConsensus: func(i int, h host.Host, peers []peer.ID) (pincluster.Consensus, error) {
			rc, err := raft.New(context.Background(), h, raft.Config{Peers: peers,
				HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
				LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond})
			cons[i] = rc
			return rc, err
		}})
	ctx := t.Context()
	var cids []cid.Cid
	for i := range 12 {
		ci := testCID(t, fmt.Sprint("raft-", i))
		cids = append(cids, ci)
		_, err := c.Peer(i%3).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
		require.NoError(t, err)
	}
	c.WaitFor("each pinned on its two peers", 20*time.Second, func() bool {
		for _, ci := range cids {
			pin, err := c.Peer(0).PinGet(ctx, ci)
			if err != nil || !slices.Equal(sorted(pin.Allocations), holders(c, ci)) {
				return false
			}
		}
		return true
	})

	// Stop the leader.
	lid, err := cons[0].Leader(ctx)
	require.NoError(t, err)
	var leader *clustertest.Peer
	for _, p := range c.Peers {
		if p.ID() == lid {
			leader = p
		}
	}
	require.NotNil(t, leader, "the leader %s is a peer", lid)
	lost := leader.ID()
	c.Stop(leader.Index)
	var alive *clustertest.Peer
	for _, p := range c.Running() {
		alive = p
	}
	extra := testCID(t, "raft-after-failover")
	c.WaitFor("a pin succeeds after the failover", 20*time.Second, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := alive.Pin(sctx, extra, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 2})
		return err == nil
	})
	c.WaitFor("the stopped leader's pins re-placed on the two live peers", 30*time.Second, func() bool {
		for _, ci := range cids {
			pin, err := alive.PinGet(ctx, ci)
			if err != nil || slices.Contains(pin.Allocations, lost) || len(pin.Allocations) != 2 {
				return false
			}
		}
		return true
	})
}
