package pinsvc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	libp2p "github.com/libp2p/go-libp2p"
	host "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/internal/ipfsnode"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// nodeBackend is a one-peer Backend over the real in-process IPFS node
// (internal/ipfsnode) with no cluster around it: Pin connects to the
// origins and fetches the DAG in the background, as a cluster peer's
// tracker would. It lets the Kubo end-to-end test move real data.
type nodeBackend struct {
	node *ipfsnode.Node
	h    host.Host

	mu   sync.Mutex
	pins map[cid.Cid]*nodePin
	wg   sync.WaitGroup
}

type nodePin struct {
	pin    pincluster.Pin
	status pincluster.TrackerStatus
	err    string
	cancel context.CancelFunc
}

func newNodeBackend(t *testing.T) *nodeBackend {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	require.NoError(t, err)
	node, err := ipfsnode.New(context.Background(), ipfsnode.Config{Host: h, Datastore: dssync.MutexWrap(ds.NewMapDatastore())})
	require.NoError(t, err)
	b := &nodeBackend{node: node, h: h, pins: map[cid.Cid]*nodePin{}}
	t.Cleanup(func() {
		b.mu.Lock()
		for _, p := range b.pins {
			p.cancel()
		}
		b.mu.Unlock()
		b.wg.Wait()
		require.NoError(t, node.Close(context.Background()))
		require.NoError(t, h.Close())
	})
	return b
}

func (b *nodeBackend) Host() host.Host { return b.h }

func (b *nodeBackend) Pin(ctx context.Context, c cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error) {
	if err := opts.Validate(); err != nil {
		return pincluster.Pin{}, err
	}
	p := pincluster.NewPin(c, opts)
	p.Allocations = []peer.ID{b.h.ID()}
	p.Timestamp = time.Now()
	pctx, cancel := context.WithCancel(context.Background())
	np := &nodePin{pin: p, status: pincluster.TrackerStatusPinQueued, cancel: cancel}
	b.mu.Lock()
	b.pins[c] = np
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for _, o := range opts.Origins {
			if ai, err := peer.AddrInfoFromP2pAddr(o); err == nil {
				_ = b.node.Connect(pctx, *ai)
			}
		}
		b.set(np, pincluster.TrackerStatusPinning, "")
		err := b.node.Pin(pctx, c, ipfsnode.PinOptions{MaxDepth: -1, Name: opts.Name})
		if err != nil {
			b.set(np, pincluster.TrackerStatusPinError, err.Error())
			return
		}
		b.set(np, pincluster.TrackerStatusPinned, "")
	}()
	return p, nil
}

func (b *nodeBackend) set(np *nodePin, s pincluster.TrackerStatus, e string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	np.status, np.err = s, e
}

func (b *nodeBackend) Unpin(ctx context.Context, c cid.Cid) (pincluster.Pin, error) {
	b.mu.Lock()
	np, ok := b.pins[c]
	delete(b.pins, c)
	b.mu.Unlock()
	if !ok {
		return pincluster.Pin{}, fmt.Errorf("unpin: %w", pincluster.ErrNotFound)
	}
	np.cancel()
	_ = b.node.Unpin(ctx, c)
	return np.pin, nil
}

func (b *nodeBackend) PinGet(ctx context.Context, c cid.Cid) (pincluster.Pin, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	np, ok := b.pins[c]
	if !ok {
		return pincluster.Pin{}, fmt.Errorf("pin get: %w", pincluster.ErrNotFound)
	}
	return np.pin, nil
}

func (b *nodeBackend) Status(ctx context.Context, c cid.Cid, local bool) (pincluster.GlobalPinInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	np, ok := b.pins[c]
	if !ok {
		return pincluster.GlobalPinInfo{}, fmt.Errorf("status: %w", pincluster.ErrNotFound)
	}
	var g pincluster.GlobalPinInfo
	g.Add(pincluster.PinInfo{Cid: c, Peer: b.h.ID(), PinInfoShort: pincluster.PinInfoShort{Status: np.status, Error: np.err, TS: time.Now()}})
	return g, nil
}

// TestKuboPinRemoteNode is INTEROP.md §2.4's end-to-end test with the real
// in-process IPFS node behind the API: Kubo (online, Routing.Type none)
// adds 1 MiB, the blocking `ipfs pin remote add` makes our node fetch it
// from Kubo (Kubo's origins, our delegates), and Kubo exits 0 once the
// request is pinned.
func TestKuboPinRemoteNode(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	nb := newNodeBackend(t)
	a, err := New(context.Background(), nb, Config{Tokens: map[string]string{tokenAlice: "alice"}})
	require.NoError(t, err)
	url := serve(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := d.Run(ctx, "pin", "remote", "service", "add", "pc", url, tokenAlice)
	require.NoError(t, err, "%s", out)

	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	file := filepath.Join(t.TempDir(), "data.bin")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	out, err = d.Run(ctx, "add", "-Q", "--cid-version=1", "--raw-leaves", file)
	require.NoError(t, err, "%s", out)
	c, err := cid.Decode(strings.TrimSpace(string(out)))
	require.NoError(t, err)

	const limit = 60 * time.Second
	addCtx, addCancel := context.WithTimeout(ctx, limit)
	defer addCancel()
	start := time.Now()
	out, err = d.Run(addCtx, "pin", "remote", "add", "--service=pc", "--name=e2e", c.String())
	require.NoError(t, err, "%s", out)
	t.Logf("blocking 'ipfs pin remote add' of 1 MiB exited 0 after %s (limit %s)", time.Since(start).Round(time.Millisecond), limit)

	pt, err := nb.node.PinStatus(ctx, c, false)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.PinnedRecursive, pt, "the data is pinned on our node")
	p, err := nb.PinGet(ctx, c)
	require.NoError(t, err)
	require.NotEmpty(t, p.Origins, "Kubo sent its addresses as origins")

	out, err = d.Run(ctx, "pin", "remote", "rm", "--service=pc", "--name=e2e")
	require.NoError(t, err, "%s", out)
	_, err = nb.PinGet(ctx, c)
	require.ErrorIs(t, err, pincluster.ErrNotFound)
}
