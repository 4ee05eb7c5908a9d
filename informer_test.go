package pincluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// TestFreeSpaceInformer runs on synctest's fake clock: validity times are exact.
func TestFreeSpaceInformer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		stat := pincluster.RepoStat{RepoSize: 30, StorageMax: 100}
		var statErr error
		var reserved uint64
		inf, err := pincluster.NewFreeSpaceInformer(
			func(context.Context) (pincluster.RepoStat, error) { return stat, statErr },
			pincluster.FreeSpaceConfig{
				InformerConfig: pincluster.InformerConfig{TTL: time.Minute},
				Reserved:       func(context.Context) uint64 { return reserved },
			})
		require.NoError(t, err)
		require.Equal(t, pincluster.MetricFreeSpace, inf.Name())

		one := func() pincluster.Metric {
			t.Helper()
			ms := inf.GetMetrics(ctx)
			require.Len(t, ms, 1)
			m := ms[0]
			require.Equal(t, pincluster.MetricFreeSpace, m.Name)
			require.False(t, m.Partitionable)
			require.Empty(t, m.Peer, "the monitor fills in the peer")
			require.True(t, m.ValidUntil.Equal(time.Now().Add(time.Minute)), "valid for the TTL: %v", m.ValidUntil)
			return m
		}
		m := one()
		require.Equal(t, int64(70), m.Weight)
		require.Equal(t, "70", m.Value)

		reserved = 20 // pins queued here, not yet fetched
		require.Equal(t, int64(50), one().Weight)

		reserved = 500 // more reserved than free: 0, never negative
		require.Equal(t, int64(0), one().Weight)

		reserved = 0
		stat = pincluster.RepoStat{RepoSize: 200, StorageMax: 100} // over the limit
		require.Equal(t, int64(0), one().Weight)
		require.Equal(t, "0", one().Value)

		statErr = errors.New("ipfs down")
		require.Empty(t, inf.GetMetrics(ctx), "no metric rather than a wrong one")

		require.NoError(t, inf.Shutdown(ctx))
		require.ErrorIs(t, inf.Shutdown(ctx), pincluster.ErrClosed)
		require.Nil(t, inf.GetMetrics(ctx))

		_, err = pincluster.NewFreeSpaceInformer(nil, pincluster.FreeSpaceConfig{})
		require.Error(t, err)
		_, err = pincluster.NewFreeSpaceInformer(func(context.Context) (pincluster.RepoStat, error) { return stat, nil },
			pincluster.FreeSpaceConfig{InformerConfig: pincluster.InformerConfig{TTL: -time.Second}})
		require.Error(t, err)
	})
}

// TestCountInformers runs on synctest's fake clock: validity times are exact.
func TestCountInformers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var n int64 = 42
		var srcErr error
		src := func(context.Context) (int64, error) { return n, srcErr }
		numpin, err := pincluster.NewNumPinInformer(src, pincluster.InformerConfig{})
		require.NoError(t, err)
		queue, err := pincluster.NewPinQueueInformer(src, pincluster.InformerConfig{})
		require.NoError(t, err)
		for _, inf := range []pincluster.Informer{numpin, queue} {
			n, srcErr = 42, nil
			ms := inf.GetMetrics(ctx)
			require.Len(t, ms, 1)
			require.Equal(t, inf.Name(), ms[0].Name)
			require.Equal(t, int64(42), ms[0].Weight)
			require.Equal(t, "42", ms[0].Value)
			require.True(t, ms[0].ValidUntil.Equal(time.Now().Add(30*time.Second)), "default TTL: %v", ms[0].ValidUntil)

			n = -3
			require.Equal(t, int64(0), inf.GetMetrics(ctx)[0].Weight)
			srcErr = errors.New("boom")
			require.Empty(t, inf.GetMetrics(ctx))

			require.NoError(t, inf.Shutdown(ctx))
			require.ErrorIs(t, inf.Shutdown(ctx), pincluster.ErrClosed)
			srcErr = nil
			require.Nil(t, inf.GetMetrics(ctx))
		}
		require.Equal(t, pincluster.MetricNumPin, numpin.Name())
		require.Equal(t, pincluster.MetricPinQueue, queue.Name())
		_, err = pincluster.NewPinQueueInformer(nil, pincluster.InformerConfig{})
		require.Error(t, err)
	})
}

func TestTagsInformer(t *testing.T) {
	ctx := context.Background()
	tags := map[string]string{"region": "eu", "group": "a"}
	inf, err := pincluster.NewTagsInformer(tags, pincluster.InformerConfig{})
	require.NoError(t, err)
	tags["region"] = "changed after construction"
	ms := inf.GetMetrics(ctx)
	require.Len(t, ms, 2)
	require.Equal(t, "tag:group", ms[0].Name)
	require.Equal(t, "a", ms[0].Value)
	require.Equal(t, "tag:region", ms[1].Name)
	require.Equal(t, "eu", ms[1].Value)
	for _, m := range ms {
		require.True(t, m.Partitionable)
		require.True(t, pincluster.IsTagMetric(m.Name))
		// The metric survives the wire encoding limits.
		m.Peer = tpidReal(t)
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		var back pincluster.Metric
		require.NoError(t, back.UnmarshalBinary(b))
	}
	require.NoError(t, inf.Shutdown(ctx))
	require.Nil(t, inf.GetMetrics(ctx))

	for _, bad := range []map[string]string{
		{"": "x"},
		{strings.Repeat("k", pincluster.MaxMetricNameLen): "x"},
		{"k": strings.Repeat("v", pincluster.MaxMetricValueLen+1)},
	} {
		_, err := pincluster.NewTagsInformer(bad, pincluster.InformerConfig{})
		require.Error(t, err)
	}
	empty, err := pincluster.NewTagsInformer(nil, pincluster.InformerConfig{})
	require.NoError(t, err)
	require.Empty(t, empty.GetMetrics(ctx))
}
