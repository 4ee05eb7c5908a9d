package pincluster

import (
	"context"
	"sync"

	cid "github.com/ipfs/go-cid"
)

// pinIndex is the peer's in-memory secondary index of the shared state:
// pin names and metadata key/value pairs to CIDs, so that Pins with a name
// or metadata filter reads only the matching records instead of the whole
// state. Only pins with a name or metadata are indexed, and the pins with
// an expiry are listed, so that the expiry reads those only.
//
// It is built from one listing of the state when the peer starts and kept
// current by the state notifications (Cluster.onStateChange). It may hold
// stale extra entries (a listing older than a notification), never miss a
// current one; Pins checks every candidate against the state, so extras
// cost a lookup and nothing else. Without a consensus that notifies
// changes (StateWatcher) it is never ready and Pins scans.
type pinIndex struct {
	mu    sync.RWMutex
	ready bool
	// building is not nil while the first listing runs: the CIDs that a
	// notification touched meanwhile, which the listing must not
	// overwrite with its older view.
	building map[cid.Cid]struct{}
	names    map[string]map[cid.Cid]struct{}
	meta     map[string]map[cid.Cid]struct{} // key "\x00" value
	byCid    map[cid.Cid]indexedPin
	expiring map[cid.Cid]struct{} // pins with an ExpireAt
}

type indexedPin struct {
	name string
	meta []string
}

func newPinIndex() *pinIndex {
	return &pinIndex{
		names:    map[string]map[cid.Cid]struct{}{},
		meta:     map[string]map[cid.Cid]struct{}{},
		byCid:    map[cid.Cid]indexedPin{},
		expiring: map[cid.Cid]struct{}{},
	}
}

func metaKey(k, v string) string { return k + "\x00" + v }

func addTo(m map[string]map[cid.Cid]struct{}, k string, c cid.Cid) {
	s := m[k]
	if s == nil {
		s = map[cid.Cid]struct{}{}
		m[k] = s
	}
	s[c] = struct{}{}
}

func removeFrom(m map[string]map[cid.Cid]struct{}, k string, c cid.Cid) {
	if s := m[k]; s != nil {
		delete(s, c)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// removeLocked drops the entries of c.
func (x *pinIndex) removeLocked(c cid.Cid) {
	delete(x.expiring, c)
	old, ok := x.byCid[c]
	if !ok {
		return
	}
	delete(x.byCid, c)
	if old.name != "" {
		removeFrom(x.names, old.name, c)
	}
	for _, k := range old.meta {
		removeFrom(x.meta, k, c)
	}
}

func (x *pinIndex) putLocked(p Pin) {
	x.removeLocked(p.Cid)
	if !p.ExpireAt.IsZero() {
		x.expiring[p.Cid] = struct{}{}
	}
	if p.Name == "" && len(p.Metadata) == 0 {
		return
	}
	e := indexedPin{name: p.Name}
	if p.Name != "" {
		addTo(x.names, p.Name, p.Cid)
	}
	for k, v := range p.Metadata {
		mk := metaKey(k, v)
		e.meta = append(e.meta, mk)
		addTo(x.meta, mk, p.Cid)
	}
	x.byCid[p.Cid] = e
}

// update records the current state of one CID (removed: not in the state).
func (x *pinIndex) update(p Pin, removed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.building != nil {
		x.building[p.Cid] = struct{}{}
	}
	if removed {
		x.removeLocked(p.Cid)
	} else {
		x.putLocked(p)
	}
}

// build indexes every pin of st, then marks the index ready. Notifications
// may run concurrently (see update).
func (x *pinIndex) build(ctx context.Context, st ReadOnly) error {
	x.mu.Lock()
	x.building = map[cid.Cid]struct{}{}
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.building = nil
		x.mu.Unlock()
	}()
	for p, err := range st.List(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // a corrupt record is reported by the listing paths
		}
		x.mu.Lock()
		if _, touched := x.building[p.Cid]; !touched {
			x.putLocked(p)
		}
		x.mu.Unlock()
	}
	x.mu.Lock()
	x.ready = true
	x.mu.Unlock()
	return nil
}

// expiringPins returns the CIDs of the pins with an expiry (and possibly
// stale others: the caller reads each from the state), or false when the
// index is not ready.
func (x *pinIndex) expiringPins() ([]cid.Cid, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready {
		return nil, false
	}
	out := make([]cid.Cid, 0, len(x.expiring))
	for c := range x.expiring {
		out = append(out, c)
	}
	return out, true
}

// lookup returns the candidate CIDs for f, or false when the index cannot
// narrow the listing (not ready, or no name or metadata filter).
func (x *pinIndex) lookup(f PinFilter) ([]cid.Cid, bool) {
	if f.Name == "" && len(f.Metadata) == 0 {
		return nil, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready {
		return nil, false
	}
	var sets []map[cid.Cid]struct{}
	if f.Name != "" {
		if f.Match == MatchExact {
			sets = append(sets, x.names[f.Name])
		} else {
			// Other matches compare against each distinct name: far
			// fewer than pins, and no record is decoded.
			u := map[cid.Cid]struct{}{}
			for name, s := range x.names {
				if f.Match.matches(name, f.Name) {
					for c := range s {
						u[c] = struct{}{}
					}
				}
			}
			sets = append(sets, u)
		}
	}
	for k, v := range f.Metadata {
		sets = append(sets, x.meta[metaKey(k, v)])
	}
	smallest := sets[0]
	for _, s := range sets[1:] {
		if len(s) < len(smallest) {
			smallest = s
		}
	}
	var out []cid.Cid
next:
	for c := range smallest {
		for _, s := range sets {
			if _, ok := s[c]; !ok {
				continue next
			}
		}
		out = append(out, c)
	}
	return out, true
}
