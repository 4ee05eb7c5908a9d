package pincluster

import (
	"context"
	"fmt"
	"github.com/pincluster/pincluster/internal/defaults"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Informer produces metrics about this peer (free space, pin count, tags,
// queue length). The monitor publishes them; the allocator orders and
// partitions peers by them.
//
// An informer leaves Metric.Peer empty (the monitor fills in its own peer
// ID) and sets ValidUntil from its own TTL; the pubsub monitor re-stamps
// ValidUntil with its TTL when it publishes, so that failure detection
// depends on one setting only. GetMetrics returns no metric (rather than a
// wrong one) when its source fails, and nil after Shutdown.
type Informer interface {
	Component
	// Name identifies the informer; its metrics carry this name.
	Name() string
	// GetMetrics returns the informer's current metrics, each with its
	// validity set.
	GetMetrics(ctx context.Context) []Metric
}

// Names of the metrics produced by the built-in informers and by the
// monitor.
const (
	// MetricFreeSpace is the free space of the peer's IPFS repository,
	// in bytes, minus the bytes of pins queued or in flight on it. More
	// is better. Numeric (Weight = Value = bytes).
	MetricFreeSpace = "freespace"
	// MetricNumPin is the number of pins the peer's IPFS node holds.
	// Fewer is better. Numeric.
	MetricNumPin = "numpin"
	// MetricPinQueue is the number of pin operations queued on the peer.
	// Fewer is better. Numeric.
	MetricPinQueue = "pinqueue"
	// MetricPing is the liveness metric published by the monitor on every
	// interval; its expiry raises the alert that makes the cluster re-place
	// the peer's pins. It carries no value.
	MetricPing = "ping"
	// MetricFollower is published (Value "true") by a peer in follower
	// mode (WithFollowerMode) with every ping: the other peers then leave
	// it out of the peers that re-allocate the pins of a lost peer and
	// unpin expired pins, since a follower never writes. It is not used
	// for allocation: a follower is allocated like any other peer whose
	// metrics are accepted, as in IPFS Cluster.
	MetricFollower = "follower"
	// MetricTagPrefix starts the name of every tag metric: the tag
	// "region" is published as the partitionable metric "tag:region"
	// whose Value is the tag's value.
	MetricTagPrefix = "tag:"
)

// defaultInformerTTL is the validity an informer gives its metrics when
// InformerConfig.TTL is zero: twice the default monitor interval (15 s).
const defaultInformerTTL = 30 * time.Second

// InformerConfig holds the settings shared by the informers of this
// package. The zero value is usable.
type InformerConfig struct {
	// TTL is how long the metrics are valid after GetMetrics returns them.
	// The pubsub monitor replaces it with its own TTL when publishing.
	// Default: 30 s (0 means the default; negative is an error).
	TTL time.Duration
	// Logger receives a warning when the metric's source fails. Default:
	// nil, which discards.
	Logger *slog.Logger
}

func (c InformerConfig) withDefaults(op string) (InformerConfig, error) {
	if err := defaults.Set("TTL", &c.TTL, defaultInformerTTL); err != nil {
		return c, fmt.Errorf("pincluster: %s: %w", op, err)
	}
	c.Logger = defaults.Logger(c.Logger)
	return c, nil
}

// informerBase holds what every informer of this file shares: its name,
// its configuration and its closed flag.
type informerBase struct {
	name string
	cfg  InformerConfig

	mu     sync.Mutex
	closed bool
}

// Name implements Informer.
func (b *informerBase) Name() string { return b.name }

// Shutdown implements Component. The informers start no goroutine; after
// Shutdown GetMetrics returns nil, and a second Shutdown returns an error
// wrapping ErrClosed.
func (b *informerBase) Shutdown(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("pincluster: %s informer: shutdown: %w", b.name, ErrClosed)
	}
	b.closed = true
	return nil
}

func (b *informerBase) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *informerBase) numeric(v int64) Metric {
	m := Metric{Name: b.name, Value: strconv.FormatInt(v, 10), Weight: v}
	m.SetTTL(b.cfg.TTL)
	return m
}

// freeSpaceInformer is the informer of NewFreeSpaceInformer.
type freeSpaceInformer struct {
	informerBase
	repoStat func(context.Context) (RepoStat, error)
	reserved func(context.Context) uint64
}

// FreeSpaceConfig configures the informer of NewFreeSpaceInformer. The
// zero value is usable.
type FreeSpaceConfig struct {
	InformerConfig
	// Reserved returns the bytes expected but not yet fetched for the pins
	// queued or in flight on this peer (the default tracker's: the sum of
	// their Pin.Size less what each has fetched). It is called at every
	// publish, so it should not ask the IPFS node per pin. Default: nil,
	// which reserves nothing.
	Reserved func(ctx context.Context) uint64
}

var _ Informer = (*freeSpaceInformer)(nil)

// NewFreeSpaceInformer returns the informer publishing MetricFreeSpace:
// StorageMax − RepoSize of the IPFS repository, read from repoStat
// (typically IPFSConnector.RepoStat), minus the bytes cfg.Reserved
// reports for pins queued or being fetched on this peer (they will soon
// occupy the repository but do not yet show in RepoSize). Never negative:
// 0 when full. When the repository cannot be read it publishes nothing
// (the metric then expires at the monitor, which raises an alert, and the
// allocator stops choosing this peer). It returns an error when repoStat
// is nil or cfg is invalid.
func NewFreeSpaceInformer(repoStat func(ctx context.Context) (RepoStat, error), cfg FreeSpaceConfig) (Informer, error) {
	if repoStat == nil {
		return nil, fmt.Errorf("pincluster: new freespace informer: nil repo stat source")
	}
	ic, err := cfg.InformerConfig.withDefaults("new freespace informer")
	if err != nil {
		return nil, err
	}
	return &freeSpaceInformer{
		informerBase: informerBase{name: MetricFreeSpace, cfg: ic},
		repoStat:     repoStat,
		reserved:     cfg.Reserved,
	}, nil
}

// GetMetrics implements Informer: one MetricFreeSpace metric, or none when
// the repository cannot be read (the metric then expires at the monitor,
// which raises an alert, and the allocator stops choosing this peer).
func (f *freeSpaceInformer) GetMetrics(ctx context.Context) []Metric {
	if f.isClosed() {
		return nil
	}
	st, err := f.repoStat(ctx)
	if err != nil {
		f.cfg.Logger.Warn("freespace informer: repo stat failed", "err", err)
		return nil
	}
	free := st.FreeSpace()
	if f.reserved != nil {
		if r := f.reserved(ctx); r >= free {
			free = 0
		} else {
			free -= r
		}
	}
	return []Metric{f.numeric(clampInt64(free))}
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// countInformer publishes one numeric metric read from a counting function:
// MetricNumPin (NewNumPinInformer) or MetricPinQueue
// (NewPinQueueInformer). Negative counts are published as 0.
type countInformer struct {
	informerBase
	count func(context.Context) (int64, error)
}

var _ Informer = (*countInformer)(nil)

// NewNumPinInformer returns an informer publishing MetricNumPin, the
// number of pins of the IPFS node as returned by count (a negative count
// as 0; nothing when count fails). It returns an error when count is nil
// or cfg is invalid.
func NewNumPinInformer(count func(ctx context.Context) (int64, error), cfg InformerConfig) (Informer, error) {
	c, err := newCountInformer(MetricNumPin, count, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// NewPinQueueInformer returns an informer publishing MetricPinQueue, the
// length of the pin queue as returned by size (typically
// PinTracker.PinQueueSize; a negative size as 0, nothing when size
// fails). It returns an error when size is nil or cfg is invalid.
func NewPinQueueInformer(size func(ctx context.Context) (int64, error), cfg InformerConfig) (Informer, error) {
	c, err := newCountInformer(MetricPinQueue, size, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func newCountInformer(name string, count func(context.Context) (int64, error), cfg InformerConfig) (*countInformer, error) {
	op := "new " + name + " informer"
	if count == nil {
		return nil, fmt.Errorf("pincluster: %s: nil source", op)
	}
	ic, err := cfg.withDefaults(op)
	if err != nil {
		return nil, err
	}
	return &countInformer{informerBase: informerBase{name: name, cfg: ic}, count: count}, nil
}

// GetMetrics implements Informer: one metric, or none when the source
// fails.
func (c *countInformer) GetMetrics(ctx context.Context) []Metric {
	if c.isClosed() {
		return nil
	}
	n, err := c.count(ctx)
	if err != nil {
		c.cfg.Logger.Warn(c.name+" informer: source failed", "err", err)
		return nil
	}
	return []Metric{c.numeric(max(n, 0))}
}

// tagsInformer is the informer of NewTagsInformer.
type tagsInformer struct {
	informerBase
	keys []string // sorted
	tags map[string]string
}

var _ Informer = (*tagsInformer)(nil)

// NewTagsInformer returns an informer publishing user-set tags (region,
// group, ...) as partitionable metrics, one per tag in key order, named
// MetricTagPrefix + key, whose Value is the tag's value: the balanced
// allocator splits peers by them (WithAllocateBy). The map is copied. A
// key must be non-empty and the metric name (MetricTagPrefix + key) at
// most MaxMetricNameLen bytes; a value at most MaxMetricValueLen bytes.
// WithTags is the short way to publish tags with the default informers.
func NewTagsInformer(tags map[string]string, cfg InformerConfig) (Informer, error) {
	ic, err := cfg.withDefaults("new tags informer")
	if err != nil {
		return nil, err
	}
	t := &tagsInformer{informerBase: informerBase{name: "tags", cfg: ic}, tags: make(map[string]string, len(tags))}
	for k, v := range tags {
		switch {
		case k == "" || len(MetricTagPrefix+k) > MaxMetricNameLen:
			return nil, fmt.Errorf("pincluster: new tags informer: key of %d bytes (1..%d)", len(k), MaxMetricNameLen-len(MetricTagPrefix))
		case len(v) > MaxMetricValueLen:
			return nil, fmt.Errorf("pincluster: new tags informer: value of tag %q has %d bytes, limit %d", k, len(v), MaxMetricValueLen)
		}
		t.tags[k] = v
		t.keys = append(t.keys, k)
	}
	slices.Sort(t.keys)
	return t, nil
}

// GetMetrics implements Informer: one partitionable metric per tag, in key
// order.
func (t *tagsInformer) GetMetrics(context.Context) []Metric {
	if t.isClosed() {
		return nil
	}
	out := make([]Metric, 0, len(t.keys))
	for _, k := range t.keys {
		m := Metric{Name: MetricTagPrefix + k, Value: t.tags[k], Partitionable: true}
		m.SetTTL(t.cfg.TTL)
		out = append(out, m)
	}
	return out
}

// IsTagMetric reports whether name is the name of a tag metric.
func IsTagMetric(name string) bool { return strings.HasPrefix(name, MetricTagPrefix) }

// followerInformer publishes MetricFollower on a follower peer.
type followerInformer struct{}

func (followerInformer) Name() string { return MetricFollower }

func (followerInformer) GetMetrics(context.Context) []Metric {
	return []Metric{{Name: MetricFollower, Value: "true", ValidUntil: time.Now().Add(defaultInformerTTL)}}
}

func (followerInformer) Shutdown(context.Context) error { return nil }
