package pincluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	routing "github.com/libp2p/go-libp2p/core/routing"

	"github.com/pincluster/pincluster/internal/gorun"
	"github.com/pincluster/pincluster/internal/rpc"
)

// Version is pincluster's version, reported by ID and the APIs.
const Version = "0.1.0"

// Component is what every replaceable part of a Cluster has in common: it
// can be shut down. Shutdown stops the component's goroutines and releases
// its resources; it returns ctx.Err() if ctx ends first. Methods with an
// error result called after Shutdown return an error wrapping ErrClosed.
type Component interface {
	Shutdown(ctx context.Context) error
}

// Cluster is one pincluster peer. Build it with New, wait for Ready, use
// it, and call Shutdown (the package documentation describes the
// lifecycle). All methods are safe for concurrent use; after Shutdown
// those with an error result return an error wrapping ErrClosed.
type Cluster struct {
	cfg    *config
	host   host.Host
	dht    routing.Routing
	pubsub *pubsub.PubSub
	log    *slog.Logger

	consensus Consensus
	connector IPFSConnector
	tracker   PinTracker
	monitor   PeerMonitor
	allocator PinAllocator
	informers []Informer
	// index maps names and metadata to CIDs for filtered listings.
	index *pinIndex
	// changeLocks serialise the state notifications of one CID (by
	// stripe); changeAt[i] is the changeSeq of stripe i's last
	// notification (under changeLocks[i]).
	changeLocks [64]sync.Mutex
	changeAt    [64]uint64
	changeSeq   atomic.Uint64
	// changed[i] records the CIDs of stripe i changed while a state sync
	// lists the state (under changeLocks[i]; nil when none lists);
	// recording counts the syncs listing (under recordMu).
	changed   [64]*changedSet
	recordMu  sync.Mutex
	recording int
	// watching is set once every state change reaches onStateChange (the
	// consensus is an everyChangeWatcher); syncMisses counts the changes the
	// tracker could not be given since the last full state sync began.
	// Together they let the periodic state sync skip listing the state.
	watching   atomic.Bool
	syncMisses atomic.Uint64
	// reservations holds the space promised to recent allocations.
	reservations *reservationLedger
	apis         []Component
	tracer       *otelTracer
	remote       remotePeers // calls to other peers (internal/rpc)
	pingMu       sync.Mutex  // guards lastPing
	lastPing     pingJSON    // the last MetricPing value (graph.go)
	rpcServer    *rpc.Server
	rpcClient    *rpc.Client

	// closers release what New created, in reverse order, after the
	// components shut down (the in-process node, an opened datastore).
	closers []func(context.Context) error

	group *gorun.Group
	ready chan struct{}
	// readyAt is when ready was closed (unix nanoseconds; 0 before).
	readyAt atomic.Int64

	mu           sync.Mutex
	stopping     bool // Shutdown was called
	shuttingDown bool // calls are refused (set once the APIs have stopped)
	shutdownErr  error
	done         chan struct{}

	alertsMu sync.Mutex
	alerts   []Alert // recent alerts, newest last, bounded

	// cards remembers each peer's name and IPFS node from its answers.
	cardsMu sync.Mutex
	cards   map[peer.ID]peerCard

	// trustMu guards the verdict of acceptedByPeers' probes (see
	// trustVerdict): trustAt is when the last probe ended, trustRefused
	// its verdict, trustProbing whether a probe is under way; trustHook
	// (tests) is called as a probe starts.
	trustMu      sync.Mutex
	trustAt      time.Time
	trustRefused bool
	trustProbing bool
	trustHook    func()
}

// maxRecentAlerts bounds the alerts kept for Alerts.
const maxRecentAlerts = 256

// Host returns the libp2p host the cluster runs on.
func (c *Cluster) Host() host.Host { return c.host }

// Version returns pincluster's version.
func (c *Cluster) Version() string { return Version }

// Ready is closed once the peer is ready: its consensus serves the state
// and its components run.
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

// WaitReady blocks until the peer is ready, ctx is done (ctx.Err()) or the
// peer shuts down (ErrClosed).
func (c *Cluster) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return fmt.Errorf("pincluster: wait ready: %w", ErrClosed)
	}
}

// live returns an error wrapping ErrClosed once Shutdown has begun.
func (c *Cluster) live(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shuttingDown {
		return fmt.Errorf("pincluster: %s: %w", op, ErrClosed)
	}
	return nil
}

// writable is live for the calls that write to the shared pinset or the
// membership: it also refuses them on a follower (ErrFollowerMode).
func (c *Cluster) writable(op string) error {
	if err := c.live(op); err != nil {
		return err
	}
	if c.cfg.follower {
		return fmt.Errorf("pincluster: %s: %w", op, ErrFollowerMode)
	}
	return nil
}

// Bounds of acceptedByPeers' probe.
const (
	trustProbePeers   = 3
	trustProbeTimeout = 2 * time.Second
)

// acceptedByPeers returns an error wrapping ErrPermission when the other
// live peers refuse this peer's trust, so that its writes would be ignored
// by them (CRDT mode, where trust is each peer's own): instead of writing
// a pin only it would see, the write is refused. It asks up to three live
// peers for an empty status (a call that needs their trust) at most once
// per monitor interval; a peer that accepts settles it, and when no peer
// answers (alone, or unreachable) the write goes ahead.
func (c *Cluster) acceptedByPeers(ctx context.Context, op string) error {
	if _, crdt := c.consensus.(*crdtConsensus); !crdt || c.remote == nil {
		return nil // Raft forwards writes to a leader, which checks trust
	}
	if c.trustVerdict(ctx) {
		return fmt.Errorf("pincluster: %s: the other peers do not trust this peer, its writes would be ignored: %w", op, ErrPermission)
	}
	return nil
}

// trustVerdict returns whether the live peers refuse this peer. The first
// call probes them while the other callers wait for its verdict; after
// that, once the verdict is a monitor interval old, one caller probes
// again and the others meanwhile take the previous verdict instead of
// waiting on the network (a probe takes up to trustProbeTimeout per peer
// asked).
func (c *Cluster) trustVerdict(ctx context.Context) (refused bool) {
	c.trustMu.Lock()
	if c.trustAt.IsZero() {
		defer c.trustMu.Unlock()
		c.trustRefused = c.probeTrust(ctx, c.trustHook)
		c.trustAt = time.Now()
		return c.trustRefused
	}
	if c.trustProbing || time.Since(c.trustAt) < c.cfg.monitorInterval {
		refused = c.trustRefused
		c.trustMu.Unlock()
		return refused
	}
	c.trustProbing = true
	hook := c.trustHook
	c.trustMu.Unlock()
	refused = c.probeTrust(ctx, hook)
	c.trustMu.Lock()
	c.trustRefused, c.trustAt, c.trustProbing = refused, time.Now(), false
	c.trustMu.Unlock()
	return refused
}

// probeTrust reports whether the live peers asked all refused this peer;
// hook, when not nil, is called first (tests).
func (c *Cluster) probeTrust(ctx context.Context, hook func()) (refused bool) {
	if hook != nil {
		hook()
	}
	self := c.host.ID()
	asked := 0
	for _, p := range c.writers(ctx) {
		if p == self {
			continue
		}
		if asked == trustProbePeers {
			break
		}
		asked++
		pctx, cancel := context.WithTimeout(ctx, trustProbeTimeout)
		_, err := c.remote.statusMany(pctx, p, nil)
		cancel()
		switch {
		case err == nil:
			return false
		case errors.Is(err, ErrPermission):
			refused = true
		}
	}
	return refused
}

// span starts a trace span (WithTracerProvider) and returns the
// function that ends it and records the operation (WithMeterProvider).
func (c *Cluster) span(ctx context.Context, name string) (context.Context, func(error)) {
	start := time.Now()
	end := func(error) {}
	if c.tracer != nil {
		ctx, end = c.tracer.Start(ctx, name)
	}
	return ctx, func(err error) {
		end(err)
		c.cfg.metrics.record(ctx, name, start, err)
	}
}

// Shutdown stops the peer in order: it stops the APIs first (each lets
// the requests in progress finish, within ctx, while the peer still serves
// them), then refuses new calls and stops the cluster's own loops, the tracker, monitor, informers and allocator,
// then flushes and stops the consensus, the connector and what New opened.
// It returns when every goroutine the library started has exited, or with
// ctx.Err() when ctx ends first. Calling it again returns nil once the
// first call has finished (it waits for it).
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.stopping = true
	c.mu.Unlock()

	var errs []error
	add := func(what string, err error) {
		if err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	for _, a := range slices.Backward(c.apis) {
		add("api", a.Shutdown(ctx))
	}
	c.mu.Lock()
	c.shuttingDown = true
	c.mu.Unlock()
	add("cluster loops", c.group.Close(ctx))
	add("rpc", c.stopRPC(ctx))
	if c.tracker != nil {
		add("tracker", c.tracker.Shutdown(ctx))
	}
	if c.monitor != nil {
		add("monitor", c.monitor.Shutdown(ctx))
	}
	for _, inf := range c.informers {
		add("informer "+inf.Name(), inf.Shutdown(ctx))
	}
	if c.allocator != nil {
		add("allocator", c.allocator.Shutdown(ctx))
	}
	if c.consensus != nil {
		add("consensus", c.consensus.Shutdown(ctx))
	}
	if c.connector != nil {
		add("connector", c.connector.Shutdown(ctx))
	}
	for _, cl := range slices.Backward(c.closers) {
		add("close", cl(ctx))
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("pincluster: shutdown: %w", err)
	}
	c.mu.Lock()
	c.shutdownErr = err
	c.mu.Unlock()
	close(c.done)
	return err
}

// ID describes this peer: its addresses, its IPFS node, the peers it knows.
// Failures to ask a component are reported in ID.Error / ID.IPFS.Error.
func (c *Cluster) ID(ctx context.Context) ID {
	id := ID{
		ID:                 c.host.ID(),
		Addresses:          c.host.Addrs(),
		Version:            Version,
		RPCProtocolVersion: string(c.rpcProtocol()),
		PeerName:           c.cfg.peerName,
	}
	if err := c.live("id"); err != nil {
		id.Error = err.Error()
		return id
	}
	if peers, err := c.consensus.Peers(ctx); err == nil {
		id.ClusterPeers = peers
		id.ClusterPeersAddresses = c.peersAddresses(peers)
	} else {
		id.Error = err.Error()
	}
	ipfs, err := c.connector.ID(ctx)
	if err != nil {
		ipfs.Error = err.Error()
	}
	id.IPFS = ipfs
	return id
}

// AddPeer trusts p: it may then modify the shared state (and, with Raft,
// becomes a voter).
func (c *Cluster) AddPeer(ctx context.Context, p peer.ID) error {
	if err := c.writable("add peer"); err != nil {
		return err
	}
	if err := c.consensus.Trust(ctx, p); err != nil {
		return fmt.Errorf("pincluster: add peer %s: %w", p, err)
	}
	if err := c.consensus.AddPeer(ctx, p); err != nil {
		return fmt.Errorf("pincluster: add peer %s: %w", p, err)
	}
	return nil
}

// RmPeer removes p from the membership (with Raft it stops being a voter),
// stops trusting it, and then moves every pin allocated to p to live
// peers: p is taken out of the pin's allocations and, when the remaining
// live ones fall below ReplicationMin, the best candidates replace it (the
// re-pin rule of PinAllocator, p excluded). This peer, the one asked, is
// the single re-allocator of every such pin, as IPFS Cluster's RmPeer; it
// returns once the moves are logged. A pin that cannot be moved (too few
// peers left for its ReplicationMin) keeps its allocations and is logged
// at Warn, as IPFS Cluster does: the removal still succeeds, and the
// self-healing retries once p's metrics expire. In CRDT mode trust is each
// peer's own: the other peers keep trusting p unless told (RmPeer or
// WithTrustedPeers on each of them).
func (c *Cluster) RmPeer(ctx context.Context, p peer.ID) error {
	if err := c.writable("rm peer"); err != nil {
		return err
	}
	if err := c.consensus.RmPeer(ctx, p); err != nil {
		return fmt.Errorf("pincluster: rm peer %s: %w", p, err)
	}
	if err := c.consensus.Distrust(ctx, p); err != nil {
		return fmt.Errorf("pincluster: rm peer %s: %w", p, err)
	}
	if err := c.vacate(ctx, p); err != nil {
		c.log.Warn("rm peer: some pins of the removed peer were not moved", "peer", p, "err", err)
	}
	return nil
}

// vacate re-allocates every pin allocated to the removed peer p.
func (c *Cluster) vacate(ctx context.Context, p peer.ID) error {
	// Catch up first (Raft: what the leader committed; CRDT: heads
	// received), so that recent pins of p are moved too.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := c.consensus.WaitForSync(sctx); err != nil && ctx.Err() == nil {
		c.log.Warn("rm peer: state not caught up, moving what is known", "err", err)
	}
	cancel()
	st, err := c.state(ctx)
	if err != nil {
		return err
	}
	var todo []Pin
	for pin, err := range st.List(ctx) {
		if err != nil {
			return fmt.Errorf("listing the pins: %w", err)
		}
		if slices.Contains(pin.Allocations, p) {
			todo = append(todo, pin)
		}
	}
	var errs []error
	moved := 0
	for _, pin := range todo {
		if _, err := c.pin(ctx, pin.Cid, pin.PinOptions, []peer.ID{p}, true); errors.Is(err, ErrNotFound) {
			continue // unpinned meanwhile
		} else if err != nil {
			errs = append(errs, fmt.Errorf("moving %s: %w", pin.Cid, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		moved++
	}
	c.log.Info("moved the pins of a removed peer", "peer", p, "pins", moved, "failed", len(errs))
	return errors.Join(errs...)
}

// state returns the consensus' read-only state.
func (c *Cluster) state(ctx context.Context) (ReadOnly, error) {
	st, err := c.consensus.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("pincluster: state: %w", err)
	}
	return st, nil
}

// PinGet returns the pin of ci from the shared state, or an error wrapping
// ErrNotFound.
func (c *Cluster) PinGet(ctx context.Context, ci cid.Cid) (Pin, error) {
	if err := c.live("pin get"); err != nil {
		return Pin{}, err
	}
	st, err := c.state(ctx)
	if err != nil {
		return Pin{}, err
	}
	return st.Get(ctx, ci)
}

// TrackerStats returns the metrics of the peer's tracker (queue lengths,
// operations in flight, errors, timings); ok is false when the tracker
// does not report them (see TrackerStatsReporter).
func (c *Cluster) TrackerStats() (stats TrackerStats, ok bool) {
	r, ok := c.tracker.(TrackerStatsReporter)
	if !ok {
		return TrackerStats{}, false
	}
	return r.Stats(), true
}

// Allocations returns the peers the pin of ci is allocated to, from the
// shared state; an empty list means every peer (replication -1). The error
// wraps ErrNotFound when ci is not pinned.
func (c *Cluster) Allocations(ctx context.Context, ci cid.Cid) ([]peer.ID, error) {
	p, err := c.PinGet(ctx, ci)
	if err != nil {
		return nil, err
	}
	return p.Allocations, nil
}

// Pins streams the pins of the shared state that pass f. A filter on CIDs
// reads only those records; one on name or metadata reads only the records
// the peer's in-memory index names (once the index is built, right after
// start); other filters scan the state.
func (c *Cluster) Pins(ctx context.Context, f PinFilter) iter.Seq2[Pin, error] {
	return func(yield func(Pin, error) bool) {
		if err := c.live("pins"); err != nil {
			yield(Pin{}, err)
			return
		}
		st, err := c.state(ctx)
		if err != nil {
			yield(Pin{}, err)
			return
		}
		if f.Status != 0 { // the local tracker's view, asked per pin
			all := yield
			yield = func(p Pin, err error) bool {
				if err != nil {
					return all(p, err)
				}
				pi, err := c.tracker.Status(ctx, p.Cid)
				if err != nil {
					return all(p, fmt.Errorf("pincluster: pins: status of %s: %w", p.Cid, err))
				}
				return !pi.Status.Match(f.Status) || all(p, nil)
			}
		}
		cids, narrowed := f.Cids, len(f.Cids) > 0
		if !narrowed {
			cids, narrowed = c.index.lookup(f) // name or metadata filter
		}
		if narrowed { // point lookups, no scan
			for _, ci := range cids {
				p, err := st.Get(ctx, ci)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if (err != nil || f.MatchPin(p)) && !yield(p, err) {
					return
				}
			}
			return
		}
		for p, err := range st.List(ctx) {
			if (err != nil || f.MatchPin(p)) && !yield(p, err) {
				return
			}
		}
	}
}

// normalise fills the cluster defaults into opts and validates them.
func (c *Cluster) normalise(opts PinOptions) (PinOptions, error) {
	if opts.ReplicationMin == 0 {
		opts.ReplicationMin = c.cfg.replicationMin
	}
	if opts.ReplicationMax == 0 {
		opts.ReplicationMax = c.cfg.replicationMax
	}
	if (opts.ReplicationMin == -1) != (opts.ReplicationMax == -1) {
		// As IPFS Cluster: after the defaults are filled, -1 (everywhere)
		// must be both factors; widening a number to -1 would silently
		// ignore what was asked.
		return opts, &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("min %d, max %d: if one factor is -1 (everywhere), the other must be too", opts.ReplicationMin, opts.ReplicationMax)}
	}
	if opts.ReplicationMax > 0 && opts.ReplicationMin > opts.ReplicationMax {
		return opts, &ValidationError{Field: "replication", Err: ErrInvalidReplication,
			Detail: fmt.Sprintf("min %d is greater than max %d", opts.ReplicationMin, opts.ReplicationMax)}
	}
	return opts, opts.Validate()
}

// Pin adds ci to the shared pinset with opts: it validates the options,
// fills the cluster defaults (WithReplication), allocates peers from the
// monitor's latest metrics (user allocations first, current allocations
// kept) and logs the pin with the consensus. It returns once the pin is
// durable (CRDT: in the local store; Raft: committed).
//
// In CRDT mode, a peer that the other live peers do not trust refuses the
// write with an error wrapping ErrPermission rather than keep a pin only it
// would see (the same holds for Unpin); a follower refuses it with
// ErrFollowerMode.
//
// Pinning a CID again keeps its allocations while enough of them are live
// (the re-pin rule of PinAllocator, IPFS Cluster's), and logs nothing when
// nothing changed. With opts.PinUpdate set to a pinned CID, a new pin starts
// from that pin's allocations in the same way. A recursive pin is never
// downgraded to direct (a *ValidationError wrapping ErrModeDowngrade); a
// direct pin pinned again recursively is upgraded on every holder. An
// ExpireAt that is not in the future is refused (a *ValidationError with
// Field "expire_at", wrapping ErrExpired).
func (c *Cluster) Pin(ctx context.Context, ci cid.Cid, opts PinOptions) (Pin, error) {
	if err := c.writable("pin"); err != nil {
		return Pin{}, err
	}
	if now := time.Now(); !opts.ExpireAt.IsZero() && !opts.ExpireAt.After(now) {
		return Pin{}, &ValidationError{Field: "expire_at", Err: ErrExpired,
			Detail: fmt.Sprintf("%s is not after now (%s)", opts.ExpireAt.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))}
	}
	if err := c.acceptedByPeers(ctx, "pin"); err != nil {
		return Pin{}, err
	}
	ctx, end := c.span(ctx, "Cluster.Pin")
	pin, err := c.pin(ctx, ci, opts, nil, false)
	end(err)
	return pin, err
}

// pin makes and logs the pin. exclude lists peers that must not be
// allocated anew (a lost peer during repinning: allocationRequest.Exclude);
// with remove set they are also taken out of the allocations (a removed
// peer: allocationRequest.Remove). With exclude, pin re-places an existing
// pin and never creates one.
func (c *Cluster) pin(ctx context.Context, ci cid.Cid, opts PinOptions, exclude []peer.ID, remove bool) (Pin, error) {
	pin, log, err := c.preparePin(ctx, ci, opts, exclude, remove)
	if err != nil || !log {
		return pin, err
	}
	if err := c.consensus.LogPin(ctx, pin); err != nil {
		return Pin{}, fmt.Errorf("pincluster: pin %s: %w", ci, err)
	}
	return pin, nil
}

// preparePin makes the pin that pin logs, validated; log is false when
// the pin to return is already in the state as it is (nothing to log).
func (c *Cluster) preparePin(ctx context.Context, ci cid.Cid, opts PinOptions, exclude []peer.ID, remove bool) (_ Pin, log bool, _ error) {
	if !ci.Defined() {
		return Pin{}, false, &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	opts, err := c.normalise(opts)
	if err != nil {
		return Pin{}, false, err
	}
	pin := NewPin(ci, opts)
	pin.Timestamp = time.Now().UTC()

	st, err := c.state(ctx)
	if err != nil {
		return Pin{}, false, err
	}
	var current []peer.ID
	existing, err := st.Get(ctx, ci)
	switch {
	case err == nil:
		if existing.MaxDepth != 0 && pin.MaxDepth == 0 {
			// As IPFS Cluster: the IPFS nodes would keep the recursive
			// pin, and the state would lie about it.
			return Pin{}, false, &ValidationError{Field: "mode", Err: ErrModeDowngrade,
				Detail: fmt.Sprintf("%s is pinned recursively; unpin it before pinning it directly", ci)}
		}
		current = existing.Allocations
		pin.Timestamp = existing.Timestamp
	case !errors.Is(err, ErrNotFound):
		return Pin{}, false, fmt.Errorf("pincluster: pin %s: %w", ci, err)
	case len(exclude) > 0:
		// A re-placement of a pin that was unpinned meanwhile: do not
		// bring it back.
		return Pin{}, false, fmt.Errorf("pincluster: repin %s: %w", ci, err)
	}
	if !existing.Defined() && opts.PinUpdate.Defined() && len(exclude) == 0 {
		// An update starts from the old version's allocations, which
		// hold most of the data: only the difference moves.
		if old, err := st.Get(ctx, opts.PinUpdate); err == nil {
			current = old.Allocations
		} else if !errors.Is(err, ErrNotFound) {
			return Pin{}, false, fmt.Errorf("pincluster: pin %s: update from %s: %w", ci, opts.PinUpdate, err)
		}
	}
	if len(exclude) > 0 && !slices.ContainsFunc(existing.Allocations, func(p peer.ID) bool { return slices.Contains(exclude, p) }) {
		return existing, false, nil // already moved away from the excluded peers
	}
	if !pin.IsPinEverywhere() {
		var removed []peer.ID
		if remove {
			removed = exclude
		}
		allocs, size, err := c.allocateWarm(ctx, ci, opts, current, exclude, removed)
		if err != nil {
			return Pin{}, false, fmt.Errorf("pincluster: pin %s: %w", ci, err)
		}
		pin.Allocations, pin.Size = allocs, size
		if size == 0 && existing.Defined() {
			pin.Size = existing.Size // known to an earlier allocation
		}
	}
	if existing.Defined() && existing.Equal(pin) {
		return existing, false, nil // same pin, same allocations: nothing to log
	}
	if err := pin.Validate(); err != nil {
		return Pin{}, false, err
	}
	return pin, true, nil
}

// maxWarmWait bounds how long a write waits for a starting peer (Ready,
// then enough peers' metrics) before failing with a *NotReadyError.
const maxWarmWait = 10 * time.Second

// warmUntil returns until when the peer is warming up: one metric TTL
// after Ready, the time for every live peer's metrics to arrive (they are
// published every monitor interval); the zero time before Ready.
func (c *Cluster) warmUntil() time.Time {
	at := c.readyAt.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at).Add(c.cfg.ttl())
}

// allocateWarm is allocate for a peer that may be starting: before Ready
// it waits for it, and while warming up (warmUntil) an allocation short of
// peers is tried again as metrics arrive. Either wait is bounded by
// maxWarmWait and ctx; when it ends first the error is a *NotReadyError
// (transient). After the warm-up a shortage is the steady-state
// *AllocationError. It returns the DAG size that allocate found, as
// allocate does.
func (c *Cluster) allocateWarm(ctx context.Context, ci cid.Cid, opts PinOptions, current, exclude, remove []peer.ID) ([]peer.ID, uint64, error) {
	deadline := time.Now().Add(maxWarmWait)
	notReady := func(err error) error {
		wait := time.Until(c.warmUntil())
		if c.readyAt.Load() == 0 || wait <= 0 {
			wait = c.cfg.monitorInterval
		}
		return &NotReadyError{Op: "pin", RetryAfter: wait, Err: err}
	}
	if c.readyAt.Load() == 0 {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, 0, notReady(ctx.Err())
		case <-t.C:
			return nil, 0, notReady(errors.New("consensus not ready"))
		case <-c.done:
			return nil, 0, fmt.Errorf("allocate: %w", ErrClosed)
		}
	}
	for {
		allocs, size, err := c.allocate(ctx, ci, opts, current, exclude, remove)
		if err == nil || !errors.Is(err, ErrNotEnoughPeers) {
			return allocs, size, err
		}
		warm := c.warmUntil()
		if !time.Now().Before(warm) {
			return nil, 0, err // steady state
		}
		if !time.Now().Before(deadline) {
			return nil, 0, notReady(err)
		}
		// Metrics arrive once per monitor interval: look again soon.
		step := min(c.cfg.monitorInterval/10+time.Millisecond, time.Until(warm), time.Until(deadline))
		if !gorun.Sleep(ctx, max(step, time.Millisecond)) {
			return nil, 0, notReady(errors.Join(err, ctx.Err()))
		}
	}
}

// PinPath resolves an /ipfs/ path through the IPFS node and pins the
// result.
func (c *Cluster) PinPath(ctx context.Context, path string, opts PinOptions) (Pin, error) {
	if err := c.writable("pin path"); err != nil {
		return Pin{}, err
	}
	ci, err := c.connector.Resolve(ctx, path)
	if err != nil {
		return Pin{}, fmt.Errorf("pincluster: pin path %s: %w", path, err)
	}
	return c.Pin(ctx, ci, opts)
}

// Unpin removes ci from the shared pinset and returns the pin it had, or
// an error wrapping ErrNotFound (ErrPermission or ErrFollowerMode as for
// Pin).
func (c *Cluster) Unpin(ctx context.Context, ci cid.Cid) (Pin, error) {
	if err := c.writable("unpin"); err != nil {
		return Pin{}, err
	}
	if err := c.acceptedByPeers(ctx, "unpin"); err != nil {
		return Pin{}, err
	}
	ctx, end := c.span(ctx, "Cluster.Unpin")
	pin, err := c.unpin(ctx, ci)
	end(err)
	return pin, err
}

func (c *Cluster) unpin(ctx context.Context, ci cid.Cid) (Pin, error) {
	st, err := c.state(ctx)
	if err != nil {
		return Pin{}, err
	}
	pin, err := st.Get(ctx, ci)
	if err != nil {
		return Pin{}, fmt.Errorf("pincluster: unpin %s: %w", ci, err)
	}
	if err := c.consensus.LogUnpin(ctx, pin); err != nil {
		return Pin{}, fmt.Errorf("pincluster: unpin %s: %w", ci, err)
	}
	return pin, nil
}

// UnpinPath resolves an /ipfs/ path and unpins the result.
func (c *Cluster) UnpinPath(ctx context.Context, path string) (Pin, error) {
	if err := c.writable("unpin path"); err != nil {
		return Pin{}, err
	}
	ci, err := c.connector.Resolve(ctx, path)
	if err != nil {
		return Pin{}, fmt.Errorf("pincluster: unpin path %s: %w", path, err)
	}
	return c.Unpin(ctx, ci)
}

// PinUpdate pins to with the options of the existing pin of from (opts
// fields that are set override them) and PinUpdate set to from, so that
// the allocated peers fetch only the difference. Like a Pin whose
// PinOptions.PinUpdate names from, it starts from the allocations of from
// and keeps them by the re-pin rule of PinAllocator. The pin of from is
// kept; unpin it separately if wanted.
func (c *Cluster) PinUpdate(ctx context.Context, from, to cid.Cid, opts PinOptions) (Pin, error) {
	if err := c.writable("pin update"); err != nil {
		return Pin{}, err
	}
	st, err := c.state(ctx)
	if err != nil {
		return Pin{}, err
	}
	old, err := st.Get(ctx, from)
	if err != nil {
		return Pin{}, fmt.Errorf("pincluster: pin update %s: %w", from, err)
	}
	merged := old.PinOptions
	merged.PinUpdate = from
	if opts.ReplicationMin != 0 {
		merged.ReplicationMin = opts.ReplicationMin
	}
	if opts.ReplicationMax != 0 {
		merged.ReplicationMax = opts.ReplicationMax
	}
	if opts.Name != "" {
		merged.Name = opts.Name
	}
	if !opts.ExpireAt.IsZero() {
		merged.ExpireAt = opts.ExpireAt
	}
	if opts.Metadata != nil {
		merged.Metadata = opts.Metadata
	}
	if len(opts.UserAllocations) > 0 {
		merged.UserAllocations = opts.UserAllocations
	}
	if len(opts.Origins) > 0 {
		merged.Origins = opts.Origins
	}
	return c.Pin(ctx, to, merged)
}

// Cat resolves an /ipfs/ path (or a CID) through this peer's IPFS node
// and returns a reader of the file it names, fetched from the network as
// it is read. ctx bounds the reads; Close the reader when done. It needs a
// connector with the Catter ability (the in-process node has it).
func (c *Cluster) Cat(ctx context.Context, path string) (io.ReadSeekCloser, cid.Cid, error) {
	if err := c.live("cat"); err != nil {
		return nil, cid.Undef, err
	}
	catter, ok := c.connector.(Catter)
	if !ok {
		return nil, cid.Undef, fmt.Errorf("pincluster: cat: the IPFS connector %T cannot read files: %w", c.connector, ErrNotSupported)
	}
	ci, err := c.connector.Resolve(ctx, path)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("pincluster: cat %s: %w", path, err)
	}
	r, err := catter.Cat(ctx, ci)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("pincluster: cat %s: %w", path, err)
	}
	return r, ci, nil
}

// BlockPut stores one block on this peer's IPFS node.
func (c *Cluster) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	if err := c.live("block put"); err != nil {
		return cid.Undef, err
	}
	return c.connector.BlockPut(ctx, data, prefix)
}

// Add imports files (name -> content) as UnixFS into this peer's IPFS
// node and pins the root cluster-wide, as Pin does: with p.PinOptions, on
// as many peers as the replication factors ask (every peer by default),
// not on this peer alone. With p.Local this peer becomes the pin's first
// user allocation (unless p.PinOptions names allocations), so the copy
// already here counts as one replica; the other allocated peers fetch the
// data from it. With p.NoPin nothing is pinned.
//
// When the IPFS connector has the Adder ability (the in-process node has
// it), the node imports the files itself. Otherwise (e.g. the Kubo
// connector, or a mock) Add runs the same importer in this process, with
// the same chunker, leaves, CID version, hash, layout and wrapping, and
// sends every block to the connector's BlockPut with the block's CID
// prefix; the CIDs are those the in-process node gives. Without p.Wrap
// each file is imported on its own and the last one is pinned; with it,
// the files go into one directory, which is pinned. It returns the added
// entries, root last. A failed import pins nothing; blocks already sent
// stay on the node until its garbage collection.
func (c *Cluster) Add(ctx context.Context, files iter.Seq2[string, io.Reader], p AddParams) ([]AddedFile, error) {
	if err := c.writable("add"); err != nil {
		return nil, err
	}
	var added []AddedFile
	var err error
	if adder, ok := c.connector.(Adder); ok {
		added, err = adder.Add(ctx, files, p)
	} else {
		added, err = addThroughBlockPut(ctx, c.connector, files, p)
	}
	if err != nil {
		return nil, fmt.Errorf("pincluster: add: %w", err)
	}
	if len(added) == 0 {
		return nil, fmt.Errorf("pincluster: add: nothing was added")
	}
	if p.NoPin {
		return added, nil
	}
	opts := p.PinOptions
	if p.Local && len(opts.UserAllocations) == 0 {
		opts.UserAllocations = []peer.ID{c.host.ID()}
	}
	if _, err := c.Pin(ctx, added[len(added)-1].Cid, opts); err != nil {
		return added, err
	}
	return added, nil
}

// Metrics returns the latest valid metrics of the given name, one per peer.
func (c *Cluster) Metrics(ctx context.Context, name string) []Metric {
	if c.live("metrics") != nil {
		return nil
	}
	return c.monitor.LatestMetrics(ctx, name)
}

// MetricNames lists the names of the metrics the monitor knows.
func (c *Cluster) MetricNames(ctx context.Context) []string {
	if c.live("metric names") != nil {
		return nil
	}
	return c.monitor.MetricNames(ctx)
}

// Alerts returns the most recent alerts this peer saw, oldest first.
func (c *Cluster) Alerts(ctx context.Context) []Alert {
	c.alertsMu.Lock()
	defer c.alertsMu.Unlock()
	return slices.Clone(c.alerts)
}

func (c *Cluster) recordAlert(a Alert) {
	c.alertsMu.Lock()
	defer c.alertsMu.Unlock()
	c.alerts = append(c.alerts, a)
	if len(c.alerts) > maxRecentAlerts {
		c.alerts = slices.Delete(c.alerts, 0, len(c.alerts)-maxRecentAlerts)
	}
}
