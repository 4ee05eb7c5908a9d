package pinsvc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// Tests of the Pinning Service API backed by a real pincluster peer: the
// default components (in-process IPFS node, CRDT consensus, tracker,
// monitor, allocator) on a libp2p host on 127.0.0.1, started by
// clustertest.

// clusterPeer starts one real peer and returns it.
func clusterPeer(t *testing.T) *pincluster.Cluster {
	t.Helper()
	cl := clustertest.Start(t, clustertest.Setup{N: 1, InProcessIPFS: true, TCP: true}) // Kubo dials it
	return cl.Peer(0).Cluster
}

// clusterAPI is the API of a fresh real peer (token tokenAlice), served on
// loopback until the test ends, with its base URL.
func clusterAPI(t *testing.T) (*pincluster.Cluster, *API, string) {
	t.Helper()
	c := clusterPeer(t)
	a, err := New(c, Config{Tokens: map[string]string{tokenAlice: "alice", tokenBob: "bob"}})
	require.NoError(t, err)
	return c, a, serve(t, a) // the API stops before the peer (cleanup order)
}

// pinsOf returns the cluster pinset.
func pinsOf(t *testing.T, c *pincluster.Cluster) []pincluster.Pin {
	t.Helper()
	var out []pincluster.Pin
	for p, err := range c.Pins(context.Background(), pincluster.PinFilter{}) {
		require.NoError(t, err)
		out = append(out, p)
	}
	return out
}

// TestKuboPinRemoteCluster is INTEROP.md §2.4's end-to-end test with a real
// Kubo v0.42.0 as the client and a real pincluster peer behind the API:
// Kubo (online, Routing.Type none) adds 1 MiB; the blocking `ipfs pin
// remote add` makes the cluster pin it, its in-process node fetching the
// data from Kubo (Kubo's origins, our delegates); Kubo exits 0 once the
// request is pinned. Then ls with statuses, rm by name (--force when
// several match), and a wrong token.
func TestKuboPinRemoteCluster(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	c, _, url := clusterAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		out, err := d.Run(ctx, args...)
		return string(out), err
	}
	out, err := run("pin", "remote", "service", "add", "pc", url, tokenAlice)
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "service", "add", "bad", url, "wrong-token")
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "service", "ls", "--stat")
	require.NoError(t, err, out)
	require.Regexp(t, `pc\s+\S+\s+0/0/0/0`, out)

	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	file := filepath.Join(t.TempDir(), "data.bin")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	out, err = run("add", "-Q", "--cid-version=1", "--raw-leaves", file)
	require.NoError(t, err, out)
	ci, err := cid.Decode(strings.TrimSpace(out))
	require.NoError(t, err)

	const limit = 60 * time.Second
	addCtx, addCancel := context.WithTimeout(ctx, limit)
	defer addCancel()
	start := time.Now()
	b, err := d.Run(addCtx, "pin", "remote", "add", "--service=pc", "--name=e2e", ci.String())
	require.NoError(t, err, "%s", b)
	t.Logf("blocking 'ipfs pin remote add' of 1 MiB exited 0 after %s (limit %s)", time.Since(start).Round(time.Millisecond), limit)

	// The cluster holds the pin, with Kubo's origins, and this peer has
	// the data pinned.
	p, err := c.PinGet(ctx, ci)
	require.NoError(t, err)
	require.Equal(t, "e2e", p.Name)
	require.NotEmpty(t, p.Origins, "Kubo sent its addresses as origins")
	g, err := c.Status(ctx, ci, true)
	require.NoError(t, err)
	require.Equal(t, pincluster.TrackerStatusPinned, g.PeerMap[c.Host().ID()].Status)

	// A CID nobody has stays queued or pinning.
	absent := testCID(t, "nowhere")
	out, err = run("pin", "remote", "add", "--service=pc", "--name=later", "--background=true", absent.String())
	require.NoError(t, err, out)
	ls := kuboLs(t, d) // default: pinned only
	require.Equal(t, []kuboRemotePin{{Status: "pinned", Cid: ci.String(), Name: "e2e"}}, ls)
	require.Len(t, kuboLs(t, d, "--status=queued,pinning,pinned,failed"), 2)
	ls = kuboLs(t, d, "--status=queued,pinning", "--cid="+absent.String())
	require.Len(t, ls, 1)
	require.Equal(t, "later", ls[0].Name)

	// A second request for the same CID: rm --name needs --force when
	// several match; the CID leaves the cluster with its last request.
	out, err = run("pin", "remote", "add", "--service=pc", "--name=e2e", "--background=true", ci.String())
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "rm", "--service=pc", "--name=e2e")
	require.Error(t, err, out)
	_, err = c.PinGet(ctx, ci)
	require.NoError(t, err, "still pinned after the refused rm")
	out, err = run("pin", "remote", "rm", "--service=pc", "--name=e2e", "--force")
	require.NoError(t, err, out)
	_, err = c.PinGet(ctx, ci)
	require.ErrorIs(t, err, pincluster.ErrNotFound)

	out, err = run("pin", "remote", "rm", "--service=pc", "--status=queued,pinning,pinned,failed", "--force")
	require.NoError(t, err, out)
	require.Empty(t, kuboLs(t, d, "--status=queued,pinning,pinned,failed"))
	require.Empty(t, pinsOf(t, c), "the cluster pinset is empty again")

	_, err = run("pin", "remote", "ls", "--service=bad")
	require.ErrorContains(t, err, "UNAUTHORIZED")
	require.ErrorContains(t, err, "401")
}

// TestComplianceCluster runs the compliance suite against the API of a
// real peer: the 9 checks, with real statuses of CIDs nobody has.
func TestComplianceCluster(t *testing.T) {
	_, _, url := clusterAPI(t)
	runCompliance(t, url, tokenAlice)
}

// TestHugeInputCluster checks the input limits against a real peer:
// every oversized or malformed request is a 400 Failure and nothing
// reaches the cluster's shared state or the request records.
func TestHugeInputCluster(t *testing.T) {
	c, _, url := clusterAPI(t)
	e := &env{t: t, url: url}
	for name, body := range badPinBodies(t) {
		t.Run(name, func(t *testing.T) {
			code, b := e.do(tokenAlice, "POST", "/pins", body)
			requireFailure(t, code, 400, b)
		})
	}
	code, b := e.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 0, decodeResults(t, b).Count, "nothing recorded")
	require.Empty(t, pinsOf(t, c), "nothing in the cluster's state")

	// A good request goes through, to show the refusals were not a
	// broken peer.
	code, b = e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": testCID(t, "good").String()})
	require.Equal(t, 202, code, string(b))
	require.Len(t, pinsOf(t, c), 1)
}
