package crdt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Catch-up of a replica that has state: merging a snapshot into it (see
// the package doc, "Catch-up").

// Merge bookkeeping keys (see the package doc, "On-disk layout").
const (
	keyMergeRoot  = "/m/snap/merge/root"  // root bytes of the snapshot being merged (state changes started)
	keyMergeHeads = "/m/snap/merge/heads" // present once every key is merged and the heads are updated
	nsMergeCover  = "/m/snap/merge/cover" // /m/snap/merge/cover/<cid>: uvarint priority of a covered node
	nsMergeDone   = "/m/snap/merge/done"  // /m/snap/merge/done/<i>: record chunk i is merged
	nsMergeKey    = "/m/snap/merge/key"   // /m/snap/merge/key/<ek>: key ek has a row in the snapshot
)

// stuckAttempts is how many failed fetches of one node make a replica
// with SnapshotCatchUp merge a newer trusted snapshot (the node may have
// been compacted away).
const stuckAttempts = 3

// mergeBatch bounds the operations of one datastore batch while merging
// keys without a row and moving covered nodes.
const mergeBatch = 4096

// farBehind reports whether a trusted snapshot this replica has not
// merged covers at least SnapshotCatchUpGap nodes more than it has
// processed. Heads are ignored meanwhile: the snapshot loop merges it.
func (s *Datastore) farBehind() bool {
	if !s.cfg.SnapshotCatchUp {
		return false
	}
	s.snap.mu.Lock()
	n, base, failed := s.snap.newest, s.snap.base, s.snap.failed
	s.snap.mu.Unlock()
	if n == nil || n.root.Equals(base) || n.root.Equals(failed) {
		return false
	}
	have := s.nodes.Load()
	return n.nodes > have && n.nodes-have >= uint64(s.cfg.SnapshotCatchUpGap)
}

// catchUpTarget returns the snapshot to merge and why, or nil. When the
// reason is a stuck walk, need lists the stuck nodes: the snapshot is
// merged only if it covers one of them.
func (s *Datastore) catchUpTarget() (n *knownSnap, why string, need []cid.Cid) {
	if !s.cfg.SnapshotCatchUp || s.snap.joining.Load() {
		return nil, "", nil
	}
	s.snap.mu.Lock()
	n, base, failed := s.snap.newest, s.snap.base, s.snap.failed
	s.snap.mu.Unlock()
	if n == nil || n.root.Equals(base) || n.root.Equals(failed) {
		return nil, "", nil
	}
	if s.farBehind() {
		return n, "far behind", nil
	}
	_, stuck := s.proc.snapshot()
	for _, st := range stuck {
		if st.Attempts >= stuckAttempts {
			need = append(need, st.Cid)
		}
	}
	if len(need) == 0 {
		return nil, "", nil
	}
	return n, fmt.Sprintf("stuck on %d node(s), %s first", len(need), need[0]), need
}

// errNotUseful: the snapshot covers none of the nodes the walk is stuck on.
var errNotUseful = errors.New("crdt: the snapshot covers none of the stuck nodes")

// maybeCatchUp merges the newest trusted snapshot when this replica is far
// behind it or its walk is stuck. It runs on the snapshot loop.
func (s *Datastore) maybeCatchUp(ctx context.Context) {
	n, why, need := s.catchUpTarget()
	if n == nil {
		return
	}
	s.snap.catching.Store(true)
	defer func() {
		s.snap.catching.Store(false)
		s.kickBroadcast()
	}()
	s.log.Info("crdt: catching up from snapshot", "root", n.root, "from", n.from, "reason", why, "snapshot nodes", n.nodes, "processed", s.nodes.Load())
	start := time.Now()
	info, err := s.mergeSnapshot(ctx, n, need)
	if err != nil {
		if ctx.Err() != nil {
			return // closing: the next New resumes a merge that changed the state
		}
		if errors.Is(err, errNotUseful) {
			s.log.Info("crdt: snapshot not merged: it covers none of the stuck nodes", "root", n.root)
		} else {
			s.log.Error("crdt: snapshot merge failed; walking the history instead", "root", n.root, "err", err)
		}
		s.snap.mu.Lock()
		s.snap.failed = n.root
		s.snap.mu.Unlock()
		return
	}
	s.log.Info("crdt: caught up from snapshot", "root", n.root, "from", n.from, "keys", info.Keys, "nodes", info.Nodes, "took", time.Since(start))
	if s.cfg.SnapshotHook != nil {
		s.cfg.SnapshotHook(info)
	}
}

// fetchMerge fetches a snapshot block for a merge: with retries, but
// bounded, so that an unreachable snapshot does not stall the catch-up
// for ever.
func (s *Datastore) fetchMerge(ctx context.Context, c cid.Cid) ([]byte, error) {
	fctx, cancel := context.WithTimeout(ctx, 3*s.cfg.DAGSyncerTimeout)
	defer cancel()
	raw, err := s.fetch(fctx, c)
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("fetch snapshot block %s: %w", c, err)
	}
	return raw, err
}

// mergeSnapshot merges snapshot n into this replica's state. Phase 1
// (no lock: local writes go on; the workers wait): fetch and check every
// block of the snapshot, keep them in the local DAG and stage the covered
// nodes; with need, stop there (errNotUseful) unless one of those nodes
// is covered. Phase 2 (under the apply lock, local only): merge every
// key, then record the covered nodes, heads and counters.
func (s *Datastore) mergeSnapshot(ctx context.Context, n *knownSnap, need []cid.Cid) (SnapshotInfo, error) {
	info := SnapshotInfo{Root: n.root, From: n.from}
	lim := s.cfg.limits()
	for _, p := range []string{nsMergeCover, nsMergeDone, nsMergeKey} {
		if err := deletePrefix(ctx, s.store, p); err != nil {
			return info, err
		}
	}
	raw, err := s.fetchMerge(ctx, n.root)
	if err != nil {
		return info, err
	}
	r, err := decodeSnapRoot(raw, lim)
	if err != nil {
		return info, err
	}
	if err := s.dag.Put(ctx, n.root, raw); err != nil {
		return info, err
	}
	info.Heads, info.Height, info.Nodes, info.Keys = r.heads, r.height, r.nodes, r.keys
	info.Blocks, info.Bytes = 1, int64(len(raw))
	chunks := append(append([]cid.Cid(nil), r.rows...), r.cover...)
	bounds := make([][2]string, len(r.rows)) // first and last "<ek>/" of each record chunk
	n1, b1, err := s.stageChunks(ctx, chunks, bounds)
	info.Blocks += n1
	info.Bytes += b1
	if err != nil {
		return info, err
	}
	for i := 1; i < len(bounds); i++ {
		if bounds[i][0] <= bounds[i-1][1] {
			return info, fmt.Errorf("%w: record chunk %d does not follow chunk %d in key order", ErrInvalidSnapshot, i, i-1)
		}
	}
	for _, h := range r.heads {
		raw, err := s.store.Get(ctx, cidKey(nsMergeCover, h))
		if err != nil {
			return info, fmt.Errorf("%w: head %s not among covered nodes: %v", ErrInvalidSnapshot, h, err)
		}
		if p, _, err := readUvarint(raw); err != nil || p > r.height {
			return info, fmt.Errorf("%w: head %s priority above height %d", ErrInvalidSnapshot, h, r.height)
		}
	}
	if len(need) > 0 {
		useful := false
		for _, c := range need {
			has, err := s.store.Has(ctx, cidKey(nsMergeCover, c))
			if err != nil {
				return info, err
			}
			useful = useful || has
		}
		if !useful {
			return info, errNotUseful
		}
	}
	if err := s.store.Put(ctx, cidKey(nsSnapBlocks, n.root), nil); err != nil {
		return info, err
	}
	s.log.Debug("crdt: snapshot merge: blocks fetched and staged", "root", n.root, "blocks", info.Blocks, "bytes", info.Bytes)
	// Phase 2: from here on the state changes; a crash resumes in New.
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.store.Put(ctx, ds.RawKey(keyMergeRoot), n.root.Bytes()); err != nil {
		return info, err
	}
	// A half-merged state must not see other changes (a delta applied
	// now could bring back an element the snapshot removed): on a store
	// error, retry, holding the lock, until it works or the replica
	// closes (the next New resumes).
	backoff := s.cfg.RetryMinBackoff
	for {
		err := s.mergeLocked(ctx, n.root, r, n.from)
		if err == nil {
			return info, nil
		}
		if ctx.Err() != nil {
			s.snap.halfMerged.Store(true)
			return info, ctx.Err()
		}
		s.log.Error("crdt: snapshot merge step failed, retrying", "root", n.root, "err", err)
		if !gorun.Sleep(ctx, backoff) {
			s.snap.halfMerged.Store(true)
			return info, ctx.Err()
		}
		backoff = min(backoff*2, s.cfg.RetryMaxBackoff)
	}
}

// stageChunks fetches the chunks of a snapshot to merge, SnapshotWorkers
// at a time: each is checked and kept in the local DAG, and the nodes of
// covered-node chunks are staged under nsMergeCover. It returns the
// blocks and bytes fetched. The first len(bounds) chunks are record
// chunks: bounds[i] gets the first and last "<ek>/" of chunk i.
func (s *Datastore) stageChunks(ctx context.Context, chunks []cid.Cid, bounds [][2]string) (int, int64, error) {
	lim := s.cfg.limits()
	todo := make(chan int, len(chunks))
	for i := range chunks {
		todo <- i
	}
	close(todo)
	var (
		mu       sync.Mutex
		firstErr error
		blocks   int
		size     int64
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stage := func(i int) error {
		c := chunks[i]
		raw, err := s.fetchMerge(wctx, c)
		if err != nil {
			return err
		}
		rows, nodes, err := decodeSnapChunk(raw, lim)
		if err != nil {
			return fmt.Errorf("chunk %s: %w", c, err)
		}
		if (i < len(bounds)) != (len(rows) > 0) || (i >= len(bounds) && len(nodes) == 0) {
			return fmt.Errorf("%w: chunk %s holds the wrong kind of content", ErrInvalidSnapshot, c)
		}
		if len(rows) > 0 {
			bounds[i] = [2]string{encKey(rows[0].key) + "/", encKey(rows[len(rows)-1].key) + "/"}
		}
		if err := s.dag.Put(wctx, c, raw); err != nil {
			return err
		}
		mu.Lock()
		blocks++
		size += int64(len(raw))
		mu.Unlock()
		s.snap.chunksDone.Add(1)
		if len(nodes) == 0 {
			return nil
		}
		b, err := s.store.Batch(wctx)
		if err != nil {
			return err
		}
		for _, w := range nodes {
			c, _ := castCid(w.ID) // checked by decodeSnapChunk
			if err := b.Put(wctx, cidKey(nsMergeCover, c), putUvarint(w.P, nil)); err != nil {
				return err
			}
		}
		return b.Commit(wctx)
	}
	g := gorun.New()
	for range min(s.cfg.SnapshotWorkers, max(1, len(chunks))) {
		err := g.Go(func(context.Context) {
			for i := range todo {
				if wctx.Err() != nil {
					return
				}
				if err := stage(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
		if err != nil {
			cancel()
		}
	}
	_ = g.Close(context.Background())
	if err := ctx.Err(); err != nil {
		return blocks, size, err
	}
	return blocks, size, firstErr
}

// resumeMerge finishes, in New, a merge that a crash or Close interrupted
// after it started changing the state. Every block it needs is local.
func (s *Datastore) resumeMerge(ctx context.Context) error {
	raw, err := s.store.Get(ctx, ds.RawKey(keyMergeRoot))
	if errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	root, err := castCid(raw)
	if err != nil {
		return fmt.Errorf("%w: merging root", errCorrupt)
	}
	s.log.Warn("crdt: repair: resuming interrupted snapshot merge", "root", root)
	rraw, err := s.dag.Get(ctx, root)
	if err == nil {
		err = verifyBlock(root, rraw)
	}
	if err != nil {
		return fmt.Errorf("resume snapshot merge: root %s: %w", root, err)
	}
	r, err := decodeSnapRoot(rraw, s.cfg.limits())
	if err != nil {
		return fmt.Errorf("resume snapshot merge: %w", err)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.mergeLocked(ctx, root, r, "")
}

// mergeLocked is phase 2 of a merge: every step is idempotent and
// recorded, so it can resume after a crash. Called under applyMu, with
// the covered nodes staged under nsMergeCover and the processed set (/b)
// still that of this replica alone until the heads step.
func (s *Datastore) mergeLocked(ctx context.Context, root cid.Cid, r *snapRoot, from peer.ID) error {
	lim := s.cfg.limits()
	headsDone, err := s.store.Has(ctx, ds.RawKey(keyMergeHeads))
	if err != nil {
		return err
	}
	if !headsDone {
		memo := &idMemo{}
		// 1. Keys with a row in the snapshot, one chunk per batch. Rows
		// come in the order of "<ek>/" (checked in phase 1), that of the
		// element and tombstone scans: the local side of each key is read
		// by two forward scans of the state as it was before this step
		// (each key is read before it is written).
		loc, err := newLocalScan(ctx, s.store)
		if err != nil {
			return err
		}
		defer loc.close()
		for i, c := range r.rows {
			done := ds.RawKey(nsMergeDone + "/" + strconv.Itoa(i))
			if has, err := s.store.Has(ctx, done); err != nil || has {
				if err != nil {
					return err
				}
				continue
			}
			raw, err := s.fetch(ctx, c) // local since phase 1
			if err != nil {
				return err
			}
			rows, _, err := decodeSnapChunk(raw, lim)
			if err != nil {
				return fmt.Errorf("chunk %s: %w", c, err)
			}
			b, err := s.store.Batch(ctx)
			if err != nil {
				return err
			}
			var events []hookEvent
			for _, row := range rows {
				rec, local, ltombs, err := loc.read(encKey(row.key) + "/")
				if err != nil {
					return err
				}
				if err := s.mergeState(ctx, b, memo, row.key, rec, local, ltombs, row.elems, row.tombs, &events); err != nil {
					return fmt.Errorf("merge key %q: %w", truncate(row.key), err)
				}
				if err := b.Put(ctx, ds.RawKey(nsMergeKey+"/"+encKey(row.key)), nil); err != nil {
					return err
				}
			}
			if err := b.Put(ctx, done, nil); err != nil {
				return err
			}
			if err := b.Commit(ctx); err != nil {
				return err
			}
			s.runHooks(events)
		}
		s.log.Debug("crdt: snapshot merge: keys with a row merged", "root", root)
		// 2. Local keys without a row: the snapshot removed every
		// element of theirs it covers.
		lone, err := s.keysWithoutRow(ctx)
		if err != nil {
			return err
		}
		for len(lone) > 0 {
			part := lone[:min(len(lone), mergeBatch)]
			lone = lone[len(part):]
			b, err := s.store.Batch(ctx)
			if err != nil {
				return err
			}
			var events []hookEvent
			for _, ek := range part {
				k, err := decodeKeySegment(ek)
				if err != nil {
					return fmt.Errorf("%w: key record %q", errCorrupt, ek)
				}
				if err := s.mergeKey(ctx, b, memo, k, nil, nil, &events); err != nil {
					return fmt.Errorf("merge key %q: %w", truncate(k), err)
				}
			}
			if err := b.Commit(ctx); err != nil {
				return err
			}
			s.runHooks(events)
		}
		// 3. Heads of the union: a local head the snapshot covers without
		// holding it as a head has a child in it; a snapshot head is a
		// head unless a local node links to it.
		b, err := s.store.Batch(ctx)
		if err != nil {
			return err
		}
		snapHeads := make(map[cid.Cid]struct{}, len(r.heads))
		for _, h := range r.heads {
			snapHeads[h] = struct{}{}
			child, err := s.store.Has(ctx, cidKey(nsChild, h))
			if err != nil {
				return err
			}
			if child {
				continue
			}
			raw, err := s.store.Get(ctx, cidKey(nsMergeCover, h))
			if err != nil {
				return fmt.Errorf("snapshot head %s: %w", h, err)
			}
			if err := b.Put(ctx, cidKey(nsHeads, h), raw); err != nil {
				return err
			}
		}
		s.headsMu.RLock()
		heads := s.heads
		s.headsMu.RUnlock()
		for h := range heads {
			if _, ok := snapHeads[h]; ok {
				continue
			}
			covered, err := s.store.Has(ctx, cidKey(nsMergeCover, h))
			if err != nil {
				return err
			}
			if covered {
				if err := b.Delete(ctx, cidKey(nsHeads, h)); err != nil {
					return err
				}
			}
		}
		if err := b.Put(ctx, ds.RawKey(keyMergeHeads), nil); err != nil {
			return err
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
	}
	s.log.Debug("crdt: snapshot merge: keys and heads merged", "root", root)
	// 4. The covered nodes become processed (moved out of the staging
	// area page by page).
	for {
		res, err := s.store.Query(ctx, dsq.Query{Prefix: nsMergeCover, Limit: mergeBatch})
		if err != nil {
			return err
		}
		es, err := res.Rest()
		if err != nil {
			return err
		}
		if len(es) == 0 {
			break
		}
		b, err := s.store.Batch(ctx)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := b.Put(ctx, ds.RawKey(nsBlocks+e.Key[len(nsMergeCover):]), e.Value); err != nil {
				return err
			}
			if err := b.Delete(ctx, ds.RawKey(e.Key)); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
	}
	// 5. Counters, the newest snapshot, end of the merge.
	var nodes uint64
	if err := eachKey(ctx, s.store, nsBlocks, func(string) error { nodes++; return nil }); err != nil {
		return err
	}
	heads := map[cid.Cid]uint64{}
	res, err := s.store.Query(ctx, dsq.Query{Prefix: nsHeads})
	if err != nil {
		return err
	}
	for e := range res.Next() {
		if e.Error != nil {
			res.Close()
			return e.Error
		}
		c, err := cid.Decode(e.Key[len(nsHeads)+1:])
		if err != nil {
			res.Close()
			return fmt.Errorf("%w: head key %q", errCorrupt, e.Key)
		}
		p, _, err := readUvarint(e.Value)
		if err != nil {
			res.Close()
			return err
		}
		heads[c] = p
	}
	res.Close()
	b, err := s.store.Batch(ctx)
	if err != nil {
		return err
	}
	k := &knownSnap{root: root, height: r.height, nodes: r.nodes, from: from, at: time.Now(), heads: r.heads}
	for _, op := range []struct {
		key ds.Key
		val []byte
	}{
		{ds.RawKey(keyNodes), putUvarint(nodes, nil)},
		{ds.RawKey(keySnapNewest), encodeKnown(k)},
		{cidKey(nsSnapBlocks, root), nil},
	} {
		if err := b.Put(ctx, op.key, op.val); err != nil {
			return err
		}
	}
	for _, key := range []string{keyMergeRoot, keyMergeHeads} {
		if err := b.Delete(ctx, ds.RawKey(key)); err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	if err := s.store.Sync(ctx, ds.NewKey("/")); err != nil {
		return err
	}
	for _, p := range []string{nsMergeDone, nsMergeKey} {
		if err := deletePrefix(ctx, s.store, p); err != nil {
			return err
		}
	}
	s.headsMu.Lock()
	s.heads = heads
	s.headsMu.Unlock()
	s.nodes.Store(nodes)
	s.snap.mu.Lock()
	if k.newerThan(s.snap.newest) || (s.snap.newest != nil && s.snap.newest.root.Equals(root)) {
		s.snap.newest = k
	}
	s.snap.acked = s.snap.newest == k
	s.snap.triggerAt, s.snap.base = time.Time{}, root
	s.snap.mu.Unlock()
	s.snap.merged.Add(1)
	s.proc.retryNow()
	return nil
}

// mergeKey writes into b the merge of key k's local state (that of the
// processed set P, the /b markers) with its snapshot row (live elements
// and tombstones of the covered set C, staged under nsMergeCover): the
// state of P ∪ C. An element live on one side is live in the union
// unless the other side removed it: C removed an element whose id it
// covers and does not hold live, or whose id it holds a tombstone of; P
// likewise. Tombstones are kept only for ids neither side processed.
// Hook events are appended for a changed visible value. Called under
// applyMu.
func (s *Datastore) mergeKey(ctx context.Context, b ds.Batch, m *idMemo, k string, elems []winner, tombs []cid.Cid, events *[]hookEvent) error {
	ek := encKey(k)
	rec, err := s.readRecord(ctx, ek)
	if err != nil {
		return err
	}
	local := map[cid.Cid]winner{}
	if rec.hasWinner { // (a key with live elements has a winner)
		if err := s.scanElems(ctx, ek, func(id cid.Cid, prio uint64, value []byte) {
			local[id] = winner{prio: prio, id: id, value: append([]byte(nil), value...)}
		}); err != nil {
			return err
		}
	}
	ltombs := map[cid.Cid]struct{}{}
	if rec.hasTombs {
		prefix := nsTombs + "/" + ek + "/"
		err := eachKey(ctx, s.store, prefix, func(key string) error {
			id, err := cid.Decode(key[len(prefix):])
			if err != nil {
				return fmt.Errorf("%w: tombstone %q", errCorrupt, key)
			}
			ltombs[id] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return s.mergeState(ctx, b, m, k, rec, local, ltombs, elems, tombs, events)
}

// mergeState is mergeKey with the local side of key k read: its record,
// live elements and tombstones (the maps are changed).
func (s *Datastore) mergeState(ctx context.Context, b ds.Batch, m *idMemo, k string, rec keyRecord, local map[cid.Cid]winner, ltombs map[cid.Cid]struct{}, elems []winner, tombs []cid.Cid, events *[]hookEvent) error {
	ek := encKey(k)
	var err error
	inP := func(id cid.Cid) (bool, error) { return m.has(ctx, s.store, nsBlocks, id) }
	inC := func(id cid.Cid) (bool, error) { return m.has(ctx, s.store, nsMergeCover, id) }
	live := make(map[cid.Cid]struct{}, len(elems))
	for _, e := range elems {
		live[e.id] = struct{}{}
		if _, ok := local[e.id]; ok {
			continue // live on both sides
		}
		if _, ok := ltombs[e.id]; ok {
			continue // removed here before its add arrived (tombstone dropped below)
		}
		p, err := inP(e.id)
		if err != nil {
			return err
		}
		if p {
			continue // processed and removed here
		}
		if err := b.Put(ctx, elemKey(ek, e.id), putUvarint(e.prio, e.value)); err != nil {
			return err
		}
		local[e.id] = e
	}
	for _, t := range tombs {
		if _, ok := local[t]; ok {
			if _, l := live[t]; !l { // (a valid row never holds both)
				if err := b.Delete(ctx, elemKey(ek, t)); err != nil {
					return err
				}
				delete(local, t)
			}
			continue
		}
		if _, ok := ltombs[t]; ok {
			continue
		}
		p, err := inP(t)
		if err != nil {
			return err
		}
		c, err := inC(t)
		if err != nil {
			return err
		}
		if p || c {
			continue // processed: nothing to keep
		}
		if err := b.Put(ctx, tombKey(ek, t), nil); err != nil {
			return err
		}
		ltombs[t] = struct{}{}
	}
	for id := range local {
		if _, l := live[id]; l {
			continue
		}
		c, err := inC(id)
		if err != nil {
			return err
		}
		if c { // the snapshot processed it and does not hold it: removed
			if err := b.Delete(ctx, elemKey(ek, id)); err != nil {
				return err
			}
			delete(local, id)
		}
	}
	for t := range ltombs {
		c, err := inC(t)
		if err != nil {
			return err
		}
		if c { // processed now: the tombstone is not needed
			if err := b.Delete(ctx, tombKey(ek, t)); err != nil {
				return err
			}
			delete(ltombs, t)
		}
	}
	var best *winner
	for _, w := range local {
		if best == nil || w.beats(*best) {
			w := w
			best = &w
		}
	}
	next := keyRecord{hasWinner: best != nil, hasTombs: len(ltombs) > 0}
	if best != nil {
		next.prio, next.id = best.prio, best.id
	}
	ev, changed, err := storeWinner(ctx, b, k, ek, rec, next, best)
	if changed {
		*events = append(*events, ev)
	}
	return err
}

// localScan reads the local side of keys in "<ek>/" order with two
// forward scans (elements, tombstones), as produceLocked does.
type localScan struct {
	elems, tombs *scan
}

func newLocalScan(ctx context.Context, st ds.Datastore) (*localScan, error) {
	elems, err := newScan(ctx, st, nsElems+"/", true)
	if err != nil {
		return nil, err
	}
	tombs, err := newScan(ctx, st, nsTombs+"/", false)
	if err != nil {
		elems.close()
		return nil, err
	}
	return &localScan{elems: elems, tombs: tombs}, nil
}

func (l *localScan) close() {
	l.elems.close()
	l.tombs.close()
}

// read returns the record (as the live elements and tombstones imply it:
// the winner is their best, by the store's invariant), live elements and
// tombstones of the key whose scan prefix is ek ("<ek>/"), skipping the
// keys before it. Calls must come in increasing ek order.
func (l *localScan) read(ek string) (keyRecord, map[cid.Cid]winner, map[cid.Cid]struct{}, error) {
	var rec keyRecord
	local := map[cid.Cid]winner{}
	ltombs := map[cid.Cid]struct{}{}
	e := l.elems
	for e.ok && e.ek < ek {
		if err := e.next(); err != nil {
			return rec, nil, nil, err
		}
	}
	var best *winner
	for e.ok && e.ek == ek {
		p, v, err := readUvarint(e.val)
		if err != nil {
			return rec, nil, nil, err
		}
		w := winner{prio: p, id: e.id, value: append([]byte(nil), v...)}
		local[e.id] = w
		if best == nil || w.beats(*best) {
			best = &w
		}
		if err := e.next(); err != nil {
			return rec, nil, nil, err
		}
	}
	if err := e.err(); err != nil {
		return rec, nil, nil, err
	}
	t := l.tombs
	for t.ok && t.ek < ek {
		if err := t.next(); err != nil {
			return rec, nil, nil, err
		}
	}
	for t.ok && t.ek == ek {
		ltombs[t.id] = struct{}{}
		if err := t.next(); err != nil {
			return rec, nil, nil, err
		}
	}
	if err := t.err(); err != nil {
		return rec, nil, nil, err
	}
	if best != nil {
		rec.hasWinner, rec.prio, rec.id = true, best.prio, best.id
	}
	rec.hasTombs = len(ltombs) > 0
	return rec, local, ltombs, nil
}

// keysWithoutRow lists the encoded keys that have a key record here but
// no row in the snapshot being merged: a merge of two scans in key order
// (the key records and the row markers end with the same <ek>).
func (s *Datastore) keysWithoutRow(ctx context.Context) ([]string, error) {
	q := func(prefix string) (dsq.Results, error) {
		return s.store.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true, Orders: []dsq.Order{dsq.OrderByKey{}}})
	}
	recs, err := q(nsWinner)
	if err != nil {
		return nil, err
	}
	defer recs.Close()
	marks, err := q(nsMergeKey)
	if err != nil {
		return nil, err
	}
	defer marks.Close()
	var lone []string
	mark, more := "", true
	nextMark := func() error {
		r, ok := marks.NextSync()
		switch {
		case !ok:
			mark, more = "", false
		case r.Error != nil:
			return r.Error
		default:
			mark = r.Key[len(nsMergeKey)+1:]
		}
		return nil
	}
	if err := nextMark(); err != nil {
		return nil, err
	}
	for r := range recs.Next() {
		if r.Error != nil {
			return nil, r.Error
		}
		ek := r.Key[len(nsWinner)+1:]
		for more && mark < ek {
			if err := nextMark(); err != nil {
				return nil, err
			}
		}
		if !more || mark != ek {
			lone = append(lone, ek)
		}
	}
	return lone, nil
}

// idMemo remembers, during the key steps of a merge (while neither set
// changes), whether ids are processed here (/b) or covered by the
// snapshot: a delta usually touches many keys. Bounded: cleared when full.
type idMemo struct {
	m map[string]bool // ns + id bytes -> present
}

const idMemoMax = 1 << 16

func (m *idMemo) has(ctx context.Context, st ds.Datastore, ns string, id cid.Cid) (bool, error) {
	k := ns + id.KeyString()
	if v, ok := m.m[k]; ok {
		return v, nil
	}
	v, err := st.Has(ctx, cidKey(ns, id))
	if err != nil {
		return false, err
	}
	if m.m == nil || len(m.m) >= idMemoMax {
		m.m = make(map[string]bool, 1024)
	}
	m.m[k] = v
	return v, nil
}

// runHooks queues the hooks of committed changes for the hook loop (see
// hookQueue). Called under applyMu.
func (s *Datastore) runHooks(events []hookEvent) {
	s.queueHooks(events)
	s.kickHooks()
}

// eachKey calls fn with every key under prefix, in no order, until fn
// returns an error, which it returns.
func eachKey(ctx context.Context, st ds.Read, prefix string, fn func(key string) error) error {
	res, err := st.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		return err
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return e.Error
		}
		if err := fn(e.Key); err != nil {
			return err
		}
	}
	return nil
}
