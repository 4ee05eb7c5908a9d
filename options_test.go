package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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
		{"allocator and allocate-by", []pincluster.Option{pincluster.WithAllocateBy(pincluster.MetricFreeSpace), pincluster.WithAllocator(pincluster.NewBalancedAllocator(pincluster.BalancedConfig{}))}, "WithAllocator and WithAllocateBy"},
		{"allocate-by nothing", []pincluster.Option{pincluster.WithAllocateBy()}, "WithAllocateBy"},
		{"allocate-by empty name", []pincluster.Option{pincluster.WithAllocateBy("tag:region", "")}, "WithAllocateBy"},
		{"allocate-by twice", []pincluster.Option{pincluster.WithAllocateBy("tag:region"), pincluster.WithAllocateBy("freespace")}, "WithAllocateBy"},
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

// TestWithAllocateBy tags 4 peers with 2 regions and allocates by region:
// the default balanced allocator, configured by the option alone, puts
// the 2 replicas of every pin in different regions (by its default,
// "tag:group", the region would be ignored).
func TestWithAllocateBy(t *testing.T) {
	region := func(i int) string { return []string{"eu", "us"}[i%2] }
	c := clustertest.Start(t, clustertest.Setup{N: 4, PeerOptions: func(i int) []pincluster.Option {
		return []pincluster.Option{
			pincluster.WithTags(map[string]string{"region": region(i)}),
			pincluster.WithAllocateBy(pincluster.MetricTagPrefix+"region", pincluster.MetricFreeSpace),
		}
	}})
	ctx := t.Context()
	regionOf := map[peer.ID]string{}
	for _, p := range c.Peers {
		regionOf[p.ID()] = region(p.Index)
	}
	c.WaitFor("peer 0 knows every peer's region and free space", 20*time.Second, func() bool {
		return len(c.Peer(0).Metrics(ctx, pincluster.MetricTagPrefix+"region")) == 4 &&
			len(c.Peer(0).Metrics(ctx, pincluster.MetricFreeSpace)) == 4
	})
	for i := range 20 {
		ci, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum([]byte(fmt.Sprint("region-", i)))
		require.NoError(t, err)
		pin, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
		require.NoError(t, err)
		require.Len(t, pin.Allocations, 2)
		require.NotEqual(t, regionOf[pin.Allocations[0]], regionOf[pin.Allocations[1]], "pin %d: both replicas in one region", i)
	}
}

// TestWithTracerProvider checks that the Cluster's operations are recorded
// as spans of the caller's OpenTelemetry TracerProvider, an error marking
// its span.
func TestWithTracerProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	c := clustertest.Start(t, clustertest.Setup{N: 1, PeerOptions: func(int) []pincluster.Option {
		return []pincluster.Option{pincluster.WithTracerProvider(tp)}
	}})
	ctx := t.Context()
	ci, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum([]byte("traced"))
	require.NoError(t, err)
	_, err = c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	_, err = c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{Name: strings.Repeat("x", pincluster.MaxNameLen+1)})
	require.ErrorIs(t, err, pincluster.ErrNameTooLong)

	var ok, failed int
	for _, s := range rec.Ended() {
		if s.Name() != "Cluster.Pin" {
			continue
		}
		if s.Status().Code == codes.Error {
			failed++
		} else {
			ok++
		}
	}
	require.Equal(t, 1, ok, "successful Cluster.Pin spans")
	require.Equal(t, 1, failed, "failed Cluster.Pin spans")
}
