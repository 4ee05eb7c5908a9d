package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	libp2p "github.com/libp2p/go-libp2p"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/internal/rpc"
)

// testCID returns a distinct raw CIDv1 for s.
func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func pinnedOn(n int) func(pincluster.GlobalPinInfo) bool {
	return func(g pincluster.GlobalPinInfo) bool {
		return clustertest.Count(g, pincluster.TrackerStatusPinned) == n
	}
}

// holders returns the peers whose mock holds ci.
func holders(c *clustertest.Cluster, ci cid.Cid) []peer.ID {
	var out []peer.ID
	for _, p := range c.Peers {
		if p.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive {
			out = append(out, p.ID())
		}
	}
	slices.Sort(out)
	return out
}

func sorted(ps []peer.ID) []peer.ID {
	out := slices.Clone(ps)
	slices.Sort(out)
	return out
}

func TestClusterSmoke(t *testing.T) {
	c := clustertest.NewCluster(t, 3)
	ctx := t.Context()
	ci := testCID(t, "smoke")
	pin, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2, Name: "smoke"})
	require.NoError(t, err)
	require.Len(t, pin.Allocations, 2)
	// Pinned on the two allocations, remote on the third once that peer's
	// state has the pin (until then it reports unpinned: the CRDT is
	// eventually consistent).
	g := c.WaitStatus(1, ci, 20*time.Second, func(g pincluster.GlobalPinInfo) bool {
		return pinnedOn(2)(g) && clustertest.Count(g, pincluster.TrackerStatusRemote) == 1
	})
	require.Len(t, g.PeerMap, 3, fmt.Sprint(g.PeerMap))
	require.Equal(t, sorted(pin.Allocations), holders(c, ci))

	c.WaitFor("peer 2 has the pin", 10*time.Second, func() bool {
		_, err := c.Peer(2).PinGet(ctx, ci)
		return err == nil
	})
	_, err = c.Peer(2).Unpin(ctx, ci)
	require.NoError(t, err)
	c.WaitFor("unpinned everywhere, gone from every state", 20*time.Second, func() bool {
		for _, p := range c.Peers {
			if _, err := p.PinGet(ctx, ci); !errors.Is(err, pincluster.ErrNotFound) {
				return false
			}
		}
		return len(holders(c, ci)) == 0
	})
}

// Five peers, 200 pins with replication 2..3 from every peer: each ends
// pinned on exactly its allocations (2 or 3 peers), every peer reports the
// same statuses; unpinning all leaves nothing pinned anywhere.
func TestClusterFivePeers200Pins(t *testing.T) {
	c := clustertest.NewCluster(t, 5)
	ctx := t.Context()
	var cids []cid.Cid
	for i := range 200 {
		ci := testCID(t, fmt.Sprint("five-", i))
		cids = append(cids, ci)
		pin, err := c.Peer(i%5).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 3})
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(pin.Allocations), 2)
		require.LessOrEqual(t, len(pin.Allocations), 3)
	}
	c.WaitFor("all 200 pinned on their allocations", time.Minute, func() bool {
		for _, ci := range cids {
			pin, err := c.Peer(0).PinGet(ctx, ci)
			if err != nil || !slices.Equal(sorted(pin.Allocations), holders(c, ci)) {
				return false
			}
		}
		return true
	})
	// Every peer, asked for the global status of everything, reports the
	// same thing: pinned on the allocations, remote elsewhere. (A peer
	// may still be receiving the last pins: wait for it to agree.)
	var perPeer map[peer.ID]int
	agree := func(p *clustertest.Peer) (bool, string) {
		perPeer = map[peer.ID]int{}
		n := 0
		for g, err := range p.StatusAll(ctx, pincluster.StatusFilter{}) {
			if err != nil {
				return false, err.Error()
			}
			pin, err := p.PinGet(ctx, g.Cid)
			if err != nil {
				return false, err.Error()
			}
			if len(g.PeerMap) != 5 {
				return false, fmt.Sprintf("%s: %d peers answered", g.Cid, len(g.PeerMap))
			}
			for id, pi := range g.PeerMap {
				want := pincluster.TrackerStatusRemote
				if slices.Contains(pin.Allocations, id) {
					want = pincluster.TrackerStatusPinned
					perPeer[id]++
				}
				if pi.Status != want {
					return false, fmt.Sprintf("%s on %s: %s, want %s", g.Cid, id, pi.Status, want)
				}
			}
			n++
		}
		return n == 200, fmt.Sprintf("%d pins listed", n)
	}
	for _, p := range c.Peers {
		var why string
		c.WaitFor(fmt.Sprintf("peer %d reports the agreed statuses", p.Index), 30*time.Second, func() bool {
			var ok bool
			ok, why = agree(p)
			if !ok {
				t.Logf("peer %d not yet: %s", p.Index, why)
			}
			return ok
		})
	}
	// Every peer got a share (the balanced allocator spreads the pins).
	require.Len(t, perPeer, 5)

	for i, ci := range cids {
		_, err := c.Peer((i+1)%5).Unpin(ctx, ci)
		require.NoError(t, err)
	}
	c.WaitFor("nothing pinned anywhere", time.Minute, func() bool {
		for _, p := range c.Peers {
			if p.Mock.PinCount() != 0 {
				return false
			}
		}
		return true
	})
	c.WaitFor("every peer's state empty", 30*time.Second, func() bool {
		for _, p := range c.Peers {
			for range p.Pins(ctx, pincluster.PinFilter{}) {
				return false
			}
		}
		return true
	})
}

func testRepin(t *testing.T, repinning bool) {
	c := clustertest.Start(t, clustertest.Setup{N: 4, Options: []pincluster.Option{pincluster.WithRepinning(repinning)}})
	ctx := t.Context()
	cids := pinOnTwo(t, c, "repin-", 20, func(int) *clustertest.Peer { return c.Peer(0) })
	// Stop the peer holding the most pins (never peer 0, which we ask).
	victim, most := busiestPeer(c)
	lost := c.Peer(victim).ID()
	c.Stop(victim)

	if !repinning {
		c.WaitFor("alert about the stopped peer", 30*time.Second, func() bool {
			for _, a := range c.Peer(0).Alerts(ctx) {
				if a.Metric.Peer == lost {
					return true
				}
			}
			return false
		})
		// Every alive peer got the alert; none re-allocated.
		for _, p := range c.Running() {
			c.WaitFor("alert on every peer", 30*time.Second, func() bool {
				return slices.ContainsFunc(p.Alerts(ctx), func(a pincluster.Alert) bool { return a.Metric.Peer == lost })
			})
		}
		// With repinning on, the re-allocation follows the alert within
		// milliseconds (TestClusterRepinOnPeerLoss); off, the allocations
		// must stay as they are on every peer for a window of 2 monitor
		// intervals after the last peer got the alert.
		stillAllocated := func(p *clustertest.Peer) int {
			n := 0
			for _, ci := range cids {
				pin, err := p.PinGet(ctx, ci)
				require.NoError(t, err)
				if slices.Contains(pin.Allocations, lost) {
					n++
				}
			}
			return n
		}
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			for _, p := range c.Running() {
				require.Equal(t, most, stillAllocated(p), "pins still allocated to the stopped peer, on %s", p.ID())
			}
		}
		require.Equal(t, most, len(cids)*2-holdersAlive(c, cids), "no pin was pinned elsewhere")
		return
	}
	// TTL is 2 intervals (2 s) plus the check interval: allow a margin.
	c.WaitFor("pins of the stopped peer re-allocated and pinned", 30*time.Second, func() bool {
		for _, ci := range cids {
			pin, err := c.Peer(0).PinGet(ctx, ci)
			if err != nil || slices.Contains(pin.Allocations, lost) || len(pin.Allocations) != 2 {
				return false
			}
			var alive []peer.ID
			for _, h := range holders(c, ci) {
				if h != lost {
					alive = append(alive, h)
				}
			}
			if !slices.Equal(sorted(pin.Allocations), alive) {
				return false
			}
		}
		return true
	})
}

// pinOnTwo pins n CIDs named prefix<i> with replication 2, pin i through
// from(i), and waits until each is pinned on 2 peers.
func pinOnTwo(t *testing.T, c *clustertest.Cluster, prefix string, n int, from func(i int) *clustertest.Peer) []cid.Cid {
	t.Helper()
	var cids []cid.Cid
	for i := range n {
		ci := testCID(t, fmt.Sprint(prefix, i))
		cids = append(cids, ci)
		_, err := from(i).Pin(t.Context(), ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
		require.NoError(t, err)
	}
	c.WaitFor("all pinned twice", 30*time.Second, func() bool {
		for _, ci := range cids {
			if len(holders(c, ci)) != 2 {
				return false
			}
		}
		return true
	})
	return cids
}

// busiestPeer returns the index of the peer, other than peer 0, whose
// connector holds the most pins, and how many it holds.
func busiestPeer(c *clustertest.Cluster) (index, pins int) {
	index = 1
	for _, p := range c.Peers[1:] {
		if n := p.Mock.PinCount(); n > pins {
			index, pins = p.Index, n
		}
	}
	return index, pins
}

// holdersAlive counts the pins held by the running peers' connectors.
func holdersAlive(c *clustertest.Cluster, cids []cid.Cid) int {
	n := 0
	for _, p := range c.Running() {
		for _, ci := range cids {
			if p.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive {
				n++
			}
		}
	}
	return n
}

func TestClusterRepinOnPeerLoss(t *testing.T) { testRepin(t, true) }

func TestClusterRepinningOff(t *testing.T) { testRepin(t, false) }

// TestClusterTagsSpreadReplicas gives 4 peers the tags of 2 groups
// (WithTags, published by the default informers): the default allocator
// puts the 2 replicas of every pin in different groups.
func TestClusterTagsSpreadReplicas(t *testing.T) {
	group := func(i int) string { return []string{"a", "b"}[i%2] }
	c := clustertest.Start(t, clustertest.Setup{N: 4, PeerOptions: func(i int) []pincluster.Option {
		return []pincluster.Option{pincluster.WithTags(map[string]string{"group": group(i)})}
	}})
	ctx := t.Context()
	groupOf := map[peer.ID]string{}
	for _, p := range c.Peers {
		groupOf[p.ID()] = group(p.Index)
	}
	c.WaitFor("peer 0 knows every peer's group tag", 20*time.Second, func() bool {
		ms := c.Peer(0).Metrics(ctx, pincluster.MetricTagPrefix+"group")
		for _, m := range ms {
			if m.Value != groupOf[m.Peer] {
				return false
			}
		}
		return len(ms) == 4
	})
	for i := range 20 {
		pin, err := c.Peer(0).Pin(ctx, testCID(t, fmt.Sprint("tagged-", i)), pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
		require.NoError(t, err)
		require.Len(t, pin.Allocations, 2)
		require.NotEqual(t, groupOf[pin.Allocations[0]], groupOf[pin.Allocations[1]], "pin %d: both replicas in one group", i)
	}
}

func TestClusterPinOptions(t *testing.T) {
	c := clustertest.NewCluster(t, 4)
	ctx := t.Context()

	t.Run("everywhere", func(t *testing.T) {
		ci := testCID(t, "everywhere")
		pin, err := c.Peer(1).Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
		require.True(t, pin.IsPinEverywhere())
		c.WaitFor("pinned on all 4", 20*time.Second, func() bool { return len(holders(c, ci)) == 4 })
	})

	t.Run("user allocations", func(t *testing.T) {
		ci := testCID(t, "user-allocs")
		want := []peer.ID{c.Peer(3).ID(), c.Peer(2).ID()}
		pin, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2, UserAllocations: want})
		require.NoError(t, err)
		require.Equal(t, want, pin.Allocations)
		c.WaitFor("pinned where asked", 20*time.Second, func() bool { return slices.Equal(holders(c, ci), sorted(want)) })
		allocs, err := c.Peer(0).Allocations(ctx, ci)
		require.NoError(t, err)
		require.Equal(t, want, allocs)
		_, err = c.Peer(0).Allocations(ctx, testCID(t, "never-pinned"))
		require.ErrorIs(t, err, pincluster.ErrNotFound)

		// The status filter of Pins asks the local tracker.
		count := func(p *clustertest.Peer, st pincluster.TrackerStatus) int {
			n := 0
			for pin, err := range p.Pins(ctx, pincluster.PinFilter{Status: st}) {
				require.NoError(t, err)
				if pin.Cid.Equals(ci) {
					n++
				}
			}
			return n
		}
		c.WaitFor("peer 3 lists it as pinned, peer 0 as remote", 20*time.Second, func() bool {
			return count(c.Peer(3), pincluster.TrackerStatusPinned) == 1 && count(c.Peer(0), pincluster.TrackerStatusRemote) == 1
		})
		require.Zero(t, count(c.Peer(0), pincluster.TrackerStatusPinned))
		require.Zero(t, count(c.Peer(3), pincluster.TrackerStatusRemote|pincluster.TrackerStatusPinError))
		require.Equal(t, 1, count(c.Peer(3), pincluster.TrackerStatusPinned|pincluster.TrackerStatusRemote))
	})

	t.Run("update", func(t *testing.T) {
		from, to := testCID(t, "update-from"), testCID(t, "update-to")
		old, err := c.Peer(0).Pin(ctx, from, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2, Name: "v1",
			Metadata: map[string]string{"k": "v"}})
		require.NoError(t, err)
		c.WaitFor("peer 1 sees the pin", 10*time.Second, func() bool {
			_, err := c.Peer(1).PinGet(ctx, from)
			return err == nil
		})
		pin, err := c.Peer(1).PinUpdate(ctx, from, to, pincluster.PinOptions{Name: "v2"})
		require.NoError(t, err)
		require.Equal(t, from, pin.PinUpdate)
		require.Equal(t, "v2", pin.Name)
		require.Equal(t, map[string]string{"k": "v"}, pin.Metadata)
		require.Equal(t, sorted(old.Allocations), sorted(pin.Allocations), "the update stays where the data is")
		c.WaitFor("new version pinned on the same peers", 20*time.Second, func() bool {
			return slices.Equal(holders(c, to), sorted(old.Allocations)) && slices.Equal(holders(c, from), sorted(old.Allocations))
		})
		_, err = c.Peer(0).PinUpdate(ctx, testCID(t, "absent"), to, pincluster.PinOptions{})
		require.ErrorIs(t, err, pincluster.ErrNotFound)
	})

	t.Run("expiry", func(t *testing.T) {
		ci := testCID(t, "expiring")
		_, err := c.Peer(2).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 2,
			ExpireAt: time.Now().Add(1500 * time.Millisecond)})
		require.NoError(t, err)
		c.WaitFor("expired pin gone from the state and the nodes", 20*time.Second, func() bool {
			_, err := c.Peer(0).PinGet(ctx, ci)
			return errors.Is(err, pincluster.ErrNotFound) && len(holders(c, ci)) == 0
		})
	})

	t.Run("filtered listing", func(t *testing.T) {
		var want []cid.Cid
		for i := range 5 {
			ci := testCID(t, fmt.Sprint("listed-", i))
			want = append(want, ci)
			_, err := c.Peer(i%4).Pin(ctx, ci, pincluster.PinOptions{Name: fmt.Sprint("album-", i),
				Metadata: map[string]string{"kind": "album"}})
			require.NoError(t, err)
		}
		_, err := c.Peer(0).Unpin(ctx, want[4])
		require.NoError(t, err)
		want = want[:4]
		list := func(p *clustertest.Peer, f pincluster.PinFilter) []cid.Cid {
			var got []cid.Cid
			for pin, err := range p.Pins(ctx, f) {
				require.NoError(t, err)
				got = append(got, pin.Cid)
			}
			slices.SortFunc(got, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
			return got
		}
		slices.SortFunc(want, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
		for _, p := range c.Peers {
			c.WaitFor("every peer lists the albums", 20*time.Second, func() bool {
				return slices.Equal(list(p, pincluster.PinFilter{Name: "album-", Match: pincluster.MatchPrefix}), want) &&
					slices.Equal(list(p, pincluster.PinFilter{Metadata: map[string]string{"kind": "album"}}), want)
			})
			require.Len(t, list(p, pincluster.PinFilter{Name: "album-2"}), 1)
		}
	})

	t.Run("not enough peers", func(t *testing.T) {
		_, err := c.Peer(0).Pin(ctx, testCID(t, "too-many"), pincluster.PinOptions{ReplicationMin: 5, ReplicationMax: 6})
		var ae *pincluster.AllocationError
		require.ErrorAs(t, err, &ae)
		require.ErrorIs(t, err, pincluster.ErrNotEnoughPeers)
		require.Equal(t, 5, ae.Needed)
		require.Equal(t, 4, ae.Available)
	})
}

// T17, Go API part: oversized or malformed options are refused with a
// typed error naming the field, and nothing reaches the state.
func TestClusterHugeMetadataRefused(t *testing.T) {
	c := clustertest.NewCluster(t, 1)
	ctx := t.Context()
	many := map[string]string{}
	for i := range pincluster.MaxMetadataKeys + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	var origins []ma.Multiaddr
	for range pincluster.MaxOrigins + 1 {
		origins = append(origins, ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/"+c.Peer(0).ID().String()))
	}
	cases := map[string]pincluster.PinOptions{
		"name":     {Name: strings.Repeat("n", 256)},
		"metadata": {Metadata: many},
		"value":    {Metadata: map[string]string{"k": strings.Repeat("v", 2048)}},
		"origins":  {Origins: origins},
		"minmax":   {ReplicationMin: 3, ReplicationMax: 2},
	}
	for name, opts := range cases {
		ci := testCID(t, "huge-"+name)
		_, err := c.Peer(0).Pin(ctx, ci, opts)
		var ve *pincluster.ValidationError
		require.ErrorAs(t, err, &ve, name)
		require.NotEmpty(t, ve.Field, name)
		_, err = c.Peer(0).PinGet(ctx, ci)
		require.ErrorIs(t, err, pincluster.ErrNotFound, name)
	}
}

// T14: a peer outside the trusted set may call the open method only;
// trusted methods are refused before their body is read, and nothing
// changes. A frame above the limit is refused too.
func TestClusterUntrustedRPC(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 2, TrustEachOther: true, TCP: true}) // an outsider dials in
	ctx := t.Context()
	ci := testCID(t, "t14")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitFor("pinned on both", 20*time.Second, func() bool { return len(holders(c, ci)) == 2 })
	pinCalls := c.Peer(0).Mock.Calls(clustertest.MethodPin)

	u, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	require.NoError(t, err)
	defer u.Close()
	target := c.Peer(0).Host
	require.NoError(t, u.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()}))
	cli, err := rpc.NewClient(u, rpc.Config{Name: "default"}, nil)
	require.NoError(t, err)
	defer cli.Close(context.Background())

	_, err = rpc.Call[struct{}, any](ctx, cli, target.ID(), "Cluster.ID", struct{}{})
	require.NoError(t, err, "the open method answers")
	for _, m := range []string{"Tracker.StatusMany", "Tracker.Recover", "Tracker.RecoverAll"} {
		_, err := rpc.Call[[][]byte, any](ctx, cli, target.ID(), m, [][]byte{ci.Bytes()})
		require.ErrorIs(t, err, rpc.ErrPermission, m)
	}
	_, err = rpc.Call[[]byte, any](ctx, cli, target.ID(), "Cluster.ID", make([]byte, 8<<20))
	require.ErrorIs(t, err, rpc.ErrFrameTooLarge)

	// Nothing changed: same pin, no new pin attempt, still pinned.
	require.Equal(t, pinCalls, c.Peer(0).Mock.Calls(clustertest.MethodPin))
	c.WaitStatus(1, ci, 10*time.Second, pinnedOn(2))
	require.False(t, slices.Contains(mustPeers(t, c.Peer(0)), u.ID()), "the untrusted host is not a cluster peer")
}

func mustPeers(t *testing.T, p *clustertest.Peer) []peer.ID {
	ids, err := p.Peers(t.Context())
	require.NoError(t, err)
	var out []peer.ID
	for _, id := range ids {
		out = append(out, id.ID)
	}
	return out
}

// A peer restarted on Badger keeps its state and resumes tracking: a pin
// its IPFS node lost while it was down is pinned again.
func TestClusterBadgerRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 2, Badger: true})
	ctx := t.Context()
	cids := pinOnTwo(t, c, "badger-", 10, func(int) *clustertest.Peer { return c.Peer(0) })
	c.Stop(0)
	c.Stop(1)
	// While peer 1 is down its IPFS node loses a pin.
	require.NoError(t, c.Peer(1).Mock.Unpin(ctx, cids[3]))
	c.Restart(1) // alone: the state can only come from its own Badger
	p := c.Peer(1)
	for _, ci := range cids {
		_, err := p.PinGet(ctx, ci)
		require.NoError(t, err)
	}
	c.WaitFor("the lost pin is pinned again, every pin reported pinned", 20*time.Second, func() bool {
		if p.Mock.PinStatus(cids[3]) != pincluster.IPFSPinStatusRecursive {
			return false
		}
		for _, ci := range cids {
			pi, err := p.Status(ctx, ci, true)
			if err != nil || pi.PeerMap[p.ID()].Status != pincluster.TrackerStatusPinned {
				return false
			}
		}
		return true
	})
}

// T21: Shutdown called three times while 1,000 pins are in flight: every
// acknowledged pin is in the state after a restart, the other calls return
// nil, and no goroutine is left (TestMain checks).
// T21: 1,000 operations in flight at once (pins and unpins through the
// consensus, and pin operations held in the tracker by a slow connector),
// then Shutdown three times concurrently: every call returns nil, and
// every acknowledged operation is in the state after a restart from
// Badger. The package's goleak check catches goroutines left behind.
func TestClusterShutdownUnderLoad(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 1, Badger: true})
	p := c.Peer(0)
	p.Mock.SetLatency(50 * time.Millisecond) // tracker operations stay in flight
	ctx := t.Context()
	// 100 pins to unpin under load.
	var toUnpin []cid.Cid
	for i := range 100 {
		ci := testCID(t, fmt.Sprint("unload-", i))
		_, err := p.Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
		toUnpin = append(toUnpin, ci)
	}
	var (
		mu       sync.Mutex
		pinned   []cid.Cid
		unpinned []cid.Cid
		wg       sync.WaitGroup
	)
	started := make(chan struct{})
	var once sync.Once
	gate := make(chan struct{})
	ack := func(list *[]cid.Cid, ci cid.Cid) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, ci)
		if len(pinned)+len(unpinned) == 200 {
			once.Do(func() { close(started) })
		}
	}
	for i := range 1000 {
		wg.Go(func() {
			<-gate // all 1,000 start together
			if i < len(toUnpin) {
				ci := toUnpin[i]
				if _, err := p.Unpin(context.Background(), ci); err == nil {
					ack(&unpinned, ci)
				} else if !errors.Is(err, pincluster.ErrClosed) {
					t.Errorf("unpin: %v", err)
				}
				return
			}
			ci := testCID(t, fmt.Sprint("load-", i))
			if _, err := p.Pin(context.Background(), ci, pincluster.PinOptions{}); err == nil {
				ack(&pinned, ci)
			} else if !errors.Is(err, pincluster.ErrClosed) {
				t.Errorf("pin: %v", err)
			}
		})
	}
	close(gate)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("200 operations not acknowledged within 30 s")
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- p.Shutdown(context.Background()) }()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("acknowledged before the shutdown ended: %d pins, %d unpins (of 900 and 100)", len(pinned), len(unpinned))
	require.GreaterOrEqual(t, len(pinned)+len(unpinned), 200)
	c.Restart(0)
	p = c.Peer(0)
	for _, ci := range pinned {
		_, err := p.PinGet(t.Context(), ci)
		require.NoError(t, err, "acknowledged pin %s lost", ci)
	}
	for _, ci := range unpinned {
		_, err := p.PinGet(t.Context(), ci)
		require.ErrorIs(t, err, pincluster.ErrNotFound, "acknowledged unpin of %s lost", ci)
	}
}

// A fresh peer joins a cluster whose history has snapshots (one every 50
// deltas) and ends with the same pinset and the pins allocated to it
// pinned.
func TestClusterJoinWithSnapshots(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 3, Options: []pincluster.Option{pincluster.WithSnapshots(50, false)}})
	ctx := t.Context()
	c.Stop(2)
	var cids []cid.Cid
	for i := range 300 {
		ci := testCID(t, fmt.Sprint("snap-", i))
		cids = append(cids, ci)
		_, err := c.Peer(i%2).Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
	}
	// Snapshots are produced a moment after the threshold (a random
	// stagger of up to 2 rebroadcast intervals): wait until both peers
	// know one, so that they announce it to the joiner.
	c.WaitFor("peers 0 and 1 know a snapshot", 20*time.Second, func() bool {
		return pincluster.KnowsSnapshot(c.Peer(0).Cluster) && pincluster.KnowsSnapshot(c.Peer(1).Cluster)
	})
	c.Restart(2) // in-memory state: a fresh replica
	p := c.Peer(2)
	c.WaitFor("the fresh peer has the whole pinset, pinned", 30*time.Second, func() bool {
		for _, ci := range cids {
			if p.Mock.PinStatus(ci) != pincluster.IPFSPinStatusRecursive {
				return false
			}
		}
		return true
	})
	// The snapshot's keys reach the state and the tracker while it loads:
	// its pins can all be pinned a moment before the join ends and counts
	// the load.
	c.WaitFor("the fresh peer's join ends", 30*time.Second, func() bool { return !pincluster.CRDTJoining(p.Cluster) })
	n := 0
	for _, err := range p.Pins(ctx, pincluster.PinFilter{}) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 300, n)
	require.EqualValues(t, 1, pincluster.SnapshotsLoaded(p.Cluster), "the fresh peer joined by snapshot, not by replay: %s; peer 0: %s",
		pincluster.CRDTStats(p.Cluster), pincluster.CRDTStats(c.Peer(0).Cluster))
	for _, q := range c.Peers[:2] {
		require.Zero(t, pincluster.SnapshotsLoaded(q.Cluster), "peers with history never load a snapshot")
	}
}

// TestClusterBurstRespectsFreeSpace pins 100 CIDs of 1 GiB each (sizes
// reported by the mock connectors) in a burst on 3 peers with 20 GiB free
// each: within one monitor interval every peer's metric still shows
// 20 GiB, yet no peer is allocated more than it can hold, and the pins
// that do not fit fail with ErrNotEnoughPeers instead of overfilling a
// disk.
func TestClusterBurstRespectsFreeSpace(t *testing.T) {
	const gib = 1 << 30
	var cids []cid.Cid
	for i := range 100 {
		cids = append(cids, testCID(t, fmt.Sprint("burst-", i)))
	}
	// A one-minute monitor interval, and the disks set up before the
	// peers start: their first metrics show 20 GiB, and the whole burst
	// fits in one interval however slow the machine. (A publication in
	// the middle of a burst is counted twice for a while, by the peer's
	// informer, which subtracts its queued pins, and by the allocator's
	// reservations; that refuses more, it never overfills.)
	c := clustertest.Start(t, clustertest.Setup{N: 3, MonitorInterval: time.Minute,
		ConfigureMock: func(_ int, m *clustertest.MockConnector) {
			m.SetStorageMax(20 * gib)
			for _, ci := range cids {
				m.SetSize(ci, gib)
			}
		}})
	ctx := t.Context()
	c.WaitFor("peer 0 sees 20 GiB free on every peer", 20*time.Second, func() bool {
		ms := c.Peer(0).Metrics(ctx, pincluster.MetricFreeSpace)
		for _, m := range ms {
			if m.Weight != 20*gib {
				return false
			}
		}
		return len(ms) == 3
	})
	perPeer := map[peer.ID]int{}
	refused := 0
	for _, ci := range cids {
		pin, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 1})
		if errors.Is(err, pincluster.ErrNotEnoughPeers) {
			refused++
			continue
		}
		require.NoError(t, err)
		require.Len(t, pin.Allocations, 1)
		perPeer[pin.Allocations[0]]++
	}
	t.Logf("allocations per peer %v, refused %d", perPeer, refused)
	for id, n := range perPeer {
		require.LessOrEqual(t, n, 20, "peer %s allocated %d GiB of 20", id, n)
	}
	require.Len(t, perPeer, 3, "every peer takes a share")
	require.GreaterOrEqual(t, 100-refused, 57, "the space there is gets used")
	c.WaitFor("the accepted pins are pinned, no disk over 20 GiB", 30*time.Second, func() bool {
		n := 0
		for _, p := range c.Peers {
			st, err := p.Mock.RepoStat(ctx)
			require.NoError(t, err)
			require.LessOrEqual(t, st.RepoSize, uint64(20*gib))
			n += p.Mock.PinCount()
		}
		return n == 100-refused
	})
}

// TestClusterRepinsWhatIPFSLost removes a pin from one peer's IPFS node
// behind the cluster's back: the periodic state sync notices it (the
// tracker's SyncAll) and pins it again; the tracker's metrics count it.
func TestClusterRepinsWhatIPFSLost(t *testing.T) {
	c := clustertest.NewCluster(t, 2)
	ctx := t.Context()
	ci := testCID(t, "lost-in-ipfs")
	_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitFor("pinned on both", 20*time.Second, func() bool { return len(holders(c, ci)) == 2 })
	p := c.Peer(1)
	calls := p.Mock.Calls(clustertest.MethodPin)
	require.NoError(t, p.Mock.Unpin(ctx, ci)) // as `ipfs pin rm` would
	_, ok := p.TrackerStats()
	require.True(t, ok, "the default tracker reports metrics")
	// The tracker records the pin as held once the connector's Pin
	// returned, a moment after the mock shows it: wait for both.
	c.WaitFor("pinned again by the state sync, and counted", 20*time.Second, func() bool {
		st, _ := p.TrackerStats()
		return p.Mock.PinStatus(ci) == pincluster.IPFSPinStatusRecursive && p.Mock.Calls(clustertest.MethodPin) > calls && st.Held >= 1
	})
}

// TestClusterFreeSpaceCountsQueuedPins: pins allocated to a peer whose
// IPFS node is slow to fetch them show in the free space that peer
// publishes before their data arrives (the tracker's queued and running
// pins are subtracted), so that every other peer's allocator sees it.
func TestClusterFreeSpaceCountsQueuedPins(t *testing.T) {
	const gib = 1 << 30
	c := clustertest.NewCluster(t, 2)
	ctx := t.Context()
	target := c.Peer(1)
	target.Mock.SetStorageMax(20 * gib)
	var cids []cid.Cid
	for i := range 5 {
		ci := testCID(t, fmt.Sprint("slow-", i))
		cids = append(cids, ci)
		// Only the allocating peer's node knows the size (its blocks are
		// there); the target learns it from the pin record.
		c.Peer(0).Mock.SetSize(ci, gib)
		target.Mock.SlowPin(ci, 1000, time.Second) // 1/1000 of the DAG a second
	}
	freeOnPeer0 := func() int64 { return freeSpaceSeen(ctx, c.Peer(0), target.ID()) }
	c.WaitFor("peer 0 sees 20 GiB free on peer 1", 20*time.Second, func() bool { return freeOnPeer0() == 20*gib })
	for _, ci := range cids {
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 1,
			UserAllocations: []peer.ID{target.ID()}})
		require.NoError(t, err)
	}
	// 5 GiB expected, less the little already fetched.
	c.WaitFor("peer 1 publishes about 15 GiB free while the 5 pins crawl", 20*time.Second, func() bool {
		f := freeOnPeer0()
		return f >= 15*gib && f < 16*gib
	})
	require.Zero(t, target.Mock.PinCount(), "nothing was pinned yet")
	require.Zero(t, target.Mock.Calls(clustertest.MethodDAGSize), "the holder never asks its node for a size")
	require.Equal(t, len(cids), c.Peer(0).Mock.Calls(clustertest.MethodDAGSize), "the allocation asks once per pin")
}

// TestReservationAsksNoDAGSizeOnHolders: a peer holding pins that another
// peer allocated never asks its IPFS node for their DAG size (with Kubo an
// offline dag/stat, a DAG walk per pin), even when the node would know it:
// it reserves the size the allocating peer recorded in the pin, and
// nothing for pins made without an allocation (replication -1, whose size
// nobody asked).
//
// The holder's pins report no progress during the test, so the free space
// it publishes is exactly 20 - 3 GiB. (It once waited for at most 17 GiB
// with pins reporting 1/1000 of their DAG a second: the reservation is the
// size less what was fetched, and the mock's repo size counts a pin only
// once it completes, so only a publication gathered after the three pins
// reached the holder's tracker and before the first of them reported
// progress showed 17 GiB. On a loaded machine the pins sometimes reached it
// on either side of a publication, the next one came after that first
// report, and the wait timed out on 17 GiB + 1/1000 GiB and more.)
func TestReservationAsksNoDAGSizeOnHolders(t *testing.T) {
	const gib = 1 << 30
	c := clustertest.NewCluster(t, 2)
	ctx := t.Context()
	holder := c.Peer(1)
	holder.Mock.SetStorageMax(20 * gib)
	var allocated, everywhere []cid.Cid
	for i := range 6 {
		ci := testCID(t, fmt.Sprint("holder-size-", i))
		if i%2 == 0 {
			allocated = append(allocated, ci)
		} else {
			everywhere = append(everywhere, ci)
		}
		for _, p := range c.Peers {
			p.Mock.SetSize(ci, gib) // every node could tell
		}
		holder.Mock.SlowPin(ci, 1, time.Hour) // in flight, nothing fetched
	}
	c.WaitFor("peer 0 sees 20 GiB free on peer 1", 20*time.Second, func() bool {
		return freeSpaceSeen(ctx, c.Peer(0), holder.ID()) == 20*gib
	})
	for _, ci := range allocated {
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 2, ReplicationMax: 2})
		require.NoError(t, err)
	}
	for _, ci := range everywhere {
		_, err := c.Peer(0).Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: -1, ReplicationMax: -1})
		require.NoError(t, err)
	}
	c.WaitFor("peer 1's tracker has the 6 pins in flight", 20*time.Second, func() bool {
		st, _ := holder.TrackerStats()
		return st.PinsQueued+st.PinsInFlight == len(allocated)+len(everywhere)
	})
	// Not the first value at most 17 GiB: a publication gathered while the
	// pins arrived one by one shows some of them only (with a holder that
	// wrongly reserved the replication -1 pins too, 17 GiB for the first
	// three to arrive, on the way down to 14).
	f := freeSpaceGatheredAfter(ctx, c, c.Peer(0), holder)
	require.Equal(t, int64(17*gib), f, "3 GiB reserved for the allocated pins, none for the others")
	require.Zero(t, holder.Mock.Calls(clustertest.MethodDAGSize), "DAGSize calls on the holder")
	require.Equal(t, len(allocated), c.Peer(0).Mock.Calls(clustertest.MethodDAGSize), "DAGSize calls on the allocating peer: one per allocated pin")
	require.Zero(t, holder.Mock.PinCount(), "nothing was pinned yet")
}

// freeSpaceGatheredAfter returns the free space that observer holds from
// a publication of p gathered after the call, so that it reflects p's
// state at the call or later. p's monitor publishes one round at a time,
// stamping ValidUntil (ever later) as it stores each metric it publishes,
// and gathers the next round after that: p's own metric newer than the
// one stored at the call was stored after it, and a metric newer still was
// gathered after that.
func freeSpaceGatheredAfter(ctx context.Context, c *clustertest.Cluster, observer, p *clustertest.Peer) int64 {
	own := func() time.Time { return freeSpaceMetric(ctx, p, p.ID()).ValidUntil }
	before := own()
	var stored time.Time
	c.WaitFor(fmt.Sprintf("peer %d publishes its free space again", p.Index), 20*time.Second, func() bool {
		stored = own()
		return stored.After(before)
	})
	var m pincluster.Metric
	c.WaitFor(fmt.Sprintf("peer %d receives the free space peer %d publishes next", observer.Index, p.Index), 20*time.Second, func() bool {
		m = freeSpaceMetric(ctx, observer, p.ID())
		return m.ValidUntil.After(stored)
	})
	return m.Weight
}

// freeSpaceMetric returns observer's latest valid free-space metric of p,
// or the zero Metric.
func freeSpaceMetric(ctx context.Context, observer *clustertest.Peer, p peer.ID) pincluster.Metric {
	for _, m := range observer.Metrics(ctx, pincluster.MetricFreeSpace) {
		if m.Peer == p {
			return m
		}
	}
	return pincluster.Metric{}
}

// freeSpaceSeen returns the free space that observer holds as p's latest
// metric, or -1 when it holds none.
func freeSpaceSeen(ctx context.Context, observer *clustertest.Peer, p peer.ID) int64 {
	if m := freeSpaceMetric(ctx, observer, p); m.Name != "" {
		return m.Weight
	}
	return -1
}

// drainAPI stands for an HTTP API with one request in progress: its
// Shutdown lets that request finish, which pins through the Cluster.
type drainAPI struct {
	c   *pincluster.Cluster
	ci  cid.Cid
	err chan error
}

func (a *drainAPI) Shutdown(ctx context.Context) error {
	_, err := a.c.Pin(ctx, a.ci, pincluster.PinOptions{})
	a.err <- err
	return nil
}

// TestShutdownLetsAPIRequestsFinish: the APIs stop before the Cluster
// refuses calls, so a request in progress while an API drains completes
// (it failed with ErrClosed when Shutdown refused calls first).
func TestShutdownLetsAPIRequestsFinish(t *testing.T) {
	api := &drainAPI{ci: testCID(t, "drain"), err: make(chan error, 1)}
	c := clustertest.Start(t, clustertest.Setup{N: 1, Badger: true, Options: []pincluster.Option{
		pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			api.c = c
			return api, nil
		}),
	}})
	p := c.Peer(0)
	require.NoError(t, p.Shutdown(t.Context()))
	require.NoError(t, <-api.err, "a request finishing while its API drains")
	_, err := p.Pin(t.Context(), testCID(t, "after"), pincluster.PinOptions{})
	require.ErrorIs(t, err, pincluster.ErrClosed)
	c.Restart(0)
	_, err = c.Peer(0).PinGet(t.Context(), api.ci)
	require.NoError(t, err, "the drained request's pin is durable")
}

// The DAG size of a pin allocated on this peer is asked once: the
// allocation asks it and records it in the pin (Pin.Size), from which the
// tracker's reservation (the published free space) takes it.
func TestDAGSizeAskedOnceByAllocationAndReservation(t *testing.T) {
	const gib = 1 << 30
	c := clustertest.NewCluster(t, 1)
	ctx := t.Context()
	p := c.Peer(0)
	p.Mock.SetStorageMax(20 * gib)
	var cids []cid.Cid
	for i := range 3 {
		ci := testCID(t, fmt.Sprint("size-once-", i))
		cids = append(cids, ci)
		p.Mock.SetSize(ci, gib)
		p.Mock.SlowPin(ci, 1000, time.Second)
	}
	free := func() int64 {
		for _, m := range p.Metrics(ctx, pincluster.MetricFreeSpace) {
			if m.Peer == p.ID() {
				return m.Weight
			}
		}
		return -1
	}
	c.WaitFor("20 GiB free published", 20*time.Second, func() bool { return free() == 20*gib })
	for _, ci := range cids {
		_, err := p.Pin(ctx, ci, pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 1})
		require.NoError(t, err)
	}
	c.WaitFor("the 3 pins reserved in the published free space", 20*time.Second, func() bool {
		f := free()
		return f >= 17*gib && f < 18*gib
	})
	require.Equal(t, len(cids), p.Mock.Calls(clustertest.MethodDAGSize), "one DAGSize per pin")
}
