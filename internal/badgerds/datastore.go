package badgerds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/pincluster/pincluster/internal/gorun"
)

var (
	_ ds.Batching            = (*Datastore)(nil)
	_ ds.TxnDatastore        = (*Datastore)(nil)
	_ ds.PersistentDatastore = (*Datastore)(nil)
	_ ds.CheckedDatastore    = (*Datastore)(nil)
	_ ds.GCDatastore         = (*Datastore)(nil)
)

// Datastore is a go-datastore over badger/v4. It is safe for concurrent
// use. Create it with New; Close it when done.
type Datastore struct {
	db    *badger.DB
	path  string // "" for in-memory
	opts  Options
	group *gorun.Group

	// closeMu is held for reading by every operation while it runs and for
	// writing by Close, so Close waits for running operations and nothing
	// touches badger after it is closed.
	closeMu sync.RWMutex
	closed  bool

	// live holds the open queries, transactions and batches, aborted by
	// Close so that badger is never closed under them.
	liveMu sync.Mutex
	live   map[aborter]struct{}
}

// aborter is an open query, transaction or batch. abort releases its badger
// resources; it is called by Close with closeMu held for writing.
type aborter interface{ abort() }

// New opens a badger datastore in the directory path, creating it if
// needed, or an in-memory one if path is "". opts may be nil for the
// defaults documented on Options. The value-log GC loop starts for an
// on-disk datastore unless Options.GCInterval is negative.
func New(path string, opts *Options) (*Datastore, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	bo, err := o.badgerOptions(path)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("badgerds: open %q: %w", path, err)
	}
	d := &Datastore{
		db:    db,
		path:  path,
		opts:  o,
		group: gorun.New(),
		live:  make(map[aborter]struct{}),
	}
	if path != "" && o.GCInterval > 0 {
		if err := d.group.Go(d.gcLoop); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("badgerds: start gc: %w", err)
		}
	}
	return d, nil
}

// DB returns the underlying badger database, for diagnostics and for
// operations this package does not wrap. Using it after Close is the
// caller's error.
func (d *Datastore) DB() *badger.DB { return d.db }

// enter takes the read side of closeMu and reports ErrClosed after Close.
// On success the caller must call d.closeMu.RUnlock.
func (d *Datastore) enter(op string) error {
	d.closeMu.RLock()
	if d.closed {
		d.closeMu.RUnlock()
		return fmt.Errorf("badgerds: %s: %w", op, ErrClosed)
	}
	return nil
}

func (d *Datastore) track(a aborter) {
	d.liveMu.Lock()
	d.live[a] = struct{}{}
	d.liveMu.Unlock()
}

func (d *Datastore) untrack(a aborter) {
	d.liveMu.Lock()
	delete(d.live, a)
	d.liveMu.Unlock()
}

// Get returns the value stored under key, or ds.ErrNotFound.
func (d *Datastore) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	if err := d.enter("get"); err != nil {
		return nil, err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(false)
	defer txn.Discard()
	return txnGet(txn, key)
}

// Has reports whether key is stored.
func (d *Datastore) Has(ctx context.Context, key ds.Key) (bool, error) {
	if err := d.enter("has"); err != nil {
		return false, err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(false)
	defer txn.Discard()
	return txnHas(txn, key)
}

// GetSize returns the exact size in bytes of the value stored under key, or
// -1 and ds.ErrNotFound.
func (d *Datastore) GetSize(ctx context.Context, key ds.Key) (int, error) {
	if err := d.enter("get size"); err != nil {
		return -1, err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(false)
	defer txn.Discard()
	return txnGetSize(txn, key)
}

// Put stores value under key. The value is copied.
func (d *Datastore) Put(ctx context.Context, key ds.Key, value []byte) error {
	if err := d.enter("put"); err != nil {
		return err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(true)
	defer txn.Discard()
	if err := txn.Set(key.Bytes(), clone(value)); err != nil {
		return fmt.Errorf("badgerds: put: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("badgerds: put: %w", err)
	}
	return nil
}

// Delete removes key. Deleting a missing key is not an error.
func (d *Datastore) Delete(ctx context.Context, key ds.Key) error {
	if err := d.enter("delete"); err != nil {
		return err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(true)
	defer txn.Discard()
	if err := txn.Delete(key.Bytes()); err != nil {
		return fmt.Errorf("badgerds: delete: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("badgerds: delete: %w", err)
	}
	return nil
}

// Query runs q over a read snapshot taken now. See the package
// documentation for what is served natively. The caller must Close the
// results unless it drains them.
func (d *Datastore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := d.enter("query"); err != nil {
		return nil, err
	}
	defer d.closeMu.RUnlock()
	txn := d.db.NewTransaction(false)
	return d.newQuery(ctx, q, txn, nil), nil
}

// Sync flushes badger's write-ahead and value logs to stable storage, for
// every prefix (badger cannot sync less). It is a no-op in memory.
func (d *Datastore) Sync(ctx context.Context, prefix ds.Key) error {
	if err := d.enter("sync"); err != nil {
		return err
	}
	defer d.closeMu.RUnlock()
	if err := d.db.Sync(); err != nil {
		return fmt.Errorf("badgerds: sync: %w", err)
	}
	return nil
}

// DiskUsage returns the bytes used by the files in the datastore's
// directory, or 0 in memory.
func (d *Datastore) DiskUsage(ctx context.Context) (uint64, error) {
	if err := d.enter("disk usage"); err != nil {
		return 0, err
	}
	defer d.closeMu.RUnlock()
	if d.path == "" {
		return 0, nil
	}
	var total uint64
	err := filepath.WalkDir(d.path, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			// A file removed by compaction while walking.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += uint64(info.Size())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("badgerds: disk usage: %w", err)
	}
	return total, nil
}

// Check verifies the checksums of every table (ds.CheckedDatastore).
func (d *Datastore) Check(ctx context.Context) error {
	if err := d.enter("check"); err != nil {
		return err
	}
	defer d.closeMu.RUnlock()
	if err := d.db.VerifyChecksum(); err != nil {
		return fmt.Errorf("badgerds: check: %w", err)
	}
	return nil
}

// CollectGarbage runs badger's value-log GC until it finds nothing more to
// rewrite or ctx is done (ds.GCDatastore). It is a no-op in memory.
func (d *Datastore) CollectGarbage(ctx context.Context) error {
	if err := d.enter("collect garbage"); err != nil {
		return err
	}
	defer d.closeMu.RUnlock()
	if d.path == "" {
		return nil
	}
	if _, err := d.runGC(ctx); err != nil {
		return fmt.Errorf("badgerds: collect garbage: %w", err)
	}
	return nil
}

// Close stops the GC loop, aborts open queries, transactions and batches,
// and closes badger. A second Close returns ErrClosed.
func (d *Datastore) Close() error {
	// Stop and wait for the GC loop before taking closeMu: the loop takes
	// closeMu for reading, so waiting for it while holding closeMu could
	// deadlock. A GC round in progress finishes first.
	if err := d.group.Close(context.Background()); err != nil {
		return fmt.Errorf("badgerds: close: %w", err)
	}
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return fmt.Errorf("badgerds: close: %w", ErrClosed)
	}
	d.closed = true
	d.liveMu.Lock()
	open := make([]aborter, 0, len(d.live))
	for a := range d.live {
		open = append(open, a)
	}
	clear(d.live)
	d.liveMu.Unlock()
	for _, a := range open {
		a.abort()
	}
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("badgerds: close: %w", err)
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// txnGet, txnHas and txnGetSize implement reads on a badger transaction.

func txnGet(txn *badger.Txn, key ds.Key) ([]byte, error) {
	item, err := txn.Get(key.Bytes())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ds.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("badgerds: get: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("badgerds: get: %w", err)
	}
	return v, nil
}

func txnHas(txn *badger.Txn, key ds.Key) (bool, error) {
	_, err := txn.Get(key.Bytes())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("badgerds: has: %w", err)
	}
	return true, nil
}

func txnGetSize(txn *badger.Txn, key ds.Key) (int, error) {
	item, err := txn.Get(key.Bytes())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return -1, ds.ErrNotFound
	}
	if err != nil {
		return -1, fmt.Errorf("badgerds: get size: %w", err)
	}
	// ValueSize is only approximate for values in the value log; reading
	// the value is exact and costs nothing for inline values.
	n := -1
	err = item.Value(func(v []byte) error {
		n = len(v)
		return nil
	})
	if err != nil {
		return -1, fmt.Errorf("badgerds: get size: %w", err)
	}
	return n, nil
}
