// Package leaktest holds the goleak options shared by the test binaries
// that run peers on mocknet, so the reason for each exception is written
// once.
package leaktest

import "go.uber.org/goleak"

const mockStream = "github.com/libp2p/go-libp2p/p2p/net/mock.(*stream)."

// MocknetOrphans ignores what a stream orphaned by mocknet leaves behind.
// go-libp2p's mocknet can add a stream to a connection after that
// connection's close has already reset its streams (mock_conn.go: Close
// runs teardown while a concurrent NewStream runs openStream), so nothing
// ever resets that stream: its transport goroutine stays (on top of its
// own frame, or blocked in its pipe's write), and so does any goroutine
// blocked reading or writing it (pubsub's handlePeerDead and
// handleSendingMessages for a peer it was greeting at shutdown). A stream
// whose connection closed normally is reset and its readers and writers
// return, so a goroutine blocked on a mocknet stream after the network
// closed is this race, never a goroutine we failed to stop.
func MocknetOrphans() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction(mockStream + "transport"),
		goleak.IgnoreAnyFunction(mockStream + "Read"),
		goleak.IgnoreAnyFunction(mockStream + "Write"),
	}
}
