// Package pincluster orchestrates a pinset across many IPFS peers, as a Go
// library: IPFS Cluster re-imagined to be embedded.
//
// An application runs one peer per process on its own libp2p host, DHT
// and pubsub. The peers share one replicated pinset (the State), decide
// which peers hold each pin (the PinAllocator, from the metrics the
// PeerMonitor collects), make those peers' IPFS nodes pin it (the
// PinTracker through an IPFSConnector), watch each other and re-place pins
// when a peer disappears.
//
// # Quick start
//
// One peer with every default: the Merkle-CRDT consensus over pubsub, the
// in-process IPFS node on the host and DHT, the pinset in memory. This is
// the program of the README's "Embedding" section; a test compiles and
// runs it, and checks that both texts equal it.
//
//	h, err := libp2p.New() // your libp2p host
//	if err != nil {
//		return err
//	}
//	defer h.Close()
//	psCtx, stopPubsub := context.WithCancel(ctx) // you own the pubsub and its context
//	defer stopPubsub()
//	ps, err := pubsub.NewGossipSub(psCtx, h)
//	if err != nil {
//		return err
//	}
//	kad, err := dht.New(h) // your DHT, or nil
//	if err != nil {
//		return err
//	}
//	defer kad.Close()
//
//	c, err := pincluster.New(ctx, h, kad, ps) // every default: CRDT, in-process IPFS node, memory
//	if err != nil {
//		return err
//	}
//	defer c.Shutdown(context.Background()) // before the host, DHT and pubsub close
//	if err := c.WaitReady(ctx); err != nil {
//		return err
//	}
//
//	// Add imports the data into the in-process node and pins its root
//	// cluster-wide (on ReplicationMax peers, here every peer: the default).
//	files := maps.All(map[string]io.Reader{"hello.txt": strings.NewReader("hello, cluster")})
//	added, err := c.Add(ctx, files, pincluster.AddParams{})
//	if err != nil {
//		return err
//	}
//	root := added[len(added)-1].Cid
//
//	// Pin (again) with options: a name and replication factors.
//	if _, err := c.Pin(ctx, root, pincluster.PinOptions{Name: "hello", ReplicationMin: 1, ReplicationMax: 3}); err != nil {
//		return err
//	}
//	for g, err := range c.StatusAll(ctx, pincluster.StatusFilter{}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(g.Cid, len(g.PeerMap), "peer(s)")
//	}
//
// More: the Example functions of this package, and the programs of
// examples/ (embed, gateway, daemon, state, quickstart).
//
// # Lifecycle
//
// New → Ready → use → Shutdown.
//
//   - New(ctx, host, dht, pubsub, options...) builds and starts every
//     component and returns; ctx bounds the start-up only, the peer lives
//     until Shutdown. Invalid or conflicting options fail New with an
//     *OptionError before anything starts; a failure while starting stops
//     what was started.
//   - Ready() is closed, and WaitReady(ctx) returns, once the consensus
//     serves the state and the peer's loops run. A write (Pin, Add, ...)
//     made earlier, or while the peer has not yet heard enough peers'
//     metrics to allocate, waits for that (at most 10 s, within its ctx),
//     then fails with a transient *NotReadyError (ErrNotReady; RetryAfter
//     says when to retry).
//   - Use: every method is safe for concurrent use; blocking methods take
//     a ctx that bounds that call only. Listings are iterators
//     (iter.Seq2[T, error]) that stream, so memory does not grow with the
//     pinset.
//   - Shutdown(ctx) stops the APIs first (requests in progress finish),
//     then refuses new calls, stops the peer's loops, tracker, monitor,
//     informers and allocator, then flushes and stops the consensus and
//     the connector and closes what New opened (a Badger or Pebble store).
//     It returns when every goroutine the library started has exited, or
//     with ctx.Err() at ctx's deadline. Afterwards every method returns an
//     error wrapping ErrClosed; a second Shutdown waits for the first and
//     returns nil. A Cluster is not restarted: call New again (with the
//     same store, it finds its pinset).
//
// # Caller duties
//
//  1. You own the libp2p host, the DHT and the pubsub: create them before
//     New and close them after Shutdown (New never creates or closes
//     them). The order is: Cluster.Shutdown, then the DHT's Close, then
//     cancel the pubsub's context, then the host's Close.
//  2. The pubsub lives as long as the context given to
//     pubsub.NewGossipSub: give it a context of your own, cancelled after
//     Shutdown, never the ctx of New (which bounds start-up only). Pass
//     GossipSubScoring(clusterName) to NewGossipSub (or add
//     MetricsTopicScoreParams to your scoring) so that peers sending forged
//     or malformed metrics are scored out of the mesh.
//  3. Connect the peers: pincluster does not bootstrap. Connect your host
//     to at least one peer of the cluster (h.Connect, or discovery of your
//     own); the cluster's pubsub topics reach the peers connected that
//     way. Every peer of one cluster uses the same WithClusterName.
//  4. Decide whom to trust: by default every peer on the cluster's topics
//     may change the pinset (IPFS Cluster's "*"), which is safe only on a
//     closed network. On any other, list the writers with
//     WithTrustedPeers.
//  5. Choose where the data lives: by default the pinset and the
//     in-process node's blocks are in memory and lost at Shutdown. Give
//     WithBadger or WithPebble (opened and closed by the peer) or
//     WithDatastore (yours: close it after Shutdown).
//  6. Components given by options (WithConsensus, WithConnector,
//     WithTracker, WithMonitor, WithAllocator, WithInformers, WithAPI)
//     belong to the peer from New on: Shutdown shuts them down. Providers
//     given to WithTracerProvider and WithMeterProvider stay yours.
//  7. Call Shutdown with a deadline, and wait for it, before the process
//     exits: it lets the requests and writes in progress finish and
//     closes the store cleanly.
//
// # Failure model
//
// When Pin (or Unpin, Add, PinUpdate) returns nil the change is durable on
// this peer: with the default CRDT consensus it is stored, applied and
// synced in the local store (on disk with WithBadger, WithPebble or a
// durable WithDatastore; in memory otherwise), then announced to the
// other peers, which fetch it from this one. With the Raft consensus
// (consensus/raft) it is committed by a majority. Pinning the data on the
// allocated IPFS nodes happens afterwards, in the background: Status and
// StatusAll report its progress (pin_queued, pinning, pinned, pin_error),
// and the trackers retry failures and re-check their nodes every
// WithStateSyncInterval.
//
// A process killed at any instant (kill -9) loses nothing it acknowledged
// on a durable store: on restart the peer reloads its pinset, catches up
// with the others, and its tracker re-queues what its node is missing (at
// the latest at the next state sync). A write that had not returned may or
// may not be there.
//
// Partitions: with CRDT both sides keep accepting writes and converge when
// the partition heals (for each CID the write with the longest history
// wins; a re-pin concurrent with an unpin survives, as adds win). Each
// side sees the other side's peers stop publishing metrics and, after the
// metric TTL (WithMetricTTL; twice the monitor interval by default),
// re-allocates their pins to live peers (self-healing, WithRepinning):
// exactly one live trusted peer, the closest to each CID, re-allocates it.
// With Raft the minority side cannot write: its writes fail with
// ErrNoLeader once their ctx ends.
//
// Hostile peers: only trusted peers (WithTrustedPeers) change the pinset
// or call the RPC methods that change anything: other peers' deltas are
// ignored and their calls refused (ErrPermission). A peer that the other
// live peers do not trust learns it: its writes fail with ErrPermission. A metric is accepted only from the
// peer it describes (pubsub signatures), with bounded sizes; malformed or
// forged messages are rejected and counted, and scored down with
// GossipSubScoring. Records received from peers are decoded under
// documented size limits (MaxEncodedPinSize, MaxEncodedMetricSize) and
// validated before use; a bad one is dropped, never applied. The HTTP
// APIs (api/rest, api/pinsvc) bound every client's time, memory and
// connections.
//
// # Errors
//
// Conditions callers test for are sentinels in errors.go, returned wrapped
// with the operation's name, or error types carrying data that unwrap to
// them. Test with errors.Is and errors.As:
//
//   - ErrClosed: the peer (or component) was shut down.
//   - ErrNotFound: the CID is not in the pinset (PinGet, Status, Unpin).
//   - ErrInvalidPin, inside a *ValidationError naming the field, with a
//     specific sentinel (ErrNameTooLong, ErrMetadataTooLarge,
//     ErrInvalidReplication, ErrModeDowngrade, ErrExpired, ...): bad input,
//     nothing was written.
//   - ErrNotReady, inside a *NotReadyError: transient, retry after
//     RetryAfter(err).
//   - ErrNotEnoughPeers, inside an *AllocationError: fewer peers than the
//     replication minimum can take the pin.
//   - ErrPermission: an untrusted peer, or a peer that the other live peers
//     do not trust, tried to write. ErrFollowerMode: a write on a follower.
//   - ErrNoLeader: Raft without a leader (a minority partition).
//   - ErrOption, inside an *OptionError: New refused its options.
//   - ErrNotSupported: the configured components cannot do it (Cat with a
//     connector without the Catter ability).
//   - ErrIPFSUnavailable, ErrNotPinned: from IPFS connectors.
//   - ErrCorrupt, inside a *RecordError: a stored or received record, or
//     an export stream, could not be decoded.
//   - *PeerError: a failure on, or while talking to, one peer.
//
// # Components
//
// Each part is an interface with a default, and each default can be
// replaced by an option:
//
//   - Consensus: the shared pinset. Default: a Merkle-CRDT over the
//     cluster's pubsub topic. Package consensus/raft is the alternative.
//   - State / ReadOnly: the pinset itself, streamed with List. Stored in a
//     go-datastore: in memory (default), Badger (WithBadger), Pebble
//     (WithPebble) or the caller's own (WithDatastore).
//   - IPFSConnector: one IPFS node, with optional abilities found by type
//     assertion (Adder, Catter, DAGSizer, PinUpdater, RepoGCer). Default:
//     the in-process node (bitswap on the host and DHT given to New);
//     package connector/kubo talks to a Kubo daemon.
//   - PinTracker: makes the local IPFS node match the pins allocated here
//     and reports statuses (TrackerStatus).
//   - Informer and PeerMonitor: the metrics each peer publishes (free
//     space, pin count, queue, tags) and their distribution, with failure
//     detection (Alerts).
//   - PinAllocator: placement. Default: the BalancedAllocator, configured
//     with WithAllocateBy; WithAllocator replaces it.
//   - APIs: outside interfaces started with WithAPI (packages api/rest,
//     api/pinsvc, api/ipfsproxy). Spans and metrics go to OpenTelemetry
//     (WithTracerProvider, WithMeterProvider).
//
// Implementers of a component find its interface, its side interfaces and
// the types its methods take in the component's file (below). Every
// component interface embeds Component (Shutdown).
//
// # Data
//
// A Pin is a CID with its PinOptions (replication factors, name, mode,
// metadata, expiry, origins, user allocations) and its allocations. Pins
// are validated against documented limits (MaxNameLen, MaxMetadataKeys,
// MaxOrigins, ...) and encoded in deterministic, versioned CBOR
// (Pin.MarshalBinary) between peers and on disk, and in IPFS Cluster's JSON
// form (Pin.MarshalJSON) at the HTTP edges and in state exports.
//
// # Options
//
// Options are functions returning an error, all in options.go; nil options
// are skipped; conflicting options fail with an *OptionError naming them.
// All defaults are set in one place (defaultConfig in options.go) and each
// option's documentation ends with its default.
//
// # Logging
//
// The library never prints. Pass a *slog.Logger with WithLogger; the
// default discards everything.
//
// # Files and packages
//
// The root package, by file:
//
//	doc.go          this manual
//	new.go          New: building and starting a peer
//	cluster.go      Cluster: lifecycle (Ready, Shutdown), the pinset calls (Pin, Unpin, Pins, ...), ID, membership
//	add.go          Cluster.Add's importer (in-process node, or blocks through BlockPut)
//	status.go       Status, StatusAll, Recover, RecoverAll, SyncAll, Peers: asking the peers
//	heal.go         self-healing (alerts, re-allocation), expiry, StateSync
//	state_to_tracker.go  the bridge: applied state changes to the tracker, in apply order
//	bulk.go         PinMany and PinStream: many pins in one durable batch
//	options.go      Option, every With*, the defaults
//	errors.go       every sentinel and error type
//	types.go        Pin, PinOptions, PinInfo, GlobalPinInfo, TrackerStatus, Metric, filters
//	encoding.go     the CBOR and JSON encodings of Pin and Metric
//	consensus.go    Consensus, StateWatcher; the default CRDT consensus
//	state.go        State, ReadOnly, WriteOnly, Exporter, DatastoreState
//	state_mem.go    the in-memory datastore
//	state_ops.go    OpenState, CleanState, export and import, ConsensusStats
//	connector.go    IPFSConnector and its side interfaces, AddParams
//	connector_node.go  the in-process IPFS node as IPFSConnector
//	tracker.go      PinTracker, TrackerStatsReporter, TrackerStats
//	tracker_op.go   the default operation tracker
//	tracker_held.go what the IPFS node holds, as compact fingerprints
//	monitor.go      PeerMonitor, PubsubMonitor
//	informer.go     Informer and the built-in informers
//	allocate.go     PinAllocator, BalancedAllocator, the allocation rules, Cluster.allocate
//	defaults.go     the default components New builds
//	index.go        the name and metadata index of filtered listings
//	graph.go        ConnectGraph
//	repogc.go, repostat.go  RepoGC and RepoStatAll across peers
//	rpc.go, rpc_graph.go    the calls between peers (internal/rpc)
//	pubsubscore.go  GossipSub peer scoring for the metrics topic
//	otel.go         OpenTelemetry spans and metrics
//
// Packages beside it:
//
//	consensus/raft     Raft consensus (hashicorp/raft)
//	connector/kubo     IPFSConnector over a Kubo daemon's RPC API
//	api/rest           IPFS Cluster's REST API (ipfs-cluster-ctl works against it)
//	api/pinsvc         the IPFS Pinning Service API (ipfs pin remote)
//	api/ipfsproxy      IPFS Cluster's IPFS proxy (Kubo's RPC API, pins going to the cluster)
//	api/server         the HTTP server all three run (limits, Start, Shutdown)
//	clustertest        the test kit: mock connector, static informers, N peers on mocknet
//	connector/connectortest  the conformance suite every IPFSConnector passes
//	bench/             benchmark programs: httppin (the HTTP pin path), scale (a large pinset)
//	cmd/pinclusterd    the daemon: one peer with its APIs, from a config file
//	examples/          runnable programs, each with a smoke test
//	internal/crdt      the Merkle-CRDT engine
//	internal/ipfsnode  the in-process IPFS node
//	internal/badgerds  go-datastore over Badger
//	internal/rpc       typed request/response over libp2p streams
//	internal/optracker the tracker's operation queue
//	internal/gorun     the tracked goroutine starter
//
// The root imports only internal/ packages of this module; the packages
// beside it use only the root's exported API.
package pincluster
