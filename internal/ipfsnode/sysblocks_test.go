package ipfsnode_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// cborDelta returns a dag-cbor block {prev: links, v: v}, not stored.
func cborDelta(t testing.TB, v string, links ...cid.Cid) blocks.Block {
	t.Helper()
	nd, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "prev", qp.List(int64(len(links)), func(la datamodel.ListAssembler) {
			for _, l := range links {
				qp.ListEntry(la, qp.Link(cidlink.Link{Cid: l}))
			}
		}))
		qp.MapEntry(ma, "v", qp.String(v))
	})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, dagcbor.Encode(nd, &buf))
	c, err := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}.Sum(buf.Bytes())
	require.NoError(t, err)
	b, err := blocks.NewBlockWithCid(buf.Bytes(), c)
	require.NoError(t, err)
	return b
}

func rawBlock(t testing.TB, data []byte) blocks.Block {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	require.NoError(t, err)
	b, err := blocks.NewBlockWithCid(data, c)
	require.NoError(t, err)
	return b
}

func repoStat(t testing.TB, n *ipfsnode.Node) ipfsnode.RepoStat {
	t.Helper()
	st, err := n.RepoStat(context.Background())
	require.NoError(t, err)
	return st
}

// TestSysBlocksUncounted checks the system blocks (the consensus's own):
// they are stored beyond StorageMax without being counted, survive GC,
// are served to peers over bitswap, and a peer fetching one stores it as
// a system block too.
func TestSysBlocksUncounted(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	const max = 1000
	a := newNode(t, ipfsnode.Config{StorageMax: max})
	big := rawBlock(t, randBytes(1, 4*max))
	require.NoError(t, a.SysBlockPut(ctx, big))
	require.Equal(t, ipfsnode.RepoStat{StorageMax: max}, repoStat(t, a))
	// The user's blocks still have the whole StorageMax.
	user, err := a.BlockPut(ctx, randBytes(2, 600), cid.Prefix{})
	require.NoError(t, err)
	_, err = a.BlockPut(ctx, randBytes(3, 600), cid.Prefix{})
	require.ErrorIs(t, err, ipfsnode.ErrStorageFull)
	require.Equal(t, ipfsnode.RepoStat{RepoSize: 600, NumObjects: 1, StorageMax: max}, repoStat(t, a))

	// GC removes the unpinned user block and leaves the system block.
	res, err := a.GC(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Blocks)
	require.Equal(t, user.Hash(), res.Removed[0].Hash())
	got, err := a.SysBlockGet(ctx, big.Cid())
	require.NoError(t, err)
	require.Equal(t, big.RawData(), got)

	// Served to a peer, stored there as a system block (uncounted, not
	// among its user blocks).
	b := newNode(t, ipfsnode.Config{StorageMax: max})
	connect(t, b, a)
	got, err = b.SysBlockGet(ctx, big.Cid())
	require.NoError(t, err)
	require.Equal(t, big.RawData(), got)
	require.Equal(t, ipfsnode.RepoStat{StorageMax: max}, repoStat(t, b))
	has, err := b.HasBlock(ctx, big.Cid())
	require.NoError(t, err)
	require.False(t, has, "a fetched system block is not a user block")

	// Deleted: gone (a second delete is not an error); b, which serves
	// it now, stops first.
	require.NoError(t, b.Close(ctx))
	require.NoError(t, a.SysBlockDelete(ctx, big.Cid()))
	require.NoError(t, a.SysBlockDelete(ctx, big.Cid()))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = a.SysBlockGet(short, big.Cid())
	require.ErrorIs(t, err, ipfsnode.ErrNotFound)

	// A block whose bytes do not match its CID is refused.
	bad, err := blocks.NewBlockWithCid([]byte("not these bytes"), big.Cid())
	require.NoError(t, err)
	var corrupt *ipfsnode.CorruptBlockError
	require.ErrorAs(t, a.SysBlockPut(ctx, bad), &corrupt)
}

// TestSysBlocksOverLegacyUserBlocks checks a node whose owner's blocks
// were stored among the user's blocks by an earlier version: SysBlockGet
// finds them there, GC keeps those reached from ExtraRoots through system
// blocks, and SysBlockDelete removes the user copy (and its count).
func TestSysBlocksOverLegacyUserBlocks(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	n, setRoots := nodeWithRoots(t)
	// d1 <- d2 stored as user blocks (the earlier version), d3 <- d2 as a
	// system block; the head is d3.
	d1 := cborDelta(t, "one")
	d2 := cborDelta(t, "two", d1.Cid())
	d3 := cborDelta(t, "three", d2.Cid())
	require.NoError(t, n.PutBlock(ctx, d1))
	require.NoError(t, n.PutBlock(ctx, d2))
	require.NoError(t, n.SysBlockPut(ctx, d3))
	setRoots(d3.Cid())
	legacy := repoStat(t, n)
	require.Equal(t, uint64(2), legacy.NumObjects)

	res, err := n.GC(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Blocks, "blocks reached from the head through a system block")
	for _, b := range []blocks.Block{d1, d2, d3} {
		got, err := n.SysBlockGet(ctx, b.Cid())
		require.NoError(t, err)
		require.Equal(t, b.RawData(), got)
	}

	require.NoError(t, n.SysBlockDelete(ctx, d1.Cid()))
	st := repoStat(t, n)
	require.Equal(t, uint64(1), st.NumObjects)
	require.Equal(t, legacy.RepoSize-uint64(len(d1.RawData())), st.RepoSize)
}
