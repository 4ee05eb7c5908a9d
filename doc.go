// Package pincluster orchestrates a pinset across many IPFS peers, as a Go
// library: IPFS Cluster re-imagined to be embedded.
//
// An application builds one peer per process with its own libp2p host, DHT
// and pubsub; the peers share one replicated pinset (the State), decide
// which peers hold each pin (the PinAllocator, from the metrics the
// PeerMonitor collects), make those peers' IPFS nodes pin it (the
// PinTracker through an IPFSConnector), watch each other and re-place pins
// when a peer disappears.
//
// # Components
//
// Each part is an interface with a default, and each default can be
// replaced by an option:
//
//   - Consensus: the shared pinset. Default: a Merkle-CRDT over the
//     cluster's pubsub topic.
//   - State / ReadOnly: the pinset itself, streamed with List. Stored in a
//     go-datastore: in memory (default), Badger (WithBadger), Pebble
//     (WithPebble) or the caller's own (WithDatastore).
//   - IPFSConnector: one IPFS node. Default: the in-process node (bitswap
//     on the host and DHT given to New); package connector/kubo talks to a
//     Kubo daemon.
//   - PinTracker: makes the local IPFS node match the pins allocated here
//     and reports statuses (TrackerStatus).
//   - Informer, PeerMonitor, PinAllocator: metrics, their distribution and
//     failure detection, and placement.
//   - APIs: outside interfaces (packages api/rest and api/pinsvc), started
//     with WithAPI; spans and metrics go to OpenTelemetry
//     (WithTracerProvider, WithMeterProvider).
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
// # Errors
//
// Conditions that callers test for are sentinel errors in errors.go
// (ErrNotFound, ErrClosed, ErrInvalidPin, ...), returned wrapped with the
// operation's name; errors carrying data are types (*ValidationError,
// *RecordError, *AllocationError, *PeerError, *OptionError) that unwrap to
// the sentinels. Use errors.Is and errors.As.
//
// # Options
//
// Options are functions returning an error; nil options are skipped;
// conflicting options fail with an *OptionError naming them. All defaults
// are set in one place (options.go) and each option's documentation ends
// with its default.
//
// # Logging
//
// The library never prints. Pass a *slog.Logger with WithLogger; the
// default discards everything.
package pincluster
