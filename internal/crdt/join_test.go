package crdt_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	multihash "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

// filterBC passes a replica's incoming messages through drop: those it
// returns true for are discarded (and counted).
type filterBC struct {
	crdt.Broadcaster
	drop    func(m crdt.Message) bool
	dropped atomic.Int64
}

func (f *filterBC) Next(ctx context.Context) (crdt.Message, error) {
	for {
		m, err := f.Broadcaster.Next(ctx)
		if err != nil || !f.drop(m) {
			return m, err
		}
		f.dropped.Add(1)
	}
}

// msgVersion is the version of a broadcast message: that of the decoder
// that accepts it (0: none does).
func msgVersion(data []byte) int {
	if _, err := crdt.DecodeAnnouncement(data); err == nil {
		return 2
	}
	if _, err := crdt.DecodeJoinRequest(data); err == nil {
		return 3
	}
	if _, err := crdt.DecodeJoinReply(data); err == nil {
		return 4
	}
	if _, err := crdt.DecodeMessage(data, 0); err == nil {
		return 1
	}
	return 0
}

// waitJoined waits for r's join to end, failing after d.
func waitJoined(t *testing.T, r *replica, d time.Duration) {
	t.Helper()
	select {
	case <-r.JoinDone():
	case <-time.After(d):
		t.Fatalf("%s still joining after %v", r.name, d)
	}
}

// A joiner that receives a trusted peer's heads long before (or without)
// that peer's snapshot announcement still loads the snapshot: heads say
// nothing about snapshots (gossip delivers old ones to a new subscriber),
// only the answer to its join request does. Announcements are dropped on
// the joiner's side so that the join reply is the only way to learn the
// snapshot; SnapshotWait is a minute, so the join ends by that answer.
func TestSnapshotJoinStaleHeadsDoNotEndWait(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, fastCfg())
	writeBatches(t, c.rs[0], 0, 200, 10, pinValue)
	stale := c.rs[0].Heads()
	_, err := c.rs[0].Snapshot(ctx)
	require.NoError(t, err)
	writeBatches(t, c.rs[0], 200, 220, 10, pinValue)

	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = time.Minute
	f := &filterBC{Broadcaster: c.bus.Endpoint("j"), drop: func(m crdt.Message) bool { return msgVersion(m.Data) == 2 }}
	j := c.openWith("j", newMemStore(t), f, cfg)
	old, err := crdt.EncodeMessage(stale)
	require.NoError(t, err)
	for range 20 {
		c.bus.Inject("p0", "j", old) // gossip replaying p0's heads from before its snapshot
	}
	waitJoined(t, j, 20*time.Second)
	require.EqualValues(t, 1, j.Stats().SnapshotsLoaded, "joined by the snapshot p0 named in its join reply")
	waitFor(t, 20*time.Second, "converged", func() bool { return converged(t, c.rs) })
}

// A trusted peer with history and no snapshot answers the join request
// with "none": the joiner replays at once instead of waiting out
// SnapshotWait (a minute here).
func TestSnapshotJoinNoneKnownEndsEarly(t *testing.T) {
	c := newCluster(t, 1, 1, fastCfg())
	writeBatches(t, c.rs[0], 0, 100, 10, pinValue)
	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = time.Minute
	j := c.add("j", cfg)
	waitJoined(t, j, 20*time.Second)
	require.Zero(t, j.Stats().SnapshotsLoaded)
	waitFor(t, 20*time.Second, "converged by replay", func() bool { return converged(t, c.rs) })
}

// Hostile join messages: garbage, an untrusted peer's "none" echoing the
// joiner's nonce, a trusted reply to another joiner's nonce and a flood of
// join requests. The joiner keeps waiting and loads the trusted snapshot;
// the flood costs the answering replica a bounded number of replies.
func TestSnapshotJoinAbuse(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, fastCfg())
	writeBatches(t, c.rs[0], 0, 100, 10, pinValue)
	_, err := c.rs[0].Snapshot(ctx)
	require.NoError(t, err)

	cfg := fastCfg()
	cfg.SnapshotCatchUp = true
	cfg.SnapshotWait = time.Minute
	cfg.TrustSnapshot = func(p peer.ID) bool { return p == "p0" }
	var hold atomic.Bool // p0 silenced on the joiner's side while true
	hold.Store(true)
	f := &filterBC{Broadcaster: c.bus.Endpoint("j"), drop: func(m crdt.Message) bool { return hold.Load() && m.From == "p0" }}
	j := c.openWith("j", newMemStore(t), f, cfg)

	none, err := crdt.EncodeJoinReply(crdt.JoinReply{Nonces: [][]byte{j.JoinNonceForTest()}})
	require.NoError(t, err)
	other := make([]byte, crdt.JoinNonceSize)
	otherNone, err := crdt.EncodeJoinReply(crdt.JoinReply{Nonces: [][]byte{other}})
	require.NoError(t, err)
	c.bus.Inject("evil", "j", none)                                                   // untrusted: ignored
	c.bus.Inject("p0", "j", otherNone)                                                // trusted, but not an answer to j
	c.bus.Inject("evil", "j", []byte{0xa2, 0x61, 0x76, 0x03, 0x61, 0x6a, 0x41, 0x00}) // nonce of 1 byte
	c.bus.Inject("evil", "j", []byte{0xa2, 0x61, 0x76, 0x04, 0x61, 0x65, 0x80})       // reply with no nonce
	waitFor(t, 10*time.Second, "garbage counted", func() bool { return j.Stats().IgnoredBroadcasts >= 2 })
	// Let more than noSnapGrace (250 ms) pass on the joiner's side, as
	// p0's dropped rebroadcasts (every 50 ms) show, before p0 is heard.
	d0 := f.dropped.Load()
	waitFor(t, 10*time.Second, "p0 rebroadcasting", func() bool { return f.dropped.Load() >= d0+12 })
	require.True(t, j.Joining(), "a reply that is untrusted or not to this joiner ended the wait")
	hold.Store(false)
	waitJoined(t, j, 20*time.Second)
	require.EqualValues(t, 1, j.Stats().SnapshotsLoaded)

	// A flood of 1,000 join requests to p0: answered together.
	before := c.rs[0].Stats().SentBroadcasts
	start := time.Now()
	for i := range 1000 {
		n := make([]byte, crdt.JoinNonceSize)
		n[0], n[1] = byte(i), byte(i>>8)
		req, err := crdt.EncodeJoinRequest(n)
		require.NoError(t, err)
		c.bus.Inject("evil", "p0", req)
	}
	waitFor(t, 10*time.Second, "p0 answered", func() bool { return c.rs[0].Stats().SentBroadcasts > before })
	sent := c.rs[0].Stats().SentBroadcasts - before
	elapsed := time.Since(start)
	// Heads rebroadcasts (2 messages per 50 ms with the announcement)
	// plus at most one reply per 100 ms.
	limit := uint64(elapsed/(50*time.Millisecond)+1)*2 + uint64(elapsed/(100*time.Millisecond)+1)
	require.LessOrEqual(t, sent, limit, "p0 sent %d broadcasts in %v for 1,000 join requests", sent, elapsed)
}

// Join messages round-trip and malformed ones are rejected with
// ErrInvalidMessage.
func TestJoinCodec(t *testing.T) {
	n := make([]byte, crdt.JoinNonceSize)
	n[3] = 7
	req, err := crdt.EncodeJoinRequest(n)
	require.NoError(t, err)
	got, err := crdt.DecodeJoinRequest(req)
	require.NoError(t, err)
	require.Equal(t, n, got)
	_, err = crdt.EncodeJoinRequest(n[:3])
	require.Error(t, err)

	c, err := cid.V1Builder{Codec: cid.DagCBOR, MhType: multihash.SHA2_256}.Sum([]byte("root"))
	require.NoError(t, err)
	rep, err := crdt.EncodeJoinReply(crdt.JoinReply{Nonces: [][]byte{n}, Snapshot: crdt.Announcement{Root: c, Height: 9, Nodes: 12}})
	require.NoError(t, err)
	r, err := crdt.DecodeJoinReply(rep)
	require.NoError(t, err)
	require.Equal(t, [][]byte{n}, r.Nonces)
	require.Equal(t, crdt.Announcement{Root: c, Height: 9, Nodes: 12}, r.Snapshot)
	none, err := crdt.EncodeJoinReply(crdt.JoinReply{Nonces: [][]byte{n}})
	require.NoError(t, err)
	r, err = crdt.DecodeJoinReply(none)
	require.NoError(t, err)
	require.False(t, r.Snapshot.Root.Defined())

	many := make([][]byte, crdt.MaxJoinNonces+1)
	for i := range many {
		many[i] = n
	}
	_, err = crdt.EncodeJoinReply(crdt.JoinReply{Nonces: many})
	require.Error(t, err)
	for _, bad := range [][]byte{
		nil, []byte("nonsense"), req, // a request is not a reply
		{0xa2, 0x61, 0x76, 0x04, 0x61, 0x65, 0x80},                               // no nonce
		{0xa3, 0x61, 0x76, 0x04, 0x61, 0x65, 0x81, 0x41, 0x00, 0x61, 0x70, 0x01}, // short nonce, height
	} {
		_, err := crdt.DecodeJoinReply(bad)
		require.ErrorIs(t, err, crdt.ErrInvalidMessage, "%x", bad)
	}
	for _, bad := range [][]byte{nil, rep, {0xa2, 0x61, 0x76, 0x03, 0x61, 0x6a, 0x41, 0x00}} {
		_, err := crdt.DecodeJoinRequest(bad)
		require.ErrorIs(t, err, crdt.ErrInvalidMessage, "%x", bad)
	}
}

// An empty replica that knows no snapshot does not answer join requests
// (its "none" would send the joiner to replay a history it does not
// have); once it has history it answers "none", echoing the nonce.
func TestSnapshotJoinEmptyReplicaSilent(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, fastCfg())
	w := c.bus.Endpoint("w") // watches what p0 broadcasts
	replies := make(chan crdt.JoinReply, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			m, err := w.Next(wctx)
			if err != nil {
				return
			}
			if r, err := crdt.DecodeJoinReply(m.Data); err == nil {
				replies <- r
			}
		}
	}()
	nonce := make([]byte, crdt.JoinNonceSize)
	nonce[0] = 1
	req, err := crdt.EncodeJoinRequest(nonce)
	require.NoError(t, err)
	c.bus.Inject("j", "p0", req)
	c.bus.Inject("j", "p0", []byte("garbage after the request"))
	waitFor(t, 10*time.Second, "request handled", func() bool { return c.rs[0].Stats().IgnoredBroadcasts >= 1 })
	select {
	case r := <-replies:
		t.Fatalf("an empty replica answered a join request: %+v", r)
	case <-time.After(5 * 100 * time.Millisecond): // five reply intervals
	}
	require.NoError(t, c.rs[0].Put(ctx, key(1), []byte("a")))
	c.bus.Inject("j", "p0", req)
	select {
	case r := <-replies:
		require.Equal(t, [][]byte{nonce}, r.Nonces)
		require.False(t, r.Snapshot.Root.Defined())
	case <-time.After(10 * time.Second):
		t.Fatal("a replica with history did not answer the join request")
	}
}
