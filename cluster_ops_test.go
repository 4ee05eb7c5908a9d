package pincluster_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// recovered returns how many errored operations p's tracker re-queued.
func recovered(t *testing.T, p *clustertest.Peer) int {
	t.Helper()
	st, ok := p.TrackerStats()
	require.True(t, ok)
	return int(st.Recovered)
}

// localStatus is p's own status of ci.
func localStatus(t *testing.T, p *clustertest.Peer, ci cid.Cid) pincluster.PinInfoShort {
	t.Helper()
	g, err := p.Status(t.Context(), ci, true)
	require.NoError(t, err)
	return g.PeerMap[p.ID()]
}

// waitPinError waits until the global status of ci, asked from peer from,
// shows pin_error on each of failing and pinned on the others.
func waitPinError(t *testing.T, c *clustertest.Cluster, from int, ci cid.Cid, failing ...*clustertest.Peer) pincluster.GlobalPinInfo {
	t.Helper()
	return c.WaitStatus(from, ci, 20*time.Second, func(g pincluster.GlobalPinInfo) bool {
		for _, p := range failing {
			if g.PeerMap[p.ID()].Status != pincluster.TrackerStatusPinError {
				return false
			}
		}
		return len(g.PeerMap) == len(c.Peers) &&
			clustertest.Count(g, pincluster.TrackerStatusPinned) == len(c.Peers)-len(failing)
	})
}

// Global Recover and RecoverAll, asked from a peer that is not the one
// failing, re-queue the failed pins on the failing peer at once (the
// tracker's counter of recovered operations shows it was Recover, not the
// 5 s automatic retry), and the pins end pinned there.
func TestClusterOpsRecoverGlobal(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	ctx := t.Context()
	failing := c.Peer(2)
	boom := errors.New("disk on fire")

	t.Run("Recover", func(t *testing.T) {
		ci := testCID(t, "ops-recover")
		failing.Mock.FailPin(ci, boom)
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{}) // everywhere
		require.NoError(t, err)
		g := waitPinError(t, c, 1, ci, failing)
		pi := g.PeerMap[failing.ID()]
		require.Contains(t, pi.Error, "disk on fire", "the connector's error reaches the global status")
		require.GreaterOrEqual(t, pi.AttemptCount, 1, "the attempt count reaches the global status")
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, failing.Mock.PinStatus(ci))

		before := recovered(t, failing)
		failing.Mock.FailPin(ci, nil)
		g, err = c.Peer(1).Recover(ctx, ci, false)
		require.NoError(t, err)
		require.Equal(t, ci, g.Cid)
		require.Len(t, g.PeerMap, 3, "every peer answers: %v", g.PeerMap)
		require.NotEqual(t, pincluster.TrackerStatusPinError, g.PeerMap[failing.ID()].Status,
			"re-queued by the remote Recover: %+v", g.PeerMap[failing.ID()])
		require.NotEqual(t, pincluster.TrackerStatusClusterError, g.PeerMap[failing.ID()].Status, g.PeerMap[failing.ID()].Error)
		require.Equal(t, before+1, recovered(t, failing), "the failing peer's tracker recovered the operation")
		c.WaitStatus(0, ci, 20*time.Second, pinnedOn(3))
		require.Equal(t, pincluster.IPFSPinStatusRecursive, failing.Mock.PinStatus(ci))
	})

	t.Run("RecoverAll", func(t *testing.T) {
		var cids []cid.Cid
		for i := range 4 {
			ci := testCID(t, fmt.Sprint("ops-recover-all-", i))
			cids = append(cids, ci)
			failing.Mock.FailPin(ci, boom)
			_, err := c.Peer(i%3).Pin(ctx, ci, pincluster.PinOptions{})
			require.NoError(t, err)
		}
		for _, ci := range cids {
			g := waitPinError(t, c, 0, ci, failing)
			require.Contains(t, g.PeerMap[failing.ID()].Error, "disk on fire")
		}
		before := recovered(t, failing)
		for _, ci := range cids {
			failing.Mock.FailPin(ci, nil)
		}
		for g, err := range c.Peer(0).RecoverAll(ctx, false) {
			require.NoError(t, err)
			if slices.ContainsFunc(cids, g.Cid.Equals) {
				require.NotEqual(t, pincluster.TrackerStatusPinError, g.PeerMap[failing.ID()].Status,
					"%s still errored after RecoverAll", g.Cid)
			}
		}
		require.Equal(t, before+len(cids), recovered(t, failing), "each failed pin recovered once on the failing peer")
		for _, ci := range cids {
			c.WaitStatus(1, ci, 20*time.Second, pinnedOn(3))
		}
	})
}

// Recover and RecoverAll with local=true touch the calling peer only: a
// second peer with the same failure is not recovered.
func TestClusterOpsRecoverLocal(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	ctx := t.Context()
	self, other := c.Peer(1), c.Peer(2)
	boom := errors.New("local trouble")
	// failOnBoth pins name through peer 0 while it fails on self and
	// other, waits until both report pin_error, then lifts the failure; it
	// returns the CID and both trackers' recovered counts at that point.
	failOnBoth := func(t *testing.T, name string) (ci cid.Cid, selfBefore, otherBefore int) {
		ci = testCID(t, name)
		self.Mock.FailPin(ci, boom)
		other.Mock.FailPin(ci, boom)
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
		waitPinError(t, c, 0, ci, self, other)
		selfBefore, otherBefore = recovered(t, self), recovered(t, other)
		self.Mock.FailPin(ci, nil)
		other.Mock.FailPin(ci, nil)
		return ci, selfBefore, otherBefore
	}

	t.Run("Recover", func(t *testing.T) {
		ci, selfBefore, otherBefore := failOnBoth(t, "ops-recover-local")
		g, err := self.Recover(ctx, ci, true)
		require.NoError(t, err)
		require.Len(t, g.PeerMap, 1, "local: only the calling peer answers: %v", g.PeerMap)
		require.Contains(t, g.PeerMap, self.ID())
		require.NotEqual(t, pincluster.TrackerStatusPinError, g.PeerMap[self.ID()].Status)
		require.Equal(t, selfBefore+1, recovered(t, self))
		require.Equal(t, otherBefore, recovered(t, other), "a local Recover must not recover on another peer")
		c.WaitFor("pinned on the calling peer", 10*time.Second, func() bool {
			return self.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive
		})
		require.Equal(t, otherBefore, recovered(t, other))
	})

	t.Run("RecoverAll", func(t *testing.T) {
		ci, selfBefore, otherBefore := failOnBoth(t, "ops-recover-all-local")
		seen := false
		for g, err := range self.RecoverAll(ctx, true) {
			require.NoError(t, err)
			require.Len(t, g.PeerMap, 1, "local: only the calling peer: %v", g.PeerMap)
			require.Contains(t, g.PeerMap, self.ID())
			seen = seen || g.Cid.Equals(ci)
		}
		require.True(t, seen, "the recovered pin is listed")
		require.Equal(t, selfBefore+1, recovered(t, self))
		require.Equal(t, otherBefore, recovered(t, other), "a local RecoverAll must not recover on another peer")
		c.WaitFor("pinned on the calling peer", 10*time.Second, func() bool {
			return self.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive
		})
	})
}

// SyncAll reports a pin removed from the IPFS node behind the cluster's
// back as unexpectedly_unpinned, and only what changed.
func TestClusterOpsSyncAll(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	ctx := t.Context()
	p := c.Peer(1)
	lost, kept := testCID(t, "ops-sync-lost"), testCID(t, "ops-sync-kept")
	for _, ci := range []cid.Cid{lost, kept} {
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
	}
	c.WaitFor("both pinned on both peers", 20*time.Second, func() bool {
		return len(holders(c, lost)) == 2 && len(holders(c, kept)) == 2
	})
	// The periodic state sync (every 2 s) also syncs the tracker; when it
	// runs between the removal and our SyncAll it takes the change, so try
	// a few times.
	var got []pincluster.PinInfo
	for try := 0; try < 5 && got == nil; try++ {
		c.WaitFor("pinned on peer 1 (again)", 20*time.Second, func() bool {
			return p.Mock.PinStatus(lost) == pincluster.IPFSPinStatusRecursive &&
				localStatus(t, p, lost).Status == pincluster.TrackerStatusPinned
		})
		require.NoError(t, p.Mock.Unpin(ctx, lost)) // as `ipfs pin rm` would
		var all []pincluster.PinInfo
		for pi, err := range p.SyncAll(ctx) {
			require.NoError(t, err)
			all = append(all, pi)
		}
		for _, pi := range all {
			require.False(t, pi.Cid.Equals(kept), "an unchanged pin is reported: %+v", pi)
		}
		if slices.ContainsFunc(all, func(pi pincluster.PinInfo) bool { return pi.Cid.Equals(lost) }) {
			got = all
		}
	}
	require.Len(t, got, 1, "SyncAll reports the removed pin, and only it: %+v", got)
	require.Equal(t, lost, got[0].Cid)
	require.Equal(t, p.ID(), got[0].Peer)
	require.Equal(t, pincluster.TrackerStatusUnexpectedlyUnpinned, got[0].Status, "%+v", got[0])
	// The state sync then pins it again.
	c.WaitFor("pinned again", 20*time.Second, func() bool {
		return p.Mock.PinStatus(lost) == pincluster.IPFSPinStatusRecursive
	})
}

// PinPath resolves an /ipfs/ path and pins the CID; a bad path gives a
// typed error and pins nothing. UnpinPath likewise.
func TestClusterOpsPinPath(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	ctx := t.Context()
	p := c.Peer(0)
	ci := testCID(t, "ops-pin-path")
	count := func() int {
		n := 0
		for _, err := range p.Pins(ctx, pincluster.PinFilter{}) {
			require.NoError(t, err)
			n++
		}
		return n
	}

	pin, err := p.PinPath(ctx, "/ipfs/"+ci.String(), pincluster.PinOptions{Name: "by-path", ReplicationMin: 1, ReplicationMax: 1})
	require.NoError(t, err)
	require.Equal(t, ci, pin.Cid)
	require.Equal(t, "by-path", pin.Name)
	require.Len(t, pin.Allocations, 1)
	got, err := p.PinGet(ctx, ci)
	require.NoError(t, err)
	require.Equal(t, "by-path", got.Name)
	c.WaitFor("pinned on its allocation", 20*time.Second, func() bool {
		return slices.Equal(holders(c, ci), pin.Allocations)
	})
	require.Equal(t, 1, count())

	for _, bad := range []struct {
		path string
		want error
	}{
		{"/ipfs/not-a-cid", pincluster.ErrInvalidCID},
		{"/ipfs/" + testCID(t, "ops-sub").String() + "/a/b", pincluster.ErrNotFound},
	} {
		_, err := p.PinPath(ctx, bad.path, pincluster.PinOptions{})
		require.ErrorIs(t, err, bad.want, bad.path)
		require.Contains(t, err.Error(), bad.path, "the error names the path")
		_, err = p.UnpinPath(ctx, bad.path)
		require.ErrorIs(t, err, bad.want, bad.path)
	}
	require.Equal(t, 1, count(), "a bad path pins nothing")

	_, err = p.UnpinPath(ctx, "/ipfs/"+testCID(t, "ops-never-pinned").String())
	require.ErrorIs(t, err, pincluster.ErrNotFound)

	old, err := p.UnpinPath(ctx, "/ipfs/"+ci.String())
	require.NoError(t, err)
	require.Equal(t, ci, old.Cid)
	require.Equal(t, "by-path", old.Name)
	_, err = p.PinGet(ctx, ci)
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	c.WaitFor("unpinned everywhere", 20*time.Second, func() bool { return len(holders(c, ci)) == 0 })
	require.Zero(t, count())
}

// A write does not wait for another write's trust probe (acceptedByPeers
// asks the peers over the network once per monitor interval): it takes
// the previous verdict while the probe runs. Before, the probe ran under
// the lock every write takes, so every write on the peer waited for it
// (up to 2 s per peer asked, when they do not answer).
func TestClusterWriteDoesNotWaitForTrustProbe(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 3, TrustEachOther: true})
	ctx := t.Context()
	p := c.Peer(0)
	_, err := p.Pin(ctx, testCID(t, "probe-first"), pincluster.PinOptions{})
	require.NoError(t, err) // the first verdict: trusted

	entered, release := pincluster.HoldTrustProbe(p.Cluster)
	defer release()
	probing := make(chan error, 1)
	go func() {
		_, err := p.Pin(ctx, testCID(t, "probe-probing"), pincluster.PinOptions{})
		probing <- err
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the second write did not probe the peers' trust")
	}
	other := make(chan error, 1)
	go func() {
		_, err := p.Pin(ctx, testCID(t, "probe-other"), pincluster.PinOptions{})
		other <- err
	}()
	select {
	case err := <-other:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("a write waited for another write's trust probe")
	}
	select {
	case err := <-probing:
		t.Fatalf("the probing write returned (%v) before its probe ended", err)
	default:
	}
	release()
	require.NoError(t, <-probing)
}

// RmPeer on a cluster whose peers trust only each other: the removed
// peer's mutating RPC calls and its state writes are refused, and it no
// longer counts among the peers; AddPeer restores all of it.
func TestClusterOpsTrust(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 3, TrustEachOther: true})
	ctx := t.Context()
	x := c.Peer(2)
	ci := testCID(t, "ops-trust")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitStatus(2, ci, 20*time.Second, pinnedOn(3))
	peerIDs := func(p *clustertest.Peer) []peer.ID {
		ids, err := p.Peers(ctx)
		require.NoError(t, err)
		var out []peer.ID
		for _, id := range ids {
			out = append(out, id.ID)
		}
		return out
	}
	require.Contains(t, peerIDs(c.Peer(0)), x.ID())

	for _, p := range c.Peers[:2] {
		require.NoError(t, p.RmPeer(ctx, x.ID()))
	}
	for _, p := range c.Peers[:2] {
		require.NotContains(t, peerIDs(p), x.ID(), "a removed peer is not listed by peer %d", p.Index)
	}

	// Mutating (and trusted-only) RPC from x is refused by peer 0.
	g, err := x.Recover(ctx, ci, false)
	require.NoError(t, err)
	require.Equal(t, pincluster.TrackerStatusClusterError, g.PeerMap[c.Peer(0).ID()].Status, "%+v", g.PeerMap)
	require.Contains(t, g.PeerMap[c.Peer(0).ID()].Error, "permission denied")

	// x's writes would be ignored by the peers that removed it: x says
	// so instead of diverging (nothing in its own state either), and its
	// unpin leaves the pin in place everywhere.
	written := testCID(t, "ops-trust-written-by-x")
	_, err = x.Pin(ctx, written, pincluster.PinOptions{})
	require.ErrorIs(t, err, pincluster.ErrPermission)
	_, err = x.Unpin(ctx, ci)
	require.ErrorIs(t, err, pincluster.ErrPermission)
	for _, p := range c.Peers {
		_, err := p.PinGet(ctx, written)
		require.ErrorIs(t, err, pincluster.ErrNotFound, "peer %d has the refused pin", p.Index)
		_, err = p.PinGet(ctx, ci)
		require.NoError(t, err, "peer %d lost the pin x could not unpin", p.Index)
	}
	require.Equal(t, pincluster.IPFSPinStatusRecursive, x.Mock.PinStatus(ci), "x's node keeps the data")
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, c.Peer(0).Mock.PinStatus(written))

	for _, p := range c.Peers[:2] {
		require.NoError(t, p.AddPeer(ctx, x.ID()))
	}
	c.WaitFor("x listed again", 10*time.Second, func() bool { return slices.Contains(peerIDs(c.Peer(0)), x.ID()) })
	g, err = x.Recover(ctx, ci, false)
	require.NoError(t, err)
	require.Len(t, g.PeerMap, 3)
	for id, pi := range g.PeerMap {
		require.NotEqual(t, pincluster.TrackerStatusClusterError, pi.Status, "%s: %s", id, pi.Error)
	}
	c.WaitFor("x may write again once trusted", 10*time.Second, func() bool {
		_, err := x.Pin(ctx, written, pincluster.PinOptions{})
		return err == nil
	})
	c.WaitFor("x's write reaches the other peers once trusted again", 30*time.Second, func() bool {
		for _, p := range c.Peers[:2] {
			if _, err := p.PinGet(ctx, written); err != nil {
				return false
			}
		}
		return true
	})
	c.WaitStatus(0, written, 20*time.Second, pinnedOn(3))
}

// localDeltas is how many deltas p's CRDT wrote since it started.
func localDeltas(t *testing.T, p *clustertest.Peer) int {
	t.Helper()
	return int(pincluster.LocalDeltas(p.Cluster))
}

// When a peer of 4 stops, each of its pins (replication 2) is
// re-allocated by exactly one peer: the surviving peers write exactly one
// delta per lost pin (batching off), and each lost pin is pinned on
// exactly one new peer, with no pin/unpin flapping elsewhere.
func TestClusterOpsExactlyOneRepins(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 4, Options: []pincluster.Option{pincluster.WithBatching(1, 0)}})
	ctx := t.Context()
	cids := pinOnTwo(t, c, "ops-one-repin-", 24, func(i int) *clustertest.Peer { return c.Peer(i % 4) })
	victim, most := busiestPeer(c)
	lostID := c.Peer(victim).ID()
	survivor := map[cid.Cid]peer.ID{} // the other original holder of each lost pin
	for _, ci := range cids {
		h := holders(c, ci)
		if i := slices.Index(h, lostID); i >= 0 {
			survivor[ci] = h[1-i]
		}
	}
	require.Len(t, survivor, most)

	type call struct {
		m  clustertest.Method
		ci cid.Cid
	}
	var mu sync.Mutex
	calls := map[peer.ID][]call{}
	deltas := map[int]int{}
	for _, p := range c.Peers {
		if p.Index == victim {
			continue
		}
		id := p.ID()
		p.Mock.OnCall(func(m clustertest.Method, ci cid.Cid) {
			if m == clustertest.MethodPin || m == clustertest.MethodUnpin {
				mu.Lock()
				calls[id] = append(calls[id], call{m, ci})
				mu.Unlock()
			}
		})
		t.Cleanup(func() { p.Mock.OnCall(nil) })
		deltas[p.Index] = localDeltas(t, p)
	}
	written := func() int {
		n := 0
		for i, before := range deltas {
			n += localDeltas(t, c.Peer(i)) - before
		}
		return n
	}
	c.Stop(victim)

	c.WaitFor("lost pins re-allocated and pinned on two alive peers", 30*time.Second, func() bool {
		for ci := range survivor {
			pin, err := c.Peer(0).PinGet(ctx, ci)
			if err != nil || slices.Contains(pin.Allocations, lostID) || len(pin.Allocations) != 2 {
				return false
			}
			alive := slices.DeleteFunc(holders(c, ci), func(p peer.ID) bool { return p == lostID })
			if !slices.Equal(sorted(pin.Allocations), alive) {
				return false
			}
		}
		return true
	})
	require.Equal(t, most, written(), "one re-allocation write per lost pin")
	// A second, late re-allocation would show within a few monitor
	// intervals: watch for it.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		require.Equal(t, most, written(), "a lost pin was re-allocated more than once")
	}

	mu.Lock()
	defer mu.Unlock()
	for ci, keeper := range survivor {
		var pinnedBy []peer.ID
		for id, cs := range calls {
			for _, cl := range cs {
				if !cl.ci.Equals(ci) {
					continue
				}
				require.NotEqual(t, clustertest.MethodUnpin, cl.m, "%s unpinned on %s: allocations flapped", ci, id)
				if !slices.Contains(pinnedBy, id) {
					pinnedBy = append(pinnedBy, id)
				}
			}
		}
		require.Len(t, pinnedBy, 1, "%s pinned on %v after the loss, want exactly one new peer", ci, pinnedBy)
		require.NotEqual(t, keeper, pinnedBy[0])
	}
	for id, cs := range calls {
		for _, cl := range cs {
			_, lostPin := survivor[cl.ci]
			require.True(t, lostPin, "%s: %s of %s, which was not on the stopped peer", id, cl.m, cl.ci)
		}
	}
}
