package crdt_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
)

type blockRef struct {
	c   cid.Cid
	raw []byte
}

func newMapStore() ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) }

// newMemStore returns an in-memory pebble datastore (efficient prefix
// queries, unlike the map datastore), closed at the end of the test.
func newMemStore(t testing.TB) ds.Batching {
	opts := &pebble.Options{FS: vfs.NewMem()}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10) // cheap misses
	}
	d, err := pebbleds.NewDatastore("", pebbleds.WithPebbleOpts(opts))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// headBlock returns the single head of r and its block.
func headBlock(t testing.TB, c *cluster, r *replica) blockRef {
	t.Helper()
	hs := r.Heads()
	require.Len(t, hs, 1)
	raw, err := c.net.DAG(r.name).Get(context.Background(), hs[0])
	require.NoError(t, err)
	return blockRef{hs[0], raw}
}

func rawCid(t testing.TB, raw []byte) cid.Cid {
	h, err := mh.Sum(raw, mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(0x71, h)
}

const helperEnv = "CRDT_TEST_HELPER"
