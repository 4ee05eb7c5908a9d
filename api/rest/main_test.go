package rest

import (
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(attackEnv); addr != "" { // the child of TestStalledUnauthenticatedUploads
		n, _ := strconv.Atoi(os.Getenv(attackNEnv))
		os.Exit(runAttacker(addr, n))
	}
	goleak.VerifyTestMain(m,
		// mocknet (clustertest's network) can leave one stream's transport
		// goroutine behind: a stream opened while its connection is being
		// closed is added after the close reset the connection's streams
		// (mock_conn.go, openStream/teardown), so nothing ever resets it.
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*stream).transport"),
	)
}
