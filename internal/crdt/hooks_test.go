package crdt_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// A hook runs after the engine released its apply lock: while one
// writer's hook is stuck (a tracker doing slow I/O), other writes still
// commit. Under the old engine, which called the hooks holding the lock,
// the second write never committed while the first hook ran.
func TestHookDoesNotHoldCommits(t *testing.T) {
	ctx := context.Background()
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	cfg := crdt.Config{PutHook: func(k ds.Key, _ []byte) {
		if k.String() == "/a" {
			once.Do(func() { close(entered) })
			<-release
		}
	}}
	s := newCluster(t, 1, 1, cfg).rs[0]
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // also when failing: the stuck hook lets Close finish
	errA := make(chan error, 1)
	go func() { errA <- s.Put(ctx, ds.NewKey("/a"), []byte("1")) }()
	<-entered
	errB := make(chan error, 1)
	go func() { errB <- s.Put(ctx, ds.NewKey("/b"), []byte("2")) }()
	waitFor(t, 10*time.Second, "/b committed while /a's hook runs", func() bool {
		ok, err := s.Has(ctx, ds.NewKey("/b"))
		require.NoError(t, err)
		return ok
	})
	select {
	case <-errB:
		t.Fatal("/b's Put returned before its hook ran (the hooks of /a are still running)")
	default:
	}
	unblock()
	require.NoError(t, <-errA)
	require.NoError(t, <-errB)
}

// Hooks arrive one at a time and in apply order: with many concurrent
// writers of one key, the last value a hook reports is the visible one.
func TestHooksInApplyOrder(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var running atomic.Int32
	last := map[string]string{}
	cfg := crdt.Config{PutHook: func(k ds.Key, v []byte) {
		if running.Add(1) != 1 {
			t.Error("two hooks ran at once")
		}
		mu.Lock()
		last[k.String()] = string(v)
		mu.Unlock()
		running.Add(-1)
	}}
	s := newCluster(t, 1, 1, cfg).rs[0]
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 50 {
				require.NoError(t, s.Put(ctx, ds.NewKey("/k"), []byte{byte('a' + w), byte(i)}))
			}
		})
	}
	wg.Wait()
	v, err := s.Get(ctx, ds.NewKey("/k"))
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, string(v), last["/k"])
}

// DecodeValue runs once per value on each path and its result reaches
// PutValueHook: never for PutDecoded (the writer decoded), once for Put,
// once per value of a received delta.
func TestDecodedValueHandedToHook(t *testing.T) {
	ctx := context.Background()
	type rec struct{ v string }
	decodes := map[string]*atomic.Int64{"p0": {}, "p1": {}}
	var mu sync.Mutex
	got := map[string]map[string]any{} // replica -> key -> decoded
	cfgFor := func(name string) crdt.Config {
		return crdt.Config{
			DecodeValue: func(_ string, v []byte) (any, error) {
				decodes[name].Add(1)
				if strings.HasPrefix(string(v), "bad") {
					return nil, errBadValue
				}
				return rec{string(v)}, nil
			},
			PutValueHook: func(k ds.Key, v []byte, decoded any) {
				mu.Lock()
				defer mu.Unlock()
				if got[name] == nil {
					got[name] = map[string]any{}
				}
				got[name][k.String()] = decoded
			},
		}
	}
	c := newCluster(t, 0, 1, crdt.Config{})
	a := c.add("p0", cfgFor("p0"))
	c.add("p1", cfgFor("p1"))

	require.NoError(t, a.PutDecoded(ctx, ds.NewKey("/x"), []byte("x"), rec{"x"}))
	require.EqualValues(t, 0, decodes["p0"].Load(), "PutDecoded decodes nothing")
	require.NoError(t, a.Put(ctx, ds.NewKey("/y"), []byte("y")))
	require.EqualValues(t, 1, decodes["p0"].Load(), "Put decodes once")
	require.ErrorIs(t, a.Put(ctx, ds.NewKey("/z"), []byte("bad")), crdt.ErrInvalidValue)

	waitFor(t, 30*time.Second, "p1 has both", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["p1"]) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]any{"/x": rec{"x"}, "/y": rec{"y"}}, got["p0"])
	require.Equal(t, map[string]any{"/x": rec{"x"}, "/y": rec{"y"}}, got["p1"])
	require.EqualValues(t, 2, decodes["p0"].Load(), "p0: /y and the refused /z")
	require.EqualValues(t, 2, decodes["p1"].Load(), "p1: one decode per received value")
}

// A fresh local delta travels with its announcement: the other replica
// applies it without fetching its block from the DAG.
func TestFreshDeltaArrivesWithAnnouncement(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2, 1, crdt.Config{})
	a, b := c.rs[0], c.rs[1]
	require.NoError(t, a.Put(ctx, ds.NewKey("/fresh"), []byte("v")))
	waitFor(t, 30*time.Second, "b has /fresh", func() bool {
		ok, err := b.Has(ctx, ds.NewKey("/fresh"))
		require.NoError(t, err)
		return ok
	})
	require.Zero(t, b.Stats().Fetches, "b fetched the block")
	require.Zero(t, b.dag.TotalAttempts(), "b asked the DAG for the block")
}

// gatedSync is a store whose Sync waits until released.
type gatedSync struct {
	ds.Batching
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedSync) Sync(ctx context.Context, k ds.Key) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	return g.Batching.Sync(ctx, k)
}

// Group commit is pipelined: a write is answered only after a sync that
// began after its commit, and while one sync runs the next group is
// already committed. (The old committer synced in line: a second write
// was not even committed while the first one's sync ran.)
func TestCommitPipelinedWithSync(t *testing.T) {
	ctx := context.Background()
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	st := &gatedSync{Batching: newMemStore(t), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	release := sync.OnceFunc(func() { close(st.gate) })
	defer release()
	s := c.open("p0", st, crdt.Config{})
	errA := make(chan error, 1)
	go func() { errA <- s.Put(ctx, ds.NewKey("/a"), []byte("1")) }()
	<-st.entered // /a committed, its sync running
	errB := make(chan error, 1)
	go func() { errB <- s.Put(ctx, ds.NewKey("/b"), []byte("2")) }()
	waitFor(t, 10*time.Second, "/b committed while /a's sync runs", func() bool {
		ok, err := s.Has(ctx, ds.NewKey("/b"))
		require.NoError(t, err)
		return ok
	})
	select {
	case err := <-errA:
		t.Fatalf("/a answered (%v) before its sync returned", err)
	case err := <-errB:
		t.Fatalf("/b answered (%v) before any sync covering it", err)
	default:
	}
	release()
	require.NoError(t, <-errA)
	require.NoError(t, <-errB)
}
