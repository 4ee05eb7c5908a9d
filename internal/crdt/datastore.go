package crdt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/pincluster/pincluster/internal/gorun"
)

var _ ds.Batching = (*Datastore)(nil)

// Datastore is a replicated key-value store: a go-datastore whose writes
// become deltas of a Merkle-CRDT (see the package doc). It is safe for
// concurrent use. Create it with New; stop it with Close.
type Datastore struct {
	cfg    Config
	log    *slog.Logger
	store  ds.Batching
	values ds.Datastore // store seen through the /v namespace
	dag    DAG
	bc     Broadcaster
	g      *gorun.Group
	closed atomic.Bool

	// applyMu serialises every change of the set and of the DAG
	// bookkeeping (local commits and remote nodes).
	applyMu sync.Mutex
	headsMu sync.RWMutex
	heads   map[cid.Cid]uint64 // copy on write
	nodes   atomic.Uint64      // processed DAG nodes
	pending atomic.Int64       // journal entries (/q)

	wq        chan *writeReq
	writers   atomic.Int64 // writes submitted and not yet returned
	syncs     syncState
	bcastKick chan struct{}

	proc   processor
	st     counters
	snap   snapState
	hooks  hookQueue
	inline inlineState
	// trickle counts what suppresses the periodic rebroadcast.
	trickle trickleState
}

type counters struct {
	localDeltas        atomic.Uint64
	remoteNodes        atomic.Uint64
	rejectedNodes      atomic.Uint64
	ignoredBroadcasts  atomic.Uint64
	receivedBroadcasts atomic.Uint64
	sentBroadcasts     atomic.Uint64
	suppressed         atomic.Uint64
	fetchErrors        atomic.Uint64
	fetches            atomic.Uint64
}

// New opens (or creates) a replica kept in store, exchanging delta blocks
// through dag and head announcements through bc. ctx bounds the start-up
// only (loading heads and the journal). If the previous run stopped while
// nodes were pending (a crash or a Close mid-walk), New logs it and the
// walks resume from the durable journal. The caller keeps ownership of
// store, dag and bc and closes them after Close.
func New(ctx context.Context, store ds.Batching, dag DAG, bc Broadcaster, cfg Config) (*Datastore, error) {
	if store == nil || dag == nil || bc == nil {
		return nil, errors.New("crdt: new: store, dag and broadcaster are required")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Datastore{
		cfg:       c,
		log:       c.Logger,
		store:     store,
		values:    namespace.Wrap(store, ds.NewKey(nsValues)),
		dag:       dag,
		bc:        bc,
		g:         gorun.New(),
		heads:     map[cid.Cid]uint64{},
		wq:        make(chan *writeReq, c.MaxBatchSize),
		bcastKick: make(chan struct{}, 1),
	}
	s.hooks.kick = make(chan struct{}, 1)
	s.inline.half = make(chan struct{}, 1)
	if hook := c.SnapshotHook; hook != nil {
		// A snapshot's key hooks run before its SnapshotHook.
		s.cfg.SnapshotHook = func(info SnapshotInfo) {
			s.deliverHooks()
			hook(info)
		}
	}
	s.proc.init(c.QueueSize)
	if err := s.load(ctx); err != nil {
		return nil, fmt.Errorf("crdt: new: %w", err)
	}
	resume, join, err := s.initSnap(ctx)
	if err != nil {
		return nil, fmt.Errorf("crdt: new: %w", err)
	}
	if err := s.resumeMerge(ctx); err != nil {
		return nil, fmt.Errorf("crdt: new: %w", err)
	}
	starts := []func(context.Context){s.commitLoop, s.receiveLoop, s.broadcastLoop, s.scheduleLoop, s.snapshotLoop, s.hookLoop}
	if join {
		s.snap.joining.Store(true)
		starts = append(starts, func(ctx context.Context) { s.joinLoop(ctx, resume) })
	} else {
		close(s.snap.joinDone)
	}
	for range c.NumWorkers {
		starts = append(starts, s.workerLoop)
	}
	for _, fn := range starts {
		if err := s.g.Go(fn); err != nil {
			return nil, fmt.Errorf("crdt: new: %w", err)
		}
	}
	return s, nil
}

// load reads heads, counters and the journal.
func (s *Datastore) load(ctx context.Context) error {
	res, err := s.store.Query(ctx, dsq.Query{Prefix: nsHeads})
	if err != nil {
		return err
	}
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return r.Error
		}
		c, err := cid.Decode(r.Key[len(nsHeads)+1:])
		if err != nil {
			res.Close()
			return fmt.Errorf("%w: head key %q", errCorrupt, r.Key)
		}
		p, _, err := readUvarint(r.Value)
		if err != nil {
			res.Close()
			return err
		}
		s.heads[c] = p
	}
	res.Close()
	if raw, err := s.store.Get(ctx, ds.RawKey(keyNodes)); err == nil {
		n, _, err := readUvarint(raw)
		if err != nil {
			return err
		}
		s.nodes.Store(n)
	} else if !errors.Is(err, ds.ErrNotFound) {
		return err
	}
	var n int64
	if err := eachKey(ctx, s.store, nsPending, func(string) error { n++; return nil }); err != nil {
		return err
	}
	s.pending.Store(n)
	dirty, err := s.store.Has(ctx, ds.RawKey(keyDirty))
	if err != nil {
		return err
	}
	switch {
	case n > 0:
		s.log.Warn("crdt: repair: resuming interrupted walks from the journal", "pending", n, "dirty", dirty)
		s.proc.overflow = true // the scheduler loads the journal
	case dirty:
		if err := s.store.Delete(ctx, ds.RawKey(keyDirty)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Datastore) enter(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("crdt: %s: %w", op, ErrClosed)
	}
	return nil
}

// Get returns the visible value of key, or ds.ErrNotFound.
func (s *Datastore) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	if err := s.enter("get"); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, valueKey(key.String()))
}

// Has reports whether key has a visible value.
func (s *Datastore) Has(ctx context.Context, key ds.Key) (bool, error) {
	if err := s.enter("has"); err != nil {
		return false, err
	}
	return s.store.Has(ctx, valueKey(key.String()))
}

// GetSize returns the size of key's value, or ds.ErrNotFound.
func (s *Datastore) GetSize(ctx context.Context, key ds.Key) (int, error) {
	if err := s.enter("getsize"); err != nil {
		return -1, err
	}
	return s.store.GetSize(ctx, valueKey(key.String()))
}

// Query lists visible keys and values with the usual go-datastore query
// semantics.
func (s *Datastore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := s.enter("query"); err != nil {
		return nil, err
	}
	return s.values.Query(ctx, q)
}

// Put sets key to value. It returns once the delta holding it is stored in
// the DAG, applied to the local state and synced; it is then broadcast.
// It returns ErrValueTooLarge, ErrInvalidKey, ErrInvalidValue (wrapping
// the error of Config.ValidateValue) or ErrClosed. If ctx ends
// first, the write may still be committed.
func (s *Datastore) Put(ctx context.Context, key ds.Key, value []byte) error {
	o := op{key: key.String(), value: append([]byte{}, value...)}
	if err := s.checkOp(&o); err != nil {
		return fmt.Errorf("crdt: put: %w", err)
	}
	return s.submit(ctx, "put", []op{o}, false)
}

// PutDecoded is Put for a value the caller has already validated and
// decoded (decoded is what Config.DecodeValue would return for it):
// DecodeValue is not run again and decoded is handed to PutValueHook.
// value is not copied: the caller must not change it afterwards.
func (s *Datastore) PutDecoded(ctx context.Context, key ds.Key, value []byte, decoded any) error {
	o := op{key: key.String(), value: value, decoded: decoded}
	if err := s.checkOp(&o); err != nil {
		return fmt.Errorf("crdt: put: %w", err)
	}
	return s.submit(ctx, "put", []op{o}, false)
}

// Delete removes key (every value of it this replica has observed). Same
// durability and errors as Put. Deleting an absent key is a no-op.
func (s *Datastore) Delete(ctx context.Context, key ds.Key) error {
	o := op{key: key.String(), del: true}
	if err := s.checkOp(&o); err != nil {
		return fmt.Errorf("crdt: delete: %w", err)
	}
	return s.submit(ctx, "delete", []op{o}, false)
}

// checkOp checks o's key and size and, for a put not decoded yet, its
// value (keeping the decoded value in o).
func (s *Datastore) checkOp(o *op) error {
	if !utf8.ValidString(o.key) {
		return ErrInvalidKey
	}
	if len(o.key) > s.cfg.MaxKeySize || len(o.value) > s.cfg.MaxValueSize {
		return ErrValueTooLarge
	}
	if o.del || o.decoded != nil {
		return nil
	}
	decoded, err := s.cfg.limits().validateValue(o.key, o.value)
	o.decoded = decoded
	return err
}

// Sync is a no-op beyond the underlying store's Sync: writes are durable
// when they return.
func (s *Datastore) Sync(ctx context.Context, prefix ds.Key) error {
	if err := s.enter("sync"); err != nil {
		return err
	}
	return s.store.Sync(ctx, ds.NewKey(nsValues).Child(prefix))
}

// Close stops the replica: it stops accepting writes, fails the writes not
// yet committed with ErrClosed, stops fetching (pending walks stay in the
// journal and resume on the next New) and waits for every goroutine. It
// does not close the store, the DAG or the Broadcaster. A second Close
// returns an error wrapping ErrClosed.
func (s *Datastore) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("crdt: close: %w", ErrClosed)
	}
	return s.g.Close(context.Background())
}

// Heads returns the current heads, sorted by CID.
func (s *Datastore) Heads() []cid.Cid {
	s.headsMu.RLock()
	out := make([]cid.Cid, 0, len(s.heads))
	for c := range s.heads {
		out = append(out, c)
	}
	s.headsMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].KeyString() < out[j].KeyString() })
	return out
}

// height returns the number of heads and the highest priority among them
// (0 with none): headsByPriority's height without sorting, for the check
// of every remote delta and for Stats (polled by WaitForSync).
func (s *Datastore) height() (heads int, height uint64) {
	s.headsMu.RLock()
	defer s.headsMu.RUnlock()
	for _, p := range s.heads {
		height = max(height, p)
	}
	return len(s.heads), height
}

// headsByPriority returns up to max heads, highest priority first, and
// the maximum priority (the height).
func (s *Datastore) headsByPriority(max int) ([]cid.Cid, uint64) {
	s.headsMu.RLock()
	type hp struct {
		c cid.Cid
		p uint64
	}
	all := make([]hp, 0, len(s.heads))
	for c, p := range s.heads {
		all = append(all, hp{c, p})
	}
	s.headsMu.RUnlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].p != all[j].p {
			return all[i].p > all[j].p
		}
		return all[i].c.KeyString() < all[j].c.KeyString()
	})
	var height uint64
	if len(all) > 0 {
		height = all[0].p
	}
	if len(all) > max {
		all = all[:max]
	}
	out := make([]cid.Cid, len(all))
	for i, h := range all {
		out[i] = h.c
	}
	return out, height
}

// StuckNode describes a DAG node this replica could not fetch yet.
type StuckNode struct {
	Cid       cid.Cid
	Attempts  int
	LastError string
	NextRetry time.Time
}

// Stats is a snapshot of a replica's counters.
type Stats struct {
	Heads              int    // current heads
	Height             uint64 // highest priority among heads
	DAGNodes           uint64 // processed DAG nodes (local and remote)
	LocalDeltas        uint64 // deltas written by this replica since New
	RemoteNodes        uint64 // remote nodes applied since New
	QueuedJobs         int64  // nodes in the durable journal (to fetch/apply)
	InFlight           int    // nodes being fetched or waiting for a retry
	RejectedNodes      uint64 // nodes rejected (undecodable, limits, priority)
	ReceivedBroadcasts uint64 // broadcast messages received
	IgnoredBroadcasts  uint64 // broadcast messages dropped as malformed/over limits
	SentBroadcasts     uint64 // broadcast messages sent
	// SuppressedRebroadcasts counts periodic rebroadcasts of the heads
	// left out because other replicas announced the same heads (see the
	// package doc, "Replication").
	SuppressedRebroadcasts uint64
	Fetches                uint64 // DAG fetch attempts
	FetchErrors            uint64 // failed DAG fetch attempts
	Dirty                  bool   // true while the journal is not empty
	// Stuck lists the nodes whose fetch failed; they are retried with
	// backoff. With SnapshotCatchUp, when a node failed 3 times (a node
	// compacted away, typically) and a trusted snapshot newer than this
	// replica's own covers it, the replica merges that snapshot, after
	// which the nodes it covers leave this list (see the package doc,
	// "Catch-up").
	Stuck             []StuckNode
	Joining           bool    // fresh replica catching up from a snapshot (waiting for or loading one)
	CatchingUp        bool    // replica with state merging a snapshot (far behind or stuck)
	SnapshotsProduced uint64  // snapshots produced since New
	SnapshotsLoaded   uint64  // snapshots loaded by a fresh replica since New (0 or 1)
	SnapshotsMerged   uint64  // snapshots merged into a replica with state since New (catch-up)
	SnapshotChunks    uint64  // snapshot chunks fetched by loads and merges since New
	CompactedBlocks   uint64  // blocks deleted by compaction since New
	NewestSnapshot    cid.Cid // newest snapshot known (cid.Undef if none)
}

// Stats returns current counters.
func (s *Datastore) Stats() Stats {
	heads, height := s.height()
	st := Stats{
		Heads:                  heads,
		Height:                 height,
		DAGNodes:               s.nodes.Load(),
		LocalDeltas:            s.st.localDeltas.Load(),
		RemoteNodes:            s.st.remoteNodes.Load(),
		QueuedJobs:             s.pending.Load(),
		RejectedNodes:          s.st.rejectedNodes.Load(),
		ReceivedBroadcasts:     s.st.receivedBroadcasts.Load(),
		IgnoredBroadcasts:      s.st.ignoredBroadcasts.Load(),
		SentBroadcasts:         s.st.sentBroadcasts.Load(),
		SuppressedRebroadcasts: s.st.suppressed.Load(),
		Fetches:                s.st.fetches.Load(),
		FetchErrors:            s.st.fetchErrors.Load(),
	}
	st.Dirty = st.QueuedJobs > 0
	st.Joining = s.snap.joining.Load()
	st.SnapshotsProduced = s.snap.produced.Load()
	st.SnapshotsLoaded = s.snap.loaded.Load()
	st.SnapshotsMerged = s.snap.merged.Load()
	st.CatchingUp = s.snap.catching.Load()
	st.SnapshotChunks = s.snap.chunksDone.Load()
	st.CompactedBlocks = s.snap.compactedN.Load()
	s.snap.mu.Lock()
	if s.snap.newest != nil {
		st.NewestSnapshot = s.snap.newest.root
	}
	s.snap.mu.Unlock()
	st.InFlight, st.Stuck = s.proc.snapshot()
	return st
}
