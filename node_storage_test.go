package pincluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// TestNodeStorageMaxCountsUserBlocksOnly checks that the in-process node's
// storage limit and usage count the user's blocks only: the CRDT
// consensus's deltas and snapshots are the cluster's own data (IPFS
// Cluster keeps them in its own datastore, out of Kubo's repository). A
// peer whose node may store 20,000 bytes writes 150 pins of 100-byte
// blocks (15,000 bytes of user data) in five rounds, each followed by a
// snapshot of the whole state (compaction off: every snapshot is kept),
// so its consensus stores much more than the 5,000 bytes left: every pin
// is accepted, and RepoStat (what the free-space metric is built on) says
// 150 blocks of 100 bytes.
func TestNodeStorageMaxCountsUserBlocksOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	require.NoError(t, err)
	psCtx, stopPS := context.WithCancel(ctx)
	defer stopPS()
	ps, err := pubsub.NewGossipSub(psCtx, h)
	require.NoError(t, err)
	const storageMax = 20_000
	c, err := pincluster.New(ctx, h, nil, ps,
		pincluster.WithSnapshots(5, false), pincluster.WithNodeStorageMax(storageMax))
	require.NoError(t, err)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		require.NoError(t, c.Shutdown(sctx))
	}()
	require.NoError(t, c.WaitReady(ctx))

	const rounds, perRound, size = 5, 30, 100
	const pins = rounds * perRound
	for r := range rounds {
		for i := range perRound {
			data := fmt.Appendf(nil, "%0*d", size, r*perRound+i)
			ci, err := c.BlockPut(ctx, data, cid.Prefix{})
			require.NoError(t, err, "block %d.%d", r, i)
			_, err = c.Pin(ctx, ci, pincluster.PinOptions{})
			require.NoError(t, err, "pin %d.%d (consensus: %s)", r, i, pincluster.CRDTStats(c))
		}
		require.NoError(t, pincluster.Snapshot(ctx, c), "snapshot %d", r)
	}

	stats, err := c.RepoStatAll(ctx)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	require.NoError(t, stats[0].Err)
	require.Equal(t, uint64(pins*size), stats[0].RepoSize, "bytes of user blocks")
	require.Equal(t, uint64(pins), stats[0].NumObjects, "user blocks")
	require.Equal(t, uint64(storageMax-pins*size), stats[0].FreeSpace())
}
