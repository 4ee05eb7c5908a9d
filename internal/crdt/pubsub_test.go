package crdt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

const testTopic = "pincluster-crdt-test"

type psCluster struct {
	*cluster
	mn    mocknet.Mocknet
	hosts []host.Host
	bcs   []*crdt.PubSubBroadcaster
}

// newPSCluster starts n replicas on mocknet with real gossipsub and the
// pubsub broadcaster; trusted(i) gives peer i's trust predicate. DAG
// fetches only reach peers currently connected in the mocknet.
func newPSCluster(t testing.TB, n int, cfg crdt.Config, trusted func(i int, ids []peer.ID) func(peer.ID) bool) *psCluster {
	ctx, cancel := context.WithCancel(context.Background())
	mn := mocknet.New()
	t.Cleanup(func() {
		cancel()
		_ = mn.Close()
	})
	pc := &psCluster{cluster: newCluster(t, 0, 1, cfg), mn: mn}
	ids := make([]peer.ID, n)
	byName := map[string]host.Host{}
	for i := range n {
		h, err := mn.GenPeer()
		require.NoError(t, err)
		pc.hosts = append(pc.hosts, h)
		ids[i] = h.ID()
		byName[h.ID().String()] = h
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	pc.net.SetConnected(func(a, b string) bool {
		return byName[a].Network().Connectedness(peer.ID(byName[b].ID())) == network.Connected
	})
	for i, h := range pc.hosts {
		ps, err := pubsub.NewGossipSub(ctx, h)
		require.NoError(t, err)
		var tr func(peer.ID) bool
		if trusted != nil {
			tr = trusted(i, ids)
		}
		bc, err := crdt.NewPubSubBroadcaster(ps, crdt.PubSubConfig{Topic: testTopic, Trusted: tr, Self: h.ID()})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, bc.Close()) })
		pc.bcs = append(pc.bcs, bc)
		pc.openWith(h.ID().String(), newMemStore(t), bc, cfg)
	}
	return pc
}

func (pc *psCluster) cut(a, b int, on bool) {
	ha, hb := pc.hosts[a].ID(), pc.hosts[b].ID()
	if on {
		_ = pc.mn.UnlinkPeers(ha, hb)
		_ = pc.mn.DisconnectPeers(ha, hb)
		return
	}
	_, _ = pc.mn.LinkPeers(ha, hb)
	_, _ = pc.mn.ConnectPeers(ha, hb)
}

// T13: an untrusted peer's heads are rejected by the topic validator (by
// signer), so its blocks are never fetched and trusted state is unchanged.
func TestUntrustedHeadsRejected(t *testing.T) {
	pc := newPSCluster(t, 3, crdt.Config{RebroadcastInterval: 100 * time.Millisecond}, func(i int, ids []peer.ID) func(peer.ID) bool {
		if i == 2 {
			return nil // U trusts everyone
		}
		return func(p peer.ID) bool { return p == ids[0] || p == ids[1] }
	})
	ctx := context.Background()
	// Trusted traffic works.
	require.NoError(t, pc.rs[0].Put(ctx, ds.NewKey("/trusted"), []byte("t")))
	waitFor(t, 10*time.Second, "trusted write replicated", func() bool { return converged(t, pc.rs) })
	base, _ := digest(t, pc.rs[0])
	u := pc.rs[2]
	b, _ := u.Batch(ctx)
	for i := range 10 {
		require.NoError(t, b.Put(ctx, key(i), []byte("evil")))
	}
	require.NoError(t, b.Commit(ctx))
	evilHead := u.Heads()[0]
	waitFor(t, 10*time.Second, "validators reject U's broadcasts", func() bool {
		return pc.bcs[0].Stats().Rejected >= 1 && pc.bcs[1].Stats().Rejected >= 1
	})
	for _, i := range []int{0, 1} {
		d, _ := digest(t, pc.rs[i])
		require.Equal(t, base, d, "trusted peer %d state changed", i)
		require.Zero(t, pc.rs[i].dag.Attempts(evilHead), "untrusted head fetched")
	}
	t.Logf("rejections: %d, %d", pc.bcs[0].Stats().Rejected, pc.bcs[1].Stats().Rejected)
}

// T2: 5 peers on mocknet, partition {0,1}|{2,3,4}, both sides write, heal:
// identical state, no acknowledged write lost, add-wins on contested keys.
func TestPartitionHeal(t *testing.T) {
	pc := newPSCluster(t, 5, crdt.Config{RebroadcastInterval: 300 * time.Millisecond}, nil)
	ctx := context.Background()
	batchPut := func(r *replica, from, n int, val string) {
		b, err := r.Batch(ctx)
		require.NoError(t, err)
		for i := from; i < from+n; i++ {
			require.NoError(t, b.Put(ctx, key(i), []byte(val)))
		}
		require.NoError(t, b.Commit(ctx))
	}
	batchPut(pc.rs[0], 0, 500, "pre")
	waitFor(t, 20*time.Second, "pre-load replicated", func() bool { return converged(t, pc.rs) })
	for a := range 2 {
		for b := 2; b < 5; b++ {
			pc.cut(a, b, true)
		}
	}
	// Side A writes 1000 new keys, deletes 0..49 and 100..149; side B
	// writes 1000 other keys, deletes 50..99 and re-puts 100..149.
	for i := range 10 {
		batchPut(pc.rs[i%2], 10_000+i*100, 100, "A")
		batchPut(pc.rs[2+i%3], 20_000+i*100, 100, "B")
	}
	for i := range 50 {
		require.NoError(t, pc.rs[1].Delete(ctx, key(i)))
		require.NoError(t, pc.rs[3].Delete(ctx, key(50+i)))
		require.NoError(t, pc.rs[0].Delete(ctx, key(100+i)))
	}
	batchPut(pc.rs[4], 100, 50, "renamed")
	waitFor(t, 20*time.Second, "sides converge internally", func() bool {
		return converged(t, pc.rs[:2]) && converged(t, pc.rs[2:])
	})
	dA, _ := digest(t, pc.rs[0])
	dB, _ := digest(t, pc.rs[2])
	require.NotEqual(t, dA, dB, "the partition must have separated the sides")
	for a := range 2 {
		for b := 2; b < 5; b++ {
			pc.cut(a, b, false)
		}
	}
	healed := time.Now()
	waitFor(t, 20*time.Second, "convergence after heal", func() bool { return converged(t, pc.rs) })
	t.Logf("converged %v after heal", time.Since(healed))
	for _, r := range pc.rs {
		for i := range 1000 {
			for _, k := range []int{10_000 + i, 20_000 + i} {
				ok, err := r.Has(ctx, key(k))
				require.NoError(t, err)
				require.True(t, ok, "lost acknowledged write %d on %s", k, r.name)
			}
		}
		for i := range 100 {
			ok, _ := r.Has(ctx, key(i))
			require.False(t, ok, fmt.Sprintf("deleted key %d present", i))
		}
		for i := 100; i < 150; i++ {
			v, err := r.Get(ctx, key(i))
			require.NoError(t, err, "contested key %d lost (add-wins)", i)
			require.Equal(t, "renamed", string(v))
		}
	}
}
