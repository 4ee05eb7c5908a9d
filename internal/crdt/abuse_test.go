package crdt_test

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	cbor "github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

func randomCid(t testing.TB) cid.Cid {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return rawCid(t, b)
}

// attacker stores a crafted block in its DAG and announces it to victim.
func (c *cluster) announce(t testing.TB, from, to string, d *crdt.Delta) cid.Cid {
	id, raw, err := crdt.EncodeDelta(d)
	require.NoError(t, err)
	require.NoError(t, c.net.DAG(from).Put(context.Background(), id, raw))
	msg, err := crdt.EncodeMessage([]cid.Cid{id})
	require.NoError(t, err)
	c.bus.Inject(from, to, msg)
	return id
}

// T16: DAG bombs from a trusted peer are rejected with a counter; other
// work goes on.
func TestDAGBombs(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, crdt.Config{RebroadcastInterval: time.Hour})
	v := c.rs[0]
	require.NoError(t, v.Put(ctx, key(1), []byte("ok")))
	before, _ := digest(t, v)
	rejected := func(n uint64) func() bool {
		return func() bool { return v.Stats().RejectedNodes >= n }
	}

	// 3 MiB block.
	c.announce(t, "evil", "p0", &crdt.Delta{Priority: 1, Puts: []crdt.KV{{Key: "/big", Value: make([]byte, 3<<20)}}})
	waitFor(t, 5*time.Second, "3 MiB block rejected", rejected(1))

	// 10,000 links.
	links := make([]cid.Cid, 10000)
	for i := range links {
		links[i] = randomCid(t)
	}
	c.announce(t, "evil", "p0", &crdt.Delta{Priority: 2, Links: links, Puts: []crdt.KV{{Key: "/links", Value: []byte("x")}}})
	waitFor(t, 5*time.Second, "10,000 links rejected", rejected(2))

	// Priority 2^63 above the victim's head.
	c.announce(t, "evil", "p0", &crdt.Delta{Priority: 1 << 63, Links: v.Heads(), Puts: []crdt.KV{{Key: "/k/000001", Value: []byte("hijack")}}})
	waitFor(t, 5*time.Second, "priority 2^63 rejected", rejected(3))

	// A priority inconsistent with its (known) links.
	c.announce(t, "evil", "p0", &crdt.Delta{Priority: 1000, Links: v.Heads(), Puts: []crdt.KV{{Key: "/k/000001", Value: []byte("hijack")}}})
	waitFor(t, 5*time.Second, "inconsistent priority rejected", rejected(4))

	// Not a delta at all (valid dag-cbor, wrong schema).
	junk, err := cbor.Marshal(map[string]int{"foo": 1})
	require.NoError(t, err)
	jid := rawCid(t, junk)
	require.NoError(t, c.net.DAG("evil").Put(ctx, jid, junk))
	msg, _ := crdt.EncodeMessage([]cid.Cid{jid})
	c.bus.Inject("evil", "p0", msg)
	waitFor(t, 5*time.Second, "junk block rejected", rejected(5))

	// 5,000 heads in one broadcast: ignored, nothing fetched.
	heads := make([]cid.Cid, 5000)
	for i := range heads {
		heads[i] = randomCid(t)
	}
	msg, err = crdt.EncodeMessage(heads)
	require.NoError(t, err)
	fetches := v.dag.TotalAttempts()
	c.bus.Inject("evil", "p0", msg)
	waitFor(t, 5*time.Second, "5,000 heads ignored", func() bool { return v.Stats().IgnoredBroadcasts >= 1 })
	require.Equal(t, fetches, v.dag.TotalAttempts())
	c.bus.Inject("evil", "p0", []byte("not cbor"))
	waitFor(t, 5*time.Second, "garbage ignored", func() bool { return v.Stats().IgnoredBroadcasts >= 2 })

	after, _ := digest(t, v)
	require.Equal(t, before, after, "no bomb changed the state")
	require.False(t, v.Stats().Dirty)
	require.NoError(t, v.Put(ctx, key(2), []byte("still works")))
}

// T16 deep branch: a 10,000-deep chain (100,000 with PINCLUSTER_LONG) is
// processed with a journal that never grows with depth.
func TestDeepBranch(t *testing.T) {
	depth := 10_000
	if os.Getenv("PINCLUSTER_LONG") != "" {
		depth = 100_000
	}
	ctx := context.Background()
	c := newCluster(t, 1, 1, crdt.Config{RebroadcastInterval: time.Hour})
	v := c.rs[0]
	dag := c.net.DAG("writer")
	var prev cid.Cid
	for i := 1; i <= depth; i++ {
		d := &crdt.Delta{Priority: uint64(i), Puts: []crdt.KV{{Key: key(i).String(), Value: []byte("v")}}}
		if i > 1 {
			d.Links = []cid.Cid{prev}
		}
		id, raw, err := crdt.EncodeDelta(d)
		require.NoError(t, err)
		require.NoError(t, dag.Put(ctx, id, raw))
		prev = id
	}
	msg, _ := crdt.EncodeMessage([]cid.Cid{prev})
	start := time.Now()
	c.bus.Inject("writer", "p0", msg)
	var maxQueued int64
	waitFor(t, 5*time.Minute, "deep branch processed", func() bool {
		st := v.Stats()
		maxQueued = max(maxQueued, st.QueuedJobs)
		return st.DAGNodes == uint64(depth) && !st.Dirty
	})
	t.Logf("%d-deep branch processed in %v; max journal size %d", depth, time.Since(start), maxQueued)
	require.LessOrEqual(t, maxQueued, int64(2), "journal must not grow with depth")
	_, n := digest(t, v)
	require.Equal(t, depth, n)
	require.Len(t, v.Heads(), 1)
}

func FuzzDecodeDelta(f *testing.F) {
	for _, d := range []*crdt.Delta{
		{Priority: 1, Puts: []crdt.KV{{Key: "/a", Value: []byte("x")}}},
		{Priority: 3, Links: []cid.Cid{rawCid(f, []byte("a")), rawCid(f, []byte("b"))}, Removes: []crdt.Remove{{Key: "/a", IDs: []cid.Cid{rawCid(f, []byte("c"))}}}},
	} {
		_, raw, err := crdt.EncodeDelta(d)
		require.NoError(f, err)
		f.Add(raw)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xd8, 0x2a, 0x41, 0x00})
	lim := crdt.Limits{MaxBlockSize: 1 << 20, MaxLinks: 1024, MaxKeySize: 4096, MaxValueSize: 256 << 10}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := crdt.DecodeDelta(raw, lim)
		if err != nil {
			require.ErrorIs(t, err, crdt.ErrInvalidDelta)
			return
		}
		// A valid delta re-encodes to a decodable block with the same content.
		_, raw2, err := crdt.EncodeDelta(d)
		require.NoError(t, err)
		d2, err := crdt.DecodeDelta(raw2, lim)
		require.NoError(t, err)
		require.Equal(t, d.Priority, d2.Priority)
		require.Equal(t, len(d.Links), len(d2.Links))
		require.Equal(t, len(d.Puts), len(d2.Puts))
	})
}

func FuzzDecodeMessage(f *testing.F) {
	msg, _ := crdt.EncodeMessage([]cid.Cid{rawCid(f, []byte("a"))})
	f.Add(msg)
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, err := crdt.DecodeMessage(data, 1024)
		if err != nil {
			require.ErrorIs(t, err, crdt.ErrInvalidMessage)
			return
		}
		require.LessOrEqual(t, len(hs), 1024)
	})
}
