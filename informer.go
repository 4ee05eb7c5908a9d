package pincluster

import "context"

// Informer produces metrics about this peer (free space, pin count, tags,
// queue length). The monitor publishes them; the allocator orders and
// partitions peers by them.
type Informer interface {
	Component
	// Name identifies the informer; its metrics carry this name.
	Name() string
	// GetMetrics returns the informer's current metrics, each with its
	// validity set.
	GetMetrics(ctx context.Context) []Metric
}
