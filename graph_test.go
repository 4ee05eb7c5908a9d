package pincluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// TestConnectGraph: three peers, each asked over the RPC; peer 2's IPFS
// node does not answer. Every peer is in ClusterLinks with the two others
// it is connected to, trusted, and named; the IPFS nodes of peers 0 and 1
// are mapped with their swarm peers; peer 2 has no IPFS entry.
func TestConnectGraph(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Setup{N: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl.Peer(2).Mock.FailCalls(clustertest.MethodID, -1, errors.New("ipfs down"))

	g, err := cl.Peer(0).ConnectGraph(ctx)
	require.NoError(t, err)
	require.Equal(t, cl.Peer(0).ID(), g.ClusterID)
	ids := []peer.ID{cl.Peer(0).ID(), cl.Peer(1).ID(), cl.Peer(2).ID()}
	require.Len(t, g.ClusterLinks, 3)
	for i, p := range ids {
		var others []peer.ID
		for j, q := range ids {
			if j != i {
				others = append(others, q)
			}
		}
		require.ElementsMatch(t, others, g.ClusterLinks[p], "peer %d's cluster links", i)
		require.True(t, g.ClusterTrustLinks[p], "peer %d trusted", i)
		require.Equal(t, fmt.Sprintf("peer%d", i), g.IDtoPeername[p], "peer %d's name", i)
	}
	require.Len(t, g.ClustertoIPFS, 2)
	require.Len(t, g.IPFSLinks, 2)
	for i := range 2 {
		ipfs, err := cl.Peer(i).Mock.ID(ctx)
		require.NoError(t, err)
		require.Equal(t, ipfs.ID, g.ClustertoIPFS[ids[i]], "peer %d's IPFS node", i)
		swarm, err := cl.Peer(i).Mock.SwarmPeers(ctx)
		require.NoError(t, err)
		if swarm == nil {
			swarm = []peer.ID{}
		}
		require.Equal(t, swarm, g.IPFSLinks[ipfs.ID], "peer %d's IPFS links", i)
	}
	_, ok := g.ClustertoIPFS[ids[2]]
	require.False(t, ok, "peer 2's IPFS node did not answer")
}

// TestConnectGraphPeerDown: a peer that cannot be asked is listed with no
// links and no name, and the graph is still built.
func TestConnectGraphPeerDown(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Setup{N: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gone := cl.Peer(1).ID()
	cl.Stop(1)
	g, err := cl.Peer(0).ConnectGraph(ctx)
	require.NoError(t, err)
	require.Contains(t, g.ClusterLinks, cl.Peer(0).ID())
	if links, listed := g.ClusterLinks[gone]; listed {
		require.Empty(t, links)
	}
	require.NotContains(t, g.IDtoPeername, gone)
	require.NotContains(t, g.ClustertoIPFS, gone)
	require.Equal(t, "peer0", g.IDtoPeername[cl.Peer(0).ID()])
}

func oneFile(data []byte) iter.Seq2[string, io.Reader] {
	return func(yield func(string, io.Reader) bool) { yield("f", bytes.NewReader(data)) }
}

// TestRepoGC: a cluster-wide collection has one entry per peer: peer 1
// removes the blocks of an unpinned import (and keeps the pinned one's),
// peer 0 removes nothing, and peer 2, whose IPFS node fails, reports the
// error. A local collection runs on the asked peer only.
func TestRepoGC(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Setup{N: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p1 := cl.Peer(1)
	added, err := p1.Add(ctx, oneFile([]byte("garbage")), pincluster.AddParams{NoPin: true, CIDVersion: 1, RawLeaves: true})
	require.NoError(t, err)
	garbage := added[len(added)-1].Cid
	_, err = p1.PinGet(ctx, garbage)
	require.ErrorIs(t, err, pincluster.ErrNotFound, "NoPin pins nothing")
	cl.Peer(2).Mock.FailCalls(clustertest.MethodRepoGC, -1, errors.New("repo locked"))

	g, err := cl.Peer(0).RepoGC(ctx, false)
	require.NoError(t, err)
	require.Len(t, g.PeerMap, 3)
	for i := range 3 {
		r := g.PeerMap[cl.Peer(i).ID()]
		require.Equal(t, cl.Peer(i).ID(), r.Peer, "peer %d", i)
		if i == 2 {
			require.Contains(t, r.Error, "repo locked")
			continue
		}
		require.Empty(t, r.Error, "peer %d", i)
		require.Equal(t, fmt.Sprintf("peer%d", i), r.PeerName)
	}
	require.Empty(t, g.PeerMap[cl.Peer(0).ID()].Keys)
	require.Equal(t, []cid.Cid{garbage}, g.PeerMap[p1.ID()].Keys)
	require.EqualValues(t, 1, g.PeerMap[p1.ID()].RemovedCount)

	g, err = p1.RepoGC(ctx, true)
	require.NoError(t, err)
	require.Len(t, g.PeerMap, 1)
	require.Empty(t, g.PeerMap[p1.ID()].Keys, "collected already")

	_, err = cl.Peer(2).RepoGC(ctx, true)
	require.ErrorContains(t, err, "repo locked")
}

// TestPingValue: the ping metric carries the peer's name and its IPFS
// node's ID as JSON, as IPFS Cluster's does (ipfs-cluster-ctl health
// metrics ping prints it; it was empty before).
func TestPingValue(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Setup{N: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := cl.Peer(0).Metrics(ctx, pincluster.MetricPing)
	require.Len(t, ms, 2)
	for _, m := range ms {
		i := 0
		if m.Peer == cl.Peer(1).ID() {
			i = 1
		}
		ipfs, err := cl.Peer(i).Mock.ID(ctx)
		require.NoError(t, err)
		var v struct {
			PeerName string `json:"peer_name"`
			IPFSID   string `json:"ipfs_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(m.Value), &v), "value %q", m.Value)
		require.Equal(t, fmt.Sprintf("peer%d", i), v.PeerName)
		require.Equal(t, ipfs.ID.String(), v.IPFSID)
	}

	// With the IPFS node down, the last value with an IPFS ID is kept.
	cl.Peer(0).Mock.FailCalls(clustertest.MethodID, -1, errors.New("ipfs down"))
	// The second ping received after the failure was made after it.
	since := time.Now()
	var last pincluster.Metric
	for range 2 {
		require.Eventually(t, func() bool {
			for _, m := range cl.Peer(0).Metrics(ctx, pincluster.MetricPing) {
				if m.Peer == cl.Peer(0).ID() && m.ReceivedAt.After(since) {
					last = m
					return true
				}
			}
			return false
		}, 20*time.Second, 20*time.Millisecond, "a ping published after the IPFS node went down")
		since = last.ReceivedAt
	}
	require.Contains(t, last.Value, `"ipfs_id":"`)
}
