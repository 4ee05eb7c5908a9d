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
// to Config.MaxBatchSize operations; while writes arrive as a stream
// (others still in flight) the committer waits up to Config.GatherWait
// for more, so that writers coming back one by one share a delta
// (Config.MaxBatchAge replaces this with a fixed wait). The sync is pipelined: while one sync makes committed groups
// durable, the next group is applied (and is visible to readers), and its
// writers return after the next sync, one that began after their commit.
// A writer whose group is committed while no sync runs syncs the store
// itself, so a lone write passes from the writer to the committer and
// back, nothing more. An explicit Batch commits as one delta, or several when it
// exceeds MaxBatchSize or MaxBlockSize (then not atomically). A local
// delta links to all current heads (at most MaxLinks, highest first).
//
// # Replication
//
// After local commits and every RebroadcastInterval (and right after
// New) the heads are broadcast. A commit after a quiet spell is announced
// at once; those made within BroadcastGap of the last announcement go
// together in the next, so a replica that writes continuously sends one
// message per gap rather than one per commit (each message costs every
// other replica a signature check). Periodic rebroadcast heals lost messages
// and is also how a newly connected peer learns the heads: no separate
// exchange on connect. It is suppressed as in Trickle: a replica that
// sent its heads during the interval, or heard two other replicas
// announce exactly its heads, or heard each of its heads named in some
// message, leaves it out, so replicas that agree send one or two
// messages per interval between them rather than one each. A receiver queues each unknown head (in memory
// only: a head lost to a crash or a full queue is announced again by the
// next rebroadcast) and a pool of NumWorkers workers fetches it
// (DAGSyncerTimeout per fetch), checks it, applies it, and journals, in the
// same batch, its links that are neither processed nor pending; so a walk
// goes down to known history with memory bounded by the width of the
// frontier, not the depth. A node whose fetch fails is
// retried with exponential backoff (RetryMinBackoff..RetryMaxBackoff) and
// reported in Stats.Stuck; other nodes keep being processed (and with
// SnapshotCatchUp, a snapshot may cover it: see "Catch-up").
//
// Checks on received data: a broadcast with more than MaxHeadsPerBroadcast
// heads or malformed is ignored (Stats.IgnoredBroadcasts). A block larger
// than MaxBlockSize, not decodable, with more than MaxLinks links, a key
// or value over the limits, a value Config.ValidateValue refuses (the
// owner's check of the value's content; a local Put of such a value fails
// with ErrInvalidValue), duplicate keys or links, or a bad priority is
// rejected whole (Stats.RejectedNodes, a log line) and not walked further.
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
// # Tombstones
//
// A tombstone (k, id) is needed only until the delta id is processed:
// the one place it is read is when that delta's put is applied, and a
// processed delta is never applied again (its /b marker is checked under
// the apply lock). So a remove of an element whose delta is processed
// deletes the element and writes no tombstone, and applying a delta whose
// element is tombstoned deletes the tombstone. The tombstones kept are
// those of elements whose delta this replica has not processed yet
// (removes that arrived before their add). The key record's
// "has tombstones" flag may stay set after its tombstones are gone (it is
// only a hint that lets a key without it skip the tombstone lookup).
//
// # Snapshots
//
// A snapshot is the durable state of a replica whose journal is empty,
// written as content-addressed dag-cbor blocks in the DAG: a root that
// links to its heads (the replica's heads), to record chunks and to
// covered-node chunks. Record chunks hold one row per key, in the order of
// the encoded keys: every live element (id, priority, value) and the
// tombstones kept (see above; normally none). Covered-node chunks list
// every processed DAG node with its priority: the exact set of deltas
// whose effect the snapshot holds (about 45 bytes per delta, against the
// whole delta for the history). Chunks end on content-defined boundaries
// (between SnapshotChunkSize/2 and SnapshotChunkSize), so two replicas
// with the same processed nodes produce the same root CID and successive
// snapshots share the chunks of unchanged key ranges.
//
// Invariant: a snapshot holds exactly state(C) for its covered set C
// (C need not be down-closed). A replica that loads it marks C processed;
// any delta outside C is then fetched and applied as usual, and the OR-set
// of C ∪ the rest is what a replay of every delta gives
// (TestSnapshotEquivalence checks it against a replica that replays).
// Without the exact set, a delta linked only from below the snapshot could
// never be told apart from one it already holds.
//
// Who produces: any replica with SnapshotEvery or SnapshotInterval set,
// when it has processed that many nodes more than the newest snapshot it
// knows (its own, or announced by a peer TrustSnapshot accepts), or that
// snapshot is older than SnapshotInterval. The first to produce announces
// it and the others, learning a newer snapshot, stand down; a random
// stagger of up to two rebroadcast intervals spreads the attempts. We did
// not elect one producer: it needs membership the store does not have,
// and since snapshots are content-addressed, replicas that do produce at
// the same heads produce the same blocks. Production holds the apply lock
// while it scans the state (local writes and remote applies wait) and is
// refused with ErrNotSettled while nodes are pending. Datastore.Snapshot
// produces one on demand.
//
// Announcements: with every heads broadcast, a replica also broadcasts a
// version-2 message naming the newest snapshot it knows (root, height,
// covered count) and whether it has processed all its heads (its
// acknowledgement). Version-1 heads messages are unchanged, so older
// replicas keep working (they count the version-2 messages as ignored).
//
// # Catch-up
//
// A fresh replica (no processed node, nothing pending) with
// SnapshotCatchUp waits up to SnapshotWait for a trusted announcement,
// ignoring heads meanwhile, and holds local writes (they commit once the
// join ends). It does not wait passively: it broadcasts a join request
// with a random nonce (again every RebroadcastInterval while it waits),
// and every replica that is not joining and has history or knows a
// snapshot answers with a join reply echoing the nonce and naming the
// newest snapshot it knows, or none. Heads
// messages cannot tell "knows no snapshot": pubsub delivers a new
// subscriber a few seconds of old messages (gossip), sent before the
// sender learnt of a snapshot, in any order with its announcements. A
// reply echoing this replica's nonce was sent after the request, so it is
// current. Replies are rate-limited (one per 100 ms per replica, answering
// up to 16 requests at once). It loads the newest snapshot it heard: root first, then
// SnapshotWorkers chunks fetched in parallel, each written in one batch of
// the datastore with a "chunk i done" marker (no per-delta work: rows go
// straight to elements, key records and visible values; covered nodes to
// /b). PutHook runs for every key set by a chunk. The last batch records
// the heads and counters and clears the markers; then heads are accepted
// again and only the deltas above the snapshot are walked. A join
// interrupted (Close, crash) resumes on the next New from the markers:
// only the root and the chunks not yet committed are fetched again. A
// snapshot that turns out invalid is wiped and the replica replays the
// history instead. Without an announcement within SnapshotWait, or 250 ms
// after a trusted peer replied that it knows no snapshot (unless another
// answer names one meanwhile), it replays the history.
//
// A replica that has state (and SnapshotCatchUp) merges the newest
// trusted snapshot into it, instead of walking the history, in two cases:
//
//   - Far behind: the snapshot covers at least SnapshotCatchUpGap nodes
//     more than the replica has processed. That many deltas at least
//     would each be fetched and applied one by one, while the snapshot
//     costs a fetch per chunk and a pass over its keys: "cheaper" is that
//     count against the threshold (default 10,000). While the replica is
//     far behind or merging, heads are ignored (the next rebroadcast
//     brings them) and the workers hold their nodes, so it does not
//     replay what the snapshot holds.
//   - Stuck: a node of its walk failed to fetch 3 times (Stats.Stuck), a
//     trusted snapshot newer than its own is known, and it covers one of
//     the stuck nodes (checked once its blocks are fetched, before the
//     state changes; a snapshot that covers none is not tried again).
//     That is what a replica that was not live when the others compacted
//     sees: the blocks it needs are gone, the snapshot covers them.
//
// The merge gives the state of P ∪ C, P this replica's processed nodes
// and C the snapshot's covered ones, exactly what applying every delta of
// both gives: an element live on one side stays live unless the other
// side removed it (C removed an element whose id it covers but does not
// hold live, or whose id it holds a tombstone of; P likewise), so this
// replica's own writes, acknowledged or not yet sent, are kept, with CRDT
// semantics (TestSnapshotCatchUpFarBehind checks the result against
// replicas that replayed). Phase 1, while local writes go on (the
// workers wait): every block of the snapshot is fetched, checked and kept
// in the local DAG (so the replica serves it), and C is staged in the
// datastore. Phase
// 2, under the apply lock (local writes and remote applies wait, as for
// producing a snapshot) and without network access: each key with a row
// is merged, one chunk per batch, its local side read by forward scans of
// the elements and tombstones in key order (the order of the rows), then
// each local key without a row (the snapshot removed its elements it
// covers), then the heads become those
// of P ∪ C (a local head C covers without it being one of C's heads has
// a child in C; a head of C stays one unless a local node links to it),
// and C is marked processed. PutHook and DeleteHook run for every key
// whose visible value changes, so an owner tracking keys (the root's pin
// tracker) sees removed keys deleted and new ones put. Memory is bounded
// by a chunk, plus the local keys without a row. BenchmarkSnapshotCatchUp:
// a replica 2,000 deltas (20,000 keys) behind a 100,000-key store is in
// sync in 1.2 s by merge or by replay with instant fetches, and in 1.4 s
// by merge against 13 s by replay with 5 ms per fetch. Then the walks resume:
// nodes pending or stuck that C covers are dropped, the rest (deltas
// above the snapshot, this replica's own not in it) are walked as usual.
// A failed phase 1 (snapshot unreachable for 3 x DAGSyncerTimeout per
// block, or invalid) changes nothing: the replica walks the history and
// does not try that snapshot again. Phase 2 steps are idempotent and
// recorded: a store error is retried under the lock, and a merge
// interrupted by Close or a crash is finished by the next New before
// anything else runs. Stats.CatchingUp is set during a merge and
// Stats.SnapshotsMerged counts them.
//
// # Compaction
//
// With Config.LivePeers set and a DAG implementing DAGDeleter, a replica
// compacts to the newest snapshot S it knows when it has processed all of
// S's heads and every live peer acknowledges S. It first fetches and
// stores every block of S (so every compacted replica serves the
// snapshot), then deletes the blocks of S's covered deltas and of the
// older snapshots it stores. Disk use is then the state, the snapshot
// (about the state again) and the deltas above it, plus the ~50-byte /b
// marker of each processed delta. Rule: blocks are deleted only for
// deltas in a snapshot every live peer holds, so no live peer can still
// need them to walk; a peer absent from LivePeers at the time may find
// its walk stuck on deleted blocks (Stats.Stuck): with SnapshotCatchUp it
// recovers by itself, merging the snapshot (see "Catch-up"), with its
// own writes kept. Replicas joining or returning to a compacted cluster
// must have SnapshotCatchUp set.
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
//	/m/snap/newest     newest snapshot made or loaded: uvarint height ++
//	                   uvarint covered nodes ++ root (CID bytes)
//	/m/snap/loading    root of a snapshot being loaded (resume marker)
//	/m/snap/done/<i>   chunk i of that snapshot is loaded
//	/m/snap/blocks/<cid> this replica stores the blocks of snapshot <cid>
//	/m/snap/compacted  root of the snapshot the history was compacted to
//	/m/snap/merge/root root of a snapshot being merged (phase 2 started)
//	/m/snap/merge/heads the merge's keys and heads are done
//	/m/snap/merge/cover/<cid> covered node of the snapshot being merged:
//	                   uvarint priority (staged until marked processed)
//	/m/snap/merge/done/<i> record chunk i is merged
//	/m/snap/merge/key/<ek> key ek had a row in the snapshot being merged
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
// A broadcast message is CBOR {"h": [link (tag 42), ...], "v": 1}. A
// snapshot announcement is CBOR {"a": acknowledged bool, "n": covered
// nodes, "p": height, "s": root link, "v": 2}. A join request is CBOR
// {"j": nonce (16 bytes), "v": 3}; a join reply is CBOR {"e": [nonce,
// ...], "n": covered nodes, "p": height, "s": root link, "v": 4}, with
// "n", "p" and "s" left out when the sender knows no snapshot. The
// broadcast that follows local commits carries their delta blocks when
// they are small (at most 64 blocks, 512 KiB): CBOR {"b": [block bytes,
// ...], "h": [link (tag 42), ...], "v": 10}, where "h" names those of the
// attached deltas that are still heads (all the heads when none is; when
// the blocks waiting fill several messages, one with no head among its
// deltas names its newest); a receiver takes the CID of each block from
// its bytes, holds it (8 MiB at most) and applies it without fetching it,
// storing it in its DAG as a fetch would; a block not attached or not
// held any more is fetched as before.
//
// A snapshot root block is dag-cbor {"c": [covered-node chunk links],
// "h": [head links, sorted], "k": rows, "n": covered nodes, "p": height,
// "r": [record chunk links], "t": "crdt-snapshot", "v": 1}; a chunk is
// {"c": [[cid bytes, priority], ...], "r": [], "v": 1} or {"c": [], "r":
// [[key, [[id bytes, priority, value], ...], [tombstoned id bytes, ...]],
// ...], "v": 1}.
//
// # Lifecycle
//
// New → use → Close. Close does not close the underlying datastore, the
// DAG or the Broadcaster; their owner closes them after it. Hooks
// (Config.PutHook or PutValueHook, DeleteHook) run one at a time, in
// apply order, after the engine has released its apply lock, for local
// and remote deltas, and also for the keys a snapshot load sets (PutHook)
// or a snapshot merge changes (both); a local write returns once its own
// hooks have run. SnapshotHook runs after a snapshot is produced, loaded
// or merged, and after the hooks of the keys it set.
package crdt
