package pincluster

import (
	"context"
	"errors"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// newCRDTConsensus builds the default consensus: the Merkle-CRDT over d,
// its delta blocks in the in-process node, whose GC keeps what the CRDT
// heads reach.
func newCRDTConsensus(ctx context.Context, h host.Host, ps *pubsub.PubSub, d ds.Batching, node *nodeConnector, cfg *config) (Consensus, error) {
	if node == nil {
		return nil, errors.New("crdt consensus: no in-process ipfs node")
	}
	cc, err := newCRDTConsensusOn(ctx, h.ID(), ps, d, nodeDAG{node.node}, cfg)
	if err != nil {
		return nil, err
	}
	heads := func() []cid.Cid { return cc.store.Heads() }
	node.extraRoots.Store(&heads)
	return cc, nil
}

// pinCounter is what the default num-pin informer needs of a tracker.
type pinCounter interface{ numHeld() int64 }

// spaceReserver is what the default free-space informer needs of a
// tracker: the bytes its queued and running pins still expect.
type spaceReserver interface {
	reservedBytes(ctx context.Context) uint64
}

func (t *opTracker) numHeld() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return int64(t.held.len())
}

// defaultInformers returns the free space (minus what the tracker's queued
// and running pins still expect), pin count and pin queue informers over
// the connector and the tracker, and the tags informer when
// WithTags was given.
func (c *Cluster) defaultInformers() ([]Informer, error) {
	icfg := InformerConfig{TTL: c.cfg.ttl(), Logger: c.log.With("component", "informer")}
	fcfg := FreeSpaceConfig{InformerConfig: icfg}
	if r, ok := c.tracker.(spaceReserver); ok {
		fcfg.Reserved = r.reservedBytes
	}
	free, err := NewFreeSpaceInformer(c.connector.RepoStat, fcfg)
	if err != nil {
		return nil, err
	}
	out := []Informer{free}
	if pc, ok := c.tracker.(pinCounter); ok {
		n, err := NewNumPinInformer(func(context.Context) (int64, error) { return pc.numHeld(), nil }, icfg)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	q, err := NewPinQueueInformer(c.tracker.PinQueueSize, icfg)
	if err != nil {
		return nil, err
	}
	out = append(out, q)
	if len(c.cfg.tags) > 0 {
		tags, err := NewTagsInformer(c.cfg.tags, icfg)
		if err != nil {
			return nil, err
		}
		out = append(out, tags)
	}
	return out, nil
}

// defaultMonitor returns the pubsub monitor of the cluster's topic, which
// accepts metrics from trusted peers only.
func (c *Cluster) defaultMonitor() (PeerMonitor, error) {
	if c.pubsub == nil {
		return nil, errors.New("monitor: nil pubsub")
	}
	return NewPubsubMonitor(c.host, c.pubsub, PubsubMonitorConfig{
		ClusterName: c.cfg.clusterName,
		Interval:    c.cfg.monitorInterval,
		TTL:         c.cfg.ttl(),
		Informers:   c.informers,
		PingValue:   c.pingValue,
		Trusted:     func(p peer.ID) bool { return c.consensus.IsTrustedPeer(context.Background(), p) },
		Logger:      c.log.With("component", "monitor"),
	})
}

// defaultAllocator returns the balanced allocator with IPFS Cluster's
// defaults (tag "group", then free space).
func (c *Cluster) defaultAllocator() PinAllocator { return NewBalancedAllocator(BalancedConfig{}) }
