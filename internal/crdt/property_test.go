package crdt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

// T12: random puts/deletes on 3 isolated replicas, random partial syncs,
// then every node delivered to every replica in a random order with
// duplicates. All replicas must agree with each other and with an OR-set
// model evaluated on the DAG.
func TestPropertyOrderIndependence(t *testing.T) {
	seeds := 200
	if os.Getenv("PINCLUSTER_LONG") != "" {
		seeds = 10000
	}
	for seed := range seeds {
		if !runProperty(t, int64(seed)) {
			t.Fatalf("seed %d failed", seed)
		}
	}
}

type modelNode struct {
	c     cid.Cid
	raw   []byte
	links []cid.Cid
	key   string
	value []byte // nil: delete
}

func runProperty(t *testing.T, seed int64) bool {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	cfg := crdt.Config{NumWorkers: 1, RetryMinBackoff: time.Minute, RetryMaxBackoff: time.Minute}
	c := newCluster(t, 3, seed, cfg)
	c.bus.SetLink(func(string, string) bool { return false })
	c.net.SetConnected(func(a, b string) bool { return false })
	defer func() {
		for _, r := range c.rs {
			_ = r.Close()
		}
	}()

	var nodes []*modelNode
	byCid := map[cid.Cid]*modelNode{}
	known := make([]map[cid.Cid]bool, 3) // what each replica has processed
	for i := range known {
		known[i] = map[cid.Cid]bool{}
	}
	deliver := func(to int, set []*modelNode) {
		rng.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
		for _, n := range set {
			copies := 1
			if rng.Intn(5) == 0 {
				copies = 2
			}
			for range copies {
				require.NoError(t, c.rs[to].DeliverForTest(ctx, n.c, n.raw))
			}
			known[to][n.c] = true
		}
	}
	steps := 5 + rng.Intn(40)
	for range steps {
		r := rng.Intn(3)
		if rng.Intn(5) == 0 { // sync everything r knows into another replica
			to := (r + 1 + rng.Intn(2)) % 3
			var set []*modelNode
			for cc := range known[r] {
				set = append(set, byCid[cc])
			}
			deliver(to, set)
			continue
		}
		k := fmt.Sprintf("/c%d", rng.Intn(5))
		before := c.rs[r].Stats().LocalDeltas
		var val []byte
		if rng.Intn(3) == 0 {
			require.NoError(t, c.rs[r].Delete(ctx, ds.NewKey(k)))
		} else {
			val = []byte{"abc"[rng.Intn(3)]}
			require.NoError(t, c.rs[r].Put(ctx, ds.NewKey(k), val))
		}
		if c.rs[r].Stats().LocalDeltas == before {
			continue // delete of an absent key: no delta
		}
		b := headBlock(t, c, c.rs[r])
		d, err := crdt.DecodeDelta(b.raw, crdt.Limits{})
		require.NoError(t, err)
		n := &modelNode{c: b.c, raw: b.raw, links: d.Links, key: k, value: val}
		nodes = append(nodes, n)
		byCid[n.c] = n
		known[r][n.c] = true
	}
	for to := range 3 {
		deliver(to, append([]*modelNode(nil), nodes...))
	}

	want := evalModel(nodes, byCid)
	ok := true
	for i, r := range c.rs {
		// The whole visible contents (a Query, so that a key the model
		// does not have would show), then Get of every key written.
		got := map[string]string{}
		res, err := r.Query(ctx, dsq.Query{})
		require.NoError(t, err)
		es, err := res.Rest()
		require.NoError(t, err)
		for _, e := range es {
			got[e.Key] = string(e.Value)
		}
		for j := range 5 {
			k := fmt.Sprintf("/c%d", j)
			v, err := r.Get(ctx, ds.NewKey(k))
			switch {
			case err == nil && got[k] != string(v):
				t.Errorf("seed %d replica %d: Get %s = %q, Query has %q", seed, i, k, v, got[k])
				ok = false
			case errors.Is(err, ds.ErrNotFound):
				if _, listed := got[k]; listed {
					t.Errorf("seed %d replica %d: Query lists %s, Get does not find it", seed, i, k)
					ok = false
				}
			case err != nil:
				require.NoError(t, err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("seed %d replica %d: got %v, model %v", seed, i, got, want)
			ok = false
		}
		if fmt.Sprint(r.Heads()) != fmt.Sprint(c.rs[0].Heads()) {
			t.Errorf("seed %d: heads differ", seed)
			ok = false
		}
	}
	return ok
}

// evalModel evaluates the documented semantics on the DAG: an element
// (a put of key k in node N) is removed iff some node M that wrote k
// (put or delete) has N as a strict ancestor; the value of k is the live
// element with the highest (height, value bytes, cid bytes).
func evalModel(nodes []*modelNode, byCid map[cid.Cid]*modelNode) map[string]string {
	height := map[cid.Cid]int{}
	var h func(c cid.Cid) int
	h = func(c cid.Cid) int {
		if v, ok := height[c]; ok {
			return v
		}
		m := 0
		for _, l := range byCid[c].links {
			m = max(m, h(l))
		}
		height[c] = m + 1
		return m + 1
	}
	anc := map[cid.Cid]map[cid.Cid]bool{}
	var a func(c cid.Cid) map[cid.Cid]bool
	a = func(c cid.Cid) map[cid.Cid]bool {
		if s, ok := anc[c]; ok {
			return s
		}
		s := map[cid.Cid]bool{}
		for _, l := range byCid[c].links {
			s[l] = true
			for x := range a(l) {
				s[x] = true
			}
		}
		anc[c] = s
		return s
	}
	type elem struct {
		h   int
		v   []byte
		cid []byte
	}
	best := map[string]*elem{}
	for _, n := range nodes {
		if n.value == nil {
			continue
		}
		removed := false
		for _, m := range nodes {
			if m.key == n.key && a(m.c)[n.c] {
				removed = true
				break
			}
		}
		if removed {
			continue
		}
		e := &elem{h(n.c), n.value, n.c.Bytes()}
		b := best[n.key]
		if b == nil || e.h > b.h || (e.h == b.h && (bytes.Compare(e.v, b.v) > 0 || (bytes.Equal(e.v, b.v) && bytes.Compare(e.cid, b.cid) > 0))) {
			best[n.key] = e
		}
	}
	out := map[string]string{}
	keys := make([]string, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = string(best[k].v)
	}
	return out
}
