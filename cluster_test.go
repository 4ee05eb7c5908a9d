package pincluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// testCID returns a distinct raw CIDv1 for s.
func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func pinnedOn(n int) func(pincluster.GlobalPinInfo) bool {
	return func(g pincluster.GlobalPinInfo) bool {
		return clustertest.Count(g, pincluster.TrackerStatusPinned) == n
	}
}

func TestClusterSmoke(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	ctx := t.Context()
	ci := testCID(t, "smoke")
	pin, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2, Name: "smoke"})
	require.NoError(t, err)
	require.Len(t, pin.Allocations, 2)
	g := c.WaitStatus(1, ci, 20*time.Second, pinnedOn(2))
	require.Equal(t, 1, clustertest.Count(g, pincluster.TrackerStatusRemote), fmt.Sprint(g.PeerMap))
	for _, p := range c.Peers {
		want := pincluster.IPFSPinStatusUnpinned
		for _, a := range pin.Allocations {
			if a == p.ID() {
				want = pincluster.IPFSPinStatusRecursive
			}
		}
		require.Equal(t, want, p.Mock.PinStatus(ci), "peer %d", p.Index)
	}
	_, err = c.Peer(2).Unpin(ctx, ci)
	require.NoError(t, err)
	c.WaitStatus(0, ci, 20*time.Second, func(g pincluster.GlobalPinInfo) bool {
		return clustertest.Count(g, pincluster.TrackerStatusUnpinned) == 3
	})
	_ = context.Background
}
