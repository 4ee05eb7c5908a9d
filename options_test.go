package pincluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// TestNewRefusesBadOptions checks that every contradictory or impossible
// option list makes New fail with an *OptionError naming the options
// involved, before anything is started.
func TestNewRefusesBadOptions(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	require.NoError(t, err)
	ps, err := pubsub.NewGossipSub(ctx, h)
	require.NoError(t, err)

	// The options are refused before any component is used, so stand-ins
	// that only satisfy the interfaces do.
	mon := struct{ pincluster.PeerMonitor }{}
	cons := struct{ pincluster.Consensus }{}
	inf := clustertest.NewStaticInformer("static")
	tracer := pincluster.WithTracerProvider(noop.NewTracerProvider())

	for _, tc := range []struct {
		name    string
		opts    []pincluster.Option
		options string // what the error must name
	}{
		{"two stores", []pincluster.Option{pincluster.WithBadger(t.TempDir()), pincluster.WithPebble(t.TempDir())}, "WithBadger and WithPebble"},
		{"consensus and store", []pincluster.Option{pincluster.WithConsensus(cons), pincluster.WithBadger(t.TempDir())}, "WithConsensus and WithBadger"},
		{"consensus and batching", []pincluster.Option{pincluster.WithConsensus(cons), pincluster.WithBatching(10, 0)}, "WithConsensus and WithBatching"},
		{"consensus and snapshots", []pincluster.Option{pincluster.WithSnapshots(100, false), pincluster.WithConsensus(cons)}, "WithConsensus and WithSnapshots"},
		{"snapshot interval without snapshots", []pincluster.Option{pincluster.WithSnapshots(0, false), pincluster.WithSnapshotInterval(time.Minute)}, "WithSnapshotInterval and WithSnapshots"},
		{"monitor and informers", []pincluster.Option{pincluster.WithMonitor(mon), pincluster.WithInformers(inf)}, "WithMonitor and WithInformers"},
		{"tags and informers", []pincluster.Option{pincluster.WithTags(map[string]string{"region": "eu"}), pincluster.WithInformers(inf)}, "WithTags and WithInformers"},
		{"tags and monitor", []pincluster.Option{pincluster.WithTags(map[string]string{"region": "eu"}), pincluster.WithMonitor(mon)}, "WithTags and WithMonitor"},
		{"two tracers", []pincluster.Option{tracer, tracer}, "WithTracerProvider and WithTracerProvider"},
		{"min above max", []pincluster.Option{pincluster.WithReplication(3, 2)}, "WithReplication"},
		{"zero replication", []pincluster.Option{pincluster.WithReplication(0, 2)}, "WithReplication"},
		{"empty tag key", []pincluster.Option{pincluster.WithTags(map[string]string{"": "x"})}, "WithTags"},
		{"bad cluster name", []pincluster.Option{pincluster.WithClusterName("a b")}, "WithClusterName"},
		{"nil logger", []pincluster.Option{pincluster.WithLogger(nil)}, "WithLogger"},
		{"negative snapshot count", []pincluster.Option{pincluster.WithSnapshots(-1, false)}, "WithSnapshots"},
		{"zero monitor interval", []pincluster.Option{pincluster.WithMonitorInterval(0)}, "WithMonitorInterval"},
		{"zero metric ttl", []pincluster.Option{pincluster.WithMetricTTL(0)}, "WithMetricTTL"},
		{"metric ttl not above the interval", []pincluster.Option{pincluster.WithMonitorInterval(10 * time.Second), pincluster.WithMetricTTL(10 * time.Second)}, "WithMetricTTL and WithMonitorInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pincluster.New(ctx, h, nil, ps, tc.opts...)
			if c != nil {
				_ = c.Shutdown(context.Background())
			}
			require.Error(t, err)
			require.ErrorIs(t, err, pincluster.ErrOption)
			var oe *pincluster.OptionError
			require.True(t, errors.As(err, &oe), "error %v is not an *OptionError", err)
			require.True(t, strings.HasPrefix(oe.Options, tc.options), "options %q, want %q (%v)", oe.Options, tc.options, err)
		})
	}
	// Nil options are skipped.
	c, err := pincluster.New(ctx, h, nil, ps, nil, pincluster.WithTags(map[string]string{"region": "eu"}), nil)
	require.NoError(t, err)
	require.NoError(t, c.Shutdown(context.Background()))
}
