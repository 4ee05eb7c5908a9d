package pincluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	routing "github.com/libp2p/go-libp2p/core/routing"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Datastore namespaces of the components that New builds, inside the one
// datastore selected by the options.
var (
	nsIPFS      = ds.NewKey("/ipfs")
	nsConsensus = ds.NewKey("/crdt")
)

// New starts a cluster peer on the caller's libp2p stack: h is the host,
// dht the content routing used by the in-process IPFS node to find and
// announce data (nil: none; peers are then found through connected peers
// only), ps the pubsub used by the consensus and the monitor. New never
// creates a host, DHT or pubsub of its own.
//
// With no options, the peer runs the Merkle-CRDT consensus over ps with
// its state in memory, the in-process IPFS node as connector, the
// operation tracker, the pubsub monitor publishing every 15s, the free
// space, pin count, pin queue and tag informers, the balanced allocator,
// replication -1 (every peer), repinning on, and trusts every peer of the
// cluster "default" (see WithTrustedPeers). Options replace any part.
//
// ctx bounds the start-up only; the peer lives until Shutdown. New returns
// once the components are built; Ready is closed when the consensus is
// ready. On error everything started is stopped again.
func New(ctx context.Context, h host.Host, dht routing.Routing, ps *pubsub.PubSub, opts ...Option) (*Cluster, error) {
	if h == nil {
		return nil, errors.New("pincluster: new: nil host")
	}
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, err
	}
	if ps == nil && (cfg.consensus == nil || cfg.monitor == nil) {
		return nil, errors.New("pincluster: new: nil pubsub (needed by the default consensus and monitor)")
	}
	if cfg.peerName == "" {
		cfg.peerName = h.ID().ShortString()
	}
	c := &Cluster{
		cfg:    cfg,
		host:   h,
		dht:    dht,
		pubsub: ps,
		log:    cfg.logger.With("peer", cfg.peerName),
		group:  gorun.New(),
		ready:  make(chan struct{}),
		done:   make(chan struct{}),
		tracer: cfg.tracer,
		index:  newPinIndex(),
	}
	if err := c.build(ctx); err != nil {
		// Stop whatever was built; the caller gets the build error.
		_ = c.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pincluster: new: %w", err)
	}
	if err := c.group.Go(c.run); err != nil {
		_ = c.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pincluster: new: %w", err)
	}
	return c, nil
}

// build creates the components, defaults first where none was given.
func (c *Cluster) build(ctx context.Context) error {
	cfg := c.cfg
	store, closer, err := cfg.openDatastore()
	if err != nil {
		return err
	}
	if closer != nil {
		c.closers = append(c.closers, func(context.Context) error { return closer.Close() })
	}
	// The components get views of the store that they cannot close: it is
	// closed once, last (or stays the caller's, with WithDatastore).
	store = keepOpen{store}

	// The in-process IPFS node carries the CRDT's blocks, and is the
	// connector unless another one was given.
	var node *nodeConnector
	if cfg.consensus == nil || cfg.connector == nil {
		node, err = newNodeConnector(ctx, c.host, c.dht, namespace.Wrap(store, nsIPFS), cfg)
		if err != nil {
			return err
		}
		if cfg.connector == nil {
			c.connector = node
		} else {
			c.closers = append(c.closers, node.Shutdown)
		}
	}
	if cfg.connector != nil {
		c.connector = cfg.connector
	}

	c.consensus = cfg.consensus
	if c.consensus == nil {
		c.consensus, err = newCRDTConsensus(ctx, c.host, c.pubsub, namespace.Wrap(store, nsConsensus), node, cfg)
		if err != nil {
			return err
		}
	}

	c.tracker = cfg.tracker
	if c.tracker == nil {
		c.tracker, err = newOpTracker(c.host.ID(), cfg.peerName, c.connector, c.consensus, cfg)
		if err != nil {
			return err
		}
	}

	c.informers = cfg.informers
	if len(c.informers) == 0 {
		if c.informers, err = c.defaultInformers(); err != nil {
			return fmt.Errorf("informers: %w", err)
		}
	}
	if cfg.follower {
		c.informers = append(slices.Clone(c.informers), followerInformer{})
	}
	c.monitor = cfg.monitor
	if c.monitor == nil {
		c.monitor, err = c.defaultMonitor()
		if err != nil {
			return err
		}
	}
	c.allocator = cfg.allocator
	if c.allocator == nil {
		c.allocator = c.defaultAllocator()
	}
	c.reservations = newReservationLedger(reservationLedgerConfig{MetricTTL: cfg.ttl()})
	if cc, ok := c.consensus.(*crdtConsensus); ok {
		alive := func(ctx context.Context) []peer.ID { return c.alivePeers(ctx) }
		cc.peerSource.Store(&alive)
	}

	if err := c.startRPC(); err != nil {
		return err
	}
	for _, newAPI := range cfg.apis {
		a, err := newAPI(c)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		c.apis = append(c.apis, a)
	}
	return nil
}

// run waits for the consensus, declares the peer ready and starts the
// cluster's loops.
func (c *Cluster) run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-c.consensus.Ready():
	}
	if w, ok := c.consensus.(StateWatcher); ok {
		cancel := w.Watch(func(pin Pin, removed bool) { c.onStateChange(ctx, pin, removed) })
		defer cancel()
		if _, every := w.(everyChangeWatcher); every {
			c.watching.Store(true)
		}
		// The index is built in the background; until it is ready,
		// filtered listings scan.
		if err := c.group.Go(func(ctx context.Context) {
			st, err := c.consensus.State(ctx)
			if err == nil {
				err = c.index.build(ctx, st)
			}
			if err != nil && ctx.Err() == nil {
				c.log.Warn("building the pin index", "err", err)
			}
		}); err != nil {
			return
		}
	}
	for _, loop := range []func(context.Context){c.runAlerts, c.runExpiry, c.runStateSync} {
		if err := c.group.Go(loop); err != nil {
			return
		}
	}
	c.readyAt.Store(time.Now().UnixNano())
	close(c.ready)
	c.log.Info("cluster peer ready", "id", c.host.ID(), "cluster", c.cfg.clusterName)
	<-ctx.Done()
}

// keepOpen hides Close from the components sharing one datastore (a
// namespace view forwards Close to the store below it).
type keepOpen struct{ ds.Batching }

// Close implements io.Closer and does nothing.
func (keepOpen) Close() error { return nil }
