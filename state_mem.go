package pincluster

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// memStore is the in-memory datastore behind NewMemoryState: a map under a
// read-write lock. Unlike go-datastore's map datastore, a query does not
// copy the values of every entry up front: it snapshots the matching keys
// (which share their bytes with the map) and reads values in chunks as the
// caller iterates, so listing a large pinset adds only the key slice to
// memory. Batches are applied under one lock.
type memStore struct {
	mu     sync.RWMutex
	values map[string][]byte
}

var _ ds.Batching = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{values: make(map[string][]byte)} }

// Get implements ds.Read.
func (m *memStore) Get(_ context.Context, k ds.Key) ([]byte, error) {
	m.mu.RLock()
	v, ok := m.values[k.String()]
	m.mu.RUnlock()
	if !ok {
		return nil, ds.ErrNotFound
	}
	return slices.Clone(v), nil
}

// Has implements ds.Read.
func (m *memStore) Has(_ context.Context, k ds.Key) (bool, error) {
	m.mu.RLock()
	_, ok := m.values[k.String()]
	m.mu.RUnlock()
	return ok, nil
}

// GetSize implements ds.Read.
func (m *memStore) GetSize(_ context.Context, k ds.Key) (int, error) {
	m.mu.RLock()
	v, ok := m.values[k.String()]
	m.mu.RUnlock()
	if !ok {
		return -1, ds.ErrNotFound
	}
	return len(v), nil
}

// Put implements ds.Write; the value is copied.
func (m *memStore) Put(_ context.Context, k ds.Key, v []byte) error {
	v = slices.Clone(v)
	m.mu.Lock()
	m.values[k.String()] = v
	m.mu.Unlock()
	return nil
}

// Delete implements ds.Write.
func (m *memStore) Delete(_ context.Context, k ds.Key) error {
	m.mu.Lock()
	delete(m.values, k.String())
	m.mu.Unlock()
	return nil
}

// Sync implements ds.Datastore: nothing to flush.
func (m *memStore) Sync(context.Context, ds.Key) error { return nil }

// Close implements io.Closer.
func (m *memStore) Close() error { return nil }

// memChunk is how many values a query reads under one read lock.
const memChunk = 256

// Query implements ds.Read. Prefix and KeysOnly are handled natively;
// orders, filters, offset and limit are applied by go-datastore over the
// stream. Without an order, results come in no particular order.
func (m *memStore) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	// Clean the prefix as go-datastore's NaiveQueryApply does.
	prefix := path.Clean("/" + q.Prefix)
	if prefix == "/" {
		prefix = ""
	} else {
		prefix += "/"
	}
	m.mu.RLock()
	keys := make([]string, 0, len(m.values)/4+1)
	for k := range m.values {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()

	next := 0
	var buf []dsq.Entry
	it := dsq.Iterator{
		Next: func() (dsq.Result, bool) {
			for len(buf) == 0 {
				if next >= len(keys) {
					return dsq.Result{}, false
				}
				end := min(next+memChunk, len(keys))
				m.mu.RLock()
				for _, k := range keys[next:end] {
					v, ok := m.values[k]
					if !ok {
						continue // deleted since the snapshot
					}
					e := dsq.Entry{Key: k, Size: len(v)}
					if !q.KeysOnly {
						e.Value = slices.Clone(v)
					}
					buf = append(buf, e)
				}
				m.mu.RUnlock()
				next = end
			}
			e := buf[0]
			buf = buf[1:]
			return dsq.Result{Entry: e}, true
		},
	}
	return dsq.NaiveQueryApply(q, dsq.ResultsFromIterator(q, it)), nil
}

// Batch implements ds.Batching.
func (m *memStore) Batch(context.Context) (ds.Batch, error) { return &memBatch{m: m}, nil }

type memOp struct {
	key    string
	value  []byte
	delete bool
}

// memBatch records operations and applies them under one lock on Commit;
// it may be reused after Commit.
type memBatch struct {
	m   *memStore
	ops []memOp
}

func (b *memBatch) Put(_ context.Context, k ds.Key, v []byte) error {
	b.ops = append(b.ops, memOp{key: k.String(), value: slices.Clone(v)})
	return nil
}

func (b *memBatch) Delete(_ context.Context, k ds.Key) error {
	b.ops = append(b.ops, memOp{key: k.String(), delete: true})
	return nil
}

func (b *memBatch) Commit(context.Context) error {
	b.m.mu.Lock()
	for _, op := range b.ops {
		if op.delete {
			delete(b.m.values, op.key)
		} else {
			b.m.values[op.key] = op.value
		}
	}
	b.m.mu.Unlock()
	b.ops = b.ops[:0]
	return nil
}
