package pinsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// Datastore layout:
//
//	/requests/<requestid>  JSON of one pin request (record)
//
// Which cluster pins this service holds is not stored here: it is read
// from the pins themselves (their holder marks, see ownership.go). Stores
// of earlier versions also kept /owned/<cid> entries; they are dropped
// when the store is opened, and the pins they named are left to the
// cluster's other clients (never unpinned by this service).
var (
	requestsPrefix = ds.NewKey("/requests")
	legacyOwned    = ds.NewKey("/owned")
)

// record is one pin request, as stored.
type record struct {
	RequestID string            `json:"requestid"`
	User      string            `json:"user"`
	Cid       string            `json:"cid"`
	Name      string            `json:"name,omitempty"`
	Origins   []string          `json:"origins,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	Created   int64             `json:"created"` // Unix nanoseconds, unique

	cid cid.Cid
}

func (r *record) created() time.Time { return time.Unix(0, r.Created).UTC() }

// store keeps the pin requests in memory, indexed, and in the datastore.
type store struct {
	d ds.Batching

	mu     sync.RWMutex
	byID   map[string]*record
	byUser map[string][]*record // sorted by Created, ascending
	refs   map[cid.Cid]int      // requests per CID, all users
	last   int64                // last Created given out
}

func openStore(ctx context.Context, d ds.Batching) (*store, error) {
	s := &store{
		d:      d,
		byID:   make(map[string]*record),
		byUser: make(map[string][]*record),
		refs:   make(map[cid.Cid]int),
	}
	res, err := d.Query(ctx, dsq.Query{Prefix: requestsPrefix.String()})
	if err != nil {
		return nil, fmt.Errorf("pinsvc: load requests: %w", err)
	}
	for e := range res.Next() {
		if e.Error != nil {
			res.Close()
			return nil, fmt.Errorf("pinsvc: load requests: %w", e.Error)
		}
		var r record
		if err := json.Unmarshal(e.Value, &r); err != nil {
			res.Close()
			return nil, fmt.Errorf("pinsvc: load request %s: %w", e.Key, err)
		}
		if r.cid, err = cid.Decode(r.Cid); err != nil || r.RequestID == "" {
			res.Close()
			return nil, fmt.Errorf("pinsvc: load request %s: bad record", e.Key)
		}
		s.index(&r)
	}
	res.Close()
	for _, rs := range s.byUser {
		slices.SortFunc(rs, func(a, b *record) int { return cmpInt(a.Created, b.Created) })
	}
	if err := dropLegacyOwned(ctx, d); err != nil {
		return nil, err
	}
	return s, nil
}

// dropLegacyOwned deletes the /owned entries of earlier versions.
func dropLegacyOwned(ctx context.Context, d ds.Batching) error {
	res, err := d.Query(ctx, dsq.Query{Prefix: legacyOwned.String(), KeysOnly: true})
	if err != nil {
		return fmt.Errorf("pinsvc: load: %w", err)
	}
	var keys []ds.Key
	for e := range res.Next() {
		if e.Error != nil {
			res.Close()
			return fmt.Errorf("pinsvc: load: %w", e.Error)
		}
		keys = append(keys, ds.NewKey(e.Key))
	}
	res.Close()
	if len(keys) == 0 {
		return nil
	}
	b, err := d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("pinsvc: drop legacy entries: %w", err)
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return fmt.Errorf("pinsvc: drop legacy entries: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("pinsvc: drop legacy entries: %w", err)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// index adds r to the in-memory indexes (appending to its user's list).
func (s *store) index(r *record) {
	s.byID[r.RequestID] = r
	s.byUser[r.User] = append(s.byUser[r.User], r)
	s.refs[r.cid]++
	s.last = max(s.last, r.Created)
}

func (s *store) unindex(r *record) {
	delete(s.byID, r.RequestID)
	rs := s.byUser[r.User]
	i, found := slices.BinarySearchFunc(rs, r.Created, func(x *record, t int64) int { return cmpInt(x.Created, t) })
	if found {
		s.byUser[r.User] = slices.Delete(rs, i, i+1)
	}
	if len(s.byUser[r.User]) == 0 {
		delete(s.byUser, r.User)
	}
	if s.refs[r.cid]--; s.refs[r.cid] <= 0 {
		delete(s.refs, r.cid)
	}
}

// nextCreated returns a unique creation time: now, or 1 ns after the last
// one given out. Callers hold mu.
func (s *store) nextCreated(now time.Time) int64 {
	t := now.UnixNano()
	if t <= s.last {
		t = s.last + 1
	}
	s.last = t
	return t
}

func newRequestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func requestKey(id string) ds.Key { return requestsPrefix.ChildString(id) }

// put writes r and deletes remove (either may be nil) in one batch.
// Callers hold mu.
func (s *store) put(ctx context.Context, r *record, remove *record) error {
	b, err := s.d.Batch(ctx)
	if err != nil {
		return err
	}
	if r != nil {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(ctx, requestKey(r.RequestID), v); err != nil {
			return err
		}
	}
	if remove != nil {
		if err := b.Delete(ctx, requestKey(remove.RequestID)); err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

var errNoRequest = errors.New("pinsvc: no such request")

// get returns the request id of user.
func (s *store) get(user, id string) (*record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.byID[id]
	if !ok || r.User != user {
		return nil, errNoRequest
	}
	cp := *r
	return &cp, nil
}

// snapshot returns user's requests created in (after, before), newest
// first; zero bounds are open.
func (s *store) snapshot(user string, before, after time.Time) []*record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.byUser[user]
	hi := len(rs)
	if !before.IsZero() {
		hi, _ = slices.BinarySearchFunc(rs, before.UnixNano(), func(x *record, t int64) int { return cmpInt(x.Created, t) })
	}
	lo := 0
	if !after.IsZero() {
		var found bool
		lo, found = slices.BinarySearchFunc(rs, after.UnixNano(), func(x *record, t int64) int { return cmpInt(x.Created, t) })
		if found {
			lo++
		}
	}
	if lo >= hi {
		return nil
	}
	out := make([]*record, 0, hi-lo)
	for i := hi - 1; i >= lo; i-- {
		out = append(out, rs[i])
	}
	return out
}
