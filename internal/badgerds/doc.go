// Package badgerds is a go-datastore (github.com/ipfs/go-datastore) over
// badger/v4, used by pincluster to keep the shared state and the CRDT's
// blocks and heads on disk (or in memory).
//
// # Quick start
//
//	d, err := badgerds.New(dir, nil) // dir "" = in-memory badger
//	if err != nil { ... }
//	defer d.Close()
//	err = d.Put(ctx, ds.NewKey("/pins/x"), value)
//	res, err := d.Query(ctx, dsq.Query{Prefix: "/pins"})
//	defer res.Close()
//	for r := range res.Next() { ... }
//
// # What it implements
//
// A *Datastore is a ds.Batching, ds.TxnDatastore, ds.PersistentDatastore
// (DiskUsage), ds.CheckedDatastore (Check verifies table checksums) and
// ds.GCDatastore (CollectGarbage runs badger's value-log GC). Keys are stored
// as the bytes of ds.Key.String(), so badger's iteration order is the order
// of dsq.OrderByKey.
//
// # Queries
//
// Queries stream: results come from a badger iterator inside a read
// transaction that lives until the results are exhausted or closed, so a
// listing of a million keys never holds them all in memory. The prefix is
// iterated natively (cleaned exactly as dsq.NaiveQueryApply cleans it), a
// leading OrderByKey or OrderByKeyDescending is served by badger's own order,
// and filters, offset and limit are applied while iterating. Only other
// orders (by value, by custom comparators) fall back to dsq.NaiveOrder, which
// has to collect every matching entry to sort them. KeysOnly never reads
// values; ReturnsSizes with KeysOnly reports item.ValueSize(), which is exact
// for values stored inline in the LSM tree (on disk, values up to
// DefaultValueThreshold, 1 KiB; in memory, all) and approximate above it.
//
// Callers must Close every dsq.Results they do not drain: an open result
// keeps a badger read transaction (and thus old versions) alive.
//
// # Limits
//
// Keys are at most 65,000 bytes. An in-memory datastore has no value log, so
// a value may be at most 1 MiB there; on disk, values above 1 KiB go to the
// value log (up to 1 GiB each). One transaction may hold at most about 15% of
// Options.MemTableSize of writes (badger.ErrTxnTooBig beyond).
//
// # Durability
//
// With SyncWrites false (the default) a returned Put survives a crash of the
// process (it is in badger's memory-mapped write-ahead log) but not a power
// loss; call Sync to flush the logs to stable storage. With SyncWrites true
// every write is fsynced before it returns, at a large cost in throughput.
//
// # Lifecycle
//
// Close stops the value-log GC goroutine, aborts open queries, transactions
// and batches, and closes badger. Every method called afterwards returns
// ErrClosed (a second Close too); nothing panics.
package badgerds
