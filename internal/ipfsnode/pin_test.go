package ipfsnode_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/datastore/dshelp"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

func pinList(t testing.TB, n *ipfsnode.Node) map[cid.Cid]ipfsnode.Pin {
	t.Helper()
	out := map[cid.Cid]ipfsnode.Pin{}
	for p, err := range n.Pins(context.Background()) {
		require.NoError(t, err)
		out[p.Cid] = p
	}
	return out
}

// The Done-when test: three hosts on loopback TCP; 10 MiB added on A is
// pinned on B and C through bitswap; unpin on B + GC frees exactly the
// blocks not shared with B's other pin.
func TestThreeHostsPinUnpinGC(t *testing.T) {
	a := newNode(t, ipfsnode.Config{})
	b := newNode(t, ipfsnode.Config{})
	c := newNode(t, ipfsnode.Config{})
	connect(t, b, a)
	connect(t, c, a)
	connect(t, c, b)
	ctx := testCtx(t, 2*time.Minute)

	// Two files sharing their first 4 MiB (16 identical 256 KiB raw
	// leaves), each 10 MiB.
	shared := randBytes(100, 4<<20)
	big := append(append([]byte{}, shared...), randBytes(101, 6<<20)...)
	other := append(append([]byte{}, shared...), randBytes(102, 6<<20)...)
	bigCid := add(t, a, big, v1raw)
	otherCid := add(t, a, other, v1raw)

	var last ipfsnode.Progress
	for _, n := range []*ipfsnode.Node{b, c} {
		require.NoError(t, n.Pin(ctx, bigCid, ipfsnode.PinOptions{MaxDepth: -1, Name: "big", Progress: func(p ipfsnode.Progress) { last = p }}))
		require.Equal(t, big, readAll(t, n, bigCid))
	}
	require.Equal(t, uint64(41), last.Blocks, "40 leaves + root")
	require.Equal(t, uint64(len(big)), last.Bytes-rootSize(t, c, bigCid))

	require.NoError(t, b.Pin(ctx, otherCid, ipfsnode.PinOptions{MaxDepth: -1, Name: "other"}))
	require.Equal(t, other, readAll(t, b, otherCid))
	st, err := b.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(2*41-16), st.NumObjects)

	pt, err := b.PinStatus(ctx, bigCid, false)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.PinnedRecursive, pt)

	require.NoError(t, b.Unpin(ctx, bigCid))
	pt, err = b.PinStatus(ctx, bigCid, true)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.NotPinned, pt)

	res, err := b.GC(ctx)
	require.NoError(t, err)
	// big's 24 unshared leaves and its root.
	require.Equal(t, uint64(25), res.Blocks)
	require.Equal(t, uint64(6<<20)+rootSize(t, c, bigCid), res.Bytes)
	require.Len(t, res.Removed, 25)
	st2, err := b.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, st.NumObjects-25, st2.NumObjects)
	require.Equal(t, st.RepoSize-res.Bytes, st2.RepoSize)
	require.Equal(t, other, readAll(t, b, otherCid))

	// Nothing more to free; C still serves everything.
	res, err = b.GC(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Blocks)
	require.Equal(t, map[cid.Cid]ipfsnode.Pin{otherCid: {Cid: otherCid, MaxDepth: -1, Name: "other"}}, pinList(t, b))
}

func rootSize(t testing.TB, n *ipfsnode.Node, c cid.Cid) uint64 {
	t.Helper()
	b, err := n.BlockGet(context.Background(), c)
	require.NoError(t, err)
	return uint64(len(b))
}

func TestPinNobodyProvides(t *testing.T) {
	a := newNode(t, ipfsnode.Config{})
	b := newNode(t, ipfsnode.Config{})
	connect(t, b, a)
	missing, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte("nobody has this"))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = b.Pin(ctx, missing, ipfsnode.PinOptions{MaxDepth: -1})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), missing.String())
	_, err = b.GetPin(context.Background(), missing)
	require.ErrorIs(t, err, ipfsnode.ErrNotPinned)

	// The want is cancelled with the session (asynchronously).
	require.Eventually(t, func() bool { return len(b.Wantlist()) == 0 }, 10*time.Second, 10*time.Millisecond)

	_, err = b.BlockGet(ctx, missing)
	require.ErrorIs(t, err, ipfsnode.ErrNotFound)
}

func TestUnpinNotPinned(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	c := add(t, n, []byte("x"), v1raw)
	require.NoError(t, n.Pin(ctx, c, ipfsnode.PinOptions{}))
	other := add(t, n, []byte("y"), v1raw)
	err := n.Unpin(ctx, other)
	require.ErrorIs(t, err, ipfsnode.ErrNotPinned)
	require.Len(t, pinList(t, n), 1)
	require.NoError(t, n.Unpin(ctx, c))
	require.ErrorIs(t, n.Unpin(ctx, c), ipfsnode.ErrNotPinned)
	require.Empty(t, pinList(t, n))
}

func TestPinDepths(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	// size-1024 chunks, 700 KB: root -> 4 intermediate nodes -> 684 leaves.
	data := randBytes(7, 700_000)
	root := add(t, n, data, ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Chunker: "size-1024"})

	var prog ipfsnode.Progress
	require.NoError(t, n.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: 1, Progress: func(p ipfsnode.Progress) { prog = p }}))
	require.Equal(t, uint64(5), prog.Blocks)
	pt, err := n.PinStatus(ctx, root, false)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.PinnedRecursive, pt)
	res, err := n.GC(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(684), res.Blocks, "the leaves below depth 1 go")

	direct := add(t, n, []byte("direct"), v1raw)
	require.NoError(t, n.Pin(ctx, direct, ipfsnode.PinOptions{Name: "d"}))
	pt, err = n.PinStatus(ctx, direct, false)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.PinnedDirect, pt)

	// An intermediate node is indirectly pinned.
	ls, err := n.BlockGet(ctx, root)
	require.NoError(t, err)
	require.NotEmpty(t, ls)
	require.Error(t, n.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: -2}))
}

func TestIndirect(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	added, err := n.AddDirectory(ctx, files("a/b.txt", "b"), ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Pin: true})
	require.NoError(t, err)
	pt, err := n.PinStatus(ctx, added[0].Cid, true)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.PinnedIndirect, pt)
	pt, err = n.PinStatus(ctx, added[0].Cid, false)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.NotPinned, pt)
}

func TestCorruptBlock(t *testing.T) {
	d := newDS()
	n := newNode(t, ipfsnode.Config{Datastore: d})
	ctx := testCtx(t, time.Minute)
	data := randBytes(8, 600_000)
	root := add(t, n, data, v1raw)
	leaf, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data[:256<<10])
	require.NoError(t, err)

	// Corrupt the first leaf in the datastore.
	key := ds.NewKey("/ipfsnode/blocks").Child(dshelp.MultihashToDsKey(leaf.Hash()))
	require.NoError(t, d.Put(ctx, key, []byte("garbage")))

	var corrupt *ipfsnode.CorruptBlockError
	_, err = n.BlockGet(ctx, leaf)
	require.ErrorAs(t, err, &corrupt)
	require.Equal(t, leaf, corrupt.Cid)

	err = n.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: -1})
	require.ErrorAs(t, err, &corrupt)
	require.Equal(t, leaf, corrupt.Cid)
	_, err = n.GetPin(ctx, root)
	require.ErrorIs(t, err, ipfsnode.ErrNotPinned)
	// The corrupt raw block pinned on its own (a root with nothing below
	// it: no DAG walk), recursively and directly: refused the same way.
	for _, depth := range []int{-1, 0} {
		err = n.Pin(ctx, leaf, ipfsnode.PinOptions{MaxDepth: depth})
		require.ErrorAs(t, err, &corrupt)
		require.Equal(t, leaf, corrupt.Cid)
		_, err = n.GetPin(ctx, leaf)
		require.ErrorIs(t, err, ipfsnode.ErrNotPinned)
	}

	// Not served: a peer asking for it does not get it.
	other := newNode(t, ipfsnode.Config{})
	connect(t, other, n)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = other.BlockGet(short, leaf)
	require.ErrorIs(t, err, ipfsnode.ErrNotFound)

	// A block offered with the wrong CID is refused.
	bad, err := blocks.NewBlockWithCid([]byte("not foo"), cid.MustParse("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"))
	require.NoError(t, err)
	require.ErrorAs(t, n.PutBlock(ctx, bad), &corrupt)
	has, err := n.HasBlock(ctx, bad.Cid())
	require.NoError(t, err)
	require.False(t, has)
}

func TestPersistenceAcrossReopen(t *testing.T) {
	d := newDS()
	h := newHost(t)
	n1, err := ipfsnode.New(context.Background(), ipfsnode.Config{Host: h, Datastore: d})
	require.NoError(t, err)
	ctx := testCtx(t, time.Minute)
	data := randBytes(11, 1<<20)
	rec := add(t, n1, data, v1raw)
	dir := add(t, n1, []byte("direct"), v1raw)
	require.NoError(t, n1.Pin(ctx, rec, ipfsnode.PinOptions{MaxDepth: -1, Name: "r"}))
	require.NoError(t, n1.Pin(ctx, dir, ipfsnode.PinOptions{Name: "d"}))
	st1, err := n1.RepoStat(ctx)
	require.NoError(t, err)
	require.NoError(t, n1.Close(ctx))
	require.ErrorIs(t, n1.Close(ctx), ipfsnode.ErrClosed)
	require.ErrorIs(t, n1.Pin(ctx, rec, ipfsnode.PinOptions{}), ipfsnode.ErrClosed)
	_, err = n1.RepoStat(ctx)
	require.ErrorIs(t, err, ipfsnode.ErrClosed)

	n2 := newNode(t, ipfsnode.Config{Host: h, Datastore: d})
	require.Equal(t, map[cid.Cid]ipfsnode.Pin{
		rec: {Cid: rec, MaxDepth: -1, Name: "r"},
		dir: {Cid: dir, MaxDepth: 0, Name: "d"},
	}, pinList(t, n2))
	st2, err := n2.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, st1, st2)
	res, err := n2.GC(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Blocks)
	require.Equal(t, data, readAll(t, n2, rec))
}

func TestStorageMax(t *testing.T) {
	n := newNode(t, ipfsnode.Config{StorageMax: 1 << 20})
	ctx := testCtx(t, time.Minute)
	_, err := n.Add(ctx, bytes.NewReader(randBytes(12, 2<<20)), v1raw)
	require.ErrorIs(t, err, ipfsnode.ErrStorageFull)
	_, err = n.BlockPut(ctx, make([]byte, 2<<20), cid.Prefix{})
	require.ErrorIs(t, err, ipfsnode.ErrStorageFull)
	st, err := n.RepoStat(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, st.RepoSize, st.StorageMax)
	require.Equal(t, uint64(1<<20), st.StorageMax)

	// GC frees the partial import; then it fits once half as big.
	_, err = n.GC(ctx)
	require.NoError(t, err)
	_, err = n.Add(ctx, bytes.NewReader(randBytes(13, 512<<10)), v1raw)
	require.NoError(t, err)
}

func TestBlockPutGet(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	c, err := n.BlockPut(ctx, []byte("foo"), cid.Prefix{})
	require.NoError(t, err)
	require.Equal(t, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", c.String())
	got, err := n.BlockGet(ctx, c)
	require.NoError(t, err)
	require.Equal(t, "foo", string(got))
	c0, err := n.BlockPut(ctx, []byte("foo"), cid.Prefix{Version: 0, Codec: cid.DagProtobuf, MhType: 0x12, MhLength: -1})
	require.NoError(t, err)
	require.Equal(t, 0, int(c0.Version()))
}

// GC running while a pin fetches over the network never takes the pin's
// blocks away.
func TestGCDuringPin(t *testing.T) {
	a := newNode(t, ipfsnode.Config{})
	b := newNode(t, ipfsnode.Config{FetchConcurrency: 4})
	connect(t, b, a)
	ctx := testCtx(t, 2*time.Minute)
	data := randBytes(14, 2<<20)
	root := add(t, a, data, ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Chunker: "size-4096"})

	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		done <- b.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: -1})
	}()
	gcs := 0
loop:
	for {
		select {
		case err := <-done:
			require.NoError(t, err)
			break loop
		default:
			_, err := b.GC(ctx)
			require.NoError(t, err)
			gcs++
		}
	}
	wg.Wait()
	t.Logf("%d GC runs during the pin", gcs)
	res, err := b.GC(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Blocks)
	require.NoError(t, a.Close(ctx))
	require.Equal(t, data, readAll(t, b, root), "every block is local on B")
}

var errInjected = errors.New("injected failure")

// A pin that does not fit fails with ErrStorageFull as soon as a block is
// refused, not at the deadline.
func TestPinStorageFull(t *testing.T) {
	a := newNode(t, ipfsnode.Config{})
	b := newNode(t, ipfsnode.Config{StorageMax: 1 << 20})
	connect(t, b, a)
	root := add(t, a, randBytes(50, 2<<20), v1raw)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := b.Pin(ctx, root, ipfsnode.PinOptions{MaxDepth: -1})
	require.ErrorIs(t, err, ipfsnode.ErrStorageFull)
	require.Less(t, time.Since(start), 30*time.Second)
	_, err = b.GetPin(ctx, root)
	require.ErrorIs(t, err, ipfsnode.ErrNotPinned)
}

// A local raw block pinned again: each pin replaces the depth and name (the
// record is written again without being read first), the same pin asked
// again keeps it, and progress reports the one block each time.
func TestRepinLocalLeaf(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	c := add(t, n, []byte("a local leaf"), v1raw)
	require.Equal(t, uint64(cid.Raw), c.Type())
	steps := []ipfsnode.PinOptions{
		{MaxDepth: -1, Name: "a"},
		{MaxDepth: -1, Name: "a"},
		{MaxDepth: 0, Name: "a"},
		{MaxDepth: 0, Name: "b"},
		{MaxDepth: -1},
	}
	for _, o := range steps {
		var got []ipfsnode.Progress
		o.Progress = func(p ipfsnode.Progress) { got = append(got, p) }
		require.NoError(t, n.Pin(ctx, c, o))
		require.Equal(t, []ipfsnode.Progress{{Blocks: 1, Bytes: uint64(len("a local leaf"))}}, got)
		p, err := n.GetPin(ctx, c)
		require.NoError(t, err)
		require.Equal(t, ipfsnode.Pin{Cid: c, MaxDepth: o.MaxDepth, Name: o.Name}, p)
	}
	require.Len(t, pinList(t, n), 1)
}
