package pincluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// mocknet (clustertest's network) can leave one stream's transport
		// goroutine behind: a stream opened while its connection is being
		// closed is added after the close reset the connection's streams
		// (mock_conn.go, openStream/teardown), so nothing ever resets it.
		// When pubsub opened that stream, its writer and peer-dead reader
		// stay blocked on it too, and the transport goroutine may be
		// blocked in its pipe's write rather than on top of its own frame
		// (seen once in a root run with every test passing).
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*stream).transport"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p-pubsub.(*PubSub).handleSendingMessages"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p-pubsub.(*PubSub).handlePeerDead"),
	)
}
