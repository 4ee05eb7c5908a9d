package pincluster

import (
	"context"

	peer "github.com/libp2p/go-libp2p/core/peer"
)

// PeerMonitor publishes this peer's metrics, collects the other peers', and
// raises an Alert when a peer's metric expires without being renewed.
type PeerMonitor interface {
	Component
	// LogMetric stores a metric received from or about a peer.
	LogMetric(ctx context.Context, m Metric) error
	// PublishMetric sends this peer's metric to the other peers (and logs
	// it locally).
	PublishMetric(ctx context.Context, m Metric) error
	// LatestMetrics returns the newest valid metric of the given name for
	// every peer that has one.
	LatestMetrics(ctx context.Context, name string) []Metric
	// LatestForPeer returns the newest metric of the given name from pid,
	// valid or not; ok is false when there is none.
	LatestForPeer(ctx context.Context, name string, pid peer.ID) (m Metric, ok bool)
	// MetricNames lists the names of the metrics known.
	MetricNames(ctx context.Context) []string
	// Alerts delivers alerts. An alert fires once when a peer's metric
	// expires, and again only after it came back and expired again.
	Alerts() <-chan Alert
}
