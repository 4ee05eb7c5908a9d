package ipfsnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/pincluster/pincluster/internal/defaults"
)

// Defaults of Config.
const (
	// DefaultStorageMax is the default Config.StorageMax: 10 GB, like Kubo's
	// Datastore.StorageMax.
	DefaultStorageMax = 10_000_000_000
	// DefaultFetchConcurrency is the default Config.FetchConcurrency.
	DefaultFetchConcurrency = 32
	// DefaultFetchStall is the default Config.FetchStall.
	DefaultFetchStall = 3 * time.Second
	// DefaultProvideRate is the default Config.ProvideRate (per second).
	DefaultProvideRate = 20
	// DefaultProvideWorkers is the default Config.ProvideWorkers.
	DefaultProvideWorkers = 4
	// DefaultProvideQueue is the default Config.ProvideQueue.
	DefaultProvideQueue = 4096
	// DefaultReprovideInterval is the default Config.ReprovideInterval.
	DefaultReprovideInterval = 12 * time.Hour
)

// Routing is what the node needs from a content router (the DHT):
// FindProvidersAsync lets bitswap find peers holding a block it wants, and
// Provide announces the roots of the node's pins. *dht.IpfsDHT satisfies it.
type Routing = routing.ContentRouting

// Config configures a Node. Host and Datastore are required; every other
// field has a default. New copies the Config; it is not used afterwards.
type Config struct {
	// Host is the libp2p host bitswap runs on. Required. The node does not
	// close it.
	Host host.Host
	// Routing finds providers for bitswap and receives the node's provide
	// announcements. Default: nil, meaning no routing: blocks are found
	// only among connected peers (bitswap broadcasts its wants to them)
	// and nothing is announced. Pass a nil interface, not a typed nil.
	Routing Routing
	// Datastore holds the blocks (under /ipfsnode/blocks, keyed by
	// multihash like Kubo's blockstore), the system blocks (under
	// /ipfsnode/sysblocks, see Node.SysBlockPut) and the pins (under
	// /ipfsnode/pins). Required. Other components may use other
	// namespaces of the same datastore. The node does not close it.
	Datastore ds.Batching
	// StorageMax bounds the bytes of block data the node stores; a put
	// beyond it fails with ErrStorageFull. System blocks are not counted. Default: DefaultStorageMax
	// (10 GB).
	StorageMax uint64
	// FetchConcurrency is how many blocks one Pin (or Fetch) requests at
	// once through its bitswap session. Default: DefaultFetchConcurrency
	// (32).
	FetchConcurrency int
	// FetchStall is how long a Pin (or Fetch) waits without receiving a
	// block before it starts a new bitswap session for the blocks still
	// missing, which broadcasts their wants again to every connected peer
	// at once. A session left alone backs off between its rebroadcasts (1,
	// 2, 3, ... s) and searches anew only once a minute, so a want lost
	// on the way, or sent before the peer holding the block was a bitswap
	// peer, could stall a pin until the tracker's 2 min idle timeout. The
	// wait doubles after each restart without progress, up to 16 times
	// FetchStall, and resets when blocks arrive. Default:
	// DefaultFetchStall (3 s); negative: never restart.
	FetchStall time.Duration
	// ProvideRate bounds the provide announcements per second. Default:
	// DefaultProvideRate (20). Ignored without Routing.
	ProvideRate float64
	// ProvideWorkers bounds the provide calls in flight. Default:
	// DefaultProvideWorkers (4). Ignored without Routing.
	ProvideWorkers int
	// ProvideQueue bounds the provide queue; roots beyond it are dropped
	// (and announced at the next reprovide). Default: DefaultProvideQueue
	// (4096).
	ProvideQueue int
	// ReprovideInterval is how often the roots of every pin are announced
	// again (first time at start). Default: DefaultReprovideInterval
	// (12h); negative: never (only newly pinned roots are announced).
	ReprovideInterval time.Duration
	// ExtraRoots returns more GC roots: every block reachable from them
	// (through dag-pb, raw and dag-cbor links) survives GC, as pins do.
	// The CRDT consensus stores its blocks as system blocks, which GC
	// never removes, and names its heads here for its older blocks,
	// stored among the user's blocks by earlier versions. Default: nil (pins only). An error aborts
	// the GC run before anything is deleted.
	ExtraRoots func(ctx context.Context) ([]cid.Cid, error)
	// Logger receives the node's logs. Default: nil, meaning discard.
	Logger *slog.Logger
}

func (c *Config) withDefaults() error {
	if c.Host == nil {
		return fmt.Errorf("ipfsnode: config: Host is required")
	}
	if c.Datastore == nil {
		return fmt.Errorf("ipfsnode: config: Datastore is required")
	}
	if c.StorageMax == 0 {
		c.StorageMax = DefaultStorageMax
	}
	if c.FetchStall == 0 { // negative: never restart
		c.FetchStall = DefaultFetchStall
	}
	if c.ReprovideInterval == 0 {
		c.ReprovideInterval = DefaultReprovideInterval
	}
	if err := errors.Join(
		defaults.Set("FetchConcurrency", &c.FetchConcurrency, DefaultFetchConcurrency),
		defaults.Set("ProvideRate", &c.ProvideRate, DefaultProvideRate),
		defaults.Set("ProvideWorkers", &c.ProvideWorkers, DefaultProvideWorkers),
		defaults.Set("ProvideQueue", &c.ProvideQueue, DefaultProvideQueue),
	); err != nil {
		return fmt.Errorf("ipfsnode: config: %w", err)
	}
	c.Logger = defaults.Logger(c.Logger)
	return nil
}
