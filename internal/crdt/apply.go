package crdt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

func compareBytes(a, b []byte) int { return bytes.Compare(a, b) }

// nodeChanges collects what a committed node changes in memory.
type nodeChanges struct {
	events      []hookEvent
	newPending  []cid.Cid
	pendingDiff int
	addHead     bool
	headPrio    uint64
	removeHeads []cid.Cid
}

// applyDelta writes the set changes of delta d (id = its CID) into b.
// It must run under applyMu, and reads the committed state: it relies on
// every key appearing at most once in d.Puts and once in d.Removes.
//
// The result depends only on the set of deltas applied so far, never on
// their order: tombstones are kept for ids whose element has not arrived
// yet, and the winner is the maximum over live elements.
//
// known, when not nil (a local delta), holds the key records the caller
// read under the same hold of applyMu: they are not read again.
func (s *Datastore) applyDelta(ctx context.Context, b ds.Batch, id cid.Cid, d *Delta, local bool, known map[string]keyRecord, ch *nodeChanges) error {
	type keyOps struct {
		put     *KV
		removes []cid.Cid
	}
	ops := make(map[string]*keyOps, len(d.Puts)+len(d.Removes))
	order := make([]string, 0, len(d.Puts)+len(d.Removes))
	get := func(k string) *keyOps {
		o := ops[k]
		if o == nil {
			o = &keyOps{}
			ops[k] = o
			order = append(order, k)
		}
		return o
	}
	for i := range d.Puts {
		get(d.Puts[i].Key).put = &d.Puts[i]
	}
	for _, r := range d.Removes {
		o := get(r.Key)
		o.removes = append(o.removes, r.IDs...)
	}
	for _, k := range order {
		o := ops[k]
		rec, ok := known[k]
		if !ok {
			var err error
			if rec, err = s.readRecord(ctx, encKey(k)); err != nil {
				return fmt.Errorf("key %q: %w", truncate(k), err)
			}
		}
		if err := s.applyKey(ctx, b, id, d.Priority, k, rec, o.put, o.removes, local, ch); err != nil {
			return fmt.Errorf("key %q: %w", truncate(k), err)
		}
	}
	return nil
}

// applyKey applies to key k, whose record is rec, delta id's put and
// removes.
func (s *Datastore) applyKey(ctx context.Context, b ds.Batch, id cid.Cid, prio uint64, k string, rec keyRecord, put *KV, removes []cid.Cid, local bool, ch *nodeChanges) error {
	ek := encKey(k)
	var err error
	next := rec // the new record
	removed := make(map[cid.Cid]struct{}, len(removes))
	for _, rid := range removes {
		if rid.Equals(id) {
			continue // a delta cannot remove its own element
		}
		removed[rid] = struct{}{}
		// A local delta removes the live elements its writer just read
		// (under the same hold of applyMu): they are there.
		has := local
		if !local {
			if has, err = s.store.Has(ctx, elemKey(ek, rid)); err != nil {
				return err
			}
		}
		if has {
			// The element's delta is processed (element and /b marker
			// are written together): it will never be applied again, so
			// no tombstone is needed (tombstone rule, see the package doc).
			if err := b.Delete(ctx, elemKey(ek, rid)); err != nil {
				return err
			}
			continue
		}
		processed, err := s.store.Has(ctx, cidKey(nsBlocks, rid))
		if err != nil {
			return err
		}
		if processed {
			continue // already removed (or never live): nothing to keep
		}
		next.hasTombs = true
		if err := b.Put(ctx, tombKey(ek, rid), nil); err != nil {
			return err
		}
	}
	var cand *winner
	if put != nil {
		// A local delta is new: nobody can have removed its element yet;
		// a key without tombstones cannot have removed it either.
		dead := false
		if !local && rec.hasTombs {
			if dead, err = s.store.Has(ctx, tombKey(ek, id)); err != nil {
				return err
			}
			if dead {
				// This delta is being processed: its tombstone is no
				// longer needed.
				if err := b.Delete(ctx, tombKey(ek, id)); err != nil {
					return err
				}
			}
		}
		if !dead {
			if err := b.Put(ctx, elemKey(ek, id), putUvarint(prio, put.Value)); err != nil {
				return err
			}
			cand = &winner{prio: prio, id: id, value: put.Value}
		}
	}
	var best *winner // nil value: the current winner, value not loaded
	if rec.hasWinner {
		if _, gone := removed[rec.id]; !gone {
			best = &winner{prio: rec.prio, id: rec.id}
		} else if best, err = s.scanWinner(ctx, ek, removed); err != nil {
			// The winner was removed: recomputed from the other live elements.
			return err
		}
	}
	if cand != nil {
		if best != nil && best.value == nil && cand.prio == best.prio {
			// A tie on priority: compare with the current value.
			if best.value, err = s.store.Get(ctx, valueKey(k)); err != nil {
				return fmt.Errorf("value of winner: %w", err)
			}
		}
		if best == nil || cand.beats(*best) {
			best = cand
		}
	}
	next.hasWinner = best != nil
	if best != nil {
		next.prio, next.id = best.prio, best.id
	} else {
		next.prio, next.id = 0, cid.Undef
	}
	ev, changed, err := storeWinner(ctx, b, k, ek, rec, next, best)
	if changed {
		if best != nil && best == cand {
			ev.decoded = put.decoded // decoded once, by the writer or DecodeDelta
		}
		ch.events = append(ch.events, ev)
	}
	return err
}

// storeWinner writes the record of key k (ek escaped) when next differs
// from rec, and the visible value when the winner changed: best's value,
// or none when best is nil. It returns the hook event of a visible change.
func storeWinner(ctx context.Context, b ds.Batch, k, ek string, rec, next keyRecord, best *winner) (ev hookEvent, changed bool, err error) {
	if !next.equal(rec) {
		if next.hasWinner || next.hasTombs {
			err = b.Put(ctx, winnerKey(ek), next.encode())
		} else {
			err = b.Delete(ctx, winnerKey(ek))
		}
		if err != nil {
			return hookEvent{}, false, err
		}
	}
	switch {
	case best == nil && rec.hasWinner:
		if err := b.Delete(ctx, valueKey(k)); err != nil {
			return hookEvent{}, false, err
		}
		return hookEvent{key: k, del: true}, true, nil
	case best != nil && (!rec.hasWinner || !best.id.Equals(rec.id)):
		if err := b.Put(ctx, valueKey(k), best.value); err != nil {
			return hookEvent{}, false, err
		}
		return hookEvent{key: k, value: best.value}, true, nil
	}
	return hookEvent{}, false, nil
}

// readRecord returns the key record of ek (zero if absent).
func (s *Datastore) readRecord(ctx context.Context, ek string) (keyRecord, error) {
	raw, err := s.store.Get(ctx, winnerKey(ek))
	if errors.Is(err, ds.ErrNotFound) {
		return keyRecord{}, nil
	}
	if err != nil {
		return keyRecord{}, err
	}
	return decodeRecord(raw)
}

// scanWinner returns the best live element of ek, skipping ids in skip.
func (s *Datastore) scanWinner(ctx context.Context, ek string, skip map[cid.Cid]struct{}) (*winner, error) {
	var best *winner
	err := s.scanElems(ctx, ek, func(id cid.Cid, prio uint64, value []byte) {
		if _, ok := skip[id]; ok {
			return
		}
		w := winner{prio: prio, id: id, value: value}
		if best == nil || w.beats(*best) {
			best = &w
		}
	})
	return best, err
}

func (s *Datastore) scanElems(ctx context.Context, ek string, fn func(id cid.Cid, prio uint64, value []byte)) error {
	prefix := elemPrefix(ek)
	res, err := s.store.Query(ctx, dsq.Query{Prefix: prefix})
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		idStr := r.Key[len(prefix):]
		id, err := cid.Decode(idStr)
		if err != nil {
			return fmt.Errorf("%w: element id %q", errCorrupt, idStr)
		}
		p, v, err := readUvarint(r.Value)
		if err != nil {
			return err
		}
		fn(id, p, v)
	}
	return nil
}

// liveIDs returns the record of k and the ids of its live elements (what
// a local put or delete observes and removes).
func (s *Datastore) liveIDs(ctx context.Context, k string) (keyRecord, []cid.Cid, error) {
	ek := encKey(k)
	rec, err := s.readRecord(ctx, ek)
	if err != nil || !rec.hasWinner {
		return rec, nil, err
	}
	var ids []cid.Cid
	err = s.scanElems(ctx, ek, func(id cid.Cid, _ uint64, _ []byte) { ids = append(ids, id) })
	return rec, ids, err
}

// markProcessed records node id as processed in b: DAG bookkeeping (heads,
// child markers, the journal of pending nodes, the dirty marker).
func (s *Datastore) markProcessed(ctx context.Context, b ds.Batch, id cid.Cid, prio uint64, links []cid.Cid, ch *nodeChanges) error {
	if err := b.Put(ctx, cidKey(nsBlocks, id), putUvarint(prio, nil)); err != nil {
		return err
	}
	wasPending, err := s.store.Has(ctx, cidKey(nsPending, id))
	if err != nil {
		return err
	}
	if wasPending {
		if err := b.Delete(ctx, cidKey(nsPending, id)); err != nil {
			return err
		}
		ch.pendingDiff--
	}
	s.headsMu.RLock()
	heads := s.heads
	s.headsMu.RUnlock()
	for _, l := range links {
		if err := b.Put(ctx, cidKey(nsChild, l), nil); err != nil {
			return err
		}
		if _, ok := heads[l]; ok {
			if err := b.Delete(ctx, cidKey(nsHeads, l)); err != nil {
				return err
			}
			ch.removeHeads = append(ch.removeHeads, l)
			continue // a head is processed
		}
		known, err := s.store.Has(ctx, cidKey(nsBlocks, l))
		if err != nil {
			return err
		}
		if known {
			continue
		}
		pend, err := s.store.Has(ctx, cidKey(nsPending, l))
		if err != nil {
			return err
		}
		if pend {
			continue
		}
		if err := b.Put(ctx, cidKey(nsPending, l), putUvarint(prio, nil)); err != nil {
			return err
		}
		ch.newPending = append(ch.newPending, l)
		ch.pendingDiff++
	}
	hasChild, err := s.store.Has(ctx, cidKey(nsChild, id))
	if err != nil {
		return err
	}
	if !hasChild {
		if err := b.Put(ctx, cidKey(nsHeads, id), putUvarint(prio, nil)); err != nil {
			return err
		}
		ch.addHead = true
		ch.headPrio = prio
	}
	if err := b.Put(ctx, ds.RawKey(keyNodes), putUvarint(s.nodes.Load()+1, nil)); err != nil {
		return err
	}
	return s.markDirty(ctx, b, ch.pendingDiff)
}

// markDirty keeps the dirty marker in step with the journal: present
// exactly while nodes are pending. Called under applyMu.
func (s *Datastore) markDirty(ctx context.Context, b ds.Batch, diff int) error {
	before := s.pending.Load()
	after := before + int64(diff)
	switch {
	case before == 0 && after > 0:
		return b.Put(ctx, ds.RawKey(keyDirty), nil)
	case before > 0 && after == 0:
		return b.Delete(ctx, ds.RawKey(keyDirty))
	}
	return nil
}

// afterCommit publishes the in-memory side of committed node changes and
// queues their hooks (the caller delivers them once it has released
// applyMu: deliverHooks). Called under applyMu.
func (s *Datastore) afterCommit(id cid.Cid, processed bool, ch *nodeChanges) {
	s.headsMu.Lock()
	if len(ch.removeHeads) > 0 || ch.addHead {
		m := make(map[cid.Cid]uint64, len(s.heads)+1)
		for k, v := range s.heads {
			m[k] = v
		}
		for _, h := range ch.removeHeads {
			delete(m, h)
		}
		if ch.addHead {
			m[id] = ch.headPrio
		}
		s.heads = m
	}
	s.headsMu.Unlock()
	s.pending.Add(int64(ch.pendingDiff))
	if processed {
		s.nodes.Add(1)
	}
	s.queueHooks(ch.events)
}
