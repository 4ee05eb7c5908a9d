package crdt

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	ds "github.com/ipfs/go-datastore"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/defaults"
)

// Defaults of Config. A zero field means its default.
const (
	DefaultRebroadcastInterval  = time.Second
	DefaultBroadcastGap         = time.Millisecond
	DefaultGatherWait           = time.Millisecond
	DefaultDAGSyncerTimeout     = 10 * time.Second
	DefaultNumWorkers           = 16
	DefaultMaxBatchSize         = 2000
	DefaultMaxBlockSize         = 1 << 20
	DefaultMaxLinks             = 1024
	DefaultMaxHeadsPerBroadcast = 1024
	DefaultMaxPriorityJump      = uint64(1) << 32
	DefaultMaxValueSize         = 256 << 10
	DefaultMaxKeySize           = 4 << 10
	DefaultRetryMinBackoff      = 250 * time.Millisecond
	DefaultRetryMaxBackoff      = 8 * time.Second
	DefaultQueueSize            = 4096
	DefaultSnapshotChunkSize    = 256 << 10
	DefaultSnapshotWorkers      = 8
	DefaultSnapshotWait         = 3 * time.Second
	DefaultCompactInterval      = 10 * time.Second
	DefaultSnapshotCatchUpGap   = 10_000
)

// Config configures a Datastore. The zero value is a working configuration
// with the defaults documented on each field. New copies it.
type Config struct {
	// Logger receives the store's log lines. Nil discards them.
	Logger *slog.Logger

	// RebroadcastInterval is how often the current heads are broadcast
	// again, so that lost messages heal and newly connected peers learn
	// the heads. Default: 1 s.
	RebroadcastInterval time.Duration

	// BroadcastGap is the least time between two broadcasts that announce
	// local commits. A commit after a quiet spell is announced at once;
	// the commits made during the gap that follows are announced together
	// by one message when it ends (or earlier, once their blocks fill half
	// of what one message carries). Every message costs each other replica
	// a signature check (pubsub), so a replica that writes continuously
	// sends one message per gap, not one per commit. Default: 1 ms.
	BroadcastGap time.Duration

	// DAGSyncerTimeout bounds one DAG.Get. A fetch that times out is
	// retried with backoff. Default: 10 s.
	DAGSyncerTimeout time.Duration

	// NumWorkers is how many DAG nodes are fetched concurrently.
	// Default: 16.
	NumWorkers int

	// MaxBatchSize is the maximum number of operations (puts and deletes)
	// in one delta. Default: 2000. 1 means one delta per write.
	MaxBatchSize int

	// MaxBatchAge, when positive, makes the committer wait up to this long
	// for a batch of individual writes to reach MaxBatchSize before
	// committing it. Zero (the default) is adaptive group commit: a write on
	// an idle store is committed at once, writes that arrive while a
	// commit is in flight are committed together by the next one, and
	// under a stream of writes the committer waits up to GatherWait for
	// more.
	MaxBatchAge time.Duration

	// GatherWait is how long the committer waits for more writes while
	// they arrive as a stream (with MaxBatchAge zero): writes keep coming
	// while others are still inside Put, or the previous delta held
	// several. It ends the wait early once the group holds one write more
	// than the largest of the last few groups, or as many and every
	// writer inside Put is in it. A write after a quiet spell
	// of more than 20 × GatherWait and a sequential writer (one write at a
	// time, no other writer) are committed at once; a write that follows a
	// group of several sooner may wait up to GatherWait. Each delta costs every
	// replica a commit, a sync, a signature check and an apply, so
	// clients that come back one by one are cheaper in fewer, larger
	// deltas. Default: 1 ms; negative: never wait (pure group commit).
	GatherWait time.Duration

	// MaxBlockSize is the largest delta block, in bytes, this store writes
	// or accepts from others. Default: 1 MiB.
	MaxBlockSize int

	// MaxLinks is the largest number of links (superseded heads) in one
	// delta; a local write links to at most this many heads (the highest
	// first), and a received delta with more is rejected. Default: 1024.
	MaxLinks int

	// MaxHeadsPerBroadcast is the largest number of heads in one broadcast
	// message; the store sends at most this many (highest first) and
	// rejects received messages with more. Default: 1024.
	MaxHeadsPerBroadcast int

	// MaxPriorityJump rejects a received head whose priority exceeds the
	// local height by more than this. Default: 2^32.
	MaxPriorityJump uint64

	// MaxValueSize is the largest value, in bytes. Default: 256 KiB. It
	// must leave room in a block: MaxValueSize+MaxKeySize <= MaxBlockSize/2.
	MaxValueSize int

	// MaxKeySize is the longest key, in bytes. Default: 4 KiB.
	MaxKeySize int

	// RetryMinBackoff and RetryMaxBackoff bound the exponential backoff
	// between fetch attempts of a block that could not be fetched.
	// Defaults: 250 ms and 8 s.
	RetryMinBackoff time.Duration
	RetryMaxBackoff time.Duration

	// QueueSize is how many pending DAG nodes are held in memory; the rest
	// wait in the durable journal. Default: 4096.
	QueueSize int

	// PutHook, if not nil, is called after a delta (local or remote) that
	// set the visible value of key has been applied and committed. Hooks
	// run in apply order, one at a time, after the engine has released
	// its apply lock (so a slow hook delays other hooks, not commits); a
	// local write returns once its own hooks have run. Hooks must not
	// write to the Datastore.
	PutHook func(key ds.Key, value []byte)

	// DeleteHook, if not nil, is called after a delta that removed key's
	// visible value has been applied and committed. Same rules as PutHook.
	DeleteHook func(key ds.Key)

	// NoInlineDeltas stops this replica from attaching its fresh deltas
	// to the broadcast announcing them (see the package doc, "Wire
	// format"): the other replicas then fetch every delta through the
	// DAG. Replicas accept attached deltas either way. Default false.
	NoInlineDeltas bool

	// PutValueHook, if not nil, is called instead of PutHook, with the
	// same rules, and is also handed decoded: Config.DecodeValue's result
	// for value when the engine has it in hand (a local PutDecoded, Put or
	// Batch.Put, or a received delta), nil otherwise (the hook decodes).
	PutValueHook func(key ds.Key, value []byte, decoded any)

	// SnapshotEvery, when positive, makes this replica produce a snapshot
	// once it has processed this many DAG nodes more than the newest
	// snapshot it knows (its own or a trusted announcement) covers, and
	// at least nine times as long as producing its last one took has
	// passed since (production stops writes while it scans the state).
	// Default 0: never by count. See the package doc, "Snapshots".
	SnapshotEvery int

	// SnapshotInterval, when positive, makes this replica produce a
	// snapshot when the newest one it knows is older than this (or there
	// is none) and it has processed nodes that snapshot does not cover
	// (with the same wait after its last one as SnapshotEvery).
	// Default 0: never by time.
	SnapshotInterval time.Duration

	// SnapshotChunkSize is the target size, in bytes, of a snapshot chunk
	// block (chunks end on content-defined boundaries between half and
	// all of it). Default: 256 KiB; at most MaxBlockSize/2.
	SnapshotChunkSize int

	// SnapshotCatchUp makes a fresh replica (no processed DAG node) catch
	// up from a trusted snapshot instead of replaying the history: it
	// waits up to SnapshotWait for an announcement, loads the newest one
	// it hears, then walks only the deltas above it. Local writes wait
	// until then. Default false: replay the history.
	//
	// It also lets a replica that has state catch up from a trusted
	// snapshot by merging it into its state (see the package doc,
	// "Catch-up"): when the snapshot covers at least SnapshotCatchUpGap
	// nodes more than this replica has processed (far behind), or when a
	// node of its walk stays unfetchable (history compacted away).
	SnapshotCatchUp bool

	// SnapshotCatchUpGap is when a replica with state and SnapshotCatchUp
	// counts as far behind: a trusted snapshot covers at least this many
	// more DAG nodes than it has processed, so replaying would fetch and
	// apply at least that many deltas one by one, while merging the
	// snapshot costs about a fetch per chunk and a pass over its keys
	// (BenchmarkSnapshotCatchUp compares the two). Default: 10,000.
	SnapshotCatchUpGap int

	// SnapshotWait is how long a fresh replica with SnapshotCatchUp waits
	// for a snapshot announcement before replaying the history instead
	// (it stops waiting early when a trusted peer answers its join
	// request knowing no snapshot). Default: 3 s.
	SnapshotWait time.Duration

	// SnapshotWorkers is how many snapshot chunks are fetched and loaded
	// concurrently. Default: 8.
	SnapshotWorkers int

	// TrustSnapshot reports whether announcements of snapshots from peer
	// are believed (loaded, acknowledged, counted as the newest). A
	// snapshot's content cannot be checked against the history it
	// summarises, so only peers trusted with the whole state should be
	// trusted here. Nil trusts every announcement the Broadcaster
	// delivers (the PubSubBroadcaster already drops messages from
	// untrusted signers).
	TrustSnapshot func(from peer.ID) bool

	// LivePeers, when not nil and the DAG implements DAGDeleter, enables
	// compaction: every CompactInterval, if every peer it returns (other
	// than Self) acknowledges the newest snapshot this replica knows and
	// has processed, the blocks of the deltas that snapshot covers (and of
	// older snapshots) are deleted from the DAG. Default nil: no
	// compaction.
	LivePeers func() []peer.ID

	// Self is this replica's peer ID, left out of LivePeers. Optional.
	Self peer.ID

	// CompactInterval is how often compaction is considered. Default 10 s.
	CompactInterval time.Duration

	// ValidateValue, if not nil, checks every value put under a key: a
	// local Put or Batch.Put whose value it rejects returns its error
	// (wrapped with ErrInvalidValue) and writes nothing; a received delta
	// holding a put it rejects is rejected as a whole at decode time, like
	// any invalid delta (a log line, Stats.RejectedNodes, nothing of it
	// applied, not walked further), and so is a snapshot chunk holding
	// such a value (the snapshot is then invalid). key is the key as
	// given to this Datastore, in ds.Key string form ("/a/b"). It is
	// called concurrently, must not block nor write to the Datastore, and
	// should be deterministic: replicas whose hooks disagree diverge.
	// Deletes are not checked. Default nil: every value is accepted.
	ValidateValue func(key string, value []byte) error

	// DecodeValue, if not nil, is used instead of ValidateValue (same
	// rules) and returns the decoded value, which PutValueHook receives:
	// one decode and one validation per value on each path.
	DecodeValue func(key string, value []byte) (any, error)

	// SnapshotHook, if not nil, is called after this replica has
	// produced a snapshot (info.From empty) or finished loading or merging
	// one. When a snapshot is loaded, PutHook has already been called for
	// every key it set; when merged, PutHook and DeleteHook for every key
	// whose visible value it changed. Must not write to the Datastore.
	SnapshotHook func(info SnapshotInfo)
}

func (c Config) withDefaults() (Config, error) {
	c.Logger = defaults.Logger(c.Logger)
	if c.GatherWait == 0 { // negative: never wait
		c.GatherWait = DefaultGatherWait
	}
	if err := errors.Join(
		defaults.Set("RebroadcastInterval", &c.RebroadcastInterval, DefaultRebroadcastInterval),
		defaults.Set("BroadcastGap", &c.BroadcastGap, DefaultBroadcastGap),
		defaults.Set("DAGSyncerTimeout", &c.DAGSyncerTimeout, DefaultDAGSyncerTimeout),
		defaults.Set("RetryMinBackoff", &c.RetryMinBackoff, DefaultRetryMinBackoff),
		defaults.Set("RetryMaxBackoff", &c.RetryMaxBackoff, DefaultRetryMaxBackoff),
		defaults.Set("SnapshotWait", &c.SnapshotWait, DefaultSnapshotWait),
		defaults.Set("CompactInterval", &c.CompactInterval, DefaultCompactInterval),
		defaults.NotNegative("MaxBatchAge", c.MaxBatchAge),
		defaults.Set("NumWorkers", &c.NumWorkers, DefaultNumWorkers),
		defaults.Set("MaxBatchSize", &c.MaxBatchSize, DefaultMaxBatchSize),
		defaults.Set("MaxBlockSize", &c.MaxBlockSize, DefaultMaxBlockSize),
		defaults.Set("MaxLinks", &c.MaxLinks, DefaultMaxLinks),
		defaults.Set("MaxHeadsPerBroadcast", &c.MaxHeadsPerBroadcast, DefaultMaxHeadsPerBroadcast),
		defaults.Set("MaxValueSize", &c.MaxValueSize, DefaultMaxValueSize),
		defaults.Set("MaxKeySize", &c.MaxKeySize, DefaultMaxKeySize),
		defaults.Set("QueueSize", &c.QueueSize, DefaultQueueSize),
		defaults.Set("SnapshotChunkSize", &c.SnapshotChunkSize, DefaultSnapshotChunkSize),
		defaults.Set("SnapshotWorkers", &c.SnapshotWorkers, DefaultSnapshotWorkers),
		defaults.Set("SnapshotCatchUpGap", &c.SnapshotCatchUpGap, DefaultSnapshotCatchUpGap),
		defaults.NotNegative("SnapshotEvery", c.SnapshotEvery),
		defaults.NotNegative("SnapshotInterval", c.SnapshotInterval),
	); err != nil {
		return c, fmt.Errorf("crdt: config: %w", err)
	}
	if c.RetryMaxBackoff < c.RetryMinBackoff {
		return c, fmt.Errorf("crdt: config: RetryMaxBackoff %v is below RetryMinBackoff %v", c.RetryMaxBackoff, c.RetryMinBackoff)
	}
	if c.MaxPriorityJump == 0 {
		c.MaxPriorityJump = DefaultMaxPriorityJump
	}
	if c.MaxBlockSize < 4096 {
		return c, fmt.Errorf("crdt: config: MaxBlockSize %d must be at least 4096", c.MaxBlockSize)
	}
	if c.MaxValueSize+c.MaxKeySize > c.MaxBlockSize/2 {
		return c, fmt.Errorf("crdt: config: MaxValueSize %d + MaxKeySize %d must be at most MaxBlockSize/2 (%d)", c.MaxValueSize, c.MaxKeySize, c.MaxBlockSize/2)
	}
	if c.SnapshotChunkSize > c.MaxBlockSize/2 || c.SnapshotChunkSize < 1024 {
		return c, fmt.Errorf("crdt: config: SnapshotChunkSize %d must be within [1024, MaxBlockSize/2 = %d]", c.SnapshotChunkSize, c.MaxBlockSize/2)
	}
	if c.MaxLinks*64 > c.MaxBlockSize/4 {
		return c, fmt.Errorf("crdt: config: MaxLinks %d too large for MaxBlockSize %d", c.MaxLinks, c.MaxBlockSize)
	}
	return c, nil
}
