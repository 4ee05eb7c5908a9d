package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/fxamacker/cbor/v2"
)

// logStore is a raft.LogStore and raft.StableStore over a go-datastore.
// Log entries live under /log/<16 hex digits of the index> (so key order is
// index order), stable values under /stable/<key>. The first and last
// indexes are cached after one scan at open.
type logStore struct {
	d ds.Batching

	mu          sync.Mutex
	first, last uint64
}

var (
	_ hraft.LogStore    = (*logStore)(nil)
	_ hraft.StableStore = (*logStore)(nil)

	errKeyNotFound = errors.New("not found") // raft.StableStore contract: Get of a missing key
)

type logWire struct {
	Index      uint64 `cbor:"1,keyasint"`
	Term       uint64 `cbor:"2,keyasint"`
	Type       uint8  `cbor:"3,keyasint"`
	Data       []byte `cbor:"4,keyasint,omitempty"`
	Extensions []byte `cbor:"5,keyasint,omitempty"`
	AppendedAt int64  `cbor:"6,keyasint,omitempty"`
}

func logKey(i uint64) ds.Key { return ds.RawKey(fmt.Sprintf("/log/%016x", i)) }

func newLogStore(ctx context.Context, d ds.Batching) (*logStore, error) {
	s := &logStore{d: d}
	first, err := s.edge(ctx, dsq.OrderByKey{})
	if err != nil {
		return nil, err
	}
	last, err := s.edge(ctx, dsq.OrderByKeyDescending{})
	if err != nil {
		return nil, err
	}
	s.first, s.last = first, last
	return s, nil
}

// edge returns the index of the first key in the given order, 0 if none.
func (s *logStore) edge(ctx context.Context, order dsq.Order) (uint64, error) {
	res, err := s.d.Query(ctx, dsq.Query{Prefix: "/log", KeysOnly: true, Orders: []dsq.Order{order}, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("raft: log store scan: %w", err)
	}
	defer res.Close()
	r, ok := res.NextSync()
	if !ok {
		return 0, nil
	}
	if r.Error != nil {
		return 0, fmt.Errorf("raft: log store scan: %w", r.Error)
	}
	var i uint64
	if _, err := fmt.Sscanf(r.Key, "/log/%x", &i); err != nil {
		return 0, fmt.Errorf("raft: log store: bad key %q", r.Key)
	}
	return i, nil
}

func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

func (s *logStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

func (s *logStore) GetLog(index uint64, l *hraft.Log) error {
	b, err := s.d.Get(context.Background(), logKey(index))
	if errors.Is(err, ds.ErrNotFound) {
		return hraft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raft: get log %d: %w", index, err)
	}
	var w logWire
	if err := cbor.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("raft: corrupt log %d: %w", index, err)
	}
	*l = hraft.Log{Index: w.Index, Term: w.Term, Type: hraft.LogType(w.Type), Data: w.Data, Extensions: w.Extensions}
	if w.AppendedAt != 0 {
		l.AppendedAt = time.Unix(0, w.AppendedAt)
	}
	return nil
}

func (s *logStore) StoreLog(l *hraft.Log) error { return s.StoreLogs([]*hraft.Log{l}) }

func (s *logStore) StoreLogs(logs []*hraft.Log) error {
	ctx := context.Background()
	b, err := s.d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("raft: store logs: %w", err)
	}
	for _, l := range logs {
		w := logWire{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data, Extensions: l.Extensions}
		if !l.AppendedAt.IsZero() {
			w.AppendedAt = l.AppendedAt.UnixNano()
		}
		v, err := cborEnc.Marshal(&w)
		if err != nil {
			return fmt.Errorf("raft: encode log %d: %w", l.Index, err)
		}
		if err := b.Put(ctx, logKey(l.Index), v); err != nil {
			return fmt.Errorf("raft: store log %d: %w", l.Index, err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("raft: store logs: %w", err)
	}
	if err := s.d.Sync(ctx, ds.NewKey("/log")); err != nil {
		return fmt.Errorf("raft: sync logs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range logs {
		if s.first == 0 || l.Index < s.first {
			s.first = l.Index
		}
		if l.Index > s.last {
			s.last = l.Index
		}
	}
	return nil
}

func (s *logStore) DeleteRange(min, max uint64) error {
	ctx := context.Background()
	b, err := s.d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("raft: delete logs: %w", err)
	}
	for i := min; i <= max; i++ {
		if err := b.Delete(ctx, logKey(i)); err != nil {
			return fmt.Errorf("raft: delete log %d: %w", i, err)
		}
		if i == max { // guard against max == MaxUint64 wrapping
			break
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("raft: delete logs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if min <= s.first && max >= s.last {
		s.first, s.last = 0, 0
	} else if min <= s.first {
		s.first = max + 1
	} else if max >= s.last {
		s.last = min - 1
	}
	return nil
}

func stableKey(k []byte) ds.Key {
	return ds.RawKey(fmt.Sprintf("/stable/%x", k))
}

func (s *logStore) Set(k, v []byte) error {
	ctx := context.Background()
	if err := s.d.Put(ctx, stableKey(k), v); err != nil {
		return fmt.Errorf("raft: stable set: %w", err)
	}
	if err := s.d.Sync(ctx, stableKey(k)); err != nil {
		return fmt.Errorf("raft: stable sync: %w", err)
	}
	return nil
}

func (s *logStore) Get(k []byte) ([]byte, error) {
	v, err := s.d.Get(context.Background(), stableKey(k))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, errKeyNotFound
	}
	return v, err
}

func (s *logStore) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

func (s *logStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if errors.Is(err, errKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft: stable value of %q has %d bytes", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

var cborEnc, _ = cbor.CoreDetEncOptions().EncMode()
