package pincluster

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// memStore is the in-memory datastore behind NewMemoryState: a map under a
// read-write lock, and the same keys in an ordered set (a B-tree), so that
// a query with a prefix visits only the keys under it (a CRDT replica asks
// for the few elements of one key while holding every key of the pinset).
// Unlike go-datastore's map datastore, a query does not copy the values of
// every entry up front: it snapshots the matching keys (which share their
// bytes with the map) and reads values in chunks as the caller iterates,
// so listing a large pinset adds only the key slice to memory. Batches are
// applied under one lock.
type memStore struct {
	mu     sync.RWMutex
	values map[string][]byte
	keys   *btree.BTreeG[string] // the keys of values, in order
}

var _ ds.Batching = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{values: make(map[string][]byte), keys: btree.NewOrderedG[string](32)}
}

// setLocked stores v under k. The caller holds mu for writing.
func (m *memStore) setLocked(k string, v []byte) {
	if _, ok := m.values[k]; !ok {
		m.keys.ReplaceOrInsert(k)
	}
	m.values[k] = v
}

// deleteLocked removes k. The caller holds mu for writing.
func (m *memStore) deleteLocked(k string) {
	if _, ok := m.values[k]; ok {
		delete(m.values, k)
		m.keys.Delete(k)
	}
}

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
	m.setLocked(k.String(), v)
	m.mu.Unlock()
	return nil
}

// Delete implements ds.Write.
func (m *memStore) Delete(_ context.Context, k ds.Key) error {
	m.mu.Lock()
	m.deleteLocked(k.String())
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
// stream. Results come in key order.
func (m *memStore) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	// Clean the prefix as go-datastore's NaiveQueryApply does.
	prefix := path.Clean("/" + q.Prefix)
	if prefix == "/" {
		prefix = ""
	} else {
		prefix += "/"
	}
	var keys []string
	m.mu.RLock()
	m.keys.AscendGreaterOrEqual(prefix, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		keys = append(keys, k)
		return true
	})
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
			b.m.deleteLocked(op.key)
		} else {
			b.m.setLocked(op.key, op.value)
		}
	}
	b.m.mu.Unlock()
	b.ops = b.ops[:0]
	return nil
}
