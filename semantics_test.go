package pincluster_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// IPFS Cluster's semantics at the edges (issue 14), on 5 peers.

// A direct pin upgraded to recursive reaches every holder's IPFS node, and
// a peer reports pinned only once its node holds the recursive pin. The
// opposite, recursive to direct, is refused.
func TestSemanticsPinModeUpgrade(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	ci := testCID(t, "mode-upgrade")

	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
	require.NoError(t, err)
	c.WaitFor("direct pin on every node", 20*time.Second, func() bool {
		for _, p := range c.Peers {
			if p.Mock.PinStatus(ci) != pincluster.IPFSPinStatusDirect {
				return false
			}
		}
		return true
	})
	c.WaitStatus(0, ci, 20*time.Second, pinnedOn(5))

	slow := c.Peer(3)
	slow.Mock.SlowPin(ci, 10, 200*time.Millisecond)
	for _, p := range c.Peers {
		p.Mock.ResetCalls()
	}
	_, err = c.Peer(1).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeRecursive})
	require.NoError(t, err)
	c.WaitFor("recursive pin on every node", 20*time.Second, func() bool {
		for _, p := range c.Peers {
			// Once p's state asks for the recursive pin, p reports
			// pinned only if its node holds it recursively (state, then
			// status, then node: each only moves forward).
			pin, err := p.PinGet(ctx, ci)
			require.NoError(t, err)
			if pin.Mode != pincluster.PinModeRecursive {
				continue
			}
			if localStatus(t, p, ci).Status == pincluster.TrackerStatusPinned {
				require.Equal(t, pincluster.IPFSPinStatusRecursive, p.Mock.PinStatus(ci),
					"peer %d reports pinned while its node holds the pin as %s", p.Index, p.Mock.PinStatus(ci))
			}
		}
		for _, p := range c.Peers {
			if p.Mock.PinStatus(ci) != pincluster.IPFSPinStatusRecursive {
				return false
			}
		}
		return true
	})
	for _, p := range c.Peers {
		require.Equal(t, 1, p.Mock.Calls(clustertest.MethodPin), "peer %d pins once for the upgrade", p.Index)
	}
	c.WaitStatus(4, ci, 20*time.Second, pinnedOn(5))

	_, err = c.Peer(2).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
	require.ErrorIs(t, err, pincluster.ErrModeDowngrade)
	var verr *pincluster.ValidationError
	require.True(t, errors.As(err, &verr), "%T", err)
	require.Equal(t, "mode", verr.Field)
	pin, err := c.Peer(2).PinGet(ctx, ci)
	require.NoError(t, err)
	require.Equal(t, pincluster.PinModeRecursive, pin.Mode, "the refused downgrade changed nothing")
}
