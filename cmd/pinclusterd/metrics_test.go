package main

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"
)

func counted(b *broadcastCounter, topic, dir string) int64 {
	for _, c := range b.snapshot() {
		if c.topic == topic && c.dir == dir {
			return c.n
		}
	}
	return -1
}

// The pubsub tracer counts the payload bytes a peer sends and receives,
// by kind of topic.
func TestBroadcastCounter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mn, err := mocknet.FullMeshLinked(2)
	require.NoError(t, err)
	defer mn.Close()
	hs := mn.Hosts()
	ca, cb := newBroadcastCounter(), newBroadcastCounter()
	require.Equal(t, int64(0), counted(ca, "crdt", "sent"), "known series start at zero")
	psa, err := pubsub.NewGossipSub(ctx, hs[0], pubsub.WithRawTracer(ca))
	require.NoError(t, err)
	psb, err := pubsub.NewGossipSub(ctx, hs[1], pubsub.WithRawTracer(cb))
	require.NoError(t, err)
	const topic = "pincluster/default/crdt"
	ta, err := psa.Join(topic)
	require.NoError(t, err)
	defer ta.Close()
	tb, err := psb.Join(topic)
	require.NoError(t, err)
	defer tb.Close()
	sub, err := tb.Subscribe()
	require.NoError(t, err)
	defer sub.Cancel()
	require.NoError(t, mn.ConnectAllButSelf())
	require.Eventually(t, func() bool { return len(ta.ListPeers()) == 1 }, 10*time.Second, 10*time.Millisecond)

	payload := make([]byte, 1000)
	require.NoError(t, ta.Publish(ctx, payload))
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	_, err = sub.Next(rctx)
	require.NoError(t, err)
	require.Equal(t, int64(1000), counted(cb, "crdt", "received"))
	require.Eventually(t, func() bool { return counted(ca, "crdt", "sent") == 1000 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(0), counted(ca, "metrics", "sent"))

	require.Equal(t, "metrics", topicKind("pincluster/x/metrics"))
	require.Equal(t, "other", topicKind("elsewhere"))
}
