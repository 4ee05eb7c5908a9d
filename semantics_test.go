package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/consensus/raft"
)

// IPFS Cluster's semantics at the edges (issue 14), on 5 peers.

// A direct pin upgraded to recursive reaches every holder's IPFS node, and
// a peer reports pinned only once its node holds the recursive pin. The
// opposite, recursive to direct, is refused.
func TestSemanticsPinModeUpgrade(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	ci := testCID(t, "mode-upgrade")

	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
	require.NoError(t, err)
	c.WaitFor("direct pin on every node", 20*time.Second, func() bool {
		for _, p := range c.Peers {
			if p.Mock.PinStatus(ci) != pincluster.IPFSPinStatusDirect {
				return false
			}
		}
		return true
	})
	c.WaitStatus(0, ci, 20*time.Second, pinnedOn(5))

	slow := c.Peer(3)
	slow.Mock.SlowPin(ci, 10, 200*time.Millisecond)
	for _, p := range c.Peers {
		p.Mock.ResetCalls()
	}
	_, err = c.Peer(1).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeRecursive})
	require.NoError(t, err)
	c.WaitFor("recursive pin on every node", 20*time.Second, func() bool {
		for _, p := range c.Peers {
			// Once p's state asks for the recursive pin, p reports
			// pinned only if its node holds it recursively (state, then
			// status, then node: each only moves forward).
			pin, err := p.PinGet(ctx, ci)
			require.NoError(t, err)
			if pin.Mode != pincluster.PinModeRecursive {
				continue
			}
			if localStatus(t, p, ci).Status == pincluster.TrackerStatusPinned {
				require.Equal(t, pincluster.IPFSPinStatusRecursive, p.Mock.PinStatus(ci),
					"peer %d reports pinned while its node holds the pin as %s", p.Index, p.Mock.PinStatus(ci))
			}
		}
		for _, p := range c.Peers {
			if p.Mock.PinStatus(ci) != pincluster.IPFSPinStatusRecursive {
				return false
			}
		}
		return true
	})
	for _, p := range c.Peers {
		require.Equal(t, 1, p.Mock.Calls(clustertest.MethodPin), "peer %d pins once for the upgrade", p.Index)
	}
	c.WaitStatus(4, ci, 20*time.Second, pinnedOn(5))

	_, err = c.Peer(2).Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
	require.ErrorIs(t, err, pincluster.ErrModeDowngrade)
	var verr *pincluster.ValidationError
	require.True(t, errors.As(err, &verr), "%T", err)
	require.Equal(t, "mode", verr.Field)
	pin, err := c.Peer(2).PinGet(ctx, ci)
	require.NoError(t, err)
	require.Equal(t, pincluster.PinModeRecursive, pin.Mode, "the refused downgrade changed nothing")
}

// waitGone waits until peer p holds no valid metric of any of the gone
// peers: only then does its allocator take them for gone. A count of
// live pings does not say it: a stopped peer's ping can expire before its
// freespace metric, which the allocator reads too.
func waitGone(t *testing.T, c *clustertest.Cluster, p *clustertest.Peer, gone ...*clustertest.Peer) {
	t.Helper()
	ctx := t.Context()
	c.WaitFor(fmt.Sprintf("peer %d holds no valid metric of %d stopped peers", p.Index, len(gone)), 30*time.Second, func() bool {
		for _, name := range p.MetricNames(ctx) {
			for _, m := range p.Metrics(ctx, name) {
				for _, g := range gone {
					if m.Peer == g.ID() {
						return false
					}
				}
			}
		}
		return true
	})
}

// ids returns the IDs of the peers with the given indexes.
func ids(c *clustertest.Cluster, idx ...int) []peer.ID {
	var out []peer.ID
	for _, i := range idx {
		out = append(out, c.Peer(i).ID())
	}
	return out
}

// Pinning again keeps the allocations while the live ones meet the
// minimum (IPFS Cluster's rule), also with user allocations; below the
// minimum the live ones stay and the best candidates are added.
func TestSemanticsRepinKeepsAllocations(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	wide := pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 5}
	user := pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 3, UserAllocations: ids(c, 1, 2, 3)}
	short := pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 3, UserAllocations: ids(c, 2, 3, 4)}
	ciWide, ciUser, ciShort := testCID(t, "keep-wide"), testCID(t, "keep-user"), testCID(t, "keep-short")
	pWide, err := c.Peer(0).Pin(ctx, ciWide, wide)
	require.NoError(t, err)
	require.Len(t, pWide.Allocations, 5)
	pUser, err := c.Peer(0).Pin(ctx, ciUser, user)
	require.NoError(t, err)
	require.Equal(t, ids(c, 1, 2, 3), pUser.Allocations)
	_, err = c.Peer(0).Pin(ctx, ciShort, short)
	require.NoError(t, err)

	c.Stop(3)
	c.Stop(4)
	for _, p := range c.Running() {
		waitGone(t, c, p, c.Peer(3), c.Peer(4))
	}

	again, err := c.Peer(0).Pin(ctx, ciWide, wide)
	require.NoError(t, err)
	require.Equal(t, pWide.Allocations, again.Allocations, "3 live of 5 meet min 1: allocations kept")
	again, err = c.Peer(1).Pin(ctx, ciUser, user)
	require.NoError(t, err)
	require.Equal(t, ids(c, 1, 2, 3), again.Allocations, "2 live of [1 2 3] meet min 2: allocations kept")
	again, err = c.Peer(2).Pin(ctx, ciShort, short)
	require.NoError(t, err)
	require.Len(t, again.Allocations, 3, "1 live of [2 3 4] is below min 2: re-allocated up to max")
	require.Equal(t, c.Peer(2).ID(), again.Allocations[0], "the live user allocation stays first")
	require.ElementsMatch(t, ids(c, 0, 1, 2), again.Allocations, "only live peers are added")
	for _, ci := range []cid.Cid{ciWide, ciUser} {
		pin, err := c.Peer(2).PinGet(ctx, ci)
		require.NoError(t, err)
		require.Len(t, pin.Allocations, map[bool]int{true: 5, false: 3}[ci == ciWide], "self-healing kept them too")
	}
}

// A pin naming PinUpdate starts from the old pin's allocations, even where
// the allocator would choose other peers for a new pin.
func TestSemanticsPinUpdateReusesAllocations(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 5, ConfigureMock: func(i int, m *clustertest.MockConnector) {
		if i >= 3 {
			m.SetStorageMax(1 << 30) // the fullest peers: never a fresh choice
		}
	}})
	ctx := t.Context()
	from, to, fresh := testCID(t, "update-from"), testCID(t, "update-to"), testCID(t, "update-fresh")
	rf := pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2}
	withUser := rf
	withUser.UserAllocations = ids(c, 3, 4)
	old, err := c.Peer(0).Pin(ctx, from, withUser)
	require.NoError(t, err)
	require.Equal(t, ids(c, 3, 4), old.Allocations)
	c.WaitFor("peer 1 sees the old pin", 10*time.Second, func() bool {
		_, err := c.Peer(1).PinGet(ctx, from)
		return err == nil
	})
	p, err := c.Peer(1).Pin(ctx, fresh, rf)
	require.NoError(t, err)
	require.NotContains(t, p.Allocations, c.Peer(3).ID(), "a fresh pin avoids the full peers")
	require.NotContains(t, p.Allocations, c.Peer(4).ID(), "a fresh pin avoids the full peers")

	upd := rf
	upd.PinUpdate = from
	p, err = c.Peer(1).Pin(ctx, to, upd)
	require.NoError(t, err)
	require.Equal(t, ids(c, 3, 4), p.Allocations, "the update lands where the old version is")
	require.Empty(t, p.UserAllocations)
	c.WaitFor("the new version pinned on the old holders", 20*time.Second, func() bool {
		return slices.Equal(holders(c, to), sorted(ids(c, 3, 4)))
	})
}

// An ExpireAt already past is refused with a ValidationError naming the
// field, on any peer, and nothing is pinned.
func TestSemanticsExpireAtInThePast(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	ci := testCID(t, "expired-at-birth")
	for _, p := range c.Peers {
		_, err := p.Pin(ctx, ci, pincluster.PinOptions{ExpireAt: time.Now().Add(-time.Minute)})
		require.ErrorIs(t, err, pincluster.ErrExpired, "peer %d", p.Index)
		var verr *pincluster.ValidationError
		require.True(t, errors.As(err, &verr), "%T", err)
		require.Equal(t, "expire_at", verr.Field)
		_, err = p.PinGet(ctx, ci)
		require.ErrorIs(t, err, pincluster.ErrNotFound)
	}
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ExpireAt: time.Now().Add(time.Hour)})
	require.NoError(t, err, "a future expiry is fine")
}

// RmPeer moves every pin allocated to the removed peer to live peers
// within two monitor intervals (RmPeer itself logs the moves), and the
// removed peer's node lets them go.
func TestSemanticsRmPeerVacates(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	var cids []cid.Cid
	for i := range 9 {
		ci := testCID(t, fmt.Sprint("rmpeer-", i))
		cids = append(cids, ci)
		_, err := c.Peer(i%5).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 4, ReplicationMax: 4})
		require.NoError(t, err)
	}
	c.WaitFor("each pin held by 4 nodes", 20*time.Second, func() bool {
		for _, ci := range cids {
			if len(holders(c, ci)) != 4 {
				return false
			}
		}
		return true
	})
	victim := c.Peer(3).ID()
	named := func(p *clustertest.Peer) int {
		n := 0
		for _, ci := range cids {
			pin, err := p.PinGet(ctx, ci)
			require.NoError(t, err)
			if slices.Contains(pin.Allocations, victim) {
				n++
			}
		}
		return n
	}
	require.NotZero(t, named(c.Peer(0)))

	require.NoError(t, c.Peer(0).RmPeer(ctx, victim))
	require.Zero(t, named(c.Peer(0)), "RmPeer returns once the moves are logged")
	c.WaitFor("no peer's state names the removed peer", 2*time.Second, func() bool {
		for _, p := range c.Running() {
			if named(p) != 0 {
				return false
			}
		}
		return true
	})
	others := sorted(ids(c, 0, 1, 2, 4))
	for _, ci := range cids {
		pin, err := c.Peer(1).PinGet(ctx, ci)
		require.NoError(t, err)
		require.Equal(t, others, sorted(pin.Allocations), "moved to the live peers, replication kept")
	}
	c.WaitFor("the live nodes hold every pin, the removed one none", 20*time.Second, func() bool {
		for _, ci := range cids {
			if !slices.Equal(holders(c, ci), others) {
				return false
			}
		}
		return true
	})
}

// RmPeer succeeds when a pin of the removed peer cannot be moved (too few
// peers left for its ReplicationMin), as IPFS Cluster's: the pin keeps its
// allocations and the failure is logged (ipfs-cluster-ctl peers rm exits
// 0 against IPFS Cluster in this situation).
func TestSemanticsRmPeerTooFewPeersLeft(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	ctx := t.Context()
	ci := testCID(t, "rmpeer-min3")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 3, ReplicationMax: 3})
	require.NoError(t, err)
	victim := c.Peer(2).ID()
	require.NoError(t, c.Peer(0).RmPeer(ctx, victim))
	pin, err := c.Peer(0).PinGet(ctx, ci)
	require.NoError(t, err)
	require.Contains(t, pin.Allocations, victim, "a pin that could not be moved keeps its allocations")
}

// With Raft, RmPeer also takes the peer out of the voters.
func TestSemanticsRmPeerRaft(t *testing.T) {
	cons := make([]*raft.Consensus, 3)
	c := clustertest.Start(t, clustertest.Setup{N: 3,
		NewConsensus: func(i int, h host.Host, peers []peer.ID) (pincluster.Consensus, error) {
			rc, err := raft.New(context.Background(), h, raft.Config{Peers: peers,
				HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
				LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond})
			cons[i] = rc
			return rc, err
		}})
	ctx := t.Context()
	ci := testCID(t, "raft-rmpeer")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 2,
		UserAllocations: ids(c, 1, 2)})
	require.NoError(t, err)
	require.NoError(t, c.Peer(0).RmPeer(ctx, c.Peer(2).ID()))
	voters, err := cons[0].Peers(ctx)
	require.NoError(t, err)
	require.NotContains(t, voters, c.Peer(2).ID())
	c.WaitFor("the pin moved off the removed voter", 10*time.Second, func() bool {
		// The Raft follower may not have applied the pin yet: wait, do not fail.
		pin, err := c.Peer(1).PinGet(ctx, ci)
		return err == nil && len(pin.Allocations) > 0 && !slices.Contains(pin.Allocations, c.Peer(2).ID())
	})
}

// A follower (peer 4 of 5) replicates the pinset and pins what it is
// allocated, refuses every write with ErrFollowerMode without changing
// anything, and never writes: not when a peer is lost (the trusted peers
// re-allocate every pin, also those for which the follower would be the
// closest peer), nor on expiry, nor for Recover (which acts on itself
// only, as IPFS Cluster's followers).
func TestSemanticsFollower(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 5,
		Options: []pincluster.Option{pincluster.WithExpiryInterval(300 * time.Millisecond), pincluster.WithBatching(1, 0)},
		PeerOptions: func(i int) []pincluster.Option {
			return []pincluster.Option{pincluster.WithFollowerMode(i == 4)}
		}})
	ctx := t.Context()
	f := c.Peer(4)

	var cids []cid.Cid
	for i := range 24 {
		ci := testCID(t, fmt.Sprint("follow-", i))
		cids = append(cids, ci)
		_, err := c.Peer(i%4).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2,
			UserAllocations: ids(c, i%4, (i+1)%4)})
		require.NoError(t, err)
	}
	everywhere := testCID(t, "follow-everywhere")
	_, err := c.Peer(0).Pin(ctx, everywhere, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitFor("the follower pins what is allocated to it", 20*time.Second, func() bool {
		return f.Mock.PinStatus(everywhere) == pincluster.IPFSPinStatusRecursive
	})
	pinsOf := func(p *clustertest.Peer) map[cid.Cid][]peer.ID {
		out := map[cid.Cid][]peer.ID{}
		for pin, err := range p.Pins(ctx, pincluster.PinFilter{}) {
			require.NoError(t, err)
			out[pin.Cid] = pin.Allocations
		}
		return out
	}
	c.WaitFor("the follower's state equals the trusted peers'", 20*time.Second, func() bool {
		return len(pinsOf(f)) == 25 && fmt.Sprint(pinsOf(f)) == fmt.Sprint(pinsOf(c.Peer(0)))
	})

	// Every write is refused and changes nothing.
	ci := cids[0]
	writes := map[string]func() error{
		"Pin":       func() error { _, err := f.Pin(ctx, testCID(t, "follow-new"), pincluster.PinOptions{}); return err },
		"Unpin":     func() error { _, err := f.Unpin(ctx, ci); return err },
		"PinPath":   func() error { _, err := f.PinPath(ctx, "/ipfs/"+ci.String(), pincluster.PinOptions{}); return err },
		"UnpinPath": func() error { _, err := f.UnpinPath(ctx, "/ipfs/"+ci.String()); return err },
		"PinUpdate": func() error {
			_, err := f.PinUpdate(ctx, ci, testCID(t, "follow-upd"), pincluster.PinOptions{})
			return err
		},
		"Add": func() error {
			_, err := f.Add(ctx, func(yield func(string, io.Reader) bool) { yield("a", strings.NewReader("x")) }, pincluster.AddParams{})
			return err
		},
		"AddPeer": func() error { return f.AddPeer(ctx, c.Peer(0).ID()) },
		"RmPeer":  func() error { return f.RmPeer(ctx, c.Peer(0).ID()) },
	}
	for name, w := range writes {
		require.ErrorIs(t, w(), pincluster.ErrFollowerMode, name)
	}
	require.Zero(t, localDeltas(t, f), "the follower wrote to the shared state")

	// Recover on the follower acts on itself only.
	g, err := f.Recover(ctx, ci, false)
	require.NoError(t, err)
	require.Len(t, g.PeerMap, 1)
	require.Contains(t, g.PeerMap, f.ID())

	// A peer is lost: its pins are re-allocated by the trusted peers only.
	c.Stop(3)
	lost := c.Peer(3).ID()
	c.WaitFor("every pin of the lost peer re-allocated", 30*time.Second, func() bool {
		for _, ci := range cids {
			pin, err := c.Peer(0).PinGet(ctx, ci)
			if err != nil || slices.Contains(pin.Allocations, lost) {
				return false
			}
		}
		return true
	})

	// Expiry is done by a trusted peer, too.
	expiring := testCID(t, "follow-expiring")
	_, err = c.Peer(1).Pin(ctx, expiring, pincluster.PinOptions{ExpireAt: time.Now().Add(time.Second)})
	require.NoError(t, err)
	c.WaitFor("the expired pin is unpinned", 20*time.Second, func() bool {
		_, err := f.PinGet(ctx, expiring)
		return errors.Is(err, pincluster.ErrNotFound)
	})
	require.Zero(t, localDeltas(t, f), "the follower wrote to the shared state")
	c.WaitFor("the follower's state still equals the trusted peers'", 20*time.Second, func() bool {
		return fmt.Sprint(pinsOf(f)) == fmt.Sprint(pinsOf(c.Peer(0)))
	})
}

// A fresh single peer (Badger, mock connector, replication 1) can pin as
// soon as WaitReady returns.
func TestSemanticsFreshPeerPinsWhenReady(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 1, Badger: true, ReadyOnly: true,
		Options: []pincluster.Option{pincluster.WithReplication(1, 1)}})
	pin, err := c.Peer(0).Pin(t.Context(), testCID(t, "fresh"), pincluster.PinOptions{})
	require.NoError(t, err)
	require.Equal(t, ids(c, 0), pin.Allocations)
}

// A restarted peer of 5, asked to pin on all 5 before it has heard the
// others' metrics, waits for them (or fails with the transient
// ErrNotReady), never with the steady-state ErrNotEnoughPeers; once warm,
// a real shortage is a clear AllocationError.
func TestSemanticsRestartedPeerWarmsUp(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 5, Badger: true})
	ctx := t.Context()
	all := pincluster.PinOptions{ReplicationMin: 5, ReplicationMax: 5}
	_, err := c.Peer(1).Pin(ctx, testCID(t, "warm-before"), all)
	require.NoError(t, err)
	c.Stop(0)
	c.StartPeer(0)
	for i := 0; ; i++ {
		_, err := c.Peer(0).Pin(ctx, testCID(t, fmt.Sprint("warm-", i)), all)
		if err == nil {
			break
		}
		require.ErrorIs(t, err, pincluster.ErrNotReady, "a warming peer's failure is transient")
		d, ok := pincluster.RetryAfter(err)
		require.True(t, ok)
		require.Positive(t, d)
		require.Less(t, i, 5, "still not ready after 5 bounded waits: %v", err)
	}

	c.Stop(4)
	waitGone(t, c, c.Peer(0), c.Peer(4))
	_, err = c.Peer(0).Pin(ctx, testCID(t, "warm-short"), all)
	var aerr *pincluster.AllocationError
	require.ErrorAs(t, err, &aerr, "steady state: a clear shortage")
	require.Equal(t, 5, aerr.Needed)
	require.Less(t, aerr.Available, 5, "the error names how many were available")
	require.NotErrorIs(t, err, pincluster.ErrNotReady)
}

// StatusAll names a peer that stopped answering with its last known name
// and IPFS node, not blanks.
func TestSemanticsStatusAllKeepsLostPeerNames(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	ci := testCID(t, "names")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitStatus(1, ci, 20*time.Second, pinnedOn(5))
	gone := c.Peer(3)
	ipfs, err := gone.Mock.ID(ctx)
	require.NoError(t, err)
	c.Stop(3)
	c.WaitFor("the stopped peer is reported as a cluster error, with its name", 20*time.Second, func() bool {
		for g, err := range c.Peer(1).StatusAll(ctx, pincluster.StatusFilter{}) {
			require.NoError(t, err)
			pi, ok := g.PeerMap[gone.ID()]
			if !ok || pi.Status != pincluster.TrackerStatusClusterError {
				return false
			}
			require.Equal(t, "peer3", pi.PeerName, "%+v", pi)
			require.Equal(t, ipfs.ID, pi.IPFS, "%+v", pi)
			return true
		}
		return false
	})
}

// The in-process node pins an identity CID, and a DAG made of identity
// CIDs, at once and without asking the network: the data is in the CID.
func TestSemanticsIdentityCIDsPinAtOnce(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 5, InProcessIPFS: true})
	ctx := t.Context()
	leaf, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.IDENTITY}.Sum([]byte("inline leaf"))
	require.NoError(t, err)
	pn := merkledag.NodeWithData([]byte{0x08, 0x01}) // a UnixFS directory
	require.NoError(t, pn.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.IDENTITY}))
	require.NoError(t, pn.AddRawLink("leaf", &ipld.Link{Cid: leaf, Size: 11}))
	root := pn.Cid()
	require.Equal(t, uint64(mh.IDENTITY), root.Prefix().MhType)

	for _, ci := range []cid.Cid{leaf, root} {
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
	}
	for _, ci := range []cid.Cid{leaf, root} {
		c.WaitStatus(1, ci, 15*time.Second, pinnedOn(5))
	}
}

// StateSync runs the state sync and the expiry now: a pin lost by a node
// behind the cluster's back is queued again, and an expired pin is
// unpinned, with both periodic loops an hour away.
func TestSemanticsStateSyncOnDemand(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 5, Options: []pincluster.Option{
		pincluster.WithStateSyncInterval(time.Hour), pincluster.WithExpiryInterval(time.Hour)}})
	ctx := t.Context()
	ci := testCID(t, "statesync")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitStatus(0, ci, 20*time.Second, pinnedOn(5))
	p := c.Peer(2)
	require.NoError(t, p.Mock.Unpin(ctx, ci))
	p.Mock.ResetCalls()
	require.NoError(t, p.StateSync(ctx))
	c.WaitFor("the lost pin is pinned again", 10*time.Second, func() bool {
		return p.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive
	})
	require.Equal(t, 1, p.Mock.Calls(clustertest.MethodPin))

	expiring := testCID(t, "statesync-expiring")
	pin, err := c.Peer(1).Pin(ctx, expiring, pincluster.PinOptions{ExpireAt: time.Now().Add(500 * time.Millisecond)})
	require.NoError(t, err)
	c.WaitFor("every peer has the expiring pin", 10*time.Second, func() bool {
		for _, q := range c.Peers {
			if _, err := q.PinGet(ctx, expiring); err != nil {
				return false
			}
		}
		return true
	})
	c.WaitFor("the pin expired", 5*time.Second, func() bool { return pin.Expired(time.Now()) })
	for _, q := range c.Peers {
		require.NoError(t, q.StateSync(ctx))
	}
	c.WaitFor("the expired pin is gone", 10*time.Second, func() bool {
		_, err := c.Peer(3).PinGet(ctx, expiring)
		return errors.Is(err, pincluster.ErrNotFound)
	})
}
