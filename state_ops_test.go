package pincluster_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// ExportState and ImportState carry a pinset from one cluster to another,
// record for record; a corrupt stream is refused whole with its line named.
func TestClusterExportImportState(t *testing.T) {
	ctx := context.Background()
	src := clustertest.NewCluster(t, 1)
	for i := range 3 {
		_, err := src.Peer(0).Pin(ctx, mkCid(t, i), pincluster.PinOptions{Name: "p"})
		require.NoError(t, err)
	}
	var export bytes.Buffer
	require.NoError(t, src.Peer(0).ExportState(ctx, &export))
	require.Equal(t, 4, strings.Count(export.String(), "\n"), export.String())

	dst := clustertest.NewCluster(t, 1)
	n, err := dst.Peer(0).ImportState(ctx, bytes.NewReader(export.Bytes()))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	var again bytes.Buffer
	require.NoError(t, dst.Peer(0).ExportState(ctx, &again))
	sorted := func(s string) []string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		slices.Sort(l)
		return l
	}
	require.Equal(t, sorted(export.String()), sorted(again.String()))

	lines := strings.SplitAfter(export.String(), "\n")
	bad := lines[0] + lines[1] + "{\"cid\":{\"/\":\"garbage\"}}\n"
	fresh := clustertest.NewCluster(t, 1)
	_, err = fresh.Peer(0).ImportState(ctx, strings.NewReader(bad))
	var re *pincluster.RecordError
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, 3, re.Line)
	for _, err := range fresh.Peer(0).Pins(ctx, pincluster.PinFilter{}) {
		require.NoError(t, err)
		t.Fatal("a refused import wrote a pin")
	}
}

func TestImportStateFollowerRefuses(t *testing.T) {
	c := clustertest.NewCluster(t, 1, pincluster.WithFollowerMode(true))
	_, err := c.Peer(0).ImportState(context.Background(), strings.NewReader("{\"pincluster_state\":1}\n"))
	require.ErrorIs(t, err, pincluster.ErrFollowerMode)
}

// RepoStatAll asks every peer, this one first; ConsensusStats counts the
// deltas written here and applied from the other peer.
func TestRepoStatAllAndConsensusStats(t *testing.T) {
	ctx := context.Background()
	c := clustertest.NewCluster(t, 2)
	stats, err := c.Peer(0).RepoStatAll(ctx)
	require.NoError(t, err)
	require.Len(t, stats, 2)
	require.Equal(t, c.Peer(0).ID(), stats[0].Peer)
	require.Equal(t, c.Peer(1).ID(), stats[1].Peer)
	for _, s := range stats {
		require.NoError(t, s.Err)
	}

	_, err = c.Peer(0).Pin(ctx, mkCid(t, 1), pincluster.PinOptions{})
	require.NoError(t, err)
	s0, ok := c.Peer(0).ConsensusStats()
	require.True(t, ok)
	require.GreaterOrEqual(t, s0.LocalDeltas, uint64(1))
	require.GreaterOrEqual(t, s0.Heads, 1)
	c.WaitFor("peer 1 applies peer 0's delta", time.Minute, func() bool {
		s1, ok := c.Peer(1).ConsensusStats()
		return ok && s1.RemoteDeltas >= 1
	})
	require.NoError(t, c.Peer(1).Shutdown(ctx))
	_, ok = c.Peer(1).ConsensusStats()
	require.False(t, ok, "no stats after Shutdown")
}

// CleanState empties the pinset kept in a datastore; a peer started on it
// again has no pins.
func TestCleanState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := clustertest.Start(t, clustertest.Setup{N: 1, Options: []pincluster.Option{pincluster.WithPebble(dir)}})
	_, err := c.Peer(0).Pin(ctx, mkCid(t, 1), pincluster.PinOptions{})
	require.NoError(t, err)
	c.Stop(0)
	require.NoError(t, pincluster.CleanState(ctx, pincluster.WithPebble(dir)))
	c.Restart(0)
	for _, err := range c.Peer(0).Pins(ctx, pincluster.PinFilter{}) {
		require.NoError(t, err)
		t.Fatal("a pin survived CleanState")
	}
}
