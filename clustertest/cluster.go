package clustertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	crypto "github.com/libp2p/go-libp2p/core/crypto"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/internal/poll"
)

// Setup describes a test cluster for Start. The zero value (plus N) is N
// peers on go-libp2p's mocknet with a MockConnector each, in-memory state,
// a 1 s monitor interval and their logs (Info and above) on t.Log.
type Setup struct {
	// N is the number of peers.
	N int
	// TCP runs the peers on loopback TCP (real libp2p transports, for a
	// test where something outside the process, such as a Kubo daemon,
	// dials them) instead of mocknet. Cut and Heal need mocknet.
	TCP bool
	// LogLevel is the least level of the peers' logs written to t.Log
	// (see NewLogger). Default: slog.LevelInfo.
	LogLevel slog.Level
	// InProcessIPFS gives each peer the default in-process IPFS node
	// instead of a MockConnector.
	InProcessIPFS bool
	// Badger keeps each peer's datastore in a Badger directory under the
	// test's temporary directory, so Restart finds its state again.
	Badger bool
	// TrustEachOther restricts every peer's trust to the cluster's own
	// peers (WithTrustedPeers) instead of the default trust in everyone.
	TrustEachOther bool
	// NewConsensus, when set, builds peer i's consensus on its host (e.g.
	// a Raft consensus of package consensus/raft), given the IDs of all
	// the peers; it is passed with WithConsensus. Default: the CRDT.
	NewConsensus func(i int, h host.Host, peers []peer.ID) (pincluster.Consensus, error)
	// MonitorInterval is the monitor's publish interval. Default: 1 s
	// (metrics live three intervals: a peer is declared lost after 3 s
	// without metrics).
	MonitorInterval time.Duration
	// Options are given to every peer, after the kit's own.
	Options []pincluster.Option
	// PeerOptions, when set, returns extra options for peer i, given
	// after Options.
	PeerOptions func(i int) []pincluster.Option
	// ReadyOnly makes Start wait only until each peer's WaitReady returns,
	// not until every peer has seen every other's metrics: the peers are
	// used as soon as they call themselves ready.
	ReadyOnly bool
	// ConfigureMock, when set, is called with each peer's MockConnector
	// before the peers start (so that their first metrics already show,
	// say, the storage maximum it sets). Unused with InProcessIPFS.
	ConfigureMock func(i int, m *MockConnector)
}

// Cluster is a set of peers started by Start or NewCluster in one process.
// Everything stops at the end of the test.
type Cluster struct {
	t     testing.TB
	setup Setup
	mn    mocknet.Mocknet // nil with Setup.TCP
	log   *slog.Logger
	// Peers are the peers, by index. A stopped peer keeps its slot.
	Peers []*Peer
}

// Peer is one peer of a test Cluster.
type Peer struct {
	// Cluster is the running peer; nil while stopped.
	*pincluster.Cluster
	// Index is the peer's position in Cluster.Peers.
	Index int
	// Host is the peer's libp2p host (a new one after Restart).
	Host host.Host
	// Mock is the peer's connector when the setup uses mocks. It survives
	// Stop and Restart (its pins stay, as a daemon's would).
	Mock *MockConnector

	key    crypto.PrivKey
	dir    string
	cancel context.CancelFunc
}

// ID returns the peer's libp2p ID (stable across restarts).
func (p *Peer) ID() peer.ID {
	id, _ := peer.IDFromPrivateKey(p.key)
	return id
}

// NewCluster starts n peers on mocknet with mock connectors and opts, and
// waits until all are ready.
func NewCluster(t testing.TB, n int, opts ...pincluster.Option) *Cluster {
	t.Helper()
	return Start(t, Setup{N: n, Options: opts})
}

// Start starts the peers of s, connects them to each other and waits until
// all are ready. It fails the test on error.
func Start(t testing.TB, s Setup) *Cluster {
	t.Helper()
	if s.MonitorInterval == 0 {
		s.MonitorInterval = time.Second
	}
	c := &Cluster{t: t, setup: s, log: NewLogger(t, s.LogLevel)} // logs until after stopAll
	if !s.TCP {
		c.mn = mocknet.New()
		t.Cleanup(func() { _ = c.mn.Close() })
	}
	base := t.TempDir() // before stopAll: cleanups run last-in first-out
	t.Cleanup(c.stopAll)
	for i := range s.N {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatalf("clustertest: key: %v", err)
		}
		p := &Peer{Index: i, key: key, dir: filepath.Join(base, "peer"+strconv.Itoa(i))}
		if !s.InProcessIPFS {
			p.Mock = NewMockConnector()
			if s.ConfigureMock != nil {
				s.ConfigureMock(i, p.Mock)
			}
		}
		c.Peers = append(c.Peers, p)
	}
	for i := range c.Peers {
		if err := c.start(i); err != nil {
			t.Fatalf("clustertest: start peer %d: %v", i, err)
		}
	}
	if s.ReadyOnly {
		c.waitEachReady()
		return c
	}
	c.WaitReady()
	return c
}

// waitEachReady waits (up to a minute) until every running peer's
// WaitReady returns.
func (c *Cluster) waitEachReady() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range c.Running() {
		if err := p.WaitReady(ctx); err != nil {
			c.t.Fatalf("clustertest: peer %d not ready: %v", p.Index, err)
		}
	}
}

// StartPeer starts stopped peer i again, like Restart, but returns as soon
// as its WaitReady does, before it has heard the other peers' metrics (a
// daemon that just came back).
func (c *Cluster) StartPeer(i int) {
	c.t.Helper()
	if c.Peers[i].Cluster != nil {
		c.t.Fatalf("clustertest: StartPeer %d: the peer runs", i)
	}
	if err := c.start(i); err != nil {
		c.t.Fatalf("clustertest: start peer %d: %v", i, err)
	}
	c.waitEachReady()
}

// Peer returns peer i.
func (c *Cluster) Peer(i int) *Peer { return c.Peers[i] }

// Running returns the peers that are not stopped.
func (c *Cluster) Running() []*Peer {
	var out []*Peer
	for _, p := range c.Peers {
		if p.Cluster != nil {
			out = append(out, p)
		}
	}
	return out
}

func (c *Cluster) newHost(p *Peer) (host.Host, error) {
	if c.mn != nil {
		addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4001", p.Index+1))
		if err != nil {
			return nil, err
		}
		h, err := c.mn.AddPeer(p.key, addr)
		if err != nil {
			return nil, err
		}
		if err := c.mn.LinkAll(); err != nil {
			return nil, err
		}
		return h, nil
	}
	return libp2p.New(libp2p.Identity(p.key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(), libp2p.NoTransports, libp2p.DefaultTransports)
}

func (c *Cluster) start(i int) error {
	p := c.Peers[i]
	h, err := c.newHost(p)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		cancel()
		_ = h.Close()
		return fmt.Errorf("pubsub: %w", err)
	}
	for _, other := range c.Peers {
		if other == p || other.Host == nil || other.Cluster == nil {
			continue
		}
		if err := h.Connect(ctx, peer.AddrInfo{ID: other.Host.ID(), Addrs: other.Host.Addrs()}); err != nil {
			cancel()
			_ = h.Close()
			return fmt.Errorf("connect to peer %d: %w", other.Index, err)
		}
	}
	opts := []pincluster.Option{
		pincluster.WithLogger(c.log.With("index", i)), // Peer.Index
		pincluster.WithPeerName("peer" + strconv.Itoa(i)),
		pincluster.WithMonitorInterval(c.setup.MonitorInterval),
		// Three intervals: a peer may miss one publication on a loaded
		// machine (race detector, parallel test processes) without being
		// taken for lost.
		pincluster.WithMetricTTL(3 * c.setup.MonitorInterval),
		pincluster.WithStateSyncInterval(2 * time.Second),
		pincluster.WithExpiryInterval(time.Second),
	}
	if p.Mock != nil {
		p.Mock.reopen()
		opts = append(opts, pincluster.WithConnector(p.Mock))
	}
	if c.setup.TrustEachOther {
		var ids []peer.ID
		for _, o := range c.Peers {
			ids = append(ids, o.ID())
		}
		opts = append(opts, pincluster.WithTrustedPeers(ids...))
	}
	if c.setup.Badger {
		opts = append(opts, pincluster.WithBadger(p.dir))
	}
	if c.setup.NewConsensus != nil {
		var ids []peer.ID
		for _, o := range c.Peers {
			ids = append(ids, o.ID())
		}
		cons, err := c.setup.NewConsensus(i, h, ids)
		if err != nil {
			cancel()
			_ = h.Close()
			return fmt.Errorf("consensus: %w", err)
		}
		opts = append(opts, pincluster.WithConsensus(cons))
	}
	opts = append(opts, c.setup.Options...)
	if c.setup.PeerOptions != nil {
		opts = append(opts, c.setup.PeerOptions(i)...)
	}
	cl, err := pincluster.New(ctx, h, nil, ps, opts...)
	if err != nil {
		cancel()
		_ = h.Close()
		return err
	}
	p.Cluster, p.Host, p.cancel = cl, h, cancel
	return nil
}

// WaitReady waits (up to a minute) until every running peer is ready and
// sees every other running peer's metrics.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.waitEachReady()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.WaitFor("every peer sees every other", time.Minute, func() bool {
		n := len(c.Running())
		for _, p := range c.Running() {
			if len(p.Metrics(ctx, pincluster.MetricPing)) < n {
				return false
			}
		}
		return true
	})
}

// WaitFor polls cond every 20 ms until it holds, failing the test with
// what after timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if poll.Until(ctx, "", 20*time.Millisecond, func() (bool, error) { return cond(), nil }) != nil {
		c.t.Fatalf("clustertest: timed out after %s waiting for: %s", timeout, what)
	}
}

// WaitStatus waits until the global status of ci, asked from peer from,
// satisfies ok.
func (c *Cluster) WaitStatus(from int, ci cid.Cid, timeout time.Duration, ok func(pincluster.GlobalPinInfo) bool) pincluster.GlobalPinInfo {
	c.t.Helper()
	var last pincluster.GlobalPinInfo
	c.WaitFor("status of "+ci.String(), timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, err := c.Peers[from].Status(ctx, ci, false)
		if err != nil {
			return false
		}
		last = g
		return ok(g)
	})
	return last
}

// Count returns how many peers report status st in g.
func Count(g pincluster.GlobalPinInfo, st pincluster.TrackerStatus) int {
	n := 0
	for _, pi := range g.PeerMap {
		if pi.Status.Match(st) {
			n++
		}
	}
	return n
}

// Stop shuts peer i down and closes its host; its datastore (Badger) and
// mock connector remain for Restart.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.stop(c.Peers[i]); err != nil {
		c.t.Fatalf("clustertest: stop peer %d: %v", i, err)
	}
}

func (c *Cluster) stop(p *Peer) error {
	if p.Cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Shutdown(ctx)
	if c.mn != nil {
		for _, other := range c.Peers {
			if other != p && other.Host != nil {
				_ = c.mn.UnlinkPeers(p.Host.ID(), other.Host.ID())
			}
		}
	}
	err = errors.Join(err, p.Host.Close())
	p.cancel()
	if p.Mock != nil {
		p.Mock.reopen() // the "daemon" outlives the peer
	}
	p.Cluster = nil
	return err
}

// Restart starts a stopped peer again with the same identity, datastore
// and mock, connected to the running peers, and waits until it is ready.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Peers[i].Cluster != nil {
		c.Stop(i)
	}
	if err := c.start(i); err != nil {
		c.t.Fatalf("clustertest: restart peer %d: %v", i, err)
	}
	c.WaitReady()
}

// Cut breaks the link between peers i and j and closes their connections
// (mocknet only: not with Setup.TCP).
func (c *Cluster) Cut(i, j int) {
	c.t.Helper()
	if c.mn == nil {
		c.t.Fatal("clustertest: Cut needs mocknet (not Setup.TCP)")
	}
	a, b := c.Peers[i].Host.ID(), c.Peers[j].Host.ID()
	if err := c.mn.UnlinkPeers(a, b); err != nil {
		c.t.Fatalf("clustertest: cut: %v", err)
	}
	_ = c.mn.DisconnectPeers(a, b)
}

// Heal restores the link between peers i and j and reconnects them.
func (c *Cluster) Heal(i, j int) {
	c.t.Helper()
	if c.mn == nil {
		c.t.Fatal("clustertest: Heal needs mocknet (not Setup.TCP)")
	}
	a, b := c.Peers[i].Host.ID(), c.Peers[j].Host.ID()
	if _, err := c.mn.LinkPeers(a, b); err != nil {
		c.t.Fatalf("clustertest: heal: %v", err)
	}
	if _, err := c.mn.ConnectPeers(a, b); err != nil {
		c.t.Fatalf("clustertest: heal: connect: %v", err)
	}
}

func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for _, p := range c.Peers {
		wg.Go(func() {
			if err := c.stop(p); err != nil {
				c.t.Errorf("clustertest: stop peer %d: %v", p.Index, err)
			}
		})
	}
	wg.Wait()
}
