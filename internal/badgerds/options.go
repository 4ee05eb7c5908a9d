package badgerds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Defaults of Options. They are lean on memory because pincluster is a
// library inside someone else's process: badger's own defaults reserve up to
// 5 × 64 MiB of memtables and a 256 MiB block cache.
const (
	// DefaultGCInterval is how often the value-log GC loop runs.
	DefaultGCInterval = 10 * time.Minute
	// DefaultGCDiscardRatio is the fraction of a value-log file that must
	// be garbage before GC rewrites it.
	DefaultGCDiscardRatio = 0.5
	// DefaultMemTableSize is the size of one memtable, in bytes.
	DefaultMemTableSize = 16 << 20
	// DefaultNumMemtables is how many memtables may be held in memory.
	DefaultNumMemtables = 3
	// DefaultBlockCacheSize is the block cache, in bytes.
	DefaultBlockCacheSize = 32 << 20
	// DefaultIndexCacheSize is the table-index and bloom-filter cache, in
	// bytes.
	DefaultIndexCacheSize = 16 << 20
	// DefaultValueThreshold is the size above which a value is kept in
	// the value log rather than in the LSM tree (badger: 1 MiB).
	DefaultValueThreshold = 1 << 10
)

// Options configures a Datastore. The zero value (or a nil *Options given to
// New) is a working configuration with the documented defaults. New copies
// the options; changing them afterwards has no effect.
type Options struct {
	// SyncWrites makes every write fsync badger's logs before returning.
	// Default: false (writes survive a process crash but not a power
	// loss until Sync is called).
	SyncWrites bool

	// GCInterval is the period of the value-log GC loop. Zero means
	// DefaultGCInterval (10 min); a negative value disables the loop.
	// The loop never runs for an in-memory datastore.
	GCInterval time.Duration

	// GCDiscardRatio is the fraction, in (0, 1), of garbage a value-log
	// file must hold before GC rewrites it. Zero means
	// DefaultGCDiscardRatio (0.5).
	GCDiscardRatio float64

	// Logger receives badger's log lines: errors at Error, warnings at
	// Warn, info and debug lines at Debug. Nil discards them (badger's
	// own default would print INFO lines to stderr).
	Logger *slog.Logger

	// MemTableSize is the size of one memtable, in bytes. Zero means
	// DefaultMemTableSize (16 MiB; badger's own default is 64 MiB).
	// It also caps the size of one transaction or write batch chunk.
	MemTableSize int64

	// NumMemtables is how many memtables (active + being flushed) may be
	// held in memory. Zero means DefaultNumMemtables (3; badger: 5).
	NumMemtables int

	// BlockCacheSize is the size of the block cache, in bytes. Zero means
	// DefaultBlockCacheSize (32 MiB; badger: 256 MiB). Negative disables
	// the cache (badger reads blocks from the mmap each time). Tables are
	// written uncompressed (badger's default is Snappy); a Tune that turns
	// compression on needs the cache.
	BlockCacheSize int64

	// IndexCacheSize is the size of the table index and bloom-filter
	// cache, in bytes. Zero means DefaultIndexCacheSize (16 MiB). Negative
	// keeps every index in memory (badger's own default).
	IndexCacheSize int64

	// Tune, if not nil, is applied last to the badger options New built,
	// for knobs not exposed above. It must not change Dir, ValueDir or
	// InMemory.
	Tune func(badger.Options) badger.Options

	// onGC, for tests, is called after every pass of the GC loop.
	onGC func(err error)
}

// withDefaults returns a copy of o with defaults filled in, or an error for
// impossible values.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.GCInterval == 0 {
		c.GCInterval = DefaultGCInterval
	}
	if c.GCDiscardRatio == 0 {
		c.GCDiscardRatio = DefaultGCDiscardRatio
	}
	if c.GCDiscardRatio <= 0 || c.GCDiscardRatio >= 1 {
		return c, fmt.Errorf("badgerds: GCDiscardRatio %v must be in (0, 1)", c.GCDiscardRatio)
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = DefaultMemTableSize
	}
	if c.MemTableSize < 1<<20 {
		return c, fmt.Errorf("badgerds: MemTableSize %d must be at least 1 MiB", c.MemTableSize)
	}
	if c.NumMemtables == 0 {
		c.NumMemtables = DefaultNumMemtables
	}
	if c.NumMemtables < 1 {
		return c, fmt.Errorf("badgerds: NumMemtables %d must be positive", c.NumMemtables)
	}
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = DefaultBlockCacheSize
	}
	if c.IndexCacheSize == 0 {
		c.IndexCacheSize = DefaultIndexCacheSize
	}
	return c, nil
}

// badgerOptions builds badger's options for path ("" = in memory).
func (c *Options) badgerOptions(path string) (badger.Options, error) {
	bo := badger.DefaultOptions(path).
		WithInMemory(path == "").
		WithSyncWrites(c.SyncWrites).
		WithMemTableSize(c.MemTableSize).
		WithNumMemtables(c.NumMemtables).
		// Metrics are process-global expvars; DiskUsage walks the
		// directory instead.
		WithMetricsEnabled(false).
		// Fewer level-0 tables before a stall keeps memory and
		// read amplification down; badger's stall default stays.
		WithNumCompactors(2).
		// A table builder buffers about twice its table in memory and
		// compactions run several at once: with badger's default
		// multiplier (2) a table at level n is 2^(n-1) × 2 MiB, so
		// the buffers grew with the pinset (385 of 468 MB of heap at
		// 300,000 pins, issue 19). Every table is BaseTableSize
		// (set below: badger has no With method for it).
		// CIDs and CBOR records barely compress; compression cost a
		// buffer per block built and read, and CPU.
		WithCompression(options.None)
	bo.TableSizeMultiplier = 1
	if path != "" {
		// Values above 1 KiB (the CRDT's delta blocks) go to the
		// value log, written once, instead of being rewritten by
		// every compaction of the LSM tree.
		bo = bo.WithValueThreshold(DefaultValueThreshold)
	}
	if c.BlockCacheSize > 0 {
		bo = bo.WithBlockCacheSize(c.BlockCacheSize)
	} else {
		bo = bo.WithBlockCacheSize(0)
	}
	if c.IndexCacheSize > 0 {
		bo = bo.WithIndexCacheSize(c.IndexCacheSize)
	} else {
		bo = bo.WithIndexCacheSize(0)
	}
	if c.Logger != nil {
		bo = bo.WithLogger(slogBadger{c.Logger})
	} else {
		bo = bo.WithLogger(nil)
	}
	if c.Tune != nil {
		tuned := c.Tune(bo)
		if tuned.Dir != bo.Dir || tuned.ValueDir != bo.ValueDir || tuned.InMemory != bo.InMemory {
			return bo, errors.New("badgerds: Options.Tune must not change Dir, ValueDir or InMemory")
		}
		bo = tuned
	}
	// badger panics in Open on this combination; refuse it instead.
	if (bo.Compression != 0 || len(bo.EncryptionKey) > 0) && bo.BlockCacheSize <= 0 {
		return bo, errors.New("badgerds: compression or encryption needs a block cache (BlockCacheSize > 0)")
	}
	return bo, nil
}

// slogBadger routes badger's Logger interface into slog.
type slogBadger struct{ l *slog.Logger }

func (s slogBadger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "component", "badger")
}

func (s slogBadger) Errorf(f string, a ...any)   { s.log(slog.LevelError, f, a) }
func (s slogBadger) Warningf(f string, a ...any) { s.log(slog.LevelWarn, f, a) }
func (s slogBadger) Infof(f string, a ...any)    { s.log(slog.LevelDebug, f, a) }
func (s slogBadger) Debugf(f string, a ...any)   { s.log(slog.LevelDebug, f, a) }
