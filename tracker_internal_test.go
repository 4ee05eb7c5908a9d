package pincluster

import (
	"context"

	peer "github.com/libp2p/go-libp2p/core/peer"
)

// trackerTestConsensus is a Consensus whose only working method is State.
type trackerTestConsensus struct {
	Consensus
	st ReadOnly
}

func (c trackerTestConsensus) State(context.Context) (ReadOnly, error) { return c.st, nil }

// NewTrackerForTest builds the default PinTracker of peer self over conn,
// reading the shared state from st, with the library's defaults. It exists
// for the external tests of tracker_test.go, which drive the tracker with
// clustertest.MockConnector (clustertest imports this package, so they
// cannot live here).
func NewTrackerForTest(self peer.ID, conn IPFSConnector, st ReadOnly) (PinTracker, error) {
	cfg := defaultConfig()
	return newOpTracker(self, "test-peer", conn, trackerTestConsensus{st: st}, &cfg)
}
