package pincluster

import (
	"context"
	"slices"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
	"github.com/stretchr/testify/require"
)

// TestMemStoreSuite runs go-datastore's conformance suite on the in-memory
// store behind NewMemoryState.
func TestMemStoreSuite(t *testing.T) {
	dstest.SubtestAll(t, newMemStore())
}

// TestMemStorePrefixQuery checks that a prefix query returns exactly the
// keys under the prefix (not its siblings sharing the same bytes) after
// puts, deletes and batches.
func TestMemStorePrefixQuery(t *testing.T) {
	ctx := context.Background()
	m := newMemStore()
	for _, k := range []string{"/a/b/2", "/a/b/1", "/a/bc", "/a/b", "/a/b/1/x", "/b/1", "/a/c/1", "/a/b/3"} {
		require.NoError(t, m.Put(ctx, ds.NewKey(k), []byte(k)))
	}
	require.NoError(t, m.Delete(ctx, ds.NewKey("/a/b/3")))
	b, err := m.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, ds.NewKey("/a/b/0"), []byte("/a/b/0")))
	require.NoError(t, b.Delete(ctx, ds.NewKey("/a/b/2")))
	require.NoError(t, b.Commit(ctx))
	keys := func(prefix string) []string {
		res, err := m.Query(ctx, dsq.Query{Prefix: prefix})
		require.NoError(t, err)
		es, err := res.Rest()
		require.NoError(t, err)
		var out []string
		for _, e := range es {
			require.Equal(t, e.Key, string(e.Value))
			out = append(out, e.Key)
		}
		slices.Sort(out)
		return out
	}
	require.Equal(t, []string{"/a/b/0", "/a/b/1", "/a/b/1/x"}, keys("/a/b"))
	require.Equal(t, []string{"/a/b/0", "/a/b/1", "/a/b/1/x"}, keys("/a/b/"))
	require.Equal(t, []string{"/a/b", "/a/b/0", "/a/b/1", "/a/b/1/x", "/a/bc", "/a/c/1"}, keys("/a"))
	require.Equal(t, []string{"/a/b", "/a/b/0", "/a/b/1", "/a/b/1/x", "/a/bc", "/a/c/1", "/b/1"}, keys("/"))
	require.Empty(t, keys("/c"))
}
