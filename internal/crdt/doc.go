// Package crdt is a leaderless replicated key-value store: a go-datastore
// (ds.Batching) whose writes become deltas of a Merkle-CRDT (Sanjuan et
// al., "Merkle-CRDTs", 2020). Each delta is a dag-cbor IPLD block that
// links to the heads it supersedes; replicas announce their heads through
// a Broadcaster, fetch unknown blocks through a DAG, and apply them.
//
// # Semantics
//
// Each key is an add-wins observed-remove set of elements:
//
//  1. A Put of key k in delta D adds the element (k, id=CID(D),
//     priority(D), value) and removes every element of k the writer had
//     observed (was live in its replica).
//  2. A Delete of k removes every element of k the writer had observed.
//     Deleting a key with no live element writes nothing.
//  3. A removed element stays removed (tombstones are kept), whatever the
//     order in which the deltas arrive; an element concurrent with a
//     remove (not observed by it) survives: adds win.
//  4. The visible value of k is that of its live element with the highest
//     priority; ties are broken by the larger value bytes
//     (bytes.Compare), then by the larger element id bytes.
//  5. The priority of a delta is its height in the DAG: 1 + the highest
//     priority among the heads it links to (1 for a first delta).
//
// Applying a delta is idempotent and commutative, so every replica that
// has applied the same set of deltas returns the same value for every key,
// whatever the order or duplication of delivery (TestPropertyOrderIndependence
// checks this against a model evaluated on the DAG). Deltas are applied
// as soon as they are fetched: a missing block delays only its own
// ancestors, never the rest.
//
// # Writes
//
// Put, Delete and Batch.Commit return only once the delta is stored in the
// DAG, applied and the store synced. Writes are grouped adaptively (group
// commit): on an idle store a write is committed at once; writes arriving
// while a commit is in flight are committed together by the next one, up
// to Config.MaxBatchSize operations (Config.MaxBatchAge adds an optional
// wait). An explicit Batch commits as one delta, or several when it
// exceeds MaxBatchSize or MaxBlockSize (then not atomically). A local
// delta links to all current heads (at most MaxLinks, highest first).
//
// # Replication
//
// After every local commit and every RebroadcastInterval (and right after
// New) the heads are broadcast. Periodic rebroadcast heals lost messages
// and is also how a newly connected peer learns the heads: no separate
// exchange on connect. A receiver queues each unknown head (in memory
// only: a head lost to a crash or a full queue is announced again by the
// next rebroadcast) and a pool of NumWorkers workers fetches it
// (DAGSyncerTimeout per fetch), checks it, applies it, and journals, in the
// same batch, its links that are neither processed nor pending; so a walk
// goes down to known history with memory bounded by the width of the
// frontier, not the depth. A node whose fetch fails is
// retried with exponential backoff (RetryMinBackoff..RetryMaxBackoff) and
// reported in Stats.Stuck; other nodes keep being processed.
//
// Checks on received data: a broadcast with more than MaxHeadsPerBroadcast
// heads or malformed is ignored (Stats.IgnoredBroadcasts). A block larger
// than MaxBlockSize, not decodable, with more than MaxLinks links, a key
// or value over the limits, duplicate keys or links, or a bad priority is
// rejected (Stats.RejectedNodes, a log line) and not walked further.
// Priority rules: without links it must be 1; it must be below the
// priority of the node that linked to it; above every linked node already
// known, and exactly 1 + the highest when all are known; and a head
// (announced, not linked) may not exceed the local height by more than
// MaxPriorityJump. Blocks whose bytes do not hash to their CID are retried.
//
// # Crash safety and repair
//
// Each node is applied in one batch of the underlying datastore, together
// with its journal bookkeeping, so a crash leaves either all or nothing of
// it. While the journal is not empty a dirty marker is set. On New, a
// non-empty journal means interrupted walks: they resume from it; only
// the nodes still in the journal are fetched again.
//
// # On-disk layout
//
// Inside the datastore given to New (the owner picks its namespace):
//
//	/v<key>            visible value of key (what Get and Query read)
//	/s/w/<ek>          key record: uvarint flags (1 = has a winner, 2 = has
//	                   tombstones) [++ uvarint winner priority ++ winner id (CID bytes)]
//	/s/e/<ek>/<id>     live element: uvarint priority ++ value
//	/s/t/<ek>/<id>     tombstone of an element id (empty value)
//	/h/<cid>           head: uvarint priority
//	/b/<cid>           processed DAG node: uvarint priority
//	/c/<cid>           "a processed node links to cid" (empty)
//	/q/<cid>           journal: linked node still to fetch; uvarint priority
//	                   of the node that linked to it
//	/m/dirty           present while the journal is not empty
//	/m/nodes           uvarint count of processed nodes
//
// <ek> is the key in unpadded base64url; <cid> and <id> are CID strings.
// The heads are the processed nodes with no processed child. Blocks are
// not stored here but in the DAG.
//
// # Wire format
//
// A delta block is dag-cbor (CIDv1, codec 0x71, sha2-256), a map:
//
//	{
//	  "a": [[key: string, value: bytes], ...]   puts, sorted by key
//	  "l": [link, ...]                          superseded heads (tag 42), sorted
//	  "p": priority: uint
//	  "r": [[key: string, [id: bytes, ...]], ...] removes: CID bytes of removed elements, sorted
//	  "v": 1                                    version
//	}
//
// A broadcast message is CBOR {"h": [link (tag 42), ...], "v": 1}.
//
// # Lifecycle
//
// New → use → Close. Close does not close the underlying datastore, the
// DAG or the Broadcaster; their owner closes them after it. Hooks
// (Config.PutHook, DeleteHook) run synchronously, in apply order, for
// local and remote deltas.
package crdt
