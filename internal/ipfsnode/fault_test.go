package ipfsnode_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// failingDS fails every operation while fail is set.
type failingDS struct {
	ds.Batching
	fail atomic.Bool
}

func (f *failingDS) err() error {
	if f.fail.Load() {
		return errInjected
	}
	return nil
}

func (f *failingDS) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Batching.Get(ctx, k)
}

func (f *failingDS) Has(ctx context.Context, k ds.Key) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	return f.Batching.Has(ctx, k)
}

func (f *failingDS) GetSize(ctx context.Context, k ds.Key) (int, error) {
	if err := f.err(); err != nil {
		return -1, err
	}
	return f.Batching.GetSize(ctx, k)
}

func (f *failingDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Batching.Put(ctx, k, v)
}

func (f *failingDS) Delete(ctx context.Context, k ds.Key) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Batching.Delete(ctx, k)
}

func (f *failingDS) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Batching.Query(ctx, q)
}

func (f *failingDS) Batch(ctx context.Context) (ds.Batch, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Batching.Batch(ctx)
}

func TestDatastoreFailures(t *testing.T) {
	f := &failingDS{Batching: newDS()}
	ctx := testCtx(t, time.Minute)

	f.fail.Store(true)
	_, err := ipfsnode.New(ctx, ipfsnode.Config{Host: newHost(t), Datastore: f})
	require.ErrorIs(t, err, errInjected)
	f.fail.Store(false)

	n := newNode(t, ipfsnode.Config{Datastore: f})
	c := add(t, n, randBytes(20, 1<<20), v1raw)
	require.NoError(t, n.Pin(ctx, c, ipfsnode.PinOptions{MaxDepth: -1}))

	f.fail.Store(true)
	_, err = n.BlockPut(ctx, []byte("x"), cid.Prefix{})
	require.ErrorIs(t, err, errInjected)
	_, err = n.BlockGet(ctx, c)
	require.ErrorIs(t, err, errInjected)
	_, err = n.Add(ctx, bytes.NewReader([]byte("y")), v1raw)
	require.ErrorIs(t, err, errInjected)
	require.ErrorIs(t, n.Pin(ctx, c, ipfsnode.PinOptions{}), errInjected)
	require.ErrorIs(t, n.Unpin(ctx, c), errInjected)
	_, err = n.GetPin(ctx, c)
	require.ErrorIs(t, err, errInjected)
	_, err = n.PinStatus(ctx, c, true)
	require.ErrorIs(t, err, errInjected)
	for _, err := range n.Pins(ctx) {
		require.ErrorIs(t, err, errInjected)
	}
	_, err = n.GC(ctx)
	require.ErrorIs(t, err, errInjected)
	_, err = n.Resolve(ctx, "/ipfs/"+c.String()+"/x")
	require.ErrorIs(t, err, errInjected)
	_, err = n.Cat(ctx, c)
	require.ErrorIs(t, err, errInjected)

	// Back to normal: nothing was lost or half-written.
	f.fail.Store(false)
	require.Len(t, pinList(t, n), 1)
	res, err := n.GC(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Blocks)
	require.Len(t, readAll(t, n, c), 1<<20)
}

// cborBlock stores a dag-cbor block {"prev": [links...], "v": v}.
func cborBlock(t testing.TB, n *ipfsnode.Node, v string, links ...cid.Cid) cid.Cid {
	t.Helper()
	b := cborDelta(t, v, links...)
	c, err := n.BlockPut(context.Background(), b.RawData(), b.Cid().Prefix())
	require.NoError(t, err)
	require.Equal(t, b.Cid(), c)
	return c
}

// nodeWithRoots returns a node whose GC keeps what the roots given to
// setRoots reach (Config.ExtraRoots, as the cluster's consensus heads).
func nodeWithRoots(t *testing.T) (n *ipfsnode.Node, setRoots func(...cid.Cid)) {
	t.Helper()
	var mu sync.Mutex
	var roots []cid.Cid
	n = newNode(t, ipfsnode.Config{ExtraRoots: func(context.Context) ([]cid.Cid, error) {
		mu.Lock()
		defer mu.Unlock()
		return roots, nil
	}})
	return n, func(cs ...cid.Cid) {
		mu.Lock()
		defer mu.Unlock()
		roots = cs
	}
}

func TestGCKeepsExtraRoots(t *testing.T) {
	n, setRoots := nodeWithRoots(t)
	ctx := testCtx(t, time.Minute)
	// A delta DAG: d1 <- d2 <- d3 (heads: d3), d1 also links a UnixFS file.
	file := add(t, n, randBytes(21, 600_000), v1raw)
	d1 := cborBlock(t, n, "one", file)
	d2 := cborBlock(t, n, "two", d1)
	d3 := cborBlock(t, n, "three", d2)
	garbage := cborBlock(t, n, "garbage", d1)
	setRoots(d3)

	res, err := n.GC(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Blocks)
	require.Equal(t, garbage.Hash(), res.Removed[0].Hash())
	for _, c := range []cid.Cid{d1, d2, d3, file} {
		has, err := n.HasBlock(ctx, c)
		require.NoError(t, err)
		require.True(t, has, c)
	}
	require.Len(t, readAll(t, n, file), 600_000)

	// A root error aborts GC before anything is deleted.
	bad := newNode(t, ipfsnode.Config{ExtraRoots: func(context.Context) ([]cid.Cid, error) { return nil, errInjected }})
	add(t, bad, []byte("loose"), v1raw)
	_, err = bad.GC(ctx)
	require.ErrorIs(t, err, errInjected)
	st, err := bad.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.NumObjects)

	// A dag-cbor DAG is pinned across the network too.
	other := newNode(t, ipfsnode.Config{})
	connect(t, other, n)
	require.NoError(t, other.Pin(ctx, d3, ipfsnode.PinOptions{MaxDepth: -1}))
	st, err = other.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(3+1+3), st.NumObjects, "3 deltas, the file root, 3 leaves")
}

// fakeRouting records provides; it finds no providers.
type fakeRouting struct {
	mu       sync.Mutex
	provided []cid.Cid
	ch       chan cid.Cid
}

func (f *fakeRouting) Provide(_ context.Context, c cid.Cid, _ bool) error {
	f.mu.Lock()
	f.provided = append(f.provided, c)
	f.mu.Unlock()
	f.ch <- c
	return nil
}

func (f *fakeRouting) FindProvidersAsync(ctx context.Context, _ cid.Cid, _ int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo)
	close(ch)
	return ch
}

func TestProvidePinnedRoots(t *testing.T) {
	r := &fakeRouting{ch: make(chan cid.Cid, 16)}
	d := newDS()
	h := newHost(t)
	n1, err := ipfsnode.New(context.Background(), ipfsnode.Config{Host: h, Datastore: d, Routing: r})
	require.NoError(t, err)
	ctx := testCtx(t, time.Minute)
	c, err := n1.Add(ctx, bytes.NewReader(randBytes(22, 1<<20)), ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Pin: true})
	require.NoError(t, err)
	select {
	case got := <-r.ch:
		require.Equal(t, c.Cid, got, "the root only")
	case <-ctx.Done():
		t.Fatal("root not provided")
	}
	require.NoError(t, n1.Close(ctx))

	// At start, the reprovider announces every pinned root again.
	_ = newNode(t, ipfsnode.Config{Host: h, Datastore: d, Routing: r})
	select {
	case got := <-r.ch:
		require.Equal(t, c.Cid, got)
	case <-ctx.Done():
		t.Fatal("root not reprovided")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.provided, 2)
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	for _, cfg := range []ipfsnode.Config{
		{Datastore: newDS()},
		{Host: h},
		{Host: h, Datastore: newDS(), FetchConcurrency: -1},
		{Host: h, Datastore: newDS(), ProvideRate: -1},
		{Host: h, Datastore: newDS(), ProvideWorkers: -1},
		{Host: h, Datastore: newDS(), ProvideQueue: -1},
	} {
		_, err := ipfsnode.New(ctx, cfg)
		require.Error(t, err)
	}
	n := newNode(t, ipfsnode.Config{Host: h})
	st, err := n.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(ipfsnode.DefaultStorageMax), st.StorageMax)
	require.Equal(t, h.ID(), n.ID())
	other := newNode(t, ipfsnode.Config{})
	connect(t, other, n)
	require.Contains(t, other.Peers(), n.ID())
}

func TestBlockstoreInterface(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	var want []cid.Cid
	for i := range 5 {
		c, err := n.BlockPut(ctx, []byte{byte(i)}, cid.Prefix{})
		require.NoError(t, err)
		want = append(want, c)
	}
	bs := n.Blockstore()
	ch, err := bs.AllKeysChan(ctx)
	require.NoError(t, err)
	var got []cid.Cid
	for c := range ch {
		got = append(got, c)
	}
	require.ElementsMatch(t, want, got)
	require.NoError(t, bs.DeleteBlock(ctx, want[0]))
	require.NoError(t, bs.DeleteBlock(ctx, want[0]))
	st, err := n.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.RepoStat{RepoSize: 4, NumObjects: 4, StorageMax: ipfsnode.DefaultStorageMax}, st)
	size, err := bs.GetSize(ctx, want[1])
	require.NoError(t, err)
	require.Equal(t, 1, size)
}
