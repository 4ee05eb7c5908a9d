package crdt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
	"github.com/pincluster/pincluster/internal/leaktest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m, append(leaktest.MocknetOrphans(),
		// libp2p/pubsub background goroutines that end when their ctx,
		// cancelled by the tests, is observed.
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*peernet).setupConn"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*Cache[...]).processItems"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)...)
}

// testLogger writes to t.Log (shown for failed tests only).
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CRDT_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// replica is one test peer.
type replica struct {
	name  string
	store ds.Batching
	dag   *crdttest.FaultDAG
	ep    crdt.Broadcaster
	*crdt.Datastore
}

type cluster struct {
	t   testing.TB
	net *crdttest.Network
	bus *crdttest.Bus
	rs  []*replica
}

func newCluster(t testing.TB, n int, seed int64, cfg crdt.Config) *cluster {
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(seed)}
	for i := range n {
		c.add(fmt.Sprintf("p%d", i), cfg)
	}
	return c
}

func (c *cluster) add(name string, cfg crdt.Config) *replica {
	return c.open(name, newMemStore(c.t), cfg)
}

func (c *cluster) open(name string, store ds.Batching, cfg crdt.Config) *replica {
	return c.openWith(name, store, c.bus.Endpoint(name), cfg)
}

func (c *cluster) openWith(name string, store ds.Batching, bc crdt.Broadcaster, cfg crdt.Config) *replica {
	t := c.t
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t).With("peer", name)
	}
	r := &replica{name: name, store: store, dag: crdttest.NewFaultDAG(c.net.DAG(name)), ep: bc}
	s, err := crdt.New(context.Background(), store, r.dag, r.ep, cfg)
	require.NoError(t, err)
	r.Datastore = s
	t.Cleanup(func() { _ = s.Close() })
	c.rs = append(c.rs, r)
	return r
}

// digest hashes the sorted visible contents of a replica.
func digest(t testing.TB, s ds.Datastore) (string, int) {
	t.Helper()
	res, err := s.Query(context.Background(), dsq.Query{})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	sort.Slice(es, func(i, j int) bool { return es[i].Key < es[j].Key })
	h := sha256.New()
	for _, e := range es {
		fmt.Fprintf(h, "%d:%s%d:", len(e.Key), e.Key, len(e.Value))
		h.Write(e.Value)
	}
	return hex.EncodeToString(h.Sum(nil)), len(es)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// converged reports whether all replicas have the same contents and
// heads.
func converged(t testing.TB, rs []*replica) bool {
	d0, _ := digest(t, rs[0])
	h0 := fmt.Sprint(rs[0].Heads())
	for _, r := range rs[1:] {
		d, _ := digest(t, r)
		if d != d0 || fmt.Sprint(r.Heads()) != h0 {
			return false
		}
	}
	return true
}

func key(i int) ds.Key { return ds.NewKey(fmt.Sprintf("/k/%06d", i)) }
