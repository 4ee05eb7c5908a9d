package crdt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/badgerds"
	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// dsDAG is a DAG over a datastore (a durable local blockstore): Get falls
// back to the network peer for blocks it does not have.
type dsDAG struct {
	d   ds.Datastore
	net crdt.DAG
}

func (b dsDAG) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := b.d.Put(ctx, ds.NewKey(c.String()), data); err != nil {
		return err
	}
	if b.net != nil { // serve it to the other peers too
		if err := b.net.Put(ctx, c, data); err != nil {
			return err
		}
	}
	return b.d.Sync(ctx, ds.NewKey("/"))
}

func (b dsDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	v, err := b.d.Get(ctx, ds.NewKey(c.String()))
	if errors.Is(err, ds.ErrNotFound) && b.net != nil {
		if v, err = b.net.Get(ctx, c); err == nil {
			_ = b.d.Put(ctx, ds.NewKey(c.String()), v)
		}
	}
	return v, err
}

func openBadger(t testing.TB, dir string) *badgerds.Datastore {
	d, err := badgerds.New(dir, &badgerds.Options{GCInterval: -1})
	require.NoError(t, err)
	return d
}

// A Badger peer closed while writes and a walk are in flight reopens, runs
// repair, loses no acknowledged write and converges; the interrupted walk
// resumes from the journal (few nodes fetched twice).
func TestRestartMidBatchAndMidWalk(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 1, 1, crdt.Config{RebroadcastInterval: 200 * time.Millisecond})
	p0 := c.rs[0]
	dir := t.TempDir()
	bd := openBadger(t, dir)
	cfg := crdt.Config{RebroadcastInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	open := func() (*crdt.Datastore, *crdttest.FaultDAG, *crdttest.Endpoint) {
		fd := crdttest.NewFaultDAG(dsDAG{namespace.Wrap(bd, ds.NewKey("/blocks")), c.net.DAG("p1")})
		ep := c.bus.Endpoint("p1")
		s, err := crdt.New(ctx, namespace.Wrap(bd, ds.NewKey("/crdt")), fd, ep, cfg)
		require.NoError(t, err)
		return s, fd, ep
	}
	// p0 builds a 1,000-node branch p1 has not seen.
	c.bus.SetLink(func(from, to string) bool { return false })
	var barrier cid.Cid
	for i := range 1000 {
		require.NoError(t, p0.Put(ctx, key(i), []byte("p0")))
		if i == 199 {
			barrier = p0.Heads()[0]
		}
	}
	p1, fd1, _ := open()
	// The walk goes down from the head and the first p1 cannot fetch the
	// node of height 200: at least 200 nodes are still to go when p1 is
	// closed, however fast it walks.
	fd1.SetFault(barrier, crdttest.FaultFail)
	c.bus.SetLink(nil)
	// p1 writes concurrently while walking; close when half the walk is done.
	var mu sync.Mutex
	var acked []int
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 4 {
				if err := p1.Put(ctx, key(100_000+i), []byte("p1")); err != nil {
					require.ErrorIs(t, err, crdt.ErrClosed)
					return
				}
				mu.Lock()
				acked = append(acked, 100_000+i)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 30*time.Second, "half the walk", func() bool { return p1.Stats().RemoteNodes >= 500 })
	require.NoError(t, p1.Close())
	wg.Wait()
	firstFetches := fd1.TotalAttempts()
	st := p1.Stats()
	t.Logf("closed with %d acknowledged writes, %d remote nodes applied, journal %d", len(acked), st.RemoteNodes, st.QueuedJobs)

	require.LessOrEqual(t, st.RemoteNodes, uint64(800), "the barrier held")
	require.Positive(t, st.QueuedJobs, "closed mid-walk")

	p1b, fd2, _ := open()
	defer p1b.Close()
	at := p1b.Stats()
	require.True(t, at.Dirty, "journal detected at open")
	// (The resumed walk may already have applied a node or two.)
	require.GreaterOrEqual(t, at.DAGNodes, st.LocalDeltas+st.RemoteNodes, "every node processed before Close is durable")
	for _, k := range acked {
		ok, err := p1b.Has(ctx, key(k))
		require.NoError(t, err)
		require.True(t, ok, "acknowledged key %d lost", k)
	}
	waitFor(t, 30*time.Second, "convergence after restart", func() bool {
		return converged(t, []*replica{p0, {name: "p1", Datastore: p1b}}) && !p1b.Stats().Dirty
	})
	refetched := fd2.TotalAttempts()
	t.Logf("fetches: %d before close, %d after reopen (branch 1000 nodes + p1's own)", firstFetches, refetched)
	require.LessOrEqual(t, refetched, 1000-int(st.RemoteNodes)+100, "the walk resumed instead of restarting")
	require.NoError(t, p1b.Close())
	require.NoError(t, bd.Close())
}

// T8: a child process writing to Badger (batches of up to 500, group
// commit) is SIGKILLed; every write it
// acknowledged is in the reopened store, and the next commit links to the
// last committed head.
func TestKillMidBatch(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	acked := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "ACK "); ok {
			i, err := strconv.Atoi(n)
			require.NoError(t, err)
			acked[i] = true
			if len(acked) == 3000 {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				break
			}
		}
	}
	// Keep reading what was already acknowledged before the kill.
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			i, _ := strconv.Atoi(n)
			acked[i] = true
		}
	}
	_ = cmd.Wait()
	require.GreaterOrEqual(t, len(acked), 3000)

	ctx := context.Background()
	start := time.Now()
	bd := openBadger(t, dir)
	defer bd.Close()
	c := newCluster(t, 0, 1, crdt.Config{})
	s, err := crdt.New(ctx, namespace.Wrap(bd, ds.NewKey("/crdt")), dsDAG{namespace.Wrap(bd, ds.NewKey("/blocks")), nil}, c.bus.Endpoint("child"), crdt.Config{})
	require.NoError(t, err)
	defer s.Close()
	t.Logf("reopened after SIGKILL in %v with %d acknowledged writes", time.Since(start), len(acked))
	for i := range acked {
		ok, err := s.Has(ctx, key(i))
		require.NoError(t, err)
		require.True(t, ok, "acknowledged key %d lost", i)
	}
	heads := s.Heads()
	require.Len(t, heads, 1, "one local writer: one head")
	require.NoError(t, s.Put(ctx, key(-1), []byte("after")))
	nh := s.Heads()
	require.Len(t, nh, 1)
	raw, err := dsDAG{namespace.Wrap(bd, ds.NewKey("/blocks")), nil}.Get(ctx, nh[0])
	require.NoError(t, err)
	d, err := crdt.DecodeDelta(raw, crdt.Limits{})
	require.NoError(t, err)
	require.Equal(t, heads, d.Links, "the next commit links to the last committed head")
}

// TestHelperCrashWriter is the child of TestKillMidBatch (runs only with
// the helper env var set): it writes keys and prints each acknowledged one.
func TestHelperCrashWriter(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestKillMidBatch")
	}
	ctx := context.Background()
	bd := openBadger(t, dir)
	bus := crdttest.NewBus(1)
	s, err := crdt.New(ctx, namespace.Wrap(bd, ds.NewKey("/crdt")), dsDAG{namespace.Wrap(bd, ds.NewKey("/blocks")), nil}, bus.Endpoint("child"), crdt.Config{MaxBatchSize: 500})
	require.NoError(t, err)
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 10_000_000; i += 8 {
				if err := s.Put(ctx, key(i), []byte(fmt.Sprint(i))); err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(w, "ACK %d\n", i)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// T9: a peer whose broadcast of a commit was lost (killed before it went
// out) announces its heads again when restarted; the others fetch them
// within one rebroadcast interval.
func TestAnnounceAfterRestart(t *testing.T) {
	ctx := context.Background()
	const interval = 500 * time.Millisecond
	c := newCluster(t, 1, 1, crdt.Config{RebroadcastInterval: interval})
	store := newMemStore(t)
	p1 := c.openWith("p1", store, c.bus.Endpoint("p1"), crdt.Config{RebroadcastInterval: time.Hour})
	c.bus.DropFrom("p1", true)
	require.NoError(t, p1.Put(ctx, key(1), []byte("unannounced")))
	require.NoError(t, p1.Close())
	c.bus.DropFrom("p1", false)
	p1b := c.openWith("p1", store, c.bus.Endpoint("p1"), crdt.Config{RebroadcastInterval: interval})
	start := time.Now()
	waitFor(t, interval, "p0 has p1's commit", func() bool {
		ok, _ := c.rs[0].Has(ctx, key(1))
		return ok
	})
	t.Logf("announced and fetched %v after restart", time.Since(start))
	_ = p1b
}
