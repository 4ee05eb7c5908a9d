package kubo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/pincluster/pincluster/internal/kubotest"
	"github.com/stretchr/testify/require"
)

func connect(t testing.TB, d *kubotest.Daemon, cfg kubo.Config) *kubo.Connector {
	t.Helper()
	cfg.APIAddr = d.APIAddr.String()
	c, err := kubo.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

// addDir adds a directory holding the named files through the CLI (CIDv1,
// raw leaves, no pin) and returns the root and the files' CIDs.
func addDir(t *testing.T, d *kubotest.Daemon, files map[string]string) (cid.Cid, map[string]cid.Cid) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	out := run(t, d, "add", "-r", "--cid-version=1", "--raw-leaves", "--pin=false", "--quieter", dir)
	root, err := cid.Decode(out)
	require.NoError(t, err)
	kids := map[string]cid.Cid{}
	for name := range files {
		c, err := cid.Decode(strings.TrimPrefix(run(t, d, "resolve", "/ipfs/"+root.String()+"/"+name), "/ipfs/"))
		require.NoError(t, err)
		kids[name] = c
	}
	return root, kids
}

func pinsOf(t *testing.T, c *kubo.Connector, types ...pincluster.IPFSPinStatus) map[cid.Cid]pincluster.IPFSPinStatus {
	t.Helper()
	out := map[cid.Cid]pincluster.IPFSPinStatus{}
	for info, err := range c.PinLs(t.Context(), types...) {
		require.NoError(t, err)
		out[info.Cid] = info.Type
	}
	return out
}

// TestKubo covers what is particular to Kubo against one online daemon
// (Routing.Type none): directories, indirect pins, config keys, paths,
// pin/update, GC of a DAG; TestKuboConformance covers what every connector
// shares.
func TestKubo(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	c := connect(t, d, kubo.Config{})
	ctx := t.Context()

	t.Run("ID", func(t *testing.T) {
		id, err := c.ID(ctx)
		require.NoError(t, err)
		require.Equal(t, run(t, d, "id", "-f=<id>"), id.ID.String())
		require.NotEmpty(t, id.Addresses)
		require.Empty(t, id.Error)
	})

	t.Run("PinUnpin", func(t *testing.T) {
		root, kids := addDir(t, d, map[string]string{"a.txt": "aaa", "b.txt": "bbb"})
		var progress []pincluster.PinProgress
		pin := pincluster.NewPin(root, pincluster.PinOptions{Name: "dir"})
		require.NoError(t, c.Pin(ctx, pin, func(p pincluster.PinProgress) { progress = append(progress, p) }))
		require.NotEmpty(t, progress)
		require.Equal(t, uint64(3), progress[len(progress)-1].Blocks, "root and two leaves")

		st, err := c.PinLsCid(ctx, pin)
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusRecursive, st)
		require.True(t, st.IsPinned(-1))

		// A child is held indirectly: cheap check says unpinned, the
		// CheckIndirect connector sees it.
		kid := pincluster.NewPin(kids["a.txt"], pincluster.PinOptions{})
		st, err = c.PinLsCid(ctx, kid)
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, st)
		ci := connect(t, d, kubo.Config{CheckIndirect: true})
		st, err = ci.PinLsCid(ctx, kid)
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusIndirect, st)

		// Direct pin of a child.
		direct := pincluster.NewPin(kids["b.txt"], pincluster.PinOptions{Mode: pincluster.PinModeDirect})
		require.NoError(t, c.Pin(ctx, direct, nil))
		st, err = c.PinLsCid(ctx, direct)
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusDirect, st)
		st, err = c.PinLsCid(ctx, pincluster.NewPin(kids["b.txt"], pincluster.PinOptions{}))
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusDirect, st, "found when asking for a recursive pin too")

		all := pinsOf(t, c)
		require.Equal(t, pincluster.IPFSPinStatusRecursive, all[root])
		require.Equal(t, pincluster.IPFSPinStatusDirect, all[kids["b.txt"]])
		require.NotContains(t, all, kids["a.txt"])
		require.Equal(t, map[cid.Cid]pincluster.IPFSPinStatus{kids["b.txt"]: pincluster.IPFSPinStatusDirect}, pinsOf(t, c, pincluster.IPFSPinStatusDirect))
		ind := pinsOf(t, c, pincluster.IPFSPinStatusIndirect)
		require.Equal(t, pincluster.IPFSPinStatusIndirect, ind[kids["a.txt"]])

		// Early stop of the stream.
		n := 0
		for range c.PinLs(ctx) {
			n++
			break
		}
		require.Equal(t, 1, n)

		require.NoError(t, c.Unpin(ctx, root))
		require.NoError(t, c.Unpin(ctx, kids["b.txt"]))
		require.ErrorIs(t, c.Unpin(ctx, root), pincluster.ErrNotPinned)
		st, err = c.PinLsCid(ctx, pin)
		require.NoError(t, err)
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, st)
	})

	t.Run("RepoStatConfig", func(t *testing.T) {
		rs, err := c.RepoStat(ctx)
		require.NoError(t, err)
		require.Positive(t, rs.RepoSize)
		require.Equal(t, uint64(10_000_000_000), rs.StorageMax)
		v, err := c.ConfigKey(ctx, "Datastore.StorageMax")
		require.NoError(t, err)
		require.Equal(t, "10GB", v)
		v, err = c.ConfigKey(ctx, "Routing")
		require.NoError(t, err)
		require.Equal(t, "none", v.(map[string]any)["Type"])
		_, err = c.ConfigKey(ctx, "Nope.Key")
		require.ErrorIs(t, err, pincluster.ErrNotFound)
		_, err = c.ConfigKey(ctx, "Identity.PrivKey")
		require.Error(t, err)
	})

	t.Run("ResolveDAGSize", func(t *testing.T) {
		root, kids := addDir(t, d, map[string]string{"x.txt": "xxxx", "y.txt": "yy"})
		got, err := c.Resolve(ctx, "/ipfs/"+root.String()+"/x.txt")
		require.NoError(t, err)
		require.True(t, got.Equals(kids["x.txt"]))
		got, err = c.Resolve(ctx, root.String())
		require.NoError(t, err)
		require.True(t, got.Equals(root))
		_, err = c.Resolve(ctx, "/ipfs/"+root.String()+"/nope.txt")
		require.ErrorIs(t, err, pincluster.ErrNotFound)
		_, err = c.Resolve(ctx, "not-a-cid")
		require.ErrorIs(t, err, pincluster.ErrInvalidCID)

		size, err := c.DAGSize(ctx, kids["x.txt"])
		require.NoError(t, err)
		require.Equal(t, uint64(4), size)
		size, err = c.DAGSize(ctx, root)
		require.NoError(t, err)
		require.Greater(t, size, uint64(6))
		// Absent content: not found at once, never fetched.
		start := time.Now()
		_, err = c.DAGSize(ctx, rawCID(t, "nowhere"))
		require.ErrorIs(t, err, pincluster.ErrNotFound)
		require.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("PinUpdate", func(t *testing.T) {
		r1, _ := addDir(t, d, map[string]string{"same.txt": "same", "v.txt": "v1"})
		r2, _ := addDir(t, d, map[string]string{"same.txt": "same", "v.txt": "v2"})
		r3, _ := addDir(t, d, map[string]string{"same.txt": "same", "v.txt": "v3"})
		require.ErrorIs(t, c.PinUpdate(ctx, r1, r2, true), pincluster.ErrNotPinned)
		require.NoError(t, c.Pin(ctx, pincluster.NewPin(r1, pincluster.PinOptions{}), nil))
		require.NoError(t, c.PinUpdate(ctx, r1, r2, true))
		all := pinsOf(t, c, pincluster.IPFSPinStatusRecursive)
		require.NotContains(t, all, r1)
		require.Contains(t, all, r2)
		require.NoError(t, c.PinUpdate(ctx, r2, r3, false))
		all = pinsOf(t, c, pincluster.IPFSPinStatusRecursive)
		require.Contains(t, all, r2)
		require.Contains(t, all, r3)
		// to already pinned: from is unpinned, no error.
		require.NoError(t, c.PinUpdate(ctx, r2, r3, true))
		require.NotContains(t, pinsOf(t, c), r2)
		require.NoError(t, c.Unpin(ctx, r3))
	})

	t.Run("RepoGC", func(t *testing.T) {
		junk, err := c.BlockPut(ctx, []byte("garbage to collect"), cid.Prefix{})
		require.NoError(t, err)
		kept, err := c.BlockPut(ctx, []byte("kept"), cid.Prefix{})
		require.NoError(t, err)
		require.NoError(t, c.Pin(ctx, pincluster.NewPin(kept, pincluster.PinOptions{}), nil))
		gc, err := c.RepoGC(ctx)
		require.NoError(t, err)
		require.Positive(t, gc.RemovedCount)
		require.Contains(t, gc.Removed, junk)
		require.NotContains(t, gc.Removed, kept)
		_, err = c.DAGSize(ctx, junk)
		require.ErrorIs(t, err, pincluster.ErrNotFound)
		_, err = c.DAGSize(ctx, kept)
		require.NoError(t, err)
	})

	t.Run("SwarmOffline", func(t *testing.T) {
		peers, err := c.SwarmPeers(ctx)
		require.NoError(t, err)
		require.Empty(t, peers)
		// Nobody listens there: a per-peer error, joined.
		bogus, _ := peer.Decode(testPeer)
		err = c.ConnectSwarms(ctx, []peer.AddrInfo{{ID: bogus, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}})
		require.Error(t, err)
		require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	})

	t.Run("PinTimesOutOnAbsentContent", func(t *testing.T) {
		// Online with no routing: the pin waits; the caller's ctx ends it.
		// Kubo's heartbeats (unchanged counts every 500 ms) are not
		// progress: the callback stays silent.
		tctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		calls := 0
		err := c.Pin(tctx, pincluster.NewPin(rawCID(t, "absent"), pincluster.PinOptions{}), func(p pincluster.PinProgress) { calls++ })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
		require.Zero(t, calls, "a stuck pin reports nothing")
	})
}

func TestKuboOffline(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{Offline: true})
	c := connect(t, d, kubo.Config{})
	ctx := t.Context()
	id, err := c.ID(ctx)
	require.NoError(t, err)
	require.Empty(t, id.Addresses)

	// Absent content fails at once offline (a deterministic pin error).
	err = c.Pin(ctx, pincluster.NewPin(rawCID(t, "absent"), pincluster.PinOptions{}), nil)
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	_, err = c.BlockGet(ctx, rawCID(t, "absent"))
	require.ErrorIs(t, err, pincluster.ErrNotFound)

	other, _ := peer.Decode(testPeer)
	err = c.ConnectSwarms(ctx, []peer.AddrInfo{{ID: other, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}})
	require.ErrorContains(t, err, "online mode")
}

// TestKuboTwoDaemons: content added on A is pinned on B through bitswap,
// once after ConnectSwarms and once through the pin's origins.
func TestKuboTwoDaemons(t *testing.T) {
	a := kubotest.Start(t, kubotest.Options{})
	b := kubotest.Start(t, kubotest.Options{})
	ca := connect(t, a, kubo.Config{})
	cb := connect(t, b, kubo.Config{})
	ctx := t.Context()

	idA, err := ca.ID(ctx)
	require.NoError(t, err)
	idB, err := cb.ID(ctx)
	require.NoError(t, err)

	root, _ := addDir(t, a, map[string]string{"one.txt": strings.Repeat("1", 300_000), "two.txt": "two"})
	require.NoError(t, cb.ConnectSwarms(ctx, []peer.AddrInfo{{ID: idA.ID, Addrs: idA.Addresses}}))
	peers, err := cb.SwarmPeers(ctx)
	require.NoError(t, err)
	require.Contains(t, peers, idA.ID)

	var last pincluster.PinProgress
	require.NoError(t, cb.Pin(ctx, pincluster.NewPin(root, pincluster.PinOptions{}), func(p pincluster.PinProgress) { last = p }))
	require.GreaterOrEqual(t, last.Blocks, uint64(4), "root, two chunks of one.txt, two.txt")
	st, err := cb.PinLsCid(ctx, pincluster.NewPin(root, pincluster.PinOptions{}))
	require.NoError(t, err)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, st)

	// Origins: B is disconnected from A, then pins with A as origin.
	run(t, b, "swarm", "disconnect", "/p2p/"+idA.ID.String())
	run(t, a, "swarm", "disconnect", "/p2p/"+idB.ID.String())
	peers, err = cb.SwarmPeers(ctx)
	require.NoError(t, err)
	require.NotContains(t, peers, idA.ID)
	root2, _ := addDir(t, a, map[string]string{"three.txt": "three"})
	var origins []ma.Multiaddr
	for _, addr := range idA.Addresses {
		if _, err := addr.ValueForProtocol(ma.P_P2P); err != nil {
			addr = addr.Encapsulate(ma.StringCast("/p2p/" + idA.ID.String()))
		}
		origins = append(origins, addr)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, cb.Pin(pctx, pincluster.NewPin(root2, pincluster.PinOptions{Origins: origins}), nil))
	peers, err = cb.SwarmPeers(ctx)
	require.NoError(t, err)
	require.Contains(t, peers, idA.ID, "connected through the origins")
}

// TestKuboRestart (T19/T20 at the connector's level): the daemon killed
// mid-pin, calls report an outage, and the same Connector works again once
// the daemon is back on the same repository.
func TestKuboRestart(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	client, started := signalClient(t, "pin/add")
	c := connect(t, d, kubo.Config{RequestTimeout: 5 * time.Second, HTTPClient: client})
	ctx := t.Context()
	blk, err := c.BlockPut(ctx, []byte("survives restarts"), cid.Prefix{})
	require.NoError(t, err)
	require.NoError(t, c.Pin(ctx, pincluster.NewPin(blk, pincluster.PinOptions{}), nil))

	<-started // the pin of blk
	// A pin in flight (absent content, online: it waits).
	res := make(chan error, 1)
	go func() {
		res <- c.Pin(ctx, pincluster.NewPin(rawCID(t, "absent"), pincluster.PinOptions{}), nil)
	}()
	<-started
	d.Kill()
	err = <-res
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)

	id, err := c.ID(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.NotEmpty(t, id.Error)
	_, err = c.PinLsCid(ctx, pincluster.NewPin(blk, pincluster.PinOptions{}))
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)

	d.Restart(t)
	st, err := c.PinLsCid(ctx, pincluster.NewPin(blk, pincluster.PinOptions{}))
	require.NoError(t, err)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, st)
}

// TestKuboShutdownMidPin: Shutdown with a deadline aborts a pin that waits
// on the network.
func TestKuboShutdownMidPin(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	client, started := signalClient(t, "pin/add")
	c, err := kubo.New(kubo.Config{APIAddr: d.APIAddr.String(), HTTPClient: client})
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() {
		res <- c.Pin(context.Background(), pincluster.NewPin(rawCID(t, "absent"), pincluster.PinOptions{}), nil)
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Shutdown(ctx), context.DeadlineExceeded)
	require.ErrorIs(t, <-res, pincluster.ErrClosed)
}
