package ipfsnode_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// blockScans counts the queries over the node's blocks (what counting
// them at start does).
type blockScans struct {
	ds.Batching
	n atomic.Int64
}

func (b *blockScans) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if strings.HasPrefix(q.Prefix, "/ipfsnode/blocks") {
		b.n.Add(1)
	}
	return b.Batching.Query(ctx, q)
}

// copyDS returns a copy of every entry of d: what a crash would leave.
func copyDS(t testing.TB, d ds.Batching) ds.Batching {
	t.Helper()
	ctx := context.Background()
	res, err := d.Query(ctx, dsq.Query{})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	out := newDS()
	for _, e := range es {
		require.NoError(t, out.Put(ctx, ds.RawKey(e.Key), e.Value))
	}
	return out
}

// TestStartReadsSavedTotals checks that a node started after a clean
// Close takes its blocks' totals from what Close saved instead of counting
// every block (which at 10M pins took most of the 7-10 s to Ready), and
// that a start after a crash, or over a corrupt record, counts them: the
// totals are never stale.
func TestStartReadsSavedTotals(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	d := newDS()
	scans := &blockScans{Batching: d}
	n := newNode(t, ipfsnode.Config{Datastore: scans})
	require.Equal(t, int64(1), scans.n.Load(), "a first start counts")
	for i := range 3 {
		_, err := n.BlockPut(ctx, randBytes(uint64(i), 100+i), cid.Prefix{})
		require.NoError(t, err)
	}
	require.NoError(t, n.SysBlockPut(ctx, rawBlock(t, randBytes(9, 50))))
	want := repoStat(t, n)
	require.Equal(t, ipfsnode.RepoStat{RepoSize: 303, NumObjects: 3, StorageMax: ipfsnode.DefaultStorageMax}, want)
	require.NoError(t, n.Close(ctx))
	// Nothing is written after the totals are saved.
	require.ErrorIs(t, n.Blockstore().Put(ctx, rawBlock(t, []byte("late"))), ipfsnode.ErrClosed)

	scans = &blockScans{Batching: d}
	n = newNode(t, ipfsnode.Config{Datastore: scans})
	require.Zero(t, scans.n.Load(), "a start after Close does not count")
	require.Equal(t, want, repoStat(t, n))

	// A crash after more writes: the next start counts (the saved totals
	// were removed at start).
	c, err := n.BlockPut(ctx, randBytes(10, 1000), cid.Prefix{})
	require.NoError(t, err)
	want.RepoSize += 1000
	want.NumObjects++
	crashed := &blockScans{Batching: copyDS(t, d)}
	after := newNode(t, ipfsnode.Config{Datastore: crashed})
	require.Equal(t, int64(1), crashed.n.Load(), "a start after a crash counts")
	require.Equal(t, want, repoStat(t, after))

	// A delete, a clean Close, and a corrupt record: counted.
	require.NoError(t, n.Blockstore().DeleteBlock(ctx, c))
	want.RepoSize -= 1000
	want.NumObjects--
	require.NoError(t, n.Close(ctx))
	require.NoError(t, d.Put(ctx, ds.NewKey("/ipfsnode/usage"), []byte{1, 0xff}))
	scans = &blockScans{Batching: d}
	n = newNode(t, ipfsnode.Config{Datastore: scans})
	require.Equal(t, int64(1), scans.n.Load(), "a corrupt record is counted again")
	require.Equal(t, want, repoStat(t, n))
}
