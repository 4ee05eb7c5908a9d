// Command embed is the smallest useful pincluster program: one cluster
// peer on the application's own libp2p host, with every default (CRDT
// consensus, in-process IPFS node, in-memory state). It adds a text to the
// peer's IPFS node, pins it through the cluster, waits until it is pinned
// and prints its CID. Run several copies with -join to form a cluster.
//
//	go run ./examples/embed [-text TEXT] [-join /ip4/.../p2p/ID]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

func main() {
	text := flag.String("text", "hello, pincluster", "text to add and pin")
	join := flag.String("join", "", "multiaddress (with /p2p/) of a peer to join")
	flag.Parse()
	if err := run(context.Background(), *text, *join, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, text, join string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// The application's libp2p stack: pincluster uses it, never makes one.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return err
	}
	defer h.Close()
	psCtx, stopPS := context.WithCancel(context.Background())
	defer stopPS()
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		return err
	}
	if join != "" {
		ai, err := peer.AddrInfoFromString(join)
		if err != nil {
			return fmt.Errorf("-join: %w", err)
		}
		if err := h.Connect(ctx, *ai); err != nil {
			return fmt.Errorf("-join: %w", err)
		}
	}

	c, err := pincluster.New(ctx, h, nil, ps)
	if err != nil {
		return err
	}
	defer c.Shutdown(context.Background())
	if err := c.WaitReady(ctx); err != nil {
		return err
	}

	added, err := c.Add(ctx, func(yield func(string, io.Reader) bool) {
		yield("text", strings.NewReader(text))
	}, pincluster.AddParams{PinOptions: pincluster.PinOptions{Name: "embed"}, CIDVersion: 1, RawLeaves: true})
	if err != nil {
		return err
	}
	root := added[len(added)-1].Cid
	for {
		g, err := c.Status(ctx, root, true)
		if err != nil {
			return err
		}
		if g.PeerMap[h.ID()].Status == pincluster.TrackerStatusPinned {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not pinned: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "pinned %s\n", root)
	for _, a := range h.Addrs() {
		fmt.Fprintf(out, "join with: -join %s/p2p/%s\n", a, h.ID())
	}
	return nil
}
