// Command quickstart is pincluster's main demonstration: three cluster
// peers in one process, each with its own libp2p host on loopback, the
// in-process IPFS node and in-memory state (the defaults). It adds a file
// on peer 0, pins it with replication 2, shows it becoming pinned on
// exactly two peers, stops one of them, and shows the cluster re-pinning
// the file on the third peer. It exits 0 when all of that happened, 1
// otherwise.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	cid "github.com/ipfs/go-cid"
	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// monitorInterval is short so that the demonstration is quick: a peer is
// declared lost after two missed intervals.
const monitorInterval = time.Second

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart: FAILED:", err)
		os.Exit(1)
	}
}

// node is one peer of the demonstration with what it owns.
type node struct {
	name    string
	host    host.Host
	cluster *pincluster.Cluster
	stop    context.CancelFunc
	stopped bool
}

func (n *node) shutdown() error {
	if n.stopped {
		return nil
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.cluster.Shutdown(ctx)
	err = errors.Join(err, n.host.Close())
	n.stop() // ends the pubsub
	return err
}

func start(ctx context.Context, name string, others []*node) (*node, error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		return nil, err
	}
	pctx, stop := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(pctx, h)
	if err != nil {
		stop()
		_ = h.Close()
		return nil, err
	}
	for _, o := range others {
		if err := h.Connect(ctx, peer.AddrInfo{ID: o.host.ID(), Addrs: o.host.Addrs()}); err != nil {
			stop()
			_ = h.Close()
			return nil, err
		}
	}
	c, err := pincluster.New(ctx, h, nil, ps,
		pincluster.WithPeerName(name),
		pincluster.WithMonitorInterval(monitorInterval),
		pincluster.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		stop()
		_ = h.Close()
		return nil, err
	}
	return &node{name: name, host: h, cluster: c, stop: stop}, nil
}

func run(ctx context.Context, out io.Writer) (err error) {
	began := time.Now()
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.shutdown())
		}
	}()
	for i := range 3 {
		n, err := start(ctx, fmt.Sprintf("peer%d", i), nodes)
		if err != nil {
			return fmt.Errorf("start peer%d: %w", i, err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := n.cluster.WaitReady(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "3 peers ready: %s, %s, %s\n", short(nodes[0]), short(nodes[1]), short(nodes[2]))
	if err := waitFor(ctx, "every peer sees the others", func() bool {
		for _, n := range nodes {
			if len(n.cluster.Metrics(ctx, pincluster.MetricPing)) < 3 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}

	// Add 1 MiB of random data on peer0 and pin it on two peers.
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	files := func(yield func(string, io.Reader) bool) { yield("hello.bin", bytes.NewReader(data)) }
	added, err := nodes[0].cluster.Add(ctx, files, pincluster.AddParams{
		PinOptions: pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2, Name: "hello.bin"},
		CIDVersion: 1, RawLeaves: true,
	})
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	root := added[len(added)-1].Cid
	fmt.Fprintf(out, "\nadded hello.bin (1 MiB) on peer0: %s, pinned with replication 2\n", root)

	if err := waitPinned(ctx, nodes[0].cluster, root, 2); err != nil {
		return err
	}
	if err := table(ctx, out, nodes[0].cluster, root); err != nil {
		return err
	}

	// Stop one of the two peers holding it (not peer0, which we ask).
	pin, err := nodes[0].cluster.PinGet(ctx, root)
	if err != nil {
		return err
	}
	var victim *node
	for _, n := range nodes[1:] {
		if slices.Contains(pin.Allocations, n.host.ID()) {
			victim = n
			break
		}
	}
	if victim == nil {
		return fmt.Errorf("neither peer1 nor peer2 holds the pin (allocations %v)", pin.Allocations)
	}
	lost := victim.host.ID()
	fmt.Fprintf(out, "\nstopping %s, which holds the pin...\n", victim.name)
	if err := victim.shutdown(); err != nil {
		return fmt.Errorf("stop %s: %w", victim.name, err)
	}
	stoppedAt := time.Now()

	// The cluster notices (two missed monitor intervals) and re-pins.
	if err := waitFor(ctx, "the pin re-allocated away from the stopped peer and pinned twice", func() bool {
		p, err := nodes[0].cluster.PinGet(ctx, root)
		if err != nil || slices.Contains(p.Allocations, lost) {
			return false
		}
		g, err := nodes[0].cluster.Status(ctx, root, false)
		return err == nil && count(g, pincluster.TrackerStatusPinned) == 2
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "re-pinned %.1fs after the stop:\n", time.Since(stoppedAt).Seconds())
	if err := table(ctx, out, nodes[0].cluster, root); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nOK: pinned on exactly 2 peers, and again on 2 after losing one (%.1fs in all)\n", time.Since(began).Seconds())
	return nil
}

func short(n *node) string { return n.name + "=" + shortID(n.host.ID()) }

func shortID(id peer.ID) string {
	s := id.String()
	return "…" + s[len(s)-6:]
}

func count(g pincluster.GlobalPinInfo, st pincluster.TrackerStatus) int {
	k := 0
	for _, pi := range g.PeerMap {
		if pi.Status.Match(st) {
			k++
		}
	}
	return k
}

func waitPinned(ctx context.Context, c *pincluster.Cluster, ci cid.Cid, n int) error {
	return waitFor(ctx, fmt.Sprintf("pinned on %d peers", n), func() bool {
		g, err := c.Status(ctx, ci, false)
		return err == nil && count(g, pincluster.TrackerStatusPinned) == n
	})
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting until %s", what)
		case <-t.C:
		}
	}
	return nil
}

// table prints the global status of ci, one line per peer.
func table(ctx context.Context, out io.Writer, c *pincluster.Cluster, ci cid.Cid) error {
	g, err := c.Status(ctx, ci, false)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tID\tSTATUS")
	var ids []peer.ID
	for id := range g.PeerMap {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b peer.ID) int {
		return cmp.Compare(g.PeerMap[a].PeerName, g.PeerMap[b].PeerName)
	})
	for _, id := range ids {
		pi := g.PeerMap[id]
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", pi.PeerName, shortID(id), pi.Status)
	}
	return tw.Flush()
}
