package crdt

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Snapshot bookkeeping keys (see the package doc, "On-disk layout").
const (
	keySnapNewest    = "/m/snap/newest"    // newest snapshot known: root bytes ++ uvarint height ++ uvarint nodes
	keySnapLoading   = "/m/snap/loading"   // root bytes of a snapshot being loaded
	nsSnapDone       = "/m/snap/done"      // /m/snap/done/<i>: chunk i of the loading snapshot is loaded
	nsSnapBlocks     = "/m/snap/blocks"    // /m/snap/blocks/<root>: this replica stores that snapshot's blocks
	keySnapCompacted = "/m/snap/compacted" // root bytes of the snapshot whose history was compacted
)

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Root   cid.Cid   // root block
	Heads  []cid.Cid // heads whose state it holds, sorted by bytes
	Height uint64    // highest priority among Heads
	Nodes  uint64    // DAG nodes whose effect it holds
	Keys   uint64    // keys with live elements or tombstones
	Blocks int       // blocks (root and chunks)
	Bytes  int64     // bytes of those blocks
	From   peer.ID   // the peer it was loaded from ("" when produced here)
}

// knownSnap is a snapshot this replica has heard of or made.
type knownSnap struct {
	root   cid.Cid
	height uint64
	nodes  uint64
	from   peer.ID
	at     time.Time
	heads  []cid.Cid // nil until the root block was read
}

func (k *knownSnap) newerThan(o *knownSnap) bool {
	if o == nil {
		return true
	}
	if k.height != o.height {
		return k.height > o.height
	}
	if k.nodes != o.nodes {
		return k.nodes > o.nodes
	}
	return bytes.Compare(k.root.Bytes(), o.root.Bytes()) > 0
}

type peerAck struct {
	root  cid.Cid
	acked bool
}

type announced struct {
	from peer.ID
	a    Announcement
}

// snapState is the snapshot side of a Datastore.
type snapState struct {
	mu        sync.Mutex
	newest    *knownSnap
	acked     bool // this replica has processed every head of newest
	acks      map[peer.ID]peerAck
	compacted cid.Cid
	triggerAt time.Time
	// producedAt and produceTook are when the last periodic snapshot
	// ended and how long producing it took. Production holds the apply
	// lock over a scan of the whole state, so the next periodic one
	// waits snapshotCooldown times that: writes lose at most a tenth of
	// their time to it, whatever the size of the state (without this the
	// write rate fell as the pinset grew, issue 19).
	producedAt  time.Time
	produceTook time.Duration

	joining  atomic.Bool   // fresh replica waiting for or loading a snapshot
	joinDone chan struct{} // closed when joining ends
	annCh    chan announced
	// nonce is the joiner's join-request nonce (set before the loops
	// start, then read-only).
	nonce []byte
	// noSnap is signalled when, while joining, a trusted peer answered
	// this replica's join request knowing no snapshot.
	noSnap chan struct{}
	// replyTo holds the nonces of join requests not answered yet (under
	// mu); replyKick wakes the broadcast loop to answer them.
	replyTo   [][]byte
	replyKick chan struct{}

	// base is the newest snapshot this replica produced, loaded or
	// merged: merging it again would change nothing. failed is the last
	// snapshot whose merge failed (not tried again). Both under mu.
	base   cid.Cid
	failed cid.Cid
	// catching is set while a snapshot is merged into a replica that has
	// state (catch-up of a far-behind or stuck replica); catchUpKick wakes
	// the snapshot loop when a newer snapshot is learnt.
	catching    atomic.Bool
	catchUpKick chan struct{}
	// halfMerged is set (under applyMu) when a merge stops half-way
	// because the replica closes: no delta may be applied after it (one
	// the snapshot covers would be applied twice); the next New finishes
	// the merge.
	halfMerged atomic.Bool

	produced   atomic.Uint64
	loaded     atomic.Uint64
	merged     atomic.Uint64
	compactedN atomic.Uint64
	chunksDone atomic.Uint64 // chunks loaded by the current/last join
}

// initSnap reads the snapshot bookkeeping at New and decides whether this
// replica joins from a snapshot.
func (s *Datastore) initSnap(ctx context.Context) (resume cid.Cid, join bool, err error) {
	ss := &s.snap
	ss.acks = map[peer.ID]peerAck{}
	ss.joinDone = make(chan struct{})
	ss.annCh = make(chan announced, 64)
	ss.noSnap = make(chan struct{}, 1)
	ss.replyKick = make(chan struct{}, 1)
	ss.catchUpKick = make(chan struct{}, 1)
	ss.nonce = make([]byte, JoinNonceSize)
	if _, err := crand.Read(ss.nonce); err != nil {
		return cid.Undef, false, fmt.Errorf("join nonce: %w", err)
	}
	if raw, err := s.store.Get(ctx, ds.RawKey(keySnapNewest)); err == nil {
		k, err := decodeKnown(raw)
		if err != nil {
			return cid.Undef, false, err
		}
		k.at = time.Now()
		ss.newest, ss.base = k, k.root
	} else if !errors.Is(err, ds.ErrNotFound) {
		return cid.Undef, false, err
	}
	if raw, err := s.store.Get(ctx, ds.RawKey(keySnapCompacted)); err == nil {
		if ss.compacted, err = castCid(raw); err != nil {
			return cid.Undef, false, fmt.Errorf("%w: compacted root", errCorrupt)
		}
	} else if !errors.Is(err, ds.ErrNotFound) {
		return cid.Undef, false, err
	}
	raw, err := s.store.Get(ctx, ds.RawKey(keySnapLoading))
	switch {
	case err == nil:
		if resume, err = castCid(raw); err != nil {
			return cid.Undef, false, fmt.Errorf("%w: loading root", errCorrupt)
		}
		s.log.Warn("crdt: repair: resuming interrupted snapshot load", "root", resume)
		return resume, true, nil
	case !errors.Is(err, ds.ErrNotFound):
		return cid.Undef, false, err
	}
	fresh := s.nodes.Load() == 0 && s.pending.Load() == 0
	return cid.Undef, fresh && s.cfg.SnapshotCatchUp, nil
}

func encodeKnown(k *knownSnap) []byte {
	b := binary.AppendUvarint(nil, k.height)
	b = binary.AppendUvarint(b, k.nodes)
	return append(b, k.root.Bytes()...)
}

func decodeKnown(raw []byte) (*knownSnap, error) {
	h, rest, err := readUvarint(raw)
	if err != nil {
		return nil, err
	}
	n, rest, err := readUvarint(rest)
	if err != nil {
		return nil, err
	}
	c, err := castCid(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot root", errCorrupt)
	}
	return &knownSnap{root: c, height: h, nodes: n}, nil
}

// Joining reports whether this replica is still catching up from a
// snapshot (waiting for an announcement or loading one).
func (s *Datastore) Joining() bool { return s.snap.joining.Load() }

// JoinDone returns a channel closed once the replica is not joining from a
// snapshot any more (at once if it never was).
func (s *Datastore) JoinDone() <-chan struct{} { return s.snap.joinDone }

// waitJoined blocks local commits while joining.
func (s *Datastore) waitJoined(ctx context.Context) error {
	if !s.snap.joining.Load() {
		return nil
	}
	select {
	case <-s.snap.joinDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewestSnapshot returns the newest snapshot this replica knows (made,
// loaded or announced by a trusted peer); Heads is nil when its root
// block has not been read yet.
func (s *Datastore) NewestSnapshot() (SnapshotInfo, bool) {
	s.snap.mu.Lock()
	defer s.snap.mu.Unlock()
	n := s.snap.newest
	if n == nil {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{Root: n.root, Heads: n.heads, Height: n.height, Nodes: n.nodes, From: n.from}, true
}

// learn records k as the newest known snapshot if it is newer. It reports
// whether it was.
func (s *Datastore) learn(ctx context.Context, k *knownSnap, persist bool) bool {
	s.snap.mu.Lock()
	if !k.newerThan(s.snap.newest) {
		s.snap.mu.Unlock()
		return false
	}
	s.snap.newest = k
	s.snap.acked = false
	s.snap.triggerAt = time.Time{}
	s.snap.mu.Unlock()
	if persist {
		if err := s.store.Put(ctx, ds.RawKey(keySnapNewest), encodeKnown(k)); err != nil && ctx.Err() == nil {
			s.log.Warn("crdt: record newest snapshot", "err", err)
		}
	}
	return true
}

// handleAnnouncement processes a version-2 broadcast.
func (s *Datastore) handleAnnouncement(ctx context.Context, from peer.ID, data []byte) {
	a, err := DecodeAnnouncement(data)
	if err != nil {
		s.st.ignoredBroadcasts.Add(1)
		s.log.Warn("crdt: ignored announcement", "from", from, "err", err)
		return
	}
	s.snap.mu.Lock()
	if from != "" {
		if len(s.snap.acks) < 1<<16 {
			s.snap.acks[from] = peerAck{root: a.Root, acked: a.Acked}
		}
	}
	s.snap.mu.Unlock()
	if s.cfg.TrustSnapshot != nil && !s.cfg.TrustSnapshot(from) {
		return
	}
	if s.snap.joining.Load() {
		select {
		case s.snap.annCh <- announced{from: from, a: a}:
		default:
		}
		return
	}
	if s.learn(ctx, &knownSnap{root: a.Root, height: a.Height, nodes: a.Nodes, from: from, at: time.Now()}, false) {
		select {
		case s.snap.catchUpKick <- struct{}{}:
		default:
		}
	}
}

// announcement returns the message announcing the newest known snapshot,
// or nil.
func (s *Datastore) announcement() []byte {
	s.snap.mu.Lock()
	n, acked := s.snap.newest, s.snap.acked
	s.snap.mu.Unlock()
	if n == nil || s.snap.joining.Load() {
		return nil
	}
	b, err := EncodeAnnouncement(Announcement{Root: n.root, Height: n.height, Nodes: n.nodes, Acked: acked})
	if err != nil {
		return nil
	}
	return b
}

// fetch gets a block with retries (backoff) until ctx ends, and checks its
// hash.
func (s *Datastore) fetch(ctx context.Context, c cid.Cid) ([]byte, error) {
	backoff := s.cfg.RetryMinBackoff
	for {
		fctx, cancel := context.WithTimeout(ctx, s.cfg.DAGSyncerTimeout)
		raw, err := s.dag.Get(fctx, c)
		cancel()
		s.st.fetches.Add(1)
		if err == nil {
			if err = verifyBlock(c, raw); err == nil {
				return raw, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.st.fetchErrors.Add(1)
		s.log.Debug("crdt: snapshot block fetch failed, will retry", "cid", c, "err", err)
		if !gorun.Sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
		backoff = min(backoff*2, s.cfg.RetryMaxBackoff)
	}
}

// ---- production ----

// Snapshot writes the current state into a snapshot in the DAG, makes it
// the newest known snapshot (announced with the heads from now on) and
// returns it. It returns ErrNotSettled while nodes are pending or the
// replica is joining, and ErrClosed after Close. Local writes and remote
// applies wait while it runs (it reads the state under the apply lock).
// Two replicas with the same processed nodes produce the same root CID.
func (s *Datastore) Snapshot(ctx context.Context) (SnapshotInfo, error) {
	if err := s.enter("snapshot"); err != nil {
		return SnapshotInfo{}, err
	}
	if s.snap.joining.Load() {
		return SnapshotInfo{}, fmt.Errorf("crdt: snapshot: joining: %w", ErrNotSettled)
	}
	s.applyMu.Lock()
	info, err := s.produceLocked(ctx)
	s.applyMu.Unlock()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("crdt: snapshot: %w", err)
	}
	k := &knownSnap{root: info.Root, height: info.Height, nodes: info.Nodes, at: time.Now(), heads: info.Heads}
	if err := s.store.Put(ctx, cidKey(nsSnapBlocks, info.Root), nil); err != nil {
		return SnapshotInfo{}, fmt.Errorf("crdt: snapshot: %w", err)
	}
	if !s.learn(ctx, k, true) {
		// Same or older than what we know: still ours, keep timing fair.
		s.snap.mu.Lock()
		if s.snap.newest != nil && s.snap.newest.root.Equals(k.root) {
			s.snap.newest.heads, s.snap.newest.at = k.heads, k.at
		}
		s.snap.mu.Unlock()
	}
	s.snap.mu.Lock()
	if s.snap.newest != nil && s.snap.newest.root.Equals(k.root) {
		s.snap.acked = true
	}
	s.snap.base = k.root
	s.snap.mu.Unlock()
	s.snap.produced.Add(1)
	s.log.Info("crdt: snapshot produced", "root", info.Root, "height", info.Height, "nodes", info.Nodes, "keys", info.Keys, "bytes", info.Bytes)
	if s.cfg.SnapshotHook != nil {
		s.cfg.SnapshotHook(info)
	}
	s.kickBroadcast()
	return info, nil
}

// chunker accumulates rows or nodes into content-defined chunks.
type chunker struct {
	s      *Datastore
	ctx    context.Context
	target int
	cur    wireSnapChunk
	size   int
	out    []cid.Cid
	info   *SnapshotInfo
}

func (ch *chunker) flush() error {
	if len(ch.cur.R) == 0 && len(ch.cur.C) == 0 {
		return nil
	}
	c, raw, err := encodeSnapChunk(&ch.cur)
	if err != nil {
		return err
	}
	if len(raw) > ch.s.cfg.MaxBlockSize {
		return fmt.Errorf("snapshot chunk of %d bytes exceeds MaxBlockSize (a key with too many live elements): %w", len(raw), ErrValueTooLarge)
	}
	if err := ch.s.dag.Put(ch.ctx, c, raw); err != nil {
		return fmt.Errorf("store snapshot chunk: %w", err)
	}
	ch.out = append(ch.out, c)
	ch.info.Blocks++
	ch.info.Bytes += int64(len(raw))
	ch.cur = wireSnapChunk{}
	ch.size = 0
	return nil
}

// boundary reports whether a chunk may end after a row with this key:
// content-defined, so that unchanged key ranges give the same chunks in
// successive snapshots.
func (ch *chunker) after(key string, n int) error {
	ch.size += n
	if ch.size >= ch.target {
		return ch.flush()
	}
	if ch.size >= ch.target/2 {
		h := fnv.New32a()
		h.Write([]byte(key))
		if h.Sum32()%32 == 0 {
			return ch.flush()
		}
	}
	return nil
}

// produceLocked builds the snapshot. Called under applyMu.
func (s *Datastore) produceLocked(ctx context.Context) (SnapshotInfo, error) {
	if s.pending.Load() != 0 {
		return SnapshotInfo{}, fmt.Errorf("%d nodes pending: %w", s.pending.Load(), ErrNotSettled)
	}
	heads, height := s.headsByPriority(1 << 30)
	if len(heads) == 0 {
		return SnapshotInfo{}, fmt.Errorf("empty replica: %w", ErrNotSettled)
	}
	var info SnapshotInfo
	root := &snapRoot{height: height, heads: heads}

	// Rows: merge the element and tombstone scans (both ordered by
	// "<ek>/").
	rows := &chunker{s: s, ctx: ctx, target: s.cfg.SnapshotChunkSize, info: &info}
	elems, err := newScan(ctx, s.store, nsElems+"/", true)
	if err != nil {
		return info, err
	}
	defer elems.close()
	tombs, err := newScan(ctx, s.store, nsTombs+"/", false)
	if err != nil {
		return info, err
	}
	defer tombs.close()
	for elems.ok || tombs.ok {
		ek := elems.ek
		if !elems.ok || (tombs.ok && tombs.ek < ek) {
			ek = tombs.ek
		}
		kb, err := decodeEK(ek)
		if err != nil {
			return info, err
		}
		row := wireRow{K: kb}
		n := len(kb) + 8
		for elems.ok && elems.ek == ek {
			p, v, err := readUvarint(elems.val)
			if err != nil {
				return info, err
			}
			row.E = append(row.E, wireElem{ID: elems.id.Bytes(), P: p, V: append([]byte{}, v...)})
			n += len(v) + 48
			if err := elems.next(); err != nil {
				return info, err
			}
		}
		for tombs.ok && tombs.ek == ek {
			row.T = append(row.T, tombs.id.Bytes())
			n += 40
			if err := tombs.next(); err != nil {
				return info, err
			}
		}
		rows.cur.R = append(rows.cur.R, row)
		root.keys++
		if err := rows.after(kb, n); err != nil {
			return info, err
		}
	}
	if err := rows.flush(); err != nil {
		return info, err
	}
	if err := elems.err(); err != nil {
		return info, err
	}
	if err := tombs.err(); err != nil {
		return info, err
	}
	root.rows = rows.out

	// Covered nodes: every processed node (the journal is empty, so the
	// processed set is exactly what the state holds).
	cover := &chunker{s: s, ctx: ctx, target: s.cfg.SnapshotChunkSize, info: &info}
	res, err := s.store.Query(ctx, dsq.Query{Prefix: nsBlocks, Orders: []dsq.Order{dsq.OrderByKey{}}})
	if err != nil {
		return info, err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return info, r.Error
		}
		c, err := cid.Decode(r.Key[len(nsBlocks)+1:])
		if err != nil {
			return info, fmt.Errorf("%w: node key %q", errCorrupt, r.Key)
		}
		p, _, err := readUvarint(r.Value)
		if err != nil {
			return info, err
		}
		cover.cur.C = append(cover.cur.C, wireNode{ID: c.Bytes(), P: p})
		root.nodes++
		if err := cover.after(r.Key, 48); err != nil {
			return info, err
		}
	}
	if err := cover.flush(); err != nil {
		return info, err
	}
	root.cover = cover.out
	c, raw, err := encodeSnapRoot(root)
	if err != nil {
		return info, err
	}
	if len(raw) > s.cfg.MaxBlockSize {
		return info, fmt.Errorf("snapshot root of %d bytes exceeds MaxBlockSize: %w", len(raw), ErrValueTooLarge)
	}
	if err := s.dag.Put(ctx, c, raw); err != nil {
		return info, fmt.Errorf("store snapshot root: %w", err)
	}
	info.Root, info.Heads, info.Height, info.Nodes, info.Keys = c, root.heads, height, root.nodes, root.keys
	info.Blocks++
	info.Bytes += int64(len(raw))
	return info, nil
}

// scan iterates "/s/e/<ek>/<id>" or "/s/t/<ek>/<id>" entries in key order
// (OrderByKey: served natively by pebble and badgerds, without buffering).
type scan struct {
	res    dsq.Results
	prefix string
	ok     bool
	ek     string // "<ek>/" of the current entry
	id     cid.Cid
	val    []byte
	e      error
}

func newScan(ctx context.Context, st ds.Datastore, prefix string, values bool) (*scan, error) {
	res, err := st.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: !values, Orders: []dsq.Order{dsq.OrderByKey{}}})
	if err != nil {
		return nil, err
	}
	sc := &scan{res: res, prefix: prefix}
	return sc, sc.next()
}

func (sc *scan) next() error {
	r, ok := sc.res.NextSync()
	if !ok {
		sc.ok = false
		return nil
	}
	if r.Error != nil {
		sc.ok, sc.e = false, r.Error
		return r.Error
	}
	rest := r.Key[len(sc.prefix):]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		sc.ok, sc.e = false, fmt.Errorf("%w: key %q", errCorrupt, r.Key)
		return sc.e
	}
	id, err := cid.Decode(rest[i+1:])
	if err != nil {
		sc.ok, sc.e = false, fmt.Errorf("%w: key %q", errCorrupt, r.Key)
		return sc.e
	}
	sc.ok, sc.ek, sc.id, sc.val = true, rest[:i+1], id, r.Value
	return nil
}

func (sc *scan) err() error { return sc.e }
func (sc *scan) close()     { _ = sc.res.Close() }

// decodeEK turns "<ek>/" back into the key.
func decodeEK(ek string) (string, error) {
	b, err := decodeKeySegment(strings.TrimSuffix(ek, "/"))
	if err != nil {
		return "", fmt.Errorf("%w: encoded key %q", errCorrupt, ek)
	}
	return b, nil
}

// ---- catch-up ----

// noSnapGrace is how long a joining replica that a trusted peer told it
// knows no snapshot still waits for another peer's answer naming one
// before replaying.
const noSnapGrace = 250 * time.Millisecond

// joinReplyInterval is the least time between two join replies of one
// replica: requests arriving meanwhile are answered together (up to
// MaxJoinNonces), so that a flood of requests costs each replica at most
// one small broadcast per interval.
const joinReplyInterval = 100 * time.Millisecond

// handleJoinRequest queues an answer to a peer's join request. A replica
// that is joining itself, or empty and knowing no snapshot, knows nothing
// worth telling and stays silent.
func (s *Datastore) handleJoinRequest(from peer.ID, data []byte) {
	nonce, err := DecodeJoinRequest(data)
	if err != nil {
		s.st.ignoredBroadcasts.Add(1)
		s.log.Warn("crdt: ignored join request", "from", from, "err", err)
		return
	}
	if s.snap.joining.Load() {
		return
	}
	ss := &s.snap
	ss.mu.Lock()
	if ss.newest == nil && s.nodes.Load() == 0 {
		// Empty, knowing no snapshot: "none" from here would make the
		// joiner replay a history this replica does not even have.
		ss.mu.Unlock()
		return
	}
	dup := false
	for _, n := range ss.replyTo {
		dup = dup || bytes.Equal(n, nonce)
	}
	if !dup && len(ss.replyTo) < MaxJoinNonces {
		ss.replyTo = append(ss.replyTo, nonce)
	}
	ss.mu.Unlock()
	select {
	case ss.replyKick <- struct{}{}:
	default:
	}
}

// sendJoinReply answers the queued join requests with the newest snapshot
// this replica knows (or none). It runs on the broadcast loop.
func (s *Datastore) sendJoinReply(ctx context.Context) {
	ss := &s.snap
	ss.mu.Lock()
	nonces, n := ss.replyTo, ss.newest
	ss.replyTo = nil
	ss.mu.Unlock()
	if len(nonces) == 0 {
		return
	}
	r := JoinReply{Nonces: nonces}
	if n != nil {
		r.Snapshot = Announcement{Root: n.root, Height: n.height, Nodes: n.nodes}
	}
	data, err := EncodeJoinReply(r)
	if err != nil {
		s.log.Error("crdt: encode join reply", "err", err)
		return
	}
	s.broadcast(ctx, "join reply", data)
}

// handleJoinReply passes a trusted peer's answer to this replica's join
// request to the join loop: its snapshot as an announcement, or the news
// that it knows none. Replies to other joiners are ignored.
func (s *Datastore) handleJoinReply(from peer.ID, data []byte) {
	if !s.snap.joining.Load() {
		return
	}
	r, err := DecodeJoinReply(data)
	if err != nil {
		s.st.ignoredBroadcasts.Add(1)
		s.log.Warn("crdt: ignored join reply", "from", from, "err", err)
		return
	}
	if s.cfg.TrustSnapshot != nil && !s.cfg.TrustSnapshot(from) {
		return
	}
	mine := false
	for _, n := range r.Nonces {
		mine = mine || bytes.Equal(n, s.snap.nonce)
	}
	if !mine {
		return
	}
	if r.Snapshot.Root.Defined() {
		select {
		case s.snap.annCh <- announced{from: from, a: r.Snapshot}:
		default:
		}
		return
	}
	select {
	case s.snap.noSnap <- struct{}{}:
	default:
	}
}

// awaitSnapshot asks the peers for their newest snapshot (a join request
// every RebroadcastInterval) and returns the first trusted announcement or
// reply naming one. It gives up (false) after SnapshotWait, when ctx ends,
// or noSnapGrace after a trusted peer answered that it knows none (other
// answers may still name one).
func (s *Datastore) awaitSnapshot(ctx context.Context) (announced, bool) {
	req, err := EncodeJoinRequest(s.snap.nonce)
	if err != nil {
		s.log.Error("crdt: encode join request", "err", err)
		return announced{}, false
	}
	ask := func() { s.broadcast(ctx, "join request", req) }
	t := time.NewTimer(s.cfg.SnapshotWait)
	defer t.Stop()
	every := time.NewTicker(s.cfg.RebroadcastInterval)
	defer every.Stop()
	ask()
	for {
		select {
		case <-ctx.Done():
			return announced{}, false
		case <-t.C:
			s.log.Info("crdt: no snapshot announced, replaying the history", "waited", s.cfg.SnapshotWait)
			return announced{}, false
		case <-every.C:
			ask()
		case best := <-s.snap.annCh:
			return best, true
		case <-s.snap.noSnap:
			g := time.NewTimer(noSnapGrace)
			select {
			case <-ctx.Done():
				g.Stop()
				return announced{}, false
			case best := <-s.snap.annCh:
				g.Stop()
				return best, true
			case <-g.C:
				s.log.Info("crdt: a trusted peer knows no snapshot, replaying the history")
				return announced{}, false
			}
		}
	}
}

// joinLoop runs while the replica joins: it waits for a trusted
// announcement (unless resuming), loads the snapshot, then lets the walks
// and the local writes proceed.
func (s *Datastore) joinLoop(ctx context.Context, resume cid.Cid) {
	defer func() {
		s.snap.joining.Store(false)
		close(s.snap.joinDone)
		s.kickBroadcast()
	}()
	root, from := resume, peer.ID("")
	if !root.Defined() {
		best, ok := s.awaitSnapshot(ctx)
		if !ok {
			return
		}
		// Take the newest among those already received.
		for more := true; more; {
			select {
			case b := <-s.snap.annCh:
				if (&knownSnap{root: b.a.Root, height: b.a.Height, nodes: b.a.Nodes}).newerThan(&knownSnap{root: best.a.Root, height: best.a.Height, nodes: best.a.Nodes}) {
					best = b
				}
			default:
				more = false
			}
		}
		root, from = best.a.Root, best.from
	}
	start := time.Now()
	info, err := s.loadSnapshot(ctx, root, from)
	if err != nil {
		if ctx.Err() != nil {
			return // closing: resumes on the next New
		}
		s.log.Error("crdt: snapshot load failed; wiping it and replaying the history", "root", root, "err", err)
		if werr := s.wipeLoad(ctx); werr != nil {
			s.log.Error("crdt: wipe failed snapshot load", "err", werr)
		}
		return
	}
	s.log.Info("crdt: caught up from snapshot", "root", root, "from", from, "keys", info.Keys, "nodes", info.Nodes, "took", time.Since(start))
	if s.cfg.SnapshotHook != nil {
		s.cfg.SnapshotHook(info)
	}
}

// loadSnapshot fetches and bulk-loads the snapshot root, resuming from the
// chunks already loaded.
func (s *Datastore) loadSnapshot(ctx context.Context, root cid.Cid, from peer.ID) (SnapshotInfo, error) {
	info := SnapshotInfo{Root: root, From: from}
	if err := s.store.Put(ctx, ds.RawKey(keySnapLoading), root.Bytes()); err != nil {
		return info, err
	}
	raw, err := s.fetch(ctx, root)
	if err != nil {
		return info, err
	}
	lim := s.cfg.limits()
	r, err := decodeSnapRoot(raw, lim)
	if err != nil {
		return info, err
	}
	info.Heads, info.Height, info.Nodes, info.Keys = r.heads, r.height, r.nodes, r.keys
	info.Blocks, info.Bytes = 1, int64(len(raw))
	chunks := append(append([]cid.Cid(nil), r.rows...), r.cover...)
	todo := make(chan int, len(chunks))
	for i := range chunks {
		has, err := s.store.Has(ctx, ds.RawKey(nsSnapDone+"/"+strconv.Itoa(i)))
		if err != nil {
			return info, err
		}
		if !has {
			todo <- i
		}
	}
	close(todo)
	var (
		mu       sync.Mutex
		firstErr error
		rowsSeen atomic.Uint64
		nodeSeen atomic.Uint64
		bytesIn  atomic.Int64
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := gorun.New()
	for range min(s.cfg.SnapshotWorkers, max(1, len(chunks))) {
		err := g.Go(func(gctx context.Context) {
			for i := range todo {
				if wctx.Err() != nil {
					return
				}
				c := chunks[i]
				raw, err := s.fetch(wctx, c)
				if err == nil {
					bytesIn.Add(int64(len(raw)))
					var nr, nn int
					nr, nn, err = s.loadChunk(wctx, i, raw, lim)
					rowsSeen.Add(uint64(nr))
					nodeSeen.Add(uint64(nn))
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("chunk %d (%s): %w", i, c, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				s.snap.chunksDone.Add(1)
			}
		})
		if err != nil {
			cancel()
		}
	}
	_ = g.Close(context.Background())
	if firstErr != nil {
		return info, firstErr
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	info.Blocks += len(chunks)
	info.Bytes += bytesIn.Load()
	if err := s.finishLoad(ctx, r, root, from, chunks); err != nil {
		return info, err
	}
	s.snap.loaded.Add(1)
	return info, nil
}

// loadChunk writes one chunk and its done marker in one batch, then runs
// the PutHook for the keys it set.
func (s *Datastore) loadChunk(ctx context.Context, i int, raw []byte, lim Limits) (int, int, error) {
	rows, nodes, err := decodeSnapChunk(raw, lim)
	if err != nil {
		return 0, 0, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	b, err := s.store.Batch(ctx)
	if err != nil {
		return 0, 0, err
	}
	var events []hookEvent
	for _, r := range rows {
		ek := encKey(r.key)
		var best *winner
		for j := range r.elems {
			e := &r.elems[j]
			if err := b.Put(ctx, elemKey(ek, e.id), putUvarint(e.prio, e.value)); err != nil {
				return 0, 0, err
			}
			if best == nil || e.beats(*best) {
				best = e
			}
		}
		for _, t := range r.tombs {
			if err := b.Put(ctx, tombKey(ek, t), nil); err != nil {
				return 0, 0, err
			}
		}
		rec := keyRecord{hasWinner: best != nil, hasTombs: len(r.tombs) > 0}
		if best != nil {
			rec.prio, rec.id = best.prio, best.id
			if err := b.Put(ctx, valueKey(r.key), best.value); err != nil {
				return 0, 0, err
			}
			events = append(events, hookEvent{key: r.key, value: best.value})
		}
		if err := b.Put(ctx, winnerKey(ek), rec.encode()); err != nil {
			return 0, 0, err
		}
	}
	for _, n := range nodes {
		c, _ := castCid(n.ID) // checked by decodeSnapChunk
		if err := b.Put(ctx, cidKey(nsBlocks, c), putUvarint(n.P, nil)); err != nil {
			return 0, 0, err
		}
	}
	if err := b.Put(ctx, ds.RawKey(nsSnapDone+"/"+strconv.Itoa(i)), nil); err != nil {
		return 0, 0, err
	}
	if err := b.Commit(ctx); err != nil {
		return 0, 0, err
	}
	s.runHooks(events)
	return len(rows), len(nodes), nil
}

// finishLoad records the heads and counters of a loaded snapshot and
// clears the load markers, in one batch.
func (s *Datastore) finishLoad(ctx context.Context, r *snapRoot, root cid.Cid, from peer.ID, chunks []cid.Cid) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	b, err := s.store.Batch(ctx)
	if err != nil {
		return err
	}
	prios := make(map[cid.Cid]uint64, len(r.heads))
	for _, h := range r.heads {
		raw, err := s.store.Get(ctx, cidKey(nsBlocks, h))
		if err != nil {
			return fmt.Errorf("%w: head %s not among covered nodes: %v", ErrInvalidSnapshot, h, err)
		}
		p, _, err := readUvarint(raw)
		if err != nil {
			return err
		}
		if p > r.height {
			return fmt.Errorf("%w: head %s priority %d above height %d", ErrInvalidSnapshot, h, p, r.height)
		}
		prios[h] = p
		if err := b.Put(ctx, cidKey(nsHeads, h), putUvarint(p, nil)); err != nil {
			return err
		}
	}
	nodes := s.nodes.Load() + r.nodes
	if err := b.Put(ctx, ds.RawKey(keyNodes), putUvarint(nodes, nil)); err != nil {
		return err
	}
	k := &knownSnap{root: root, height: r.height, nodes: r.nodes, from: from, at: time.Now(), heads: r.heads}
	if err := b.Put(ctx, ds.RawKey(keySnapNewest), encodeKnown(k)); err != nil {
		return err
	}
	if err := b.Put(ctx, cidKey(nsSnapBlocks, root), nil); err != nil {
		return err
	}
	if err := b.Delete(ctx, ds.RawKey(keySnapLoading)); err != nil {
		return err
	}
	for i := range chunks {
		if err := b.Delete(ctx, ds.RawKey(nsSnapDone+"/"+strconv.Itoa(i))); err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	if err := s.store.Sync(ctx, ds.NewKey("/")); err != nil {
		return err
	}
	s.headsMu.Lock()
	m := make(map[cid.Cid]uint64, len(s.heads)+len(prios))
	for c, p := range s.heads {
		m[c] = p
	}
	for c, p := range prios {
		m[c] = p
	}
	s.heads = m
	s.headsMu.Unlock()
	s.nodes.Store(nodes)
	s.snap.mu.Lock()
	s.snap.newest, s.snap.acked, s.snap.triggerAt, s.snap.base = k, true, time.Time{}, root
	s.snap.mu.Unlock()
	return nil
}

// wipeLoad removes what a failed load wrote (the replica was fresh and
// writes were held, so everything in the state is from the load).
func (s *Datastore) wipeLoad(ctx context.Context) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, p := range []string{nsValues, "/s", nsBlocks, "/m/snap/done", keySnapLoading} {
		if err := deletePrefix(ctx, s.store, p); err != nil {
			return err
		}
	}
	return nil
}

func deletePrefix(ctx context.Context, st ds.Batching, prefix string) error {
	for {
		res, err := st.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true, Limit: 10000})
		if err != nil {
			return err
		}
		es, err := res.Rest()
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		b, err := st.Batch(ctx)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := b.Delete(ctx, ds.RawKey(e.Key)); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
	}
}

// ---- periodic work: production trigger, acknowledgement, compaction ----

func (s *Datastore) snapshotLoop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-s.snap.joinDone:
	}
	t := time.NewTicker(s.cfg.RebroadcastInterval)
	defer t.Stop()
	lastCompact := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.snap.catchUpKick:
			s.maybeCatchUp(ctx)
			continue
		case <-t.C:
		}
		s.maybeCatchUp(ctx)
		s.refreshAck(ctx)
		s.maybeProduce(ctx)
		if time.Since(lastCompact) >= s.cfg.CompactInterval {
			lastCompact = time.Now()
			if _, err := s.Compact(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, errNothingToCompact) {
				s.log.Warn("crdt: compaction", "err", err)
			}
		}
	}
}

// refreshAck reads the heads of the newest snapshot (once) and whether
// this replica has processed them all.
func (s *Datastore) refreshAck(ctx context.Context) {
	s.snap.mu.Lock()
	n, acked := s.snap.newest, s.snap.acked
	var heads []cid.Cid
	if n != nil {
		heads = n.heads // written under s.snap.mu by a concurrent refreshAck (Compact's)
	}
	s.snap.mu.Unlock()
	if n == nil || acked {
		return
	}
	if heads == nil {
		fctx, cancel := context.WithTimeout(ctx, s.cfg.DAGSyncerTimeout)
		raw, err := s.dag.Get(fctx, n.root)
		cancel()
		if err != nil || verifyBlock(n.root, raw) != nil {
			return
		}
		r, err := decodeSnapRoot(raw, s.cfg.limits())
		if err != nil {
			s.log.Warn("crdt: announced snapshot is invalid", "root", n.root, "from", n.from, "err", err)
			return
		}
		heads = r.heads
	}
	all := true
	for _, h := range heads {
		ok, err := s.store.Has(ctx, cidKey(nsBlocks, h))
		if err != nil || !ok {
			all = false
			break
		}
	}
	s.snap.mu.Lock()
	if s.snap.newest == n {
		n.heads = heads
		s.snap.acked = all
	}
	s.snap.mu.Unlock()
}

func (s *Datastore) maybeProduce(ctx context.Context) {
	every, interval := s.cfg.SnapshotEvery, s.cfg.SnapshotInterval
	if every == 0 && interval == 0 {
		return
	}
	nodes := s.nodes.Load()
	s.snap.mu.Lock()
	n := s.snap.newest
	var covered uint64
	var age time.Duration = 1<<63 - 1
	if n != nil {
		covered, age = n.nodes, time.Since(n.at)
	}
	due := nodes > covered && ((every > 0 && nodes-covered >= uint64(every)) || (interval > 0 && age >= interval))
	if due && !s.snap.producedAt.IsZero() && time.Since(s.snap.producedAt) < snapshotCooldown*s.snap.produceTook {
		due = false
	}
	if !due {
		s.snap.triggerAt = time.Time{}
		s.snap.mu.Unlock()
		return
	}
	if s.snap.triggerAt.IsZero() {
		// Stagger: every replica reaches the threshold at about the same
		// time; the first to produce announces it and the others, seeing
		// a newer snapshot, stand down.
		s.snap.triggerAt = time.Now().Add(time.Duration(rand.Int64N(int64(2*s.cfg.RebroadcastInterval) + 1)))
	}
	wait := time.Now().Before(s.snap.triggerAt)
	s.snap.mu.Unlock()
	if wait || s.pending.Load() != 0 {
		return
	}
	t0 := time.Now()
	_, err := s.Snapshot(ctx)
	if err == nil {
		s.snap.mu.Lock()
		s.snap.producedAt, s.snap.produceTook = time.Now(), time.Since(t0)
		s.snap.mu.Unlock()
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotSettled) {
		s.log.Warn("crdt: periodic snapshot", "err", err)
	}
}

// snapshotCooldown is how many times the duration of the last periodic
// snapshot the next one waits after it.
const snapshotCooldown = 9

var errNothingToCompact = errors.New("crdt: nothing to compact")

// Compact deletes, through the DAG's DAGDeleter, the blocks of the deltas
// covered by the newest known snapshot and of older snapshots, provided
// that this replica and every peer returned by Config.LivePeers
// acknowledge that snapshot. Before deleting, it fetches and stores every
// block of the snapshot, so that each compacted replica can serve it to
// joiners. It returns how many blocks were deleted. Called every
// CompactInterval when LivePeers is set; exported for tests and tools.
func (s *Datastore) Compact(ctx context.Context) (int, error) {
	if err := s.enter("compact"); err != nil {
		return 0, err
	}
	dd, ok := s.dag.(DAGDeleter)
	if !ok || s.cfg.LivePeers == nil {
		return 0, errNothingToCompact
	}
	s.refreshAck(ctx)
	s.snap.mu.Lock()
	n, acked, done := s.snap.newest, s.snap.acked, s.snap.compacted
	acks := make(map[peer.ID]peerAck, len(s.snap.acks))
	for p, a := range s.snap.acks {
		acks[p] = a
	}
	s.snap.mu.Unlock()
	if n == nil || !acked || n.root.Equals(done) {
		return 0, errNothingToCompact
	}
	for _, p := range s.cfg.LivePeers() {
		if p == s.cfg.Self {
			continue
		}
		if a := acks[p]; !a.acked || !a.root.Equals(n.root) {
			return 0, errNothingToCompact
		}
	}
	// Keep (and serve) the whole snapshot.
	raw, err := s.fetch(ctx, n.root)
	if err != nil {
		return 0, err
	}
	r, err := decodeSnapRoot(raw, s.cfg.limits())
	if err != nil {
		return 0, err
	}
	keep := map[cid.Cid]struct{}{n.root: {}}
	if err := s.dag.Put(ctx, n.root, raw); err != nil {
		return 0, err
	}
	var covered [][]wireNode
	for i, c := range append(append([]cid.Cid(nil), r.rows...), r.cover...) {
		keep[c] = struct{}{}
		raw, err := s.fetch(ctx, c)
		if err != nil {
			return 0, err
		}
		if err := s.dag.Put(ctx, c, raw); err != nil {
			return 0, err
		}
		if i >= len(r.rows) {
			_, nodes, err := decodeSnapChunk(raw, s.cfg.limits())
			if err != nil {
				return 0, err
			}
			covered = append(covered, nodes)
		}
	}
	if err := s.store.Put(ctx, cidKey(nsSnapBlocks, n.root), nil); err != nil {
		return 0, err
	}
	deleted := 0
	for _, nodes := range covered {
		for _, w := range nodes {
			c, _ := castCid(w.ID)
			if err := dd.Delete(ctx, c); err != nil {
				return deleted, fmt.Errorf("crdt: compact: delete %s: %w", c, err)
			}
			deleted++
		}
	}
	// Older snapshots whose blocks this replica stores.
	res, err := s.store.Query(ctx, dsq.Query{Prefix: nsSnapBlocks, KeysOnly: true})
	if err != nil {
		return deleted, err
	}
	es, err := res.Rest()
	if err != nil {
		return deleted, err
	}
	for _, e := range es {
		old, err := cid.Decode(e.Key[len(nsSnapBlocks)+1:])
		if err != nil || old.Equals(n.root) {
			continue
		}
		if raw, err := s.dag.Get(ctx, old); err == nil {
			if or, err := decodeSnapRoot(raw, s.cfg.limits()); err == nil {
				for _, c := range append(append([]cid.Cid(nil), or.rows...), or.cover...) {
					if _, k := keep[c]; !k {
						if err := dd.Delete(ctx, c); err == nil {
							deleted++
						}
					}
				}
			}
			if err := dd.Delete(ctx, old); err == nil {
				deleted++
			}
		}
		if err := s.store.Delete(ctx, ds.RawKey(e.Key)); err != nil {
			return deleted, err
		}
	}
	if err := s.store.Put(ctx, ds.RawKey(keySnapCompacted), n.root.Bytes()); err != nil {
		return deleted, err
	}
	s.snap.mu.Lock()
	s.snap.compacted = n.root
	s.snap.mu.Unlock()
	s.snap.compactedN.Add(uint64(deleted))
	s.log.Info("crdt: compacted history below snapshot", "root", n.root, "deleted", deleted)
	return deleted, nil
}
