package pincluster_test

import (
	"context"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/connectortest"
)

// The in-process node connector passes the connector conformance suite.
func TestNodeConnectorConformance(t *testing.T) {
	connectortest.Run(t, connectortest.Config{
		FetchesContent: true,
		New: func(t *testing.T) pincluster.IPFSConnector {
			mn := mocknet.New()
			t.Cleanup(func() { _ = mn.Close() })
			h, err := mn.GenPeer()
			require.NoError(t, err)
			c, err := pincluster.NewNodeConnector(t.Context(), h, dssync.MutexWrap(ds.NewMapDatastore()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
			return c
		},
	})
}
