// Package optracker is pincluster's operation tracker engine: it queues,
// runs, retries and times out the pin and unpin operations a peer performs
// on its IPFS node. It knows nothing about the shared state or the IPFS
// connector; the owner (the root package's tracker) supplies two functions,
// Config.Pin and Config.Unpin, and computes each pin's public status from
// the shared state, the node's pinset and the operations reported here.
//
// # Operations
//
// The tracker holds at most one operation per CID. An operation is a pin or
// an unpin and moves through phases:
//
//	queued → in progress → done (removed from the tracker)
//	                     ↘ error ──(backoff elapses)──→ queued (retry)
//	                              ──(retries exhausted)→ stays in error until
//	                                 Recover, Cancel or a newer operation
//
// Rules:
//
//  1. Enqueue of the same type as the CID's current, unfinished operation
//     (queued, in progress or errored) is a no-op that returns the existing
//     operation. Use Recover to retry an errored one at once.
//  2. Enqueue of the other type supersedes the current operation: a queued
//     one is dropped, a running one has its context cancelled (cause
//     ErrSuperseded) and its result, even a late success, is discarded. The
//     new operation does not start before the superseded function has
//     returned, so "pin then unpin" never leaves the CID pinned and the two
//     functions never run at the same time for one CID.
//  3. Pins and unpins have separate queues and separate worker pools
//     (Config.PinConcurrency, Config.UnpinConcurrency). Within a queue,
//     operations with fewer failed attempts go first, then first queued
//     first served: a fresh pin overtakes every retry, so failing pins never
//     clog fresh ones. Recover gives an operation fresh priority.
//  4. A failed attempt is retried after BaseBackoff·2^(n-1) (n = failures so
//     far), capped at MaxBackoff, until MaxRetries retries have failed;
//     then the operation stays in the error phase, with its error, attempt
//     count and timestamps, until Recover, Cancel or a newer operation.
//  5. The timeouts count from the last progress report, not from the start:
//     the operation function receives a ProgressFunc and each call resets
//     the idle timer. After Config.PinTimeout (UnpinTimeout) without a
//     report the operation's context is cancelled and the attempt fails
//     with an error wrapping ErrTimeout. A large DAG that keeps arriving is
//     never killed; a stuck one is.
//  6. The number of queued operations that Enqueue admits is bounded by
//     Config.MaxQueue; beyond it Enqueue returns ErrQueueFull. Retries and
//     recoveries re-enter the queue without that check (they were admitted
//     once already).
//
// # Lifecycle
//
// New starts the worker and timer goroutines (through internal/gorun).
// Close cancels the operations in flight, waits until every goroutine the
// tracker started has returned, and makes Enqueue return ErrClosed. Reads
// (Get, All, Filter, Stats) keep working after Close.
//
// # Observing
//
// Get and the listings give snapshots (Op values). Config.OnFinish is
// called with the final snapshot each time an operation ends (done,
// cancelled, or failed with no retry left); Wait blocks on one CID's
// current operation. Stats gives queue lengths, operations in flight,
// errors, counters and attempt timings.
//
// # Listing
//
// All and Filter stream snapshots (Op values) as iterators. They copy at
// most a small chunk of operations under the lock at a time, so memory
// stays flat whatever the number of operations; the listing is weakly
// consistent (an operation present for the whole iteration is yielded
// exactly once; one added or removed meanwhile may or may not be).
//
// # Goroutines and time
//
// Every goroutine runs in a gorun.Group: one worker per unit of concurrency
// and one timer goroutine that owns retry backoffs and idle timeouts. The
// tracker reads time only through the time package, so tests run inside
// testing/synctest with a fake clock.
package optracker
