package pincluster

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"

	peer "github.com/libp2p/go-libp2p/core/peer"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/pincluster/pincluster/internal/badgerds"
)

// Option configures a Cluster (New) or a State (OpenState). Options return
// an error for impossible values; contradictory options make New fail with
// an *OptionError naming both. Nil options are skipped, so option lists
// can be built conditionally.
type Option func(*config) error

// config holds every setting. defaultConfig is the one place where
// defaults live.
type config struct {
	// Where the state (and the other components' data) is stored; at most
	// one of the three.
	datastore  ds.Batching
	badgerPath string
	pebblePath string
	// which option set the store, for conflict messages.
	storeOption string

	logger *slog.Logger

	// Components given by the caller; nil means the default.
	consensus Consensus
	connector IPFSConnector
	tracker   PinTracker
	monitor   PeerMonitor
	allocator PinAllocator
	// metrics of the default balanced allocator (WithAllocateBy); nil:
	// its defaults.
	allocateBy []string
	informers  []Informer
	apis       []func(*Cluster) (Component, error)
	tracer     *otelTracer
	metrics    *clusterMetrics
	// the first option that configures the default CRDT consensus
	// (WithBatching, WithSnapshots), for conflict messages.
	crdtOption string
	// tags published by the default tags informer (WithTags).
	tags map[string]string

	clusterName  string
	peerName     string
	trustAll     bool
	trustedPeers []peer.ID

	replicationMin int
	replicationMax int

	batchMaxSize int
	batchMaxAge  time.Duration

	monitorInterval   time.Duration
	metricTTL         time.Duration // 0: 2 × monitorInterval
	repinning         bool
	follower          bool
	snapshotEvery     int
	snapshotInterval  time.Duration
	compaction        bool
	stateSyncInterval time.Duration
	expiryInterval    time.Duration
	// nodeStorageMax is the in-process node's StorageMax (0: its
	// default); set by tests only.
	nodeStorageMax uint64
}

// defaultConfig returns every default of the library. It is the only place
// where defaults are set.
func defaultConfig() config {
	return config{
		logger:            slog.New(slog.DiscardHandler),
		clusterName:       "default",
		trustAll:          true,
		replicationMin:    -1, // every peer, as IPFS Cluster
		replicationMax:    -1,
		batchMaxSize:      1000,
		batchMaxAge:       0, // adaptive group commit
		monitorInterval:   15 * time.Second,
		repinning:         true,
		stateSyncInterval: 10 * time.Minute,
		expiryInterval:    time.Minute,
		snapshotEvery:     10_000,
	}
}

// newConfig applies opts over the defaults and validates the result.
func newConfig(opts ...Option) (*config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.allocateBy != nil {
		cfg.allocator = NewBalancedAllocator(BalancedConfig{AllocateBy: cfg.allocateBy})
	}
	return &cfg, nil
}

// validate checks rules that involve several options.
func (c *config) validate() error {
	if c.logger == nil {
		return &OptionError{Options: "WithLogger", Detail: "nil logger"}
	}
	if c.consensus != nil && c.crdtOption != "" {
		return &OptionError{Options: "WithConsensus and " + c.crdtOption,
			Detail: "the option configures the default CRDT consensus, which a consensus given by the caller replaces"}
	}
	if c.allocator != nil && c.allocateBy != nil {
		return &OptionError{Options: "WithAllocator and WithAllocateBy",
			Detail: "WithAllocateBy configures the default balanced allocator, which an allocator given by the caller replaces"}
	}
	if c.monitor != nil && len(c.informers) > 0 {
		return &OptionError{Options: "WithMonitor and WithInformers",
			Detail: "informers feed the default monitor, which a monitor given by the caller replaces"}
	}
	if len(c.tags) > 0 && (len(c.informers) > 0 || c.monitor != nil) {
		other := "WithInformers"
		if c.monitor != nil {
			other = "WithMonitor"
		}
		return &OptionError{Options: "WithTags and " + other,
			Detail: "tags are published by the default informers and monitor; give a NewTagsInformer among your own instead"}
	}
	if c.metricTTL > 0 && c.metricTTL <= c.monitorInterval {
		return &OptionError{Options: "WithMetricTTL and WithMonitorInterval",
			Detail: fmt.Sprintf("metrics valid for %v would expire before the next publication, %v later", c.metricTTL, c.monitorInterval)}
	}
	if c.snapshotInterval > 0 && c.snapshotEvery == 0 {
		return &OptionError{Options: "WithSnapshotInterval and WithSnapshots",
			Detail: "a snapshot interval needs snapshots on (WithSnapshots with deltas > 0)"}
	}
	if c.consensus != nil && c.storeOption != "" {
		return &OptionError{Options: "WithConsensus and " + c.storeOption,
			Detail: "a consensus given by the caller brings its own state; the datastore option would be unused"}
	}
	if c.replicationMax > 0 && c.replicationMin > c.replicationMax {
		return &OptionError{Options: "WithReplication",
			Detail: fmt.Sprintf("min %d is greater than max %d", c.replicationMin, c.replicationMax)}
	}
	return nil
}

func (c *config) setStore(option string) error {
	if c.storeOption != "" {
		return &OptionError{Options: c.storeOption + " and " + option,
			Detail: "cannot specify more than one datastore"}
	}
	c.storeOption = option
	return nil
}

// pebbleMemTableSize is WithPebble's memtable size (Pebble's default is 4
// MiB). Every flush of a small memtable makes a small L0 table that
// compactions merge into the level below again and again: a fresh peer
// loading a 1M-pin snapshot spent about 30 % less CPU with 16 MiB (bench/scale
// -mode join, issue 19), for up to one more memtable's worth of RSS.
const pebbleMemTableSize = 16 << 20

// openDatastore opens the configured datastore. closer is nil when the
// datastore was given by the caller (who closes it).
func (c *config) openDatastore() (d ds.Batching, closer io.Closer, err error) {
	switch {
	case c.datastore != nil:
		return c.datastore, nil, nil
	case c.badgerPath != "":
		bd, err := badgerds.New(c.badgerPath, &badgerds.Options{Logger: c.logger})
		if err != nil {
			return nil, nil, fmt.Errorf("pincluster: open badger at %s: %w", c.badgerPath, err)
		}
		return bd, bd, nil
	case c.pebblePath != "":
		pd, err := pebbleds.NewDatastore(c.pebblePath, pebbleds.WithPebbleOpts(&pebble.Options{MemTableSize: pebbleMemTableSize}))
		if err != nil {
			return nil, nil, fmt.Errorf("pincluster: open pebble at %s: %w", c.pebblePath, err)
		}
		return pd, pd, nil
	default:
		return newMemStore(), nil, nil
	}
}

// OpenBadger opens (creating it if needed) the Badger datastore in the
// directory path, with the settings WithBadger uses, for components that
// keep their own data (such as package consensus/raft's BadgerPath). The
// caller closes it.
func OpenBadger(path string, logger *slog.Logger) (ds.Batching, error) {
	bd, err := badgerds.New(path, &badgerds.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("pincluster: open badger at %s: %w", path, err)
	}
	return bd, nil
}

// WithDatastore keeps the peer's data in d, which the caller opens and
// closes: the CRDT consensus's state and deltas (namespace /crdt) and the
// in-process IPFS node's blocks and pins (namespace /ipfs), so that both
// survive a restart. Conflicts with WithBadger, WithPebble and
// WithConsensus. Default: in memory, lost at Shutdown.
func WithDatastore(d ds.Batching) Option {
	return func(c *config) error {
		if d == nil {
			return &OptionError{Options: "WithDatastore", Detail: "nil datastore"}
		}
		if err := c.setStore("WithDatastore"); err != nil {
			return err
		}
		c.datastore = d
		return nil
	}
}

// WithBadger keeps the peer's data in a Badger database in the directory
// path (created if missing), opened by New and closed by Shutdown: the
// CRDT consensus's state and deltas, and the in-process IPFS node's blocks
// and pins (its repository, so size the disk for the pinned data, not
// just the pinset). Conflicts with WithDatastore, WithPebble and
// WithConsensus. Default: in memory, lost at Shutdown.
func WithBadger(path string) Option {
	return func(c *config) error {
		if path == "" {
			return &OptionError{Options: "WithBadger", Detail: "empty path"}
		}
		if err := c.setStore("WithBadger"); err != nil {
			return err
		}
		c.badgerPath = path
		return nil
	}
}

// WithPebble keeps the peer's data in a Pebble database in the directory
// path (created if missing), opened by New and closed by Shutdown: the
// CRDT consensus's state and deltas, and the in-process IPFS node's blocks
// and pins. Conflicts with WithDatastore, WithBadger and WithConsensus.
// Default: in memory, lost at Shutdown.
func WithPebble(path string) Option {
	return func(c *config) error {
		if path == "" {
			return &OptionError{Options: "WithPebble", Detail: "empty path"}
		}
		if err := c.setStore("WithPebble"); err != nil {
			return err
		}
		c.pebblePath = path
		return nil
	}
}

// WithLogger sends the library's logs to l; each component adds a
// "component" attribute. Default: logs are discarded.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return &OptionError{Options: "WithLogger", Detail: "nil logger"}
		}
		c.logger = l
		return nil
	}
}

func positive(option string, d time.Duration) error {
	if d <= 0 {
		return &OptionError{Options: option, Detail: fmt.Sprintf("%v is not a positive duration", d)}
	}
	return nil
}

// WithConsensus replaces the default Merkle-CRDT consensus (for example
// with the Raft consensus). The consensus owns the state, so this cannot
// be combined with the datastore options. Default: CRDT over the pubsub
// given to New.
func WithConsensus(cs Consensus) Option {
	return func(c *config) error {
		if cs == nil {
			return &OptionError{Options: "WithConsensus", Detail: "nil consensus"}
		}
		if c.consensus != nil {
			return &OptionError{Options: "WithConsensus", Detail: "given twice"}
		}
		c.consensus = cs
		return nil
	}
}

// WithConnector replaces the in-process IPFS node with another connector
// (package connector/kubo, or clustertest's mock). Default: the in-process
// node on the host and DHT given to New.
func WithConnector(ipfs IPFSConnector) Option {
	return func(c *config) error {
		if ipfs == nil {
			return &OptionError{Options: "WithConnector", Detail: "nil connector"}
		}
		if c.connector != nil {
			return &OptionError{Options: "WithConnector", Detail: "given twice"}
		}
		c.connector = ipfs
		return nil
	}
}

// WithTracker replaces the default operation tracker. Default: the
// operation tracker over the connector.
func WithTracker(t PinTracker) Option {
	return func(c *config) error {
		if t == nil {
			return &OptionError{Options: "WithTracker", Detail: "nil tracker"}
		}
		if c.tracker != nil {
			return &OptionError{Options: "WithTracker", Detail: "given twice"}
		}
		c.tracker = t
		return nil
	}
}

// WithMonitor replaces the pubsub peer monitor. Default: the pubsub
// monitor on the cluster's metrics topic.
func WithMonitor(m PeerMonitor) Option {
	return func(c *config) error {
		if m == nil {
			return &OptionError{Options: "WithMonitor", Detail: "nil monitor"}
		}
		if c.monitor != nil {
			return &OptionError{Options: "WithMonitor", Detail: "given twice"}
		}
		c.monitor = m
		return nil
	}
}

// WithAllocator replaces the balanced allocator with a, for placement
// rules of the caller's own (a BalancedAllocator with a BalancedConfig of
// its own, or any PinAllocator). Conflicts with WithAllocateBy. Default:
// balanced by "tag:group" then "freespace".
func WithAllocator(a PinAllocator) Option {
	return func(c *config) error {
		if a == nil {
			return &OptionError{Options: "WithAllocator", Detail: "nil allocator"}
		}
		if c.allocator != nil {
			return &OptionError{Options: "WithAllocator", Detail: "given twice"}
		}
		c.allocator = a
		return nil
	}
}

// WithAllocateBy sets the metrics by which the default balanced allocator
// places pins, most significant first: tags ("tag:<key>", published with
// WithTags) spread the replicas across the tag's values, numeric metrics
// ("freespace", "numpin", "pinqueue", or an informer's own) order the
// peers (see BalancedAllocator). For example WithAllocateBy("tag:region",
// "freespace") puts replicas in different regions, the emptiest peer of
// each first. Every peer should publish the named metrics (through the
// default informers, WithTags or WithInformers). Conflicts with
// WithAllocator. Default: "tag:group", "freespace", as IPFS Cluster.
func WithAllocateBy(metrics ...string) Option {
	return func(c *config) error {
		if len(metrics) == 0 {
			return &OptionError{Options: "WithAllocateBy", Detail: "no metric"}
		}
		for i, m := range metrics {
			if m == "" {
				return &OptionError{Options: "WithAllocateBy", Detail: fmt.Sprintf("metric %d is empty", i)}
			}
		}
		if c.allocateBy != nil {
			return &OptionError{Options: "WithAllocateBy", Detail: "given twice"}
		}
		c.allocateBy = slices.Clone(metrics)
		return nil
	}
}

// WithInformers replaces the informers whose metrics this peer publishes
// through the default monitor (conflicts with WithMonitor and WithTags).
// Default: free space, pin count, pin queue length, and tags when WithTags
// is given.
func WithInformers(infs ...Informer) Option {
	return func(c *config) error {
		for i, inf := range infs {
			if inf == nil {
				return &OptionError{Options: "WithInformers", Detail: fmt.Sprintf("informer %d is nil", i)}
			}
		}
		c.informers = append(c.informers, infs...)
		return nil
	}
}

// WithAPI starts an outside interface of the peer, such as the REST API of
// package api/rest (rest.NewAPI) or the Pinning Service API of package
// api/pinsvc (pinsvc.NewAPI): New calls newAPI with the Cluster once its
// components are built, and Shutdown shuts the returned API down first,
// before the rest of the peer, so that requests in progress finish. If
// newAPI fails, New fails. May be given several times. Default: no API.
func WithAPI(newAPI func(*Cluster) (Component, error)) Option {
	return func(c *config) error {
		if newAPI == nil {
			return &OptionError{Options: "WithAPI", Detail: "nil constructor"}
		}
		c.apis = append(c.apis, newAPI)
		return nil
	}
}

// WithTags sets this peer's tags (such as "region": "eu" or "group": "a"),
// published by the default tags informer as metrics "tag:<key>", by which
// the balanced allocator spreads replicas ("tag:group" by default).
// Conflicts with WithInformers and WithMonitor, which replace the default
// informers. Default: no tags.
func WithTags(tags map[string]string) Option {
	return func(c *config) error {
		if _, err := NewTagsInformer(tags, InformerConfig{}); err != nil {
			return &OptionError{Options: "WithTags", Detail: err.Error()}
		}
		if c.tags == nil {
			c.tags = make(map[string]string, len(tags))
		}
		for k, v := range tags {
			c.tags[k] = v
		}
		return nil
	}
}

// WithClusterName sets the cluster's name, which names its pubsub topics
// and RPC protocol: peers with different names do not talk. Default:
// "default".
func WithClusterName(name string) Option {
	return func(c *config) error {
		if !clusterNameRe.MatchString(name) {
			return &OptionError{Options: "WithClusterName",
				Detail: fmt.Sprintf("%q: use 1 to 64 letters, digits, '.', '_' or '-'", name)}
		}
		c.clusterName = name
		return nil
	}
}

// WithPeerName sets this peer's human name, reported in statuses and IDs.
// Default: the peer ID's short form.
func WithPeerName(name string) Option {
	return func(c *config) error {
		c.peerName = name
		return nil
	}
}

// WithTrustedPeers restricts who may modify the shared state and call
// mutating RPC methods to the given peers (this peer is always trusted).
// Without it every peer on the cluster's topics is trusted, as with IPFS
// Cluster's default ("*"), which is only safe on closed networks. May be
// given several times; the lists add up. Default: trust all.
func WithTrustedPeers(peers ...peer.ID) Option {
	return func(c *config) error {
		for i, p := range peers {
			if p == "" {
				return &OptionError{Options: "WithTrustedPeers", Detail: fmt.Sprintf("peer %d is empty", i)}
			}
		}
		c.trustAll = false
		c.trustedPeers = append(c.trustedPeers, peers...)
		return nil
	}
}

// WithReplication sets the replication factors of pins that do not set
// their own; -1 for both pins on every peer. Default: -1, -1.
func WithReplication(min, max int) Option {
	return func(c *config) error {
		if min == 0 || max == 0 || min < -1 || max < -1 || (min == -1) != (max == -1) {
			return &OptionError{Options: "WithReplication",
				Detail: fmt.Sprintf("min %d, max %d: use positive factors, or -1 for both", min, max)}
		}
		c.replicationMin, c.replicationMax = min, max
		return nil
	}
}

// WithBatching sets how the CRDT consensus groups pins into one delta: at
// most maxSize pins. With maxAge 0 (the default) commits are adaptive: a
// pin on an idle peer is committed at once, and pins arriving while a
// commit is in flight are committed together by the next one. A positive
// maxAge makes the committer wait up to that long for a batch to fill.
// Conflicts with WithConsensus. Default: 1000 pins, adaptive.
func WithBatching(maxSize int, maxAge time.Duration) Option {
	return func(c *config) error {
		if maxSize < 1 {
			return &OptionError{Options: "WithBatching", Detail: fmt.Sprintf("max size %d", maxSize)}
		}
		if maxAge < 0 {
			return &OptionError{Options: "WithBatching", Detail: fmt.Sprintf("negative max age %v", maxAge)}
		}
		c.batchMaxSize, c.batchMaxAge = maxSize, maxAge
		c.setCRDTOption("WithBatching")
		return nil
	}
}

// WithMonitorInterval sets how often metrics are published; they expire
// after twice that (or WithMetricTTL), which is when a silent peer raises
// an alert. Default: 15s.
func WithMonitorInterval(d time.Duration) Option {
	return func(c *config) error {
		if err := positive("WithMonitorInterval", d); err != nil {
			return err
		}
		c.monitorInterval = d
		return nil
	}
}

// WithMetricTTL sets how long the default informers' metrics stay valid
// after publication (IPFS Cluster's informer metric_ttl): a peer is taken
// for lost, and its pins re-allocated, when its metrics are older than
// this. It must be longer than the monitor interval; a multiple of it lets
// a peer miss a publication or two (a busy machine, a lost message)
// without being declared lost. Default: twice the monitor interval.
func WithMetricTTL(d time.Duration) Option {
	return func(c *config) error {
		if err := positive("WithMetricTTL", d); err != nil {
			return err
		}
		c.metricTTL = d
		return nil
	}
}

// ttl is the metrics' validity: WithMetricTTL, or twice the interval.
func (c *config) ttl() time.Duration {
	if c.metricTTL > 0 {
		return c.metricTTL
	}
	return 2 * c.monitorInterval
}

// WithRepinning turns self-healing on or off: when on, the pins of a peer
// that went silent are re-allocated to others. Default: on.
func WithRepinning(on bool) Option {
	return func(c *config) error {
		c.repinning = on
		return nil
	}
}

// WithFollowerMode makes the peer a follower (IPFS Cluster's follower
// peers): it replicates the pinset its trusted peers write, pins what is
// allocated to it and publishes its metrics, but never writes: Pin, Unpin,
// PinPath, UnpinPath, PinUpdate, Add, AddPeer and RmPeer return an error
// wrapping ErrFollowerMode and change nothing; it neither re-allocates the
// pins of lost peers nor unpins expired pins (it publishes MetricFollower,
// so the other peers leave it out of the peers that do); a global Recover
// or RecoverAll on it acts on itself only, as in IPFS Cluster. Like IPFS
// Cluster, the others allocate pins to a follower as to any peer whose
// metrics they accept (those they trust): to keep followers out of
// allocations, do not trust them (WithTrustedPeers) and pin with
// replication -1 for them to hold everything. Default: off.
func WithFollowerMode(on bool) Option {
	return func(c *config) error {
		c.follower = on
		return nil
	}
}

// WithStateSyncInterval sets how often the state sync runs: the tracker
// compares what it believes with the IPFS node (pins removed behind its
// back are queued again) and untracks what left the shared state. The
// whole shared state is handed to the tracker at start, so that it
// catches up after a restart. Afterwards, with the default CRDT consensus,
// whose every change reaches the tracker as it is applied, the state is
// listed again (a read and a Track of every pin) only when a change could
// not be handed to the tracker since the last such pass, or after SyncAll
// reported changes; with another consensus every run lists it (the raft
// consensus replaces its state from a snapshot without reporting each
// change). StateSync always does the whole pass. Default: 10m, as IPFS
// Cluster's state_sync_interval (it was 1m: at 10M pins the state sync
// kept an idle peer's core 55-75 % busy).
func WithStateSyncInterval(d time.Duration) Option {
	return func(c *config) error {
		if err := positive("WithStateSyncInterval", d); err != nil {
			return err
		}
		c.stateSyncInterval = d
		return nil
	}
}

// WithExpiryInterval sets how often expired pins are looked for and
// unpinned. Default: 1m.
func WithExpiryInterval(d time.Duration) Option {
	return func(c *config) error {
		if err := positive("WithExpiryInterval", d); err != nil {
			return err
		}
		c.expiryInterval = d
		return nil
	}
}

// WithSnapshots sets how the default CRDT consensus snapshots its state:
// a trusted peer writes a snapshot (a content-addressed DAG of the state)
// once every deltas deltas were applied past the newest snapshot, and a
// fresh peer (no history) joins by loading the newest snapshot a trusted
// peer announced instead of replaying the whole history; at start it asks
// the peers for their newest snapshot and waits up to 3 s for an answer
// (less when a trusted peer answers that it knows none), and local pins
// wait with it. A peer with history that is far behind (the newest
// snapshot covers 10,000 deltas more than it has) or whose catch-up needs
// deltas deleted by compaction merges that snapshot into its state,
// keeping its own pins. deltas 0 turns snapshots and catch-up off.
// With compact, deltas below a snapshot that every live peer acknowledged
// are deleted from the blockstore; a peer that was offline meanwhile
// recovers by itself from the snapshot, as above. See also
// WithSnapshotInterval. Conflicts with WithConsensus. Default: every
// 10,000 deltas, no compaction.
func WithSnapshots(deltas int, compact bool) Option {
	return func(c *config) error {
		if deltas < 0 {
			return &OptionError{Options: "WithSnapshots", Detail: fmt.Sprintf("negative delta count %d", deltas)}
		}
		if compact && deltas == 0 {
			return &OptionError{Options: "WithSnapshots", Detail: "compaction needs snapshots (deltas > 0)"}
		}
		c.snapshotEvery, c.compaction = deltas, compact
		c.setCRDTOption("WithSnapshots")
		return nil
	}
}

// WithSnapshotInterval makes the default CRDT consensus also write a
// snapshot every d when deltas were applied since the newest one, whatever
// their number (WithSnapshots sets the count; snapshots must be on). 0
// turns the timer off. Conflicts with WithConsensus. Default: 0 (by count
// only).
func WithSnapshotInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return &OptionError{Options: "WithSnapshotInterval", Detail: fmt.Sprintf("negative interval %v", d)}
		}
		c.snapshotInterval = d
		c.setCRDTOption("WithSnapshotInterval")
		return nil
	}
}

// setCRDTOption records the first option that configures the default
// consensus.
func (c *config) setCRDTOption(option string) {
	if c.crdtOption == "" {
		c.crdtOption = option
	}
}

// WithTracerProvider records spans of the Cluster's operations (Pin, Unpin,
// ...) through tp, which the caller owns and shuts down. Default: no
// tracing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return &OptionError{Options: "WithTracerProvider", Detail: "nil provider"}
		}
		if c.tracer != nil {
			return &OptionError{Options: "WithTracerProvider and WithTracerProvider", Detail: "cannot specify more than one tracer"}
		}
		c.tracer = &otelTracer{t: tp.Tracer(instrumentationName)}
		return nil
	}
}

// WithMeterProvider records the Cluster's operation counts and durations
// ("pincluster.ops", "pincluster.op.duration", attribute "op" and
// "outcome") through mp, which the caller owns. Default: no metrics.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return &OptionError{Options: "WithMeterProvider", Detail: "nil provider"}
		}
		m := mp.Meter(instrumentationName)
		ops, err := m.Int64Counter("pincluster.ops", metric.WithDescription("Cluster operations"))
		if err != nil {
			return &OptionError{Options: "WithMeterProvider", Detail: err.Error()}
		}
		dur, err := m.Float64Histogram("pincluster.op.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of Cluster operations"))
		if err != nil {
			return &OptionError{Options: "WithMeterProvider", Detail: err.Error()}
		}
		c.metrics = &clusterMetrics{ops: ops, duration: dur}
		return nil
	}
}
