package pincluster_test

import (
	"context"
	"fmt"
	"time"

	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	mh "github.com/multiformats/go-multihash"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster"
)

// startPeer starts a one-peer cluster on loopback with the defaults and
// returns it with a function that stops it (and its host and pubsub).
func startPeer(ctx context.Context) (*pincluster.Cluster, func(), error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, nil, err
	}
	psCtx, stopPS := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		stopPS()
		_ = h.Close()
		return nil, nil, err
	}
	c, err := pincluster.New(ctx, h, nil, ps)
	if err != nil {
		stopPS()
		_ = h.Close()
		return nil, nil, err
	}
	return c, func() { shutdown(c, h, stopPS) }, nil
}

func shutdown(c *pincluster.Cluster, h host.Host, stopPS context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.Shutdown(ctx)
	_ = h.Close()
	stopPS()
}

// exampleCID returns a CID for the examples (normally the root of data
// added to IPFS).
func exampleCID(s string) cid.Cid {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}

// New starts a cluster peer on the application's own libp2p host and
// pubsub. With no options it runs the CRDT consensus, the in-process IPFS
// node and in-memory state.
func ExampleNew() {
	ctx := context.Background()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		panic(err)
	}
	psCtx, stopPS := context.WithCancel(ctx)
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		panic(err)
	}
	c, err := pincluster.New(ctx, h, nil, ps, pincluster.WithPeerName("example"))
	if err != nil {
		panic(err)
	}
	defer shutdown(c, h, stopPS)
	if err := c.WaitReady(ctx); err != nil {
		panic(err)
	}
	id := c.ID(ctx)
	fmt.Println(id.PeerName, id.ID == h.ID())
	// Output: example true
}

// Pin logs a pin to the shared state; the allocated peers' trackers pin
// it on their IPFS nodes.
func ExampleCluster_Pin() {
	ctx := context.Background()
	c, stop, err := startPeer(ctx)
	if err != nil {
		panic(err)
	}
	defer stop()
	if err := c.WaitReady(ctx); err != nil {
		panic(err)
	}
	pin, err := c.Pin(ctx, exampleCID("hello"), pincluster.PinOptions{
		Name:     "hello",
		Metadata: map[string]string{"owner": "docs"},
	})
	if err != nil {
		panic(err)
	}
	// Replication -1 (the default): every peer pins it.
	fmt.Println(pin.Name, pin.IsPinEverywhere())

	_, err = c.Pin(ctx, exampleCID("too big"), pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
	fmt.Println(err != nil)
	// Output:
	// hello true
	// true
}

// StatusAll streams the status of every pin on every peer; here the one
// peer reports pinned once its IPFS node holds the data.
func ExampleCluster_StatusAll() {
	ctx := context.Background()
	c, stop, err := startPeer(ctx)
	if err != nil {
		panic(err)
	}
	defer stop()
	if err := c.WaitReady(ctx); err != nil {
		panic(err)
	}
	// Store a block in the peer's own IPFS node, then pin it.
	ci, err := c.BlockPut(ctx, []byte("hello"), cid.Prefix{})
	if err != nil {
		panic(err)
	}
	if _, err := c.Pin(ctx, ci, pincluster.PinOptions{Name: "hello"}); err != nil {
		panic(err)
	}
	// Pinning takes a moment: ask again every 50 ms until it is done,
	// within 10 s.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for pinned := 0; pinned == 0; {
		for g, err := range c.StatusAll(ctx, pincluster.StatusFilter{Status: pincluster.TrackerStatusPinned}) {
			if err != nil {
				panic(err)
			}
			fmt.Println(g.Name, len(g.PeerMap))
			pinned++
		}
		if pinned > 0 {
			break
		}
		select {
		case <-wait.Done():
			fmt.Println("not pinned within 10 s")
			return
		case <-tick.C:
		}
	}
	// Output: hello 1
}
