package clustertest_test

import (
	"context"
	"testing"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/connector/connectortest"
)

// The mock connector passes the connector conformance suite (it pins
// without content).
func TestMockConnectorConformance(t *testing.T) {
	connectortest.Run(t, connectortest.Config{
		New: func(t *testing.T) pincluster.IPFSConnector {
			m := clustertest.NewMockConnector()
			t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
			return m
		},
	})
}
