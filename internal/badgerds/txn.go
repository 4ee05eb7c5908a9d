package badgerds

import (
	"context"
	"fmt"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

var _ ds.Txn = (*Txn)(nil)

// Txn is a badger transaction as a ds.Txn. Reads see a snapshot taken when
// it began plus its own writes. A read-write Txn fails Commit with an error
// wrapping badger.ErrConflict if a key it read was written meanwhile, and
// Put/Delete fail with badger.ErrTxnTooBig once it outgrows about 15% of
// Options.MemTableSize. A Txn is safe for concurrent use, but badger allows
// a read-write transaction only one open query result at a time in
// practice: keep queries short. Queries still open at Commit or Discard are
// ended (their next result is an error wrapping ErrTxnDone).
type Txn struct {
	d        *Datastore
	readOnly bool

	mu      sync.Mutex
	txn     *badger.Txn
	done    bool
	queries map[*query]struct{}
}

// NewTransaction begins a transaction (ds.TxnDatastore). Discard it (or
// Commit it) when done: an open transaction pins old versions in badger.
func (d *Datastore) NewTransaction(ctx context.Context, readOnly bool) (ds.Txn, error) {
	if err := d.enter("new transaction"); err != nil {
		return nil, err
	}
	defer d.closeMu.RUnlock()
	t := &Txn{
		d:        d,
		readOnly: readOnly,
		txn:      d.db.NewTransaction(!readOnly),
		queries:  make(map[*query]struct{}),
	}
	d.track(t)
	return t, nil
}

// enter locks the datastore for reading and the transaction; the caller
// must call t.leave.
func (t *Txn) enter(op string) error {
	if err := t.d.enter(op); err != nil {
		return err
	}
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		t.d.closeMu.RUnlock()
		return fmt.Errorf("badgerds: %s: %w", op, ErrTxnDone)
	}
	return nil
}

func (t *Txn) leave() {
	t.mu.Unlock()
	t.d.closeMu.RUnlock()
}

// Get returns the value of key in the transaction, or ds.ErrNotFound.
func (t *Txn) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	if err := t.enter("get"); err != nil {
		return nil, err
	}
	defer t.leave()
	return txnGet(t.txn, key)
}

// Has reports whether key exists in the transaction.
func (t *Txn) Has(ctx context.Context, key ds.Key) (bool, error) {
	if err := t.enter("has"); err != nil {
		return false, err
	}
	defer t.leave()
	return txnHas(t.txn, key)
}

// GetSize returns the size of key's value in the transaction, or -1 and
// ds.ErrNotFound.
func (t *Txn) GetSize(ctx context.Context, key ds.Key) (int, error) {
	if err := t.enter("get size"); err != nil {
		return -1, err
	}
	defer t.leave()
	return txnGetSize(t.txn, key)
}

// Query runs q inside the transaction; see Datastore.Query.
func (t *Txn) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := t.enter("query"); err != nil {
		return nil, err
	}
	defer t.leave()
	return t.d.newQuery(ctx, q, t.txn, t), nil
}

// Put records key = value (copied) in the transaction.
func (t *Txn) Put(ctx context.Context, key ds.Key, value []byte) error {
	if err := t.enter("put"); err != nil {
		return err
	}
	defer t.leave()
	if err := t.txn.Set(key.Bytes(), clone(value)); err != nil {
		return fmt.Errorf("badgerds: txn put: %w", err)
	}
	return nil
}

// Delete records the removal of key in the transaction.
func (t *Txn) Delete(ctx context.Context, key ds.Key) error {
	if err := t.enter("delete"); err != nil {
		return err
	}
	defer t.leave()
	if err := t.txn.Delete(key.Bytes()); err != nil {
		return fmt.Errorf("badgerds: txn delete: %w", err)
	}
	return nil
}

// Commit applies the transaction's writes atomically. Committing a
// read-only transaction just ends it.
func (t *Txn) Commit(ctx context.Context) error {
	if err := t.enter("commit"); err != nil {
		return err
	}
	defer t.leave()
	t.endQueriesLocked()
	t.done = true
	t.d.untrack(t)
	if t.readOnly {
		t.txn.Discard()
		return nil
	}
	if err := t.txn.Commit(); err != nil {
		return fmt.Errorf("badgerds: commit: %w", err)
	}
	return nil
}

// Discard drops the transaction's writes. It is safe after Commit, after
// another Discard and after the datastore's Close.
func (t *Txn) Discard(ctx context.Context) {
	if err := t.enter("discard"); err != nil {
		return
	}
	defer t.leave()
	t.abortLocked(ErrTxnDone)
}

// abort is called by Datastore.Close.
func (t *Txn) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.done {
		t.abortLocked(ErrClosed)
	}
}

func (t *Txn) abortLocked(cause error) {
	for q := range t.queries {
		q.abortLocked(fmt.Errorf("badgerds: query: %w", cause))
	}
	t.done = true
	t.txn.Discard()
	t.d.untrack(t)
}

func (t *Txn) endQueriesLocked() {
	for q := range t.queries {
		q.abortLocked(fmt.Errorf("badgerds: query: %w", ErrTxnDone))
	}
}
