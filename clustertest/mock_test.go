package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/stretchr/testify/require"
)

func testCID(t testing.TB, i int) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte(fmt.Sprintf("block %d", i)))
	require.NoError(t, err)
	return c
}

func recursive(c cid.Cid) pincluster.Pin { return pincluster.NewPin(c, pincluster.PinOptions{}) }
func direct(c cid.Cid) pincluster.Pin {
	return pincluster.NewPin(c, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
}

func collect(t *testing.T, m *clustertest.MockConnector, types ...pincluster.IPFSPinStatus) map[cid.Cid]pincluster.IPFSPinStatus {
	t.Helper()
	out := map[cid.Cid]pincluster.IPFSPinStatus{}
	for info, err := range m.PinLs(t.Context(), types...) {
		require.NoError(t, err)
		out[info.Cid] = info.Type
	}
	return out
}

func TestMockPinset(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector()
	a, b := testCID(t, 1), testCID(t, 2)

	require.NoError(t, m.Pin(ctx, recursive(a), nil))
	require.NoError(t, m.Pin(ctx, direct(b), nil))
	st, err := m.PinLsCid(ctx, recursive(a))
	require.NoError(t, err)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, st)
	st, err = m.PinLsCid(ctx, direct(b))
	require.NoError(t, err)
	require.Equal(t, pincluster.IPFSPinStatusDirect, st)

	// A direct pin of a recursive pin keeps it recursive; a recursive pin
	// of a direct one upgrades it.
	require.NoError(t, m.Pin(ctx, direct(a), nil))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(a))
	require.NoError(t, m.Pin(ctx, recursive(b), nil))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(b))

	require.Equal(t, map[cid.Cid]pincluster.IPFSPinStatus{a: pincluster.IPFSPinStatusRecursive, b: pincluster.IPFSPinStatusRecursive}, collect(t, m))
	require.Empty(t, collect(t, m, pincluster.IPFSPinStatusDirect))
	require.Equal(t, 2, m.PinCount())

	require.NoError(t, m.Unpin(ctx, a))
	err = m.Unpin(ctx, a)
	require.ErrorIs(t, err, pincluster.ErrNotPinned)
	st, err = m.PinLsCid(ctx, recursive(a))
	require.NoError(t, err)
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, st)
	require.Equal(t, []cid.Cid{b}, m.PinnedCIDs())

	require.ErrorIs(t, m.Pin(ctx, pincluster.Pin{}, nil), pincluster.ErrInvalidCID)
}

func TestMockPinLsEarlyStopAndCtx(t *testing.T) {
	m := clustertest.NewMockConnector()
	for i := range 10 {
		require.NoError(t, m.Pin(t.Context(), recursive(testCID(t, i)), nil))
	}
	n := 0
	for _, err := range m.PinLs(t.Context()) {
		require.NoError(t, err)
		n++
		if n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var gotErr error
	n = 0
	for _, err := range m.PinLs(ctx) {
		if err != nil {
			gotErr = err
			break
		}
		n++
		cancel()
	}
	require.Equal(t, 1, n)
	require.ErrorIs(t, gotErr, context.Canceled)
}

func TestMockAvailable(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector()
	a := testCID(t, 1)
	require.NoError(t, m.Pin(ctx, recursive(a), nil))
	m.Available(false)

	id, err := m.ID(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.NotEmpty(t, id.Error)
	require.ErrorIs(t, m.Pin(ctx, recursive(testCID(t, 2)), nil), pincluster.ErrIPFSUnavailable)
	require.ErrorIs(t, m.Unpin(ctx, a), pincluster.ErrIPFSUnavailable)
	_, err = m.PinLsCid(ctx, recursive(a))
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	for _, err := range m.PinLs(ctx) {
		require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	}
	_, err = m.RepoStat(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	_, err = m.SwarmPeers(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	_, err = m.BlockPut(ctx, []byte("x"), cid.Prefix{})
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	_, err = m.RepoGC(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)

	m.Available(true)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(a), "pinset kept while down")
	_, err = m.ID(ctx)
	require.NoError(t, err)
}

func TestMockFailures(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector()
	a, b := testCID(t, 1), testCID(t, 2)
	boom := errors.New("boom")

	m.FailCalls(clustertest.MethodPin, 2, boom)
	require.ErrorIs(t, m.Pin(ctx, recursive(a), nil), boom)
	require.ErrorIs(t, m.Pin(ctx, recursive(b), nil), boom)
	require.NoError(t, m.Pin(ctx, recursive(a), nil), "only 2 calls fail")

	m.FailPin(b, boom)
	require.ErrorIs(t, m.Pin(ctx, recursive(b), nil), boom)
	require.ErrorIs(t, m.Pin(ctx, recursive(b), nil), boom)
	require.NoError(t, m.Unpin(ctx, a), "other methods unaffected")
	m.FailPin(b, nil)
	require.NoError(t, m.Pin(ctx, recursive(b), nil))

	m.FailCalls(clustertest.MethodRepoStat, -1, pincluster.ErrIPFSUnavailable)
	for range 5 {
		_, err := m.RepoStat(ctx)
		require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	}
	m.FailCalls(clustertest.MethodRepoStat, 0, nil)
	_, err := m.RepoStat(ctx)
	require.NoError(t, err)

	m.FailCID(clustertest.MethodUnpin, b, boom)
	require.ErrorIs(t, m.Unpin(ctx, b), boom)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(b), "failed call has no effect")

	require.Equal(t, 6, m.Calls(clustertest.MethodPin))
	m.ResetCalls()
	require.Zero(t, m.Calls(clustertest.MethodPin))
}

// TestMockLatency runs on synctest's fake clock: the delays are exact.
func TestMockLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := testCID(t, 1), testCID(t, 2)
		m := clustertest.NewMockConnector(clustertest.MockLatency(20 * time.Millisecond))
		start := time.Now()
		require.NoError(t, m.Pin(t.Context(), recursive(a), nil))
		require.Equal(t, 20*time.Millisecond, time.Since(start))

		m.SetLatency(0)
		m.SetCIDLatency(b, time.Hour)
		start = time.Now()
		require.NoError(t, m.Unpin(t.Context(), a), "other CIDs are fast")
		require.Zero(t, time.Since(start))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		err := m.Pin(ctx, recursive(b), nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 10*time.Millisecond, time.Since(start), "ended by the ctx, not the hour")
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, m.PinStatus(b))
		m.SetCIDLatency(b, 0)
		require.NoError(t, m.Pin(t.Context(), recursive(b), nil))
	})
}

func TestMockHang(t *testing.T) {
	m := clustertest.NewMockConnector()
	a := testCID(t, 1)
	release := m.Hang(a)

	started := make(chan struct{})
	m.OnCall(func(method clustertest.Method, c cid.Cid) {
		if method == clustertest.MethodPin {
			close(started)
		}
	})
	res := make(chan error, 1)
	go func() { res <- m.Pin(context.Background(), recursive(a), nil) }()
	<-started
	select {
	case err := <-res:
		t.Fatalf("pin returned while hung: %v", err)
	default:
	}
	m.OnCall(nil)
	// Other CIDs are not affected.
	require.NoError(t, m.Pin(t.Context(), recursive(testCID(t, 2)), nil))
	release()
	release() // idempotent
	require.NoError(t, <-res)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(a))

	// A hung call ends with its ctx.
	m.Hang(a)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, m.Unpin(ctx, a), context.Canceled)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(a))
}

func TestMockHangReleasedByShutdown(t *testing.T) {
	m := clustertest.NewMockConnector()
	a := testCID(t, 1)
	m.Hang(a)
	started := make(chan struct{})
	var once sync.Once
	m.OnCall(func(clustertest.Method, cid.Cid) { once.Do(func() { close(started) }) })
	res := make(chan error, 1)
	go func() { res <- m.Pin(context.Background(), recursive(a), nil) }()
	<-started
	require.NoError(t, m.Shutdown(t.Context()))
	require.ErrorIs(t, <-res, pincluster.ErrClosed)
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, m.PinStatus(a))
	require.ErrorIs(t, m.Shutdown(t.Context()), pincluster.ErrClosed)
	_, err := m.ID(t.Context())
	require.ErrorIs(t, err, pincluster.ErrClosed)
}

func TestMockSlowPinProgress(t *testing.T) {
	m := clustertest.NewMockConnector()
	a := testCID(t, 1)
	synctest.Test(t, func(t *testing.T) { // fake clock: one step every 5 s
		m := clustertest.NewMockConnector()
		m.SetSize(a, 1000)
		m.SlowPin(a, 4, 5*time.Second)
		var got []pincluster.PinProgress
		var at []time.Duration
		start := time.Now()
		require.NoError(t, m.Pin(t.Context(), recursive(a), func(p pincluster.PinProgress) {
			got = append(got, p)
			at = append(at, time.Since(start))
		}))
		require.Equal(t, []pincluster.PinProgress{{Blocks: 1, Bytes: 250}, {Blocks: 2, Bytes: 500}, {Blocks: 3, Bytes: 750}, {Blocks: 4, Bytes: 1000}}, got)
		require.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 20 * time.Second}, at)
	})

	// A stalled pin: progress, then nothing until released.
	b := testCID(t, 2)
	m.SlowPin(b, 2, 0)
	release := m.Hang(b)
	progressed := make(chan pincluster.PinProgress, 2)
	res := make(chan error, 1)
	go func() {
		res <- m.Pin(context.Background(), recursive(b), func(p pincluster.PinProgress) { progressed <- p })
	}()
	require.Equal(t, uint64(1), (<-progressed).Blocks)
	require.Equal(t, uint64(2), (<-progressed).Blocks)
	select {
	case err := <-res:
		t.Fatalf("stalled pin returned: %v", err)
	default:
	}
	release()
	require.NoError(t, <-res)

	// Without a script, a pin reports one final progress.
	c := testCID(t, 3)
	var got []pincluster.PinProgress
	require.NoError(t, m.Pin(t.Context(), recursive(c), func(p pincluster.PinProgress) { got = append(got, p) }))
	require.Len(t, got, 1)
}

func TestMockSizesAndStorage(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector(clustertest.MockStorageMax(1000))
	a, b := testCID(t, 1), testCID(t, 2)
	m.SetSize(a, 600)
	m.SetSize(b, 600)

	n, err := m.DAGSize(ctx, a)
	require.NoError(t, err)
	require.Equal(t, uint64(600), n)
	_, err = m.DAGSize(ctx, testCID(t, 3))
	require.ErrorIs(t, err, pincluster.ErrNotFound)

	st, err := m.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, pincluster.RepoStat{RepoSize: 0, StorageMax: 1000}, st)

	require.NoError(t, m.Pin(ctx, recursive(a), nil))
	st, err = m.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(600), st.RepoSize)
	require.Equal(t, uint64(400), st.FreeSpace())

	require.ErrorIs(t, m.Pin(ctx, recursive(b), nil), clustertest.ErrRepoFull)
	require.NoError(t, m.Pin(ctx, recursive(a), nil), "re-pinning is free")
	m.SetStorageMax(2000)
	require.NoError(t, m.Pin(ctx, recursive(b), nil))

	require.NoError(t, m.Unpin(ctx, a))
	st, err = m.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(600), st.RepoSize)

	v, err := m.ConfigKey(ctx, "Datastore.StorageMax")
	require.NoError(t, err)
	require.Equal(t, "2000", v)
	m.SetConfig("Datastore.GCPeriod", "1h")
	v, err = m.ConfigKey(ctx, "Datastore.GCPeriod")
	require.NoError(t, err)
	require.Equal(t, "1h", v)
	_, err = m.ConfigKey(ctx, "Nope")
	require.ErrorIs(t, err, pincluster.ErrNotFound)
}

func TestMockBlocksAndGC(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector()
	c1, err := m.BlockPut(ctx, []byte("hello"), cid.Prefix{})
	require.NoError(t, err)
	want, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte("hello"))
	require.True(t, c1.Equals(want))
	c2, err := m.BlockPut(ctx, []byte("world"), cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_512, MhLength: -1})
	require.NoError(t, err)
	require.Equal(t, uint64(cid.DagCBOR), c2.Prefix().Codec)

	got, err := m.BlockGet(ctx, c1)
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), got)
	got[0] = 'X'
	got, _ = m.BlockGet(ctx, c1)
	require.Equal(t, []byte("hello"), got, "BlockGet returns a copy")
	_, err = m.BlockGet(ctx, testCID(t, 9))
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	n, err := m.DAGSize(ctx, c1)
	require.NoError(t, err)
	require.Equal(t, uint64(5), n)

	st, err := m.RepoStat(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(10), st.RepoSize)
	require.Equal(t, uint64(2), st.NumObjects)

	require.NoError(t, m.Pin(ctx, recursive(c1), nil))
	gc, err := m.RepoGC(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), gc.RemovedCount)
	require.Equal(t, []cid.Cid{c2}, gc.Removed)
	require.Equal(t, uint64(5), gc.FreedBytes)
	_, err = m.BlockGet(ctx, c2)
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	_, err = m.BlockGet(ctx, c1)
	require.NoError(t, err)
}

func TestMockPinUpdate(t *testing.T) {
	ctx := t.Context()
	m := clustertest.NewMockConnector()
	a, b, c := testCID(t, 1), testCID(t, 2), testCID(t, 3)
	require.ErrorIs(t, m.PinUpdate(ctx, a, b, true), pincluster.ErrNotPinned)
	require.NoError(t, m.Pin(ctx, direct(a), nil))
	require.ErrorIs(t, m.PinUpdate(ctx, a, b, true), pincluster.ErrNotPinned, "direct pins cannot be updated")
	require.NoError(t, m.Pin(ctx, recursive(a), nil))
	require.NoError(t, m.PinUpdate(ctx, a, b, false))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(a))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(b))
	require.NoError(t, m.PinUpdate(ctx, b, c, true))
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, m.PinStatus(b))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, m.PinStatus(c))
}

func TestMockIDSwarmResolve(t *testing.T) {
	ctx := t.Context()
	pid, err := peer.Decode("12D3KooWGRUVh5qPZUfMWSxnCJmzkJCaLoFTBgMM59H6GqbZdYWc")
	require.NoError(t, err)
	addr := ma.StringCast("/ip4/10.0.0.1/tcp/4001")
	m := clustertest.NewMockConnector(clustertest.MockID(pid), clustertest.MockAddrs(addr))
	id, err := m.ID(ctx)
	require.NoError(t, err)
	require.Equal(t, pid, id.ID)
	require.Len(t, id.Addresses, 1)
	require.True(t, id.Addresses[0].Equal(addr))

	other := clustertest.NewMockConnector()
	oid, err := other.ID(ctx)
	require.NoError(t, err)
	require.NotEqual(t, pid, oid.ID, "random IDs by default")
	require.NoError(t, oid.ID.Validate())

	require.NoError(t, m.ConnectSwarms(ctx, []peer.AddrInfo{{ID: oid.ID}}))
	origin := ma.StringCast("/ip4/127.0.0.1/tcp/4002/p2p/" + pid.String())
	require.NoError(t, m.Pin(ctx, pincluster.NewPin(testCID(t, 1), pincluster.PinOptions{Origins: []ma.Multiaddr{origin}}), nil))
	peers, err := m.SwarmPeers(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []peer.ID{oid.ID, pid}, peers)

	a := testCID(t, 1)
	for _, p := range []string{a.String(), "/ipfs/" + a.String()} {
		got, err := m.Resolve(ctx, p)
		require.NoError(t, err)
		require.True(t, got.Equals(a))
	}
	_, err = m.Resolve(ctx, "/ipfs/"+a.String()+"/sub")
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	_, err = m.Resolve(ctx, "garbage")
	require.ErrorIs(t, err, pincluster.ErrInvalidCID)
}

func TestMockConcurrent(t *testing.T) {
	m := clustertest.NewMockConnector()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				c := testCID(t, w*1000+i)
				if err := m.Pin(t.Context(), recursive(c), nil); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := m.Unpin(t.Context(), c); err != nil {
						t.Error(err)
						return
					}
				}
				for range m.PinLs(t.Context()) {
					break
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, 400, m.PinCount())
	require.Equal(t, 800, m.Calls(clustertest.MethodPin))
}

func TestStaticInformer(t *testing.T) {
	inf := clustertest.NewStaticInformer("freespace")
	require.Equal(t, "freespace", inf.Name())
	require.Empty(t, inf.GetMetrics(t.Context()))

	inf.SetValue("1000")
	ms := inf.GetMetrics(t.Context())
	require.Len(t, ms, 1)
	require.Equal(t, "freespace", ms[0].Name)
	require.Equal(t, int64(1000), ms[0].Weight)
	require.WithinDuration(t, time.Now().Add(clustertest.DefaultInformerTTL), ms[0].ValidUntil, 5*time.Second) // wall clock: a bound, not an assertion on speed

	inf.SetTTL(time.Minute)
	fixed := time.Now().Add(time.Hour)
	inf.Set(pincluster.Metric{Name: "tag:region", Value: "eu", Partitionable: true, ValidUntil: fixed}, pincluster.Metric{Value: "7"})
	ms = inf.GetMetrics(t.Context())
	require.Len(t, ms, 2)
	require.Equal(t, fixed, ms[0].ValidUntil)
	require.Equal(t, "freespace", ms[1].Name)
	require.WithinDuration(t, time.Now().Add(time.Minute), ms[1].ValidUntil, 5*time.Second)
	ms[0].Value = "changed"
	require.Equal(t, "eu", inf.GetMetrics(t.Context())[0].Value, "copies are returned")

	require.NoError(t, inf.Shutdown(t.Context()))
	require.Empty(t, inf.GetMetrics(t.Context()))
}
