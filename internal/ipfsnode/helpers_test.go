package ipfsnode_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func newDS() ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) }

// newNode starts a node on a new host (or the given config's) and closes
// it at the end of the test.
func newNode(t testing.TB, cfg ipfsnode.Config) *ipfsnode.Node {
	t.Helper()
	if cfg.Host == nil {
		cfg.Host = newHost(t)
	}
	if cfg.Datastore == nil {
		cfg.Datastore = newDS()
	}
	n, err := ipfsnode.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

func connect(t testing.TB, a, b *ipfsnode.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}))
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

var v1raw = ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true}

func add(t testing.TB, n *ipfsnode.Node, data []byte, opts ipfsnode.AddOptions) cid.Cid {
	t.Helper()
	a, err := n.Add(context.Background(), bytes.NewReader(data), opts)
	require.NoError(t, err)
	return a.Cid
}

func readAll(t testing.TB, n *ipfsnode.Node, c cid.Cid) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := n.Cat(ctx, c)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
