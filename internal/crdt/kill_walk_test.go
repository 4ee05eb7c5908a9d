package crdt_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// walkURLEnv is the base URL of the parent's block server, for the
// TestHelperKilledWalker child.
const walkURLEnv = "CRDT_WALK_URL"

// T7 (SIGKILL variant of TestRestartMidBatchAndMidWalk): a child process
// replica on an on-disk pebble store walks a 5,000-node branch served by
// the parent over loopback HTTP and is SIGKILLed when about half of it is
// processed. Reopened in the parent on the same directory, it must find
// its journal (dirty, the walk interrupted mid-way), reach the source's
// state within 30 s, and re-fetch at most 10 % of the branch: the walk
// resumes from the journal instead of starting again from the head.
func TestKillMidWalk(t *testing.T) {
	const branch = 5000
	ctx := context.Background()
	cfg := crdt.Config{RebroadcastInterval: 200 * time.Millisecond}
	c := newCluster(t, 1, 1, cfg)
	p0 := c.rs[0]
	start := time.Now()
	for i := range branch {
		require.NoError(t, p0.Put(ctx, key(i), []byte(fmt.Sprint("v", i))))
	}
	require.EqualValues(t, branch, p0.Stats().DAGNodes)
	t.Logf("source branch of %d nodes built in %v", branch, time.Since(start))

	var served atomic.Int64
	src := c.net.DAG("p0")
	mux := sourceMux(src.Get, p0.Heads, &served)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKilledWalker$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, walkURLEnv+"="+srv.URL)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed { // a failed assertion below: do not leave the child running
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	var reported uint64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "NODES ")
		if !ok {
			continue
		}
		reported, err = strconv.ParseUint(n, 10, 64)
		require.NoError(t, err)
		if reported >= branch/2 {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			break
		}
	}
	require.GreaterOrEqual(t, reported, uint64(branch/2), "child stopped before half the walk")
	for sc.Scan() { // drain
	}
	_ = cmd.Wait()
	killed = true
	before := served.Load()
	t.Logf("child SIGKILLed after reporting %d processed nodes (%d blocks served to it)", reported, before)

	st, err := pebbleds.NewDatastore(dir)
	require.NoError(t, err)
	defer st.Close()
	// What the child left on disk (layout in the package doc), read before
	// New starts working on it: the processed-node count and the journal.
	raw, err := st.Get(ctx, ds.NewKey("/m/nodes"))
	require.NoError(t, err)
	done, n := binary.Uvarint(raw)
	require.Positive(t, n)
	res, err := st.Query(ctx, dsq.Query{Prefix: "/q", KeysOnly: true})
	require.NoError(t, err)
	journal, err := res.Rest()
	require.NoError(t, err)
	dirty, err := st.Has(ctx, ds.NewKey("/m/dirty"))
	require.NoError(t, err)
	t.Logf("on disk after the kill: %d nodes processed (%d reported, %d lost to the kill), journal %d, dirty marker %v",
		done, reported, int64(reported)-int64(done), len(journal), dirty)
	require.True(t, dirty)
	require.NotEmpty(t, journal, "the walk was interrupted: nodes still to fetch")
	// Remote nodes are committed without a sync: the kill may lose the
	// last few the child reported (pebble had not written them out yet);
	// they are fetched again, within the re-fetch budget below.
	require.GreaterOrEqual(t, done, uint64(branch/4), "most of the first half survives the kill")
	require.Less(t, done, uint64(branch), "killed mid-walk, not after it")

	fd := crdttest.NewFaultDAG(c.net.DAG("p1"))
	opened := time.Now()
	p1, err := crdt.New(ctx, st, fd, c.bus.Endpoint("p1"), cfg)
	require.NoError(t, err)
	defer p1.Close()
	require.True(t, p1.Stats().Dirty, "journal detected at open")

	r1 := &replica{name: "p1", store: st, dag: fd, Datastore: p1}
	waitFor(t, 30*time.Second, "reopened walker converges", func() bool {
		return converged(t, []*replica{p0, r1}) && !p1.Stats().Dirty
	})
	end := p1.Stats()
	// Every block fetched beyond one per node of the branch was fetched
	// twice (the child has no block cache: all it fetched was served).
	refetched := int(before) + fd.TotalAttempts() - branch
	t.Logf("converged %v after reopen: %d nodes applied after reopen, %d fetch attempts, %d blocks re-fetched (%.1f %% of the branch)",
		time.Since(opened), end.RemoteNodes, fd.TotalAttempts(), refetched, 100*float64(refetched)/branch)
	require.EqualValues(t, branch, end.DAGNodes)
	require.Equal(t, uint64(branch)-done, end.RemoteNodes, "each missing node applied once")
	require.LessOrEqual(t, refetched, branch/10, "the walk resumed instead of restarting")
}

// TestHelperKilledWalker is the child of TestKillMidWalk (runs only with
// its environment set): a fresh replica on pebble in the helper directory
// walking the parent's branch; it prints its processed-node count every
// few milliseconds until it is killed.
func TestHelperKilledWalker(t *testing.T) {
	url, dir := os.Getenv(walkURLEnv), os.Getenv(helperEnv)
	if url == "" || dir == "" {
		t.Skip("not a test on its own: the child process that TestKillMidWalk starts and kills, run only with its environment (helper dir and source URL) set")
	}
	ctx := context.Background()
	st, err := pebbleds.NewDatastore(dir)
	require.NoError(t, err)
	cl := &http.Client{}
	s, err := crdt.New(ctx, st, httpDAG{url: url, cl: cl}, &httpBroadcaster{url: url, cl: cl, headsOnly: true},
		crdt.Config{RebroadcastInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	w := bufio.NewWriter(os.Stdout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		<-tick.C
		fmt.Fprintf(w, "NODES %d\n", s.Stats().DAGNodes)
		require.NoError(t, w.Flush())
	}
	t.Fatal("not killed within 2 minutes")
}
