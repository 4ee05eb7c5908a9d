package badgerds

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	dsq "github.com/ipfs/go-datastore/query"
)

// query is one open dsq.Results over a badger iterator. All fields after
// mu are guarded by *mu (the query's own mutex, or its transaction's).
type query struct {
	d       *Datastore
	ctx     context.Context
	q       dsq.Query // filters, keysOnly etc.: what is applied natively
	native  bool      // offset and limit applied here
	prefix  []byte
	upper   []byte // reverse only: prefix with its last byte incremented
	reverse bool

	mu      *sync.Mutex
	txn     *badger.Txn
	ownTxn  bool   // discard txn when done
	untrack func() // called with mu held when the query ends

	it       *badger.Iterator
	started  bool
	finished bool  // no more results; resources released
	err      error // reported once by next after an abort
	skipped  int
	sent     int
}

// results wraps the streaming results so that Query() reports the caller's
// query rather than the residual one given to dsq.NaiveQueryApply.
type results struct {
	dsq.Results
	q dsq.Query
}

func (r results) Query() dsq.Query { return r.q }

// cleanPrefix cleans a query prefix exactly as dsq.NaiveQueryApply does and
// returns the byte prefix every matching key starts with ("" for all keys).
func cleanPrefix(p string) string {
	if p == "" {
		return ""
	}
	if p[0] != '/' {
		p = "/" + p
	}
	p = path.Clean(p)
	if p == "/" {
		return ""
	}
	return p + "/"
}

// newQuery starts a query over txn. With owner nil the query owns txn
// (discards it when done) and is tracked by d; otherwise it runs inside
// owner, is guarded by owner's mutex and tracked by owner. The caller holds
// d.closeMu for reading (and, for an owner, owner.mu).
func (d *Datastore) newQuery(ctx context.Context, q dsq.Query, txn *badger.Txn, owner *Txn) dsq.Results {
	orders := q.Orders
	reverse := false
	if len(orders) > 0 {
		// Keys are unique, so orders after a key order never apply.
		switch orders[0].(type) {
		case dsq.OrderByKey, *dsq.OrderByKey:
			orders = nil
		case dsq.OrderByKeyDescending, *dsq.OrderByKeyDescending:
			orders = nil
			reverse = true
		}
	}
	qr := &query{
		d:       d,
		ctx:     ctx,
		q:       q,
		native:  len(orders) == 0,
		prefix:  []byte(cleanPrefix(q.Prefix)),
		reverse: reverse,
		txn:     txn,
	}
	if reverse && len(qr.prefix) > 0 {
		qr.upper = bytes.Clone(qr.prefix)
		qr.upper[len(qr.upper)-1]++ // the prefix ends in '/', never 0xff
	}
	if owner == nil {
		qr.mu = new(sync.Mutex)
		qr.ownTxn = true
		qr.untrack = func() { d.untrack(qr) }
		d.track(qr)
	} else {
		qr.mu = &owner.mu
		qr.untrack = func() { delete(owner.queries, qr) }
		owner.queries[qr] = struct{}{}
	}
	itPrefix := qr.prefix
	if reverse {
		// Badger's reverse iteration starts from a seek past the
		// prefix range; the range is checked in valid instead.
		itPrefix = nil
	}
	qr.it = txn.NewIterator(badger.IteratorOptions{
		Prefix:  itPrefix,
		Reverse: reverse,
		// Prefetching values starts a goroutine per item; values are
		// read on demand instead.
		PrefetchValues: false,
	})

	res := dsq.ResultsFromIterator(q, dsq.Iterator{Next: qr.next, Close: qr.close})
	if qr.native {
		return res
	}
	rest := dsq.Query{Orders: orders, Offset: q.Offset, Limit: q.Limit}
	return results{Results: dsq.NaiveQueryApply(rest, res), q: q}
}

// next returns the next matching entry. It is called by one goroutine at a
// time (dsq's collector), possibly concurrently with close.
func (qr *query) next() (dsq.Result, bool) {
	qr.d.closeMu.RLock()
	defer qr.d.closeMu.RUnlock()
	qr.mu.Lock()
	defer qr.mu.Unlock()
	if qr.err != nil {
		err := qr.err
		qr.err = nil
		return dsq.Result{Error: err}, true
	}
	if qr.finished {
		return dsq.Result{}, false
	}
	if qr.d.closed {
		// Close aborted us; report it (abort set err, but be safe).
		qr.releaseLocked()
		return dsq.Result{Error: fmt.Errorf("badgerds: query: %w", ErrClosed)}, true
	}
	if qr.native && qr.q.Limit > 0 && qr.sent >= qr.q.Limit {
		qr.releaseLocked()
		return dsq.Result{}, false
	}
	for {
		if err := qr.ctx.Err(); err != nil {
			qr.releaseLocked()
			return dsq.Result{Error: fmt.Errorf("badgerds: query: %w", err)}, true
		}
		qr.advance()
		if !qr.valid() {
			qr.releaseLocked()
			return dsq.Result{}, false
		}
		e, err := qr.entry(qr.it.Item())
		if err != nil {
			qr.releaseLocked()
			return dsq.Result{Error: err}, true
		}
		if !qr.match(e) {
			continue
		}
		if qr.native && qr.skipped < qr.q.Offset {
			qr.skipped++
			continue
		}
		qr.sent++
		return dsq.Result{Entry: e}, true
	}
}

// advance moves the iterator to the next candidate item.
func (qr *query) advance() {
	if qr.started {
		qr.it.Next()
		return
	}
	qr.started = true
	if !qr.reverse || qr.upper == nil {
		qr.it.Rewind()
		return
	}
	// Reverse with a prefix: seek to the first key after the prefix range
	// (largest key <= upper). The only key outside the range that can be
	// found there is upper itself.
	qr.it.Seek(qr.upper)
	if qr.it.Valid() && bytes.Equal(qr.it.Item().Key(), qr.upper) {
		qr.it.Next()
	}
}

// valid reports whether the iterator is on a key of the query's range.
func (qr *query) valid() bool {
	if !qr.it.Valid() {
		return false
	}
	return !qr.reverse || bytes.HasPrefix(qr.it.Item().Key(), qr.prefix)
}

func (qr *query) entry(item *badger.Item) (dsq.Entry, error) {
	e := dsq.Entry{Key: string(item.Key())}
	switch {
	case !qr.q.KeysOnly:
		v, err := item.ValueCopy(nil)
		if err != nil {
			return e, fmt.Errorf("badgerds: query: read %q: %w", e.Key, err)
		}
		e.Value = v
		e.Size = len(v)
	default:
		// Free to compute, so set even without ReturnsSizes, as
		// ds.MapDatastore does.
		e.Size = int(item.ValueSize())
	}
	return e, nil
}

func (qr *query) match(e dsq.Entry) bool {
	for _, f := range qr.q.Filters {
		if !f.Filter(e) {
			return false
		}
	}
	return true
}

// close is the dsq.Iterator's Close; it may be called more than once.
func (qr *query) close() error {
	qr.mu.Lock()
	defer qr.mu.Unlock()
	qr.releaseLocked()
	return nil
}

// abort is called by Datastore.Close.
func (qr *query) abort() {
	qr.mu.Lock()
	defer qr.mu.Unlock()
	qr.abortLocked(fmt.Errorf("badgerds: query: %w", ErrClosed))
}

// abortLocked ends the query; next reports err once if it had not finished.
func (qr *query) abortLocked(err error) {
	if !qr.finished {
		qr.err = err
	}
	qr.releaseLocked()
}

// releaseLocked closes the iterator (and the transaction if owned).
func (qr *query) releaseLocked() {
	if qr.finished {
		return
	}
	qr.finished = true
	qr.it.Close()
	if qr.ownTxn {
		qr.txn.Discard()
	}
	qr.untrack()
}
