package kubo_test

import (
	"testing"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/connectortest"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// The Kubo connector passes the connector conformance suite, online and
// offline; the subtests share one daemon each.
func TestKuboConformance(t *testing.T) {
	for _, offline := range []bool{false, true} {
		name := "online"
		if offline {
			name = "offline"
		}
		t.Run(name, func(t *testing.T) {
			d := kubotest.Start(t, kubotest.Options{Offline: offline})
			connectortest.Run(t, connectortest.Config{
				FetchesContent: true,
				Offline:        offline,
				New: func(t *testing.T) pincluster.IPFSConnector {
					return connect(t, d, kubo.Config{})
				},
			})
		})
	}
}
