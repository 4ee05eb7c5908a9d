package badgerds

import (
	"context"
	"fmt"
	"sync"

	ds "github.com/ipfs/go-datastore"
)

var _ ds.Batch = (*batch)(nil)

// batch is a ds.Batch. Writes are buffered (values copied) until Commit,
// so nothing is visible before Commit, as go-datastore's suite requires.
// Commit writes them in order through a badger WriteBatch, which splits a
// large batch into several transactions: a batch is not atomic, and a
// concurrent reader may see part of it while Commit runs. After Commit the
// batch may be used again.
type batch struct {
	d *Datastore

	mu  sync.Mutex
	ops []batchOp
}

type batchOp struct {
	key    []byte
	value  []byte
	delete bool
}

// Batch returns a new write batch (ds.Batching).
func (d *Datastore) Batch(ctx context.Context) (ds.Batch, error) {
	if err := d.enter("batch"); err != nil {
		return nil, err
	}
	defer d.closeMu.RUnlock()
	return &batch{d: d}, nil
}

func (b *batch) add(op string, o batchOp) error {
	if err := b.d.enter(op); err != nil {
		return err
	}
	defer b.d.closeMu.RUnlock()
	b.mu.Lock()
	b.ops = append(b.ops, o)
	b.mu.Unlock()
	return nil
}

// Put adds key = value (copied) to the batch.
func (b *batch) Put(ctx context.Context, key ds.Key, value []byte) error {
	return b.add("batch put", batchOp{key: key.Bytes(), value: clone(value)})
}

// Delete adds the removal of key to the batch.
func (b *batch) Delete(ctx context.Context, key ds.Key) error {
	return b.add("batch delete", batchOp{key: key.Bytes(), delete: true})
}

// Commit writes the batch and waits until it is applied.
func (b *batch) Commit(ctx context.Context) error {
	if err := b.d.enter("batch commit"); err != nil {
		return err
	}
	defer b.d.closeMu.RUnlock()
	b.mu.Lock()
	ops := b.ops
	b.ops = nil
	b.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	wb := b.d.db.NewWriteBatch()
	defer wb.Cancel()
	for i, o := range ops {
		var err error
		if o.delete {
			err = wb.Delete(o.key)
		} else {
			err = wb.Set(o.key, o.value)
		}
		if err != nil {
			return fmt.Errorf("badgerds: batch commit: %w", err)
		}
		ops[i] = batchOp{} // let written values be collected early
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("badgerds: batch commit: %w", err)
	}
	return nil
}
