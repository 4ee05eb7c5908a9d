package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/internal/defaults"
	"github.com/pincluster/pincluster/internal/poll"
)

// Errors returned by this package (besides the root package's sentinels).
var (
	// ErrClosed is returned (wrapped together with pincluster.ErrClosed)
	// by every method called after Shutdown.
	ErrClosed = fmt.Errorf("raft: %w", pincluster.ErrClosed)
)

// Defaults of Config, tuned for peers on one LAN; WAN deployments raise
// the timeouts.
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240
)

// Config configures a Raft Consensus. Zero fields take the defaults.
type Config struct {
	// ClusterName names the protocols ("/pincluster/raft/<name>/1.0.0"
	// and "/pincluster/raft/<name>/forward/1.0.0"); it must equal the
	// Cluster's name. Default: "default".
	ClusterName string
	// Peers are the initial voters, this host included. Every initial
	// peer must be given the same list; it is used only on the first
	// start, when there is no raft state yet. A peer that joins later
	// starts with no Peers and is added by the leader (AddPeer).
	Peers []peer.ID
	// Datastore holds the raft log, the stable store and the state (each
	// in its own namespace). The caller opens and closes it. Default: in
	// memory, unless BadgerPath is set.
	Datastore ds.Batching
	// BadgerPath, if set, is a directory (created if needed) in which the
	// consensus opens a Badger datastore that takes Datastore's place: it
	// holds the raft log, the stable store and the state, is closed by
	// Shutdown and removed by Clean. Setting both Datastore and
	// BadgerPath is an error. Default: "" (use Datastore).
	BadgerPath string
	// SnapshotDir is the directory of snapshot files. Set it whenever the
	// log is persistent (a persistent Datastore or BadgerPath): once the
	// log has been compacted after a snapshot, a peer whose snapshots
	// were in memory cannot restart from its log (New returns an error).
	// Default: "", in memory.
	SnapshotDir string
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout are hashicorp/raft's timeouts. Defaults: 1s, 1s,
	// 500ms, 50ms. LeaderLeaseTimeout must not exceed HeartbeatTimeout.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many new log entries trigger a snapshot.
	// Default: 8192 (DefaultSnapshotThreshold).
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked. Default: 2m
	// (DefaultSnapshotInterval).
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries are kept after a snapshot so that
	// slow followers can catch up without it; a follower further behind
	// receives the leader's snapshot (InstallSnapshot). Default: 10240
	// (DefaultTrailingLogs).
	TrailingLogs uint64
	// Logger receives the consensus' and hashicorp/raft's logs. Default:
	// discarded.
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.ClusterName == "" {
		c.ClusterName = "default"
	}
	if c.Datastore != nil && c.BadgerPath != "" {
		return errors.New("raft: config: Datastore and BadgerPath are both set; use one")
	}
	if c.Datastore == nil && c.BadgerPath == "" {
		c.Datastore = dssync.MutexWrap(ds.NewMapDatastore())
	}
	if err := errors.Join(
		defaults.Set("HeartbeatTimeout", &c.HeartbeatTimeout, DefaultHeartbeatTimeout),
		defaults.Set("ElectionTimeout", &c.ElectionTimeout, DefaultElectionTimeout),
		defaults.Set("LeaderLeaseTimeout", &c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout),
		defaults.Set("CommitTimeout", &c.CommitTimeout, DefaultCommitTimeout),
		defaults.Set("SnapshotInterval", &c.SnapshotInterval, DefaultSnapshotInterval),
	); err != nil {
		return fmt.Errorf("raft: config: %w", err)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("raft: config: leader lease timeout %v exceeds heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	c.Logger = defaults.Logger(c.Logger)
	return nil
}

// Consensus is a pincluster.Consensus on hashicorp/raft: a fixed set of
// voters elects a leader, every pin is committed by a majority before
// LogPin returns, and calls on followers are forwarded to the leader. Build
// it with New and give it to pincluster.New with pincluster.WithConsensus.
type Consensus struct {
	cfg   Config
	h     host.Host
	log   *slog.Logger
	raft  *hraft.Raft
	trans *hraft.NetworkTransport
	// badger is the datastore opened at cfg.BadgerPath, nil without one.
	badger ds.Batching
	store  *logStore
	state  *pincluster.DatastoreState
	snaps  hraft.SnapshotStore

	ready   chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Mutex
	closed  bool

	// restores counts the snapshots restored into the state (fsm.Restore:
	// an InstallSnapshot from the leader, or a snapshot found at start).
	restores atomic.Int64

	watchMu  sync.Mutex
	watchers map[int]func(pincluster.Pin, bool)
	nextW    int

	trustMu sync.Mutex
	trusted map[peer.ID]bool
}

var (
	_ pincluster.Consensus    = (*Consensus)(nil)
	_ pincluster.StateWatcher = (*Consensus)(nil)
)

func raftProtocol(name string) protocol.ID {
	return protocol.ID("/pincluster/raft/" + name + "/1.0.0")
}

// New starts the Raft consensus on h. ctx bounds start-up only.
func New(ctx context.Context, h host.Host, cfg Config) (*Consensus, error) {
	if h == nil {
		return nil, errors.New("raft: new: nil host")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Consensus{
		cfg: cfg, h: h, log: cfg.Logger.With("component", "raft"),
		ready: make(chan struct{}), stop: make(chan struct{}),
		watchers: map[int]func(pincluster.Pin, bool){}, trusted: map[peer.ID]bool{},
	}
	if err := c.start(ctx); err != nil {
		if c.raft != nil {
			_ = c.raft.Shutdown().Error()
		}
		if c.trans != nil {
			_ = c.trans.Close()
		}
		if c.badger != nil {
			_ = c.badger.Close()
		}
		return nil, err
	}
	c.wg.Add(1)
	go c.watchReady()
	return c, nil
}

// start opens the stores, the transport, raft and the forwarding service;
// New undoes what was opened if it fails.
func (c *Consensus) start(ctx context.Context) error {
	cfg := c.cfg
	var err error
	if cfg.BadgerPath != "" {
		if c.badger, err = pincluster.OpenBadger(cfg.BadgerPath, c.log); err != nil {
			return fmt.Errorf("raft: %w", err)
		}
		c.cfg.Datastore = c.badger
		cfg.Datastore = c.badger
	}
	if c.store, err = newLogStore(ctx, namespace.Wrap(cfg.Datastore, ds.NewKey("/raft"))); err != nil {
		return err
	}
	c.state = pincluster.NewDatastoreState(namespace.Wrap(cfg.Datastore, ds.NewKey("/state")))
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Off})
	if cfg.SnapshotDir != "" {
		if c.snaps, err = hraft.NewFileSnapshotStoreWithLogger(cfg.SnapshotDir, 2, hlog); err != nil {
			return fmt.Errorf("raft: snapshot store: %w", err)
		}
	} else {
		c.snaps = hraft.NewInmemSnapshotStore()
	}
	// hashicorp/raft panics at start when the log was compacted and no
	// snapshot holds the entries before it (in-memory snapshots beside a
	// persistent log): refuse with an error instead.
	if first, _ := c.store.FirstIndex(); first > 1 {
		snaps, err := c.snaps.List()
		if err != nil {
			return fmt.Errorf("raft: snapshot store: %w", err)
		}
		if len(snaps) == 0 {
			return fmt.Errorf("raft: start: the log begins at index %d but no snapshot holds the entries before it (SnapshotDir %q): give a persistent datastore a SnapshotDir, or Clean this peer and add it again", first, cfg.SnapshotDir)
		}
	}
	layer, err := newStreamLayer(c.h, raftProtocol(cfg.ClusterName))
	if err != nil {
		return fmt.Errorf("raft: listen: %w", err)
	}
	c.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		ServerAddressProvider: idAddress{}, Logger: hlog, Stream: layer, MaxPool: 4, Timeout: 10 * time.Second,
	})
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.h.ID().String())
	rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout
	rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLeaseTimeout, cfg.CommitTimeout
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs
	rc.Logger = hlog

	existing, err := hraft.HasExistingState(c.store, c.store, c.snaps)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	if !existing && len(cfg.Peers) > 0 {
		var servers []hraft.Server
		for _, p := range cfg.Peers {
			servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.String()), Address: hraft.ServerAddress(p.String())})
		}
		if !slices.Contains(cfg.Peers, c.h.ID()) {
			return fmt.Errorf("raft: config: Peers does not include this host %s", c.h.ID())
		}
		if err := hraft.BootstrapCluster(rc, c.store, c.store, c.snaps, c.trans, hraft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("raft: bootstrap: %w", err)
		}
	}
	if c.raft, err = hraft.NewRaft(rc, (*fsm)(c), c.store, c.store, c.snaps, c.trans); err != nil {
		return fmt.Errorf("raft: start: %w", err)
	}
	c.h.SetStreamHandler(forwardProtocol(cfg.ClusterName), c.serveForward)
	return nil
}

// watchReady closes ready once a leader is known and this peer has applied
// what was committed.
func (c *Consensus) watchReady() {
	defer c.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if addr, _ := c.raft.LeaderWithID(); addr != "" && c.raft.AppliedIndex() >= c.raft.CommitIndex() {
			close(c.ready)
			return
		}
	}
}

func (c *Consensus) isClosed() bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closed
}

// Ready implements pincluster.Consensus: closed once a leader is known and
// the local state has caught up.
func (c *Consensus) Ready() <-chan struct{} { return c.ready }

// Shutdown stops raft and the transport. A second call returns ErrClosed.
func (c *Consensus) Shutdown(ctx context.Context) error {
	c.closeMu.Lock()
	if c.closed {
		c.closeMu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.closeMu.Unlock()
	close(c.stop)
	done := make(chan error, 1)
	go func() {
		c.h.RemoveStreamHandler(forwardProtocol(c.cfg.ClusterName))
		err := c.raft.Shutdown().Error()
		if cerr := c.trans.Close(); err == nil {
			err = cerr
		}
		if c.badger != nil {
			if cerr := c.badger.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("close badger: %w", cerr)
			}
		}
		c.wg.Wait()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("raft: shutdown: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// State implements pincluster.Consensus.
func (c *Consensus) State(context.Context) (pincluster.ReadOnly, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	return c.state, nil
}

// Leader implements pincluster.Consensus; pincluster.ErrNoLeader while
// none is known.
func (c *Consensus) Leader(context.Context) (peer.ID, error) {
	if c.isClosed() {
		return "", ErrClosed
	}
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return "", fmt.Errorf("raft: leader: %w", pincluster.ErrNoLeader)
	}
	return peer.Decode(string(id))
}

// Peers implements pincluster.Consensus: the current voters.
func (c *Consensus) Peers(context.Context) ([]peer.ID, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft: peers: %w", err)
	}
	var out []peer.ID
	for _, s := range f.Configuration().Servers {
		if p, err := peer.Decode(string(s.ID)); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// IsTrustedPeer implements pincluster.Consensus: voters, this peer and
// peers trusted with Trust.
func (c *Consensus) IsTrustedPeer(ctx context.Context, p peer.ID) bool {
	if p == c.h.ID() {
		return true
	}
	c.trustMu.Lock()
	ok := c.trusted[p]
	c.trustMu.Unlock()
	if ok {
		return true
	}
	peers, _ := c.Peers(ctx)
	return slices.Contains(peers, p)
}

// Trust implements pincluster.Consensus: p may call this peer's trusted
// methods (membership is changed with AddPeer).
func (c *Consensus) Trust(_ context.Context, p peer.ID) error {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	c.trusted[p] = true
	return nil
}

// Distrust implements pincluster.Consensus.
func (c *Consensus) Distrust(_ context.Context, p peer.ID) error {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	delete(c.trusted, p)
	return nil
}

// WaitForSync implements pincluster.Consensus: it waits until a leader is
// known and the applied index reaches the commit index.
func (c *Consensus) WaitForSync(ctx context.Context) error {
	return poll.Until(ctx, "raft: wait for sync", 10*time.Millisecond, func() (bool, error) {
		if c.isClosed() {
			return false, ErrClosed
		}
		addr, _ := c.raft.LeaderWithID()
		return addr != "" && c.raft.AppliedIndex() >= c.raft.CommitIndex(), nil
	})
}

// Clean implements pincluster.Consensus: after Shutdown it removes the
// raft log, stable store, state and snapshot files (with BadgerPath, the
// whole Badger directory).
func (c *Consensus) Clean(ctx context.Context) error {
	if !c.isClosed() {
		return errors.New("raft: clean: shut down first")
	}
	if c.cfg.BadgerPath != "" {
		if err := os.RemoveAll(c.cfg.BadgerPath); err != nil {
			return fmt.Errorf("raft: clean: %w", err)
		}
	} else {
		for _, ns := range []string{"/raft", "/state"} {
			if err := deletePrefix(ctx, c.cfg.Datastore, ns); err != nil {
				return fmt.Errorf("raft: clean: %w", err)
			}
		}
	}
	if c.cfg.SnapshotDir != "" {
		if err := os.RemoveAll(c.cfg.SnapshotDir); err != nil {
			return fmt.Errorf("raft: clean: %w", err)
		}
	}
	return nil
}

// Watch implements pincluster.StateWatcher: fn is called after each
// committed pin or unpin is applied to the local state.
func (c *Consensus) Watch(fn func(pin pincluster.Pin, removed bool)) func() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	id := c.nextW
	c.nextW++
	c.watchers[id] = fn
	return func() {
		c.watchMu.Lock()
		defer c.watchMu.Unlock()
		delete(c.watchers, id)
	}
}

func (c *Consensus) notify(p pincluster.Pin, removed bool) {
	c.watchMu.Lock()
	fns := make([]func(pincluster.Pin, bool), 0, len(c.watchers))
	for _, fn := range c.watchers {
		fns = append(fns, fn)
	}
	c.watchMu.Unlock()
	for _, fn := range fns {
		fn(p, removed)
	}
}

// Operations in the log and in forwarded requests.
const (
	opPin uint8 = iota + 1
	opUnpin
	opAddVoter
	opRemoveServer
)

type opWire struct {
	Op   uint8  `cbor:"1,keyasint"`
	Pin  []byte `cbor:"2,keyasint,omitempty"`
	Peer []byte `cbor:"3,keyasint,omitempty"`
}

// LogPin implements pincluster.Consensus: it returns once the pin is
// committed by a majority. On a follower the call is forwarded to the
// leader. If it is not committed when ctx ends (no leader, or a leader
// that has lost its majority, as in a minority partition), the error wraps
// both pincluster.ErrNoLeader and ctx.Err(). Default bound when ctx has no
// deadline: 30s.
func (c *Consensus) LogPin(ctx context.Context, pin pincluster.Pin) error {
	b, err := pin.MarshalBinary()
	if err != nil {
		return err
	}
	return c.submit(ctx, opWire{Op: opPin, Pin: b})
}

// LogUnpin implements pincluster.Consensus, like LogPin.
func (c *Consensus) LogUnpin(ctx context.Context, pin pincluster.Pin) error {
	b, err := pincluster.NewPin(pin.Cid, pincluster.PinOptions{}).MarshalBinary()
	if err != nil {
		return err
	}
	return c.submit(ctx, opWire{Op: opUnpin, Pin: b})
}

// AddPeer implements pincluster.Consensus: p becomes a voter. Like LogPin
// it is forwarded to the leader and fails like it.
func (c *Consensus) AddPeer(ctx context.Context, p peer.ID) error {
	return c.submit(ctx, opWire{Op: opAddVoter, Peer: []byte(p)})
}

// RmPeer implements pincluster.Consensus: p stops being a voter.
func (c *Consensus) RmPeer(ctx context.Context, p peer.ID) error {
	return c.submit(ctx, opWire{Op: opRemoveServer, Peer: []byte(p)})
}

// maxWait bounds one attempt when ctx has no deadline.
const maxWait = 30 * time.Second

// submit runs op on the leader (locally or forwarded), retrying while the
// leadership changes, until it succeeds or ctx ends.
func (c *Consensus) submit(ctx context.Context, op opWire) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxWait)
		defer cancel()
	}
	var lastErr error
	retry := time.NewTicker(max(c.cfg.HeartbeatTimeout/4, 10*time.Millisecond))
	defer retry.Stop()
	for {
		if c.isClosed() {
			return ErrClosed
		}
		addr, id := c.raft.LeaderWithID()
		switch {
		case addr == "":
			lastErr = pincluster.ErrNoLeader
		case string(id) == c.h.ID().String():
			lastErr = c.applyLocal(ctx, op)
		default:
			pid, err := peer.Decode(string(id))
			if err != nil {
				return fmt.Errorf("raft: leader id %q: %w", id, err)
			}
			lastErr = c.forward(ctx, pid, op)
		}
		switch {
		case lastErr == nil, errors.Is(lastErr, pincluster.ErrClosed):
			return lastErr
		case ctx.Err() != nil:
			return notCommitted(ctx, lastErr)
		case !retryable(lastErr):
			return lastErr
		}
		select {
		case <-ctx.Done():
			return notCommitted(ctx, lastErr)
		case <-retry.C:
		}
	}
}

// notCommitted is the error of an operation that was not acknowledged as
// committed before ctx ended, whatever the last attempt ran into (no
// leader, a stale leader without a quorum, a forward in flight): it wraps
// pincluster.ErrNoLeader and ctx.Err().
func notCommitted(ctx context.Context, lastErr error) error {
	return fmt.Errorf("raft: not committed: %w: %w (last attempt: %v)", pincluster.ErrNoLeader, ctx.Err(), lastErr)
}

// errRetry marks failures that a new attempt may overcome.
var errRetry = errors.New("leadership changed")

func retryable(err error) bool {
	return errors.Is(err, pincluster.ErrNoLeader) || errors.Is(err, errRetry)
}

// applyLocal applies op on this peer, the leader.
func (c *Consensus) applyLocal(ctx context.Context, op opWire) error {
	deadline, _ := ctx.Deadline()
	timeout := time.Until(deadline)
	var f hraft.Future
	switch op.Op {
	case opPin, opUnpin:
		b, err := cborEnc.Marshal(&op)
		if err != nil {
			return err
		}
		f = c.raft.Apply(b, timeout)
	case opAddVoter, opRemoveServer:
		p, err := peer.IDFromBytes(op.Peer)
		if err != nil {
			return fmt.Errorf("raft: membership change: %w", err)
		}
		if op.Op == opAddVoter {
			f = c.raft.AddVoter(hraft.ServerID(p.String()), hraft.ServerAddress(p.String()), 0, timeout)
		} else {
			f = c.raft.RemoveServer(hraft.ServerID(p.String()), 0, timeout)
		}
	default:
		return fmt.Errorf("raft: unknown operation %d", op.Op)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // raft resolves every future, at the latest on shutdown
	select {
	case err := <-done:
		switch {
		case err == nil:
		case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipLost),
			errors.Is(err, hraft.ErrEnqueueTimeout), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
			return fmt.Errorf("%w: %v", errRetry, err)
		case errors.Is(err, hraft.ErrRaftShutdown):
			return ErrClosed
		default:
			return fmt.Errorf("raft: apply: %w", err)
		}
		if af, ok := f.(hraft.ApplyFuture); ok {
			if rerr, ok := af.Response().(error); ok && rerr != nil {
				return rerr
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("raft: apply: %w", ctx.Err())
	}
}

// fsm applies committed log entries to the state.
type fsm Consensus

var _ hraft.FSM = (*fsm)(nil)

// Apply implements raft.FSM. A malformed entry is logged and skipped (it
// returns an error as the response): it cannot be undone, and stopping the
// state machine would stop the peer.
func (f *fsm) Apply(l *hraft.Log) any {
	c := (*Consensus)(f)
	var op opWire
	if err := cbor.Unmarshal(l.Data, &op); err != nil {
		c.log.Error("skipping undecodable log entry", "index", l.Index, "err", err)
		return fmt.Errorf("raft: undecodable entry %d: %w", l.Index, err)
	}
	var pin pincluster.Pin
	if err := pin.UnmarshalBinary(op.Pin); err != nil {
		c.log.Error("skipping log entry with an invalid pin", "index", l.Index, "err", err)
		return err
	}
	ctx := context.Background()
	switch op.Op {
	case opPin:
		if err := c.state.Add(ctx, pin); err != nil {
			return err
		}
		c.notify(pin, false)
	case opUnpin:
		if err := c.state.Rm(ctx, pin.Cid); err != nil {
			return err
		}
		c.notify(pin, true)
	default:
		return fmt.Errorf("raft: unknown operation %d in entry %d", op.Op, l.Index)
	}
	return nil
}

// Snapshot implements raft.FSM: the state is exported at once (Apply does
// not run meanwhile) into memory, then written by Persist.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	var buf bytes.Buffer
	if err := (*Consensus)(f).state.Export(context.Background(), &buf); err != nil {
		return nil, err
	}
	return snapshot{buf.Bytes()}, nil
}

// Restore implements raft.FSM: the state is replaced by the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	c := (*Consensus)(f)
	ctx := context.Background()
	if err := deletePrefix(ctx, c.cfg.Datastore, "/state"); err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	if err := c.state.Import(ctx, rc); err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	c.restores.Add(1)
	return nil
}

type snapshot struct{ data []byte }

func (s snapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}

// deletePrefix removes every key under prefix.
func deletePrefix(ctx context.Context, d ds.Batching, prefix string) error {
	ns := namespace.Wrap(d, ds.NewKey(prefix))
	for {
		res, err := ns.Query(ctx, dsq.Query{KeysOnly: true, Limit: 1024})
		if err != nil {
			return fmt.Errorf("raft: clear %s: %w", prefix, err)
		}
		entries, err := res.Rest()
		if err != nil {
			return fmt.Errorf("raft: clear %s: %w", prefix, err)
		}
		if len(entries) == 0 {
			return nil
		}
		b, err := ns.Batch(ctx)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := b.Delete(ctx, ds.RawKey(e.Key)); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
	}
}
