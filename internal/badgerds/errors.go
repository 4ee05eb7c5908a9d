package badgerds

import "errors"

var (
	// ErrClosed is returned by every method of Datastore, and of the
	// transactions, batches and query results it handed out, once Close
	// has been called. A second Close returns it too.
	ErrClosed = errors.New("badgerds: datastore closed")

	// ErrTxnDone is returned by the methods of a transaction after its
	// Commit or Discard.
	ErrTxnDone = errors.New("badgerds: transaction already committed or discarded")
)
