package clustertest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pincluster/pincluster"
)

// DefaultInformerTTL is the validity StaticInformer gives its metrics.
const DefaultInformerTTL = 30 * time.Second

// StaticInformer is a pincluster.Informer for tests that returns metrics set
// by the test, which may change them at any time with Set or SetValue. Each
// GetMetrics returns copies whose ValidUntil is now plus the TTL (unless
// the stored metric has a ValidUntil of its own) and whose Name defaults to
// the informer's name. Safe for concurrent use.
type StaticInformer struct {
	name string

	mu      sync.Mutex
	ttl     time.Duration
	metrics []pincluster.Metric
	closed  bool
}

var _ pincluster.Informer = (*StaticInformer)(nil)

// NewStaticInformer returns an informer called name that reports metrics.
func NewStaticInformer(name string, metrics ...pincluster.Metric) *StaticInformer {
	return &StaticInformer{name: name, ttl: DefaultInformerTTL, metrics: slices.Clone(metrics)}
}

// Name returns the informer's name.
func (s *StaticInformer) Name() string { return s.name }

// Set replaces the metrics.
func (s *StaticInformer) Set(metrics ...pincluster.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = slices.Clone(metrics)
}

// SetValue replaces the metrics with one metric named after the informer
// holding value; a decimal value is also its Weight.
func (s *StaticInformer) SetValue(value string) {
	m := pincluster.Metric{Name: s.name, Value: value}
	if w, err := strconv.ParseInt(value, 10, 64); err == nil {
		m.Weight = w
	}
	s.Set(m)
}

// SetTTL sets the validity given to metrics without their own ValidUntil.
// Default: DefaultInformerTTL.
func (s *StaticInformer) SetTTL(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = ttl
}

// GetMetrics returns copies of the current metrics; none after Shutdown.
func (s *StaticInformer) GetMetrics(context.Context) []pincluster.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	now := time.Now()
	out := slices.Clone(s.metrics)
	for i := range out {
		if out[i].Name == "" {
			out[i].Name = s.name
		}
		if out[i].ValidUntil.IsZero() {
			out[i].ValidUntil = now.Add(s.ttl)
		}
	}
	return out
}

// Shutdown stops the informer: GetMetrics returns nothing afterwards. It
// never fails.
func (s *StaticInformer) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
