package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// Tests of the REST API backed by real pincluster peers: the default
// components (in-process IPFS node, CRDT consensus, tracker, monitor,
// allocator) on libp2p hosts on 127.0.0.1, started by clustertest.

// realPeers starts n real peers, connected and ready.
func realPeers(t *testing.T, n int) *clustertest.Cluster {
	t.Helper()
	return clustertest.Start(t, clustertest.Setup{N: n, InProcessIPFS: true})
}

// clusterEnv is an env whose API runs over c (it has no fake).
func clusterEnv(t *testing.T, c *pincluster.Cluster) *env {
	t.Helper()
	a, err := New(c, Config{BasicAuth: map[string]string{testUser: testPass}, JWTKey: testKey})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close) // before the peers stop (cleanup order)
	return &env{t: t, api: a, srv: srv, url: srv.URL}
}

// TestJSClientCluster runs the JS REST client's tests (pin, list, status,
// unpin, add, CAR, recover, metrics, auth) against the API of one peer of
// a two-peer cluster. (The JS tests expect every peer of a fresh pin's
// status to be queued, pinning or pinned at once: a peer the pin has not
// reached yet is reported pin_queued.)
func TestJSClientCluster(t *testing.T) {
	cl := realPeers(t, 2)
	c := cl.Peer(0).Cluster
	a, err := New(c, Config{BasicAuth: map[string]string{testUser: testPass}})
	require.NoError(t, err)
	runJSClient(t, a, testUser, testPass)

	// What the JS tests added is in the cluster's state and pinned.
	const foo = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
	ci, err := cid.Decode(foo)
	require.NoError(t, err)
	// The JS tests check the add's answer only; the pin itself follows.
	cl.WaitFor("the added file pinned", 20*time.Second, func() bool {
		g, err := c.Status(context.Background(), ci, true)
		return err == nil && g.PeerMap[c.Host().ID()].Status == pincluster.TrackerStatusPinned
	})
}

// TestHugeInputCluster checks the input limits against a real peer:
// every oversized or malformed pin request and a 1 MiB JSON body are
// answered 400 with a message, and nothing reaches the shared state.
func TestHugeInputCluster(t *testing.T) {
	c := realPeers(t, 1).Peer(0).Cluster
	e := clusterEnv(t, c)
	for name, path := range badPinPaths(t) {
		t.Run(name, func(t *testing.T) {
			resp, b := e.do("POST", path, nil)
			requireError(t, resp.StatusCode, 400, b)
		})
	}
	big := `{"peer_id":"` + strings.Repeat("x", 1<<20) + `"}`
	resp, b := e.do("POST", "/peers", strings.NewReader(big))
	requireError(t, resp.StatusCode, 400, b)
	require.Contains(t, string(b), "exceeds the limit of 1048576 bytes")
	// The same without Content-Length (chunked): cut while reading.
	resp, b = e.do("POST", "/peers", struct{ *bytes.Reader }{bytes.NewReader([]byte(big))})
	requireError(t, resp.StatusCode, 400, b)
	require.Contains(t, string(b), "exceeds the limit of 1048576 bytes")
	resp, b = e.do("POST", "/pins/"+testCID(t, "body").String(), strings.NewReader(big))
	requireError(t, resp.StatusCode, 400, b)

	n := 0
	for _, err := range c.Pins(context.Background(), pincluster.PinFilter{}) {
		require.NoError(t, err)
		n++
	}
	require.Zero(t, n, "nothing in the cluster's state")

	// A good request goes through, to show the refusals were not a
	// broken peer.
	resp, b = e.do("POST", "/pins/"+testCID(t, "good").String()+"?name=ok", nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	_, err := c.PinGet(context.Background(), testCID(t, "good"))
	require.NoError(t, err)
}

// requireError checks an error answer: the status and a JSON
// {"code","message"} with that code and a message.
func requireError(t *testing.T, code, want int, b []byte) {
	t.Helper()
	require.Equal(t, want, code, string(b))
	var ej errorJSON
	require.NoError(t, json.Unmarshal(b, &ej), string(b))
	require.Equal(t, want, ej.Code)
	require.NotEmpty(t, ej.Message)
}

// badPinPaths are POST paths (pin requests) that must be refused with 400:
// pincluster's input limits and malformed options.
func badPinPaths(t *testing.T) map[string]string {
	c := testCID(t, "x").String()
	many := func(n int, f func(i int) string) string {
		var parts []string
		for i := range n {
			parts = append(parts, f(i))
		}
		return strings.Join(parts, "&")
	}
	return map[string]string{
		"malformed cid":        "/pins/notacid",
		"unknown option":       "/pins/" + c + "?colour=blue",
		"repeated option":      "/pins/" + c + "?name=a&name=b",
		"name 256 bytes":       "/pins/" + c + "?name=" + strings.Repeat("n", 256),
		"65 metadata keys":     "/pins/" + c + "?" + many(65, func(i int) string { return fmt.Sprintf("meta-k%d=v", i) }),
		"2 KiB metadata value": "/pins/" + c + "?meta-k=" + strings.Repeat("v", 2048),
		"21 origins":           "/pins/" + c + "?origins=" + strings.TrimSuffix(strings.Repeat("/ip4/1.2.3.4/tcp/1,", 21), ","),
		"bad origin":           "/pins/" + c + "?origins=nope",
		"bad mode":             "/pins/" + c + "?mode=sideways",
		"min above max":        "/pins/" + c + "?replication-min=3&replication-max=2",
		"bad expire-at":        "/pins/" + c + "?expire-at=tomorrow",
		"bad user allocation":  "/pins/" + c + "?user-allocations=bob",
		"bad path":             "/pins/ipfs/" + c + "/../x",
		"name 256 bytes, path": "/pins/ipfs/" + c + "?name=" + strings.Repeat("n", 256),
	}
}
