// Package connectortest is the conformance suite of pincluster.IPFSConnector:
// the behaviour every connector shares, whatever node it talks to. The
// mock (clustertest.MockConnector), the in-process node and the Kubo
// connector (connector/kubo) all run it:
//
//	connectortest.Run(t, connectortest.Config{
//		New:            func(t *testing.T) pincluster.IPFSConnector { ... },
//		FetchesContent: true,
//	})
//
// Run checks pin, unpin, status and listing in both modes (direct and
// recursive, a direct pin over a recursive one, an upgrade), blocks, absent
// content and deadlines, a cancelled context, repository statistics and
// configuration, path resolution, Shutdown, and the optional abilities the
// connector has (pincluster.PinUpdater, RepoGCer, DAGSizer). Each subtest
// asks Config.New for a connector and stores its own content, so that
// connectors over one shared node (a Kubo daemon started once) do not see
// each other's pins. A connector written outside this module can run it
// too. The package imports "testing" and is for tests only.
package connectortest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// Config describes the connector under test.
type Config struct {
	// New returns a connector ready for use. Its node may be shared by
	// the subtests (each stores its own content) but must hold no pins of
	// the suite's content. New registers the connector's Shutdown with
	// t.Cleanup; the suite also shuts connectors down itself, so a second
	// Shutdown must not panic.
	New func(t *testing.T) pincluster.IPFSConnector
	// FetchesContent says that Pin needs the content: a pin of a CID whose
	// blocks are nowhere waits until its ctx ends or fails with an error
	// wrapping pincluster.ErrNotFound. False for a connector that pins any
	// CID without its blocks (the mock).
	FetchesContent bool
	// Offline says that the node has no swarm: SwarmPeers may fail.
	Offline bool
}

// AbsentTimeout bounds the calls about content that exists nowhere.
const AbsentTimeout = 1500 * time.Millisecond

// Run runs the suite as subtests of t.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Config)
	}{
		{"ID", testID},
		{"BlockPutGet", testBlockPutGet},
		{"BlockGetAbsent", testBlockGetAbsent},
		{"PinRecursive", testPinRecursive},
		{"PinDirect", testPinDirect},
		{"PinAbsent", testPinAbsent},
		{"PinInvalid", testPinInvalid},
		{"CancelledContext", testCancelled},
		{"PinLsEarlyStop", testPinLsEarlyStop},
		{"RepoStatConfig", testRepoStatConfig},
		{"Resolve", testResolve},
		{"SwarmPeers", testSwarmPeers},
		{"PinUpdate", testPinUpdate},
		{"RepoGC", testRepoGC},
		{"DAGSize", testDAGSize},
		{"Shutdown", testShutdown},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, cfg) })
	}
}

// block stores a raw block unique to the test and returns its CID.
func block(t *testing.T, c pincluster.IPFSConnector, tag string) cid.Cid {
	t.Helper()
	ci, err := c.BlockPut(t.Context(), []byte(fmt.Sprintf("connectortest %s %s %d", t.Name(), tag, time.Now().UnixNano())), cid.Prefix{})
	require.NoError(t, err)
	return ci
}

// absent is a CID whose content no node holds.
func absent(t *testing.T, tag string) cid.Cid {
	t.Helper()
	ci, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.
		Sum([]byte(fmt.Sprintf("connectortest absent %s %s %d", t.Name(), tag, time.Now().UnixNano())))
	require.NoError(t, err)
	return ci
}

func recursive(c cid.Cid) pincluster.Pin { return pincluster.NewPin(c, pincluster.PinOptions{}) }

func direct(c cid.Cid) pincluster.Pin {
	return pincluster.NewPin(c, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
}

// listed returns the pins PinLs yields for types.
func listed(t *testing.T, c pincluster.IPFSConnector, types ...pincluster.IPFSPinStatus) map[cid.Cid]pincluster.IPFSPinInfo {
	t.Helper()
	out := map[cid.Cid]pincluster.IPFSPinInfo{}
	for info, err := range c.PinLs(t.Context(), types...) {
		require.NoError(t, err)
		out[info.Cid] = info
	}
	return out
}

func status(t *testing.T, c pincluster.IPFSConnector, pin pincluster.Pin) pincluster.IPFSPinStatus {
	t.Helper()
	st, err := c.PinLsCid(t.Context(), pin)
	require.NoError(t, err)
	return st
}

func testID(t *testing.T, cfg Config) {
	c := cfg.New(t)
	id, err := c.ID(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, id.ID)
	require.Empty(t, id.Error)
}

func testBlockPutGet(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	foo, err := c.BlockPut(ctx, []byte("foo"), cid.Prefix{})
	require.NoError(t, err)
	require.Equal(t, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", foo.String(), "CIDv1 raw sha2-256 by default")
	got, err := c.BlockGet(ctx, foo)
	require.NoError(t, err)
	require.Equal(t, []byte("foo"), got)

	cb := []byte{0xa1, 0x61, 0x61, 0x01} // {"a": 1}
	pre := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_512, MhLength: -1}
	want, err := pre.Sum(cb)
	require.NoError(t, err)
	got2, err := c.BlockPut(ctx, cb, pre)
	require.NoError(t, err)
	require.True(t, want.Equals(got2), "%s != %s", want, got2)
	b, err := c.BlockGet(ctx, got2)
	require.NoError(t, err)
	require.Equal(t, cb, b)
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, recursive(got2)), "a block put is not pinned")
}

func testBlockGetAbsent(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), AbsentTimeout)
	defer cancel()
	_, err := c.BlockGet(ctx, absent(t, "block"))
	require.Error(t, err)
	require.True(t, errors.Is(err, pincluster.ErrNotFound) || errors.Is(err, context.DeadlineExceeded),
		"absent block: ErrNotFound or the caller's deadline, got %v", err)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
}

func testPinRecursive(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	ci := block(t, c, "recursive")
	pin := pincluster.NewPin(ci, pincluster.PinOptions{Name: "conformance"})
	calls := 0
	require.NoError(t, c.Pin(ctx, pin, func(pincluster.PinProgress) { calls++ }))
	st := status(t, c, pin)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, st)
	require.True(t, st.IsPinned(-1))

	all := listed(t, c)
	require.Contains(t, all, ci)
	require.Equal(t, pincluster.IPFSPinStatusRecursive, all[ci].Type)
	require.Contains(t, []string{"", "conformance"}, all[ci].Name, "PinLs carries the pin's name or none")
	require.Contains(t, listed(t, c, pincluster.IPFSPinStatusRecursive), ci)
	require.NotContains(t, listed(t, c, pincluster.IPFSPinStatusDirect), ci)

	require.NoError(t, c.Pin(ctx, pin, nil), "pinning again is not an error")
	require.NoError(t, c.Unpin(ctx, ci))
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, pin))
	require.NotContains(t, listed(t, c), ci)
	require.ErrorIs(t, c.Unpin(ctx, ci), pincluster.ErrNotPinned)
	require.ErrorIs(t, c.Unpin(ctx, absent(t, "never pinned")), pincluster.ErrNotPinned)
}

func testPinDirect(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	ci := block(t, c, "direct")
	require.NoError(t, c.Pin(ctx, direct(ci), nil))
	require.Equal(t, pincluster.IPFSPinStatusDirect, status(t, c, direct(ci)))
	require.Equal(t, pincluster.IPFSPinStatusDirect, status(t, c, recursive(ci)), "found when asked for a recursive pin too")
	require.Contains(t, listed(t, c, pincluster.IPFSPinStatusDirect), ci)
	require.NotContains(t, listed(t, c, pincluster.IPFSPinStatusRecursive), ci)
	require.Equal(t, pincluster.IPFSPinStatusDirect, listed(t, c)[ci].Type)

	// Upgrade to recursive; a direct pin over it keeps it recursive.
	require.NoError(t, c.Pin(ctx, recursive(ci), nil))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, status(t, c, recursive(ci)))
	require.NoError(t, c.Pin(ctx, direct(ci), nil))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, status(t, c, direct(ci)))
	require.NotContains(t, listed(t, c, pincluster.IPFSPinStatusDirect), ci)

	require.NoError(t, c.Unpin(ctx, ci))
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, recursive(ci)))
}

func testPinAbsent(t *testing.T, cfg Config) {
	if !cfg.FetchesContent {
		t.Skip("the connector pins without content")
	}
	c := cfg.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), AbsentTimeout)
	defer cancel()
	ci := absent(t, "pin")
	calls := 0
	err := c.Pin(ctx, recursive(ci), func(pincluster.PinProgress) { calls++ })
	require.Error(t, err)
	require.True(t, errors.Is(err, pincluster.ErrNotFound) || errors.Is(err, context.DeadlineExceeded),
		"absent content: ErrNotFound or the caller's deadline, got %v", err)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.Zero(t, calls, "no progress without content")
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, recursive(ci)))
}

func testPinInvalid(t *testing.T, cfg Config) {
	c := cfg.New(t)
	require.ErrorIs(t, c.Pin(t.Context(), pincluster.Pin{}, nil), pincluster.ErrInvalidCID)
}

// testCancelled: a pin or a listing whose ctx has ended fails with the
// ctx's error and changes nothing.
func testCancelled(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ci := block(t, c, "cancelled")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := c.Pin(ctx, recursive(absent(t, "cancelled")), nil)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	n := 0
	for _, err := range c.PinLs(ctx) {
		n++
		require.ErrorIs(t, err, context.Canceled)
	}
	require.LessOrEqual(t, n, 1, "at most the error")
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, recursive(ci)))
}

func testPinLsEarlyStop(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	a, b := block(t, c, "a"), block(t, c, "b")
	require.NoError(t, c.Pin(ctx, recursive(a), nil))
	require.NoError(t, c.Pin(ctx, direct(b), nil))
	n := 0
	for _, err := range c.PinLs(ctx) {
		require.NoError(t, err)
		n++
		break
	}
	require.Equal(t, 1, n)
	all := listed(t, c) // the connector still works after an early stop
	require.Contains(t, all, a)
	require.Contains(t, all, b)
	require.NoError(t, c.Unpin(ctx, a))
	require.NoError(t, c.Unpin(ctx, b))
}

func testRepoStatConfig(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	block(t, c, "stat")
	rs, err := c.RepoStat(ctx)
	require.NoError(t, err)
	require.Positive(t, rs.StorageMax)
	require.Positive(t, rs.RepoSize)
	v, err := c.ConfigKey(ctx, "Datastore.StorageMax")
	require.NoError(t, err)
	require.NotNil(t, v)
	_, err = c.ConfigKey(ctx, "Nope.Key")
	require.ErrorIs(t, err, pincluster.ErrNotFound)
}

func testResolve(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	ci := block(t, c, "resolve")
	got, err := c.Resolve(ctx, ci.String())
	require.NoError(t, err)
	require.True(t, got.Equals(ci))
	got, err = c.Resolve(ctx, "/ipfs/"+ci.String())
	require.NoError(t, err)
	require.True(t, got.Equals(ci))
	_, err = c.Resolve(ctx, "not-a-cid")
	require.ErrorIs(t, err, pincluster.ErrInvalidCID)
}

func testSwarmPeers(t *testing.T, cfg Config) {
	if cfg.Offline {
		t.Skip("offline node")
	}
	c := cfg.New(t)
	_, err := c.SwarmPeers(t.Context())
	require.NoError(t, err)
}

func testPinUpdate(t *testing.T, cfg Config) {
	c := cfg.New(t)
	u, ok := c.(pincluster.PinUpdater)
	if !ok {
		t.Skip("not a PinUpdater")
	}
	ctx := t.Context()
	from, to, third := block(t, c, "from"), block(t, c, "to"), block(t, c, "third")
	require.ErrorIs(t, u.PinUpdate(ctx, from, to, true), pincluster.ErrNotPinned)
	require.NoError(t, c.Pin(ctx, recursive(from), nil))
	require.NoError(t, u.PinUpdate(ctx, from, to, true))
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, status(t, c, recursive(from)))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, status(t, c, recursive(to)))
	require.NoError(t, u.PinUpdate(ctx, to, third, false))
	require.Equal(t, pincluster.IPFSPinStatusRecursive, status(t, c, recursive(to)), "kept without unpin")
	require.Equal(t, pincluster.IPFSPinStatusRecursive, status(t, c, recursive(third)))
	require.NoError(t, c.Unpin(ctx, to))
	require.NoError(t, c.Unpin(ctx, third))
}

func testRepoGC(t *testing.T, cfg Config) {
	c := cfg.New(t)
	g, ok := c.(pincluster.RepoGCer)
	if !ok {
		t.Skip("not a RepoGCer")
	}
	ctx := t.Context()
	junk, kept := block(t, c, "junk"), block(t, c, "kept")
	require.NoError(t, c.Pin(ctx, recursive(kept), nil))
	res, err := g.RepoGC(ctx)
	require.NoError(t, err)
	require.Positive(t, res.RemovedCount)
	require.Contains(t, res.Removed, junk)
	require.NotContains(t, res.Removed, kept)
	b, err := c.BlockGet(ctx, kept)
	require.NoError(t, err)
	require.NotEmpty(t, b)
	require.NoError(t, c.Unpin(ctx, kept))
}

func testDAGSize(t *testing.T, cfg Config) {
	c := cfg.New(t)
	s, ok := c.(pincluster.DAGSizer)
	if !ok {
		t.Skip("not a DAGSizer")
	}
	ctx := t.Context()
	data := []byte("sized block " + t.Name())
	ci, err := c.BlockPut(ctx, data, cid.Prefix{})
	require.NoError(t, err)
	n, err := s.DAGSize(ctx, ci)
	require.NoError(t, err)
	require.Equal(t, uint64(len(data)), n)
	// Absent content: not known, and never fetched (the caller's long
	// deadline does not end the call).
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = s.DAGSize(lctx, absent(t, "size"))
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	require.NoError(t, lctx.Err())
}

func testShutdown(t *testing.T, cfg Config) {
	c := cfg.New(t)
	ctx := t.Context()
	ci := block(t, c, "shutdown")
	require.NoError(t, c.Shutdown(ctx))
	err := c.Pin(ctx, recursive(ci), nil)
	require.ErrorIs(t, err, pincluster.ErrClosed, "calls after Shutdown")
	_, err = c.PinLsCid(ctx, recursive(ci))
	require.ErrorIs(t, err, pincluster.ErrClosed)
	_, err = c.BlockPut(ctx, []byte("after shutdown"), cid.Prefix{})
	require.ErrorIs(t, err, pincluster.ErrClosed)
}
