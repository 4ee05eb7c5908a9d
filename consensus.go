package pincluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/poll"
)

// Consensus keeps the shared pinset: it logs pins and unpins so that every
// peer's State converges to the same content, and it decides who may write.
// Only the Consensus modifies the shared state; everybody else reads it
// through State.
//
// The default is a Merkle-CRDT over the cluster's pubsub topic (no leader,
// partition tolerant); a Raft implementation is the strongly consistent
// alternative.
type Consensus interface {
	Component
	// Ready is closed once the consensus can serve State and accept
	// writes (for Raft: a leader is known; for CRDT: the local store is
	// open and repaired).
	Ready() <-chan struct{}
	// LogPin adds or replaces pin in the shared state. It returns once the
	// change is durable locally (CRDT) or committed by a quorum (Raft).
	LogPin(ctx context.Context, pin Pin) error
	// LogUnpin removes pin from the shared state, with the same guarantee
	// as LogPin.
	LogUnpin(ctx context.Context, pin Pin) error
	// AddPeer adds a peer to the consensus membership (Raft voters; for
	// CRDT it trusts the peer).
	AddPeer(ctx context.Context, id peer.ID) error
	// RmPeer removes a peer from the membership.
	RmPeer(ctx context.Context, id peer.ID) error
	// State returns a read-only view of the current shared state.
	State(ctx context.Context) (ReadOnly, error)
	// Leader returns the current leader, or ErrNoLeader when there is none
	// (always, for CRDT).
	Leader(ctx context.Context) (peer.ID, error)
	// WaitForSync blocks until the local state has caught up with what is
	// known of the others (Raft: applied index reaches commit index), or
	// ctx is done.
	WaitForSync(ctx context.Context) error
	// Clean removes the consensus' persistent data. Only valid after
	// Shutdown.
	Clean(ctx context.Context) error
	// Peers lists the peers taking part in the consensus.
	Peers(ctx context.Context) ([]peer.ID, error)
	// IsTrustedPeer reports whether id may modify the shared state.
	IsTrustedPeer(ctx context.Context, id peer.ID) bool
	// Trust marks id as trusted.
	Trust(ctx context.Context, id peer.ID) error
	// Distrust removes id from the trusted peers.
	Distrust(ctx context.Context, id peer.ID) error
}

// StateWatcher is an optional ability of a Consensus: it reports changes to
// the shared state as they are applied, so a tracker can react without
// polling. Changes are reported one at a time, in the order they were
// applied, each with the pin as applied (the Cluster does not read it
// again). The callbacks must not block for long.
type StateWatcher interface {
	// Watch registers fn to be called after each pin is added or replaced
	// (removed == false) or removed (removed == true, pin has only Cid
	// set). It returns a function that unregisters fn.
	Watch(fn func(pin Pin, removed bool)) (cancel func())
}

// crdtConsensus is the default Consensus: a Merkle-CRDT datastore
// (internal/crdt) whose deltas travel as blocks of the in-process IPFS node
// and whose heads are announced on the pubsub topic
// "pincluster/<cluster>/crdt". The pinset is a DatastoreState over the
// CRDT datastore; only trusted peers' heads are accepted (the topic
// validator checks the signer).
type crdtConsensus struct {
	self   peer.ID
	store  *crdt.Datastore
	bc     *crdt.PubSubBroadcaster
	state  *DatastoreState
	ps     *pubsub.PubSub
	topic  string
	raw    ds.Batching // the namespace under the CRDT, for Clean
	ready  chan struct{}
	closed atomic.Bool

	trustMu  sync.RWMutex
	trustAll bool
	trusted  map[peer.ID]bool

	// peerSource lists the live peers (the Cluster sets it to the peers
	// with a valid ping metric); nil falls back to the topic's peers.
	peerSource atomic.Pointer[func(context.Context) []peer.ID]

	watchMu  sync.Mutex
	watchers map[int]func(Pin, bool)
	nextW    int
}

var (
	_ Consensus          = (*crdtConsensus)(nil)
	_ everyChangeWatcher = (*crdtConsensus)(nil)
)

// everyChangeWatcher is a StateWatcher that reports every change of the
// state, bulk ones too, so that the periodic state sync need not list the
// state when none was missed (periodicStateSync). The CRDT's hooks run
// for every key a delta, a snapshot load or a merge changes. The raft
// consensus is not one: its Restore replaces the state without reports.
type everyChangeWatcher interface {
	StateWatcher
	watchesEveryChange()
}

func (c *crdtConsensus) watchesEveryChange() {}

// crdtTopic names the CRDT's pubsub topic.
func crdtTopic(cluster string) string { return "pincluster/" + cluster + "/crdt" }

// newCRDTConsensusOn builds the CRDT consensus over d (its own namespace of
// the cluster's datastore) and dag (the IPFS node's blocks).
func newCRDTConsensusOn(ctx context.Context, self peer.ID, ps *pubsub.PubSub, d ds.Batching, dag crdt.DAG, cfg *config) (*crdtConsensus, error) {
	c := &crdtConsensus{
		self: self, ps: ps, raw: d, topic: crdtTopic(cfg.clusterName),
		ready: make(chan struct{}), trustAll: cfg.trustAll, trusted: map[peer.ID]bool{},
		watchers: map[int]func(Pin, bool){},
	}
	for _, p := range cfg.trustedPeers {
		c.trusted[p] = true
	}
	log := cfg.logger.With("component", "crdt")
	bc, err := crdt.NewPubSubBroadcaster(ps, crdt.PubSubConfig{
		Topic: c.topic, Trusted: func(p peer.ID) bool { return c.IsTrustedPeer(context.Background(), p) },
		Self: self, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("crdt broadcaster: %w", err)
	}
	c.bc = bc
	ccfg := crdt.Config{
		Logger:       log,
		MaxBatchSize: cfg.batchMaxSize,
		MaxBatchAge:  cfg.batchMaxAge,
		MaxValueSize: MaxEncodedPinSize,
		MaxKeySize:   256, // "/pins/" + base32 of a CID (at most ~140 bytes)
		PutValueHook: c.onPut,
		DeleteHook:   c.onDelete,
		// A pin record, local or in a peer's delta, must decode to a
		// valid pin stored under its own CID: a delta holding one that
		// does not is rejected whole (hostile input). The decoded pin is
		// handed to onPut: one decode and one validation per record.
		DecodeValue: decodePinRecord,
	}
	if cfg.snapshotEvery > 0 {
		ccfg.SnapshotEvery = cfg.snapshotEvery
		ccfg.SnapshotInterval = cfg.snapshotInterval
		ccfg.SnapshotCatchUp = true
		// Three join requests (1 s apart): a joining peer hears every
		// live trusted peer at least once; it stops waiting early when a
		// trusted peer answers that it knows no snapshot.
		ccfg.SnapshotWait = 3 * time.Second
		ccfg.TrustSnapshot = func(p peer.ID) bool { return c.IsTrustedPeer(context.Background(), p) }
		ccfg.Self = self
		if cfg.compaction {
			ccfg.LivePeers = func() []peer.ID {
				if src := c.peerSource.Load(); src != nil {
					return (*src)(context.Background())
				}
				return nil // not known yet: compact nothing
			}
		}
	}
	store, err := crdt.New(ctx, d, dag, bc, ccfg)
	if err != nil {
		_ = bc.Close()
		return nil, fmt.Errorf("crdt store: %w", err)
	}
	c.store = store
	c.state = NewDatastoreState(store)
	close(c.ready)
	return c, nil
}

// decodePinRecord checks a value written under the consensus's store and
// returns it decoded: below /pins it must be a valid pin whose key is its
// CID's. Other keys (none are written today) are left to the CRDT's size
// limits (nil, nil).
func decodePinRecord(key string, value []byte) (any, error) {
	prefix := pinsNamespace.String() + "/"
	if !strings.HasPrefix(key, prefix) {
		return nil, nil
	}
	p, err := decodePin(value)
	if err != nil {
		return nil, fmt.Errorf("pin record %s: %w", key, err)
	}
	if want := pinKey(pinsNamespace, p.Cid).String(); want != key {
		return nil, fmt.Errorf("%w: pin of %s stored under %s", ErrCorrupt, p.Cid, key)
	}
	return p, nil
}

// onPut reports a pin record's new value: decoded is the pin when the
// CRDT has it in hand (decodePinRecord's or the writer's), else the record
// is decoded here.
func (c *crdtConsensus) onPut(key ds.Key, value []byte, decoded any) {
	p, ok := decoded.(Pin)
	if !ok {
		var err error
		if p, err = decodePin(value); err != nil {
			return // the state's readers report the corrupt record
		}
	}
	c.notify(p, false)
}

func (c *crdtConsensus) onDelete(key ds.Key) {
	b, err := keyEncoding.DecodeString(key.BaseNamespace())
	if err != nil {
		return
	}
	_, ci, err := cid.CidFromBytes(b)
	if err != nil {
		return
	}
	c.notify(Pin{Cid: ci}, true)
}

func (c *crdtConsensus) notify(p Pin, removed bool) {
	c.watchMu.Lock()
	fns := make([]func(Pin, bool), 0, len(c.watchers))
	for _, fn := range c.watchers {
		fns = append(fns, fn)
	}
	c.watchMu.Unlock()
	for _, fn := range fns {
		fn(p, removed)
	}
}

// Watch implements StateWatcher.
func (c *crdtConsensus) Watch(fn func(Pin, bool)) func() {
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

func (c *crdtConsensus) check(op string) error {
	if c.closed.Load() {
		return fmt.Errorf("pincluster: crdt %s: %w", op, ErrClosed)
	}
	return nil
}

// Ready implements Consensus: the store is open and repaired once New
// returns.
func (c *crdtConsensus) Ready() <-chan struct{} { return c.ready }

// LogPin implements Consensus: the pin is written to the CRDT and is
// durable locally when it returns; concurrent calls share commits.
func (c *crdtConsensus) LogPin(ctx context.Context, pin Pin) error {
	if err := c.check("log pin"); err != nil {
		return err
	}
	// The Cluster validated pin (Cluster.pin).
	return closedErr(c.state.addValid(ctx, pin))
}

// closedErr makes a write that raced with Shutdown report ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, crdt.ErrClosed) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// LogUnpin implements Consensus.
func (c *crdtConsensus) LogUnpin(ctx context.Context, pin Pin) error {
	if err := c.check("log unpin"); err != nil {
		return err
	}
	return closedErr(c.state.Rm(ctx, pin.Cid))
}

// AddPeer implements Consensus: in CRDT mode it trusts the peer.
func (c *crdtConsensus) AddPeer(ctx context.Context, p peer.ID) error { return c.Trust(ctx, p) }

// RmPeer implements Consensus: in CRDT mode it distrusts the peer.
func (c *crdtConsensus) RmPeer(ctx context.Context, p peer.ID) error { return c.Distrust(ctx, p) }

// State implements Consensus.
func (c *crdtConsensus) State(context.Context) (ReadOnly, error) {
	if err := c.check("state"); err != nil {
		return nil, err
	}
	return c.state, nil
}

// Leader implements Consensus: CRDT mode has no leader.
func (c *crdtConsensus) Leader(context.Context) (peer.ID, error) {
	return "", fmt.Errorf("pincluster: crdt consensus: %w", ErrNoLeader)
}

// WaitForSync implements Consensus: it waits until no received head is
// waiting to be fetched or applied.
func (c *crdtConsensus) WaitForSync(ctx context.Context) error {
	return poll.Until(ctx, "pincluster: crdt wait for sync", 20*time.Millisecond, func() (bool, error) {
		if err := c.check("wait for sync"); err != nil {
			return false, err
		}
		st := c.store.Stats()
		return st.QueuedJobs == 0 && st.InFlight == 0 && !st.Joining, nil
	})
}

// Clean implements Consensus: after Shutdown it deletes the CRDT's data.
func (c *crdtConsensus) Clean(ctx context.Context) error {
	if !c.closed.Load() {
		return errors.New("pincluster: crdt clean: shut down first")
	}
	st := &DatastoreState{store: c.raw}
	return st.clearNamespace(ctx, ds.NewKey("/"))
}

// Peers implements Consensus: the live peers known to the monitor (peers
// with a valid ping metric), or, before the monitor runs, this peer and
// the trusted peers subscribed to the CRDT topic.
func (c *crdtConsensus) Peers(ctx context.Context) ([]peer.ID, error) {
	if err := c.check("peers"); err != nil {
		return nil, err
	}
	if src := c.peerSource.Load(); src != nil {
		return (*src)(ctx), nil
	}
	out := []peer.ID{c.self}
	for _, p := range c.ps.ListPeers(c.topic) {
		if p != c.self && c.IsTrustedPeer(ctx, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// IsTrustedPeer implements Consensus.
func (c *crdtConsensus) IsTrustedPeer(_ context.Context, p peer.ID) bool {
	if p == c.self {
		return true
	}
	c.trustMu.RLock()
	defer c.trustMu.RUnlock()
	return c.trustAll || c.trusted[p]
}

// Trust implements Consensus.
func (c *crdtConsensus) Trust(_ context.Context, p peer.ID) error {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	c.trusted[p] = true
	return nil
}

// Distrust implements Consensus. With trust-all (the default) it switches
// to an explicit list of everybody else that is trusted so far.
func (c *crdtConsensus) Distrust(_ context.Context, p peer.ID) error {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	if c.trustAll {
		c.trustAll = false
		for _, q := range c.ps.ListPeers(c.topic) {
			c.trusted[q] = true
		}
	}
	delete(c.trusted, p)
	return nil
}

// Shutdown implements Component: the store is flushed and closed, then the
// broadcaster.
func (c *crdtConsensus) Shutdown(context.Context) error {
	if c.closed.Swap(true) {
		return fmt.Errorf("pincluster: crdt shutdown: %w", ErrClosed)
	}
	err := c.store.Close()
	if berr := c.bc.Close(); err == nil {
		err = berr
	}
	if err != nil {
		return fmt.Errorf("pincluster: crdt shutdown: %w", err)
	}
	return nil
}
