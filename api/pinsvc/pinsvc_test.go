package pinsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/fake"
)

const (
	tokenAlice = "alice-token"
	tokenBob   = "bob-token"
)

type env struct {
	t    *testing.T
	fake *fake.Backend
	api  *API
	srv  *httptest.Server
	// url is the API's base URL (srv.URL when srv is set).
	url string
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	cfg := Config{Tokens: map[string]string{tokenAlice: "alice", tokenBob: "bob"}}
	if mod != nil {
		mod(&cfg)
	}
	fb := fake.New()
	a, err := New(fb, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, fake: fb, api: a, srv: srv, url: srv.URL}
}

func (e *env) do(token, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.DefaultClient
	if e.srv != nil {
		client = e.srv.Client()
	}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, out
}

func testCID(t testing.TB, s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func decodeStatus(t *testing.T, b []byte) pinStatusJSON {
	t.Helper()
	var ps pinStatusJSON
	require.NoError(t, json.Unmarshal(b, &ps), string(b))
	return ps
}

func decodeResults(t *testing.T, b []byte) pinResultsJSON {
	t.Helper()
	var pr pinResultsJSON
	require.NoError(t, json.Unmarshal(b, &pr), string(b))
	return pr
}

func requireFailure(t *testing.T, code, want int, b []byte) {
	t.Helper()
	require.Equal(t, want, code, string(b))
	var f map[string]map[string]string
	require.NoError(t, json.Unmarshal(b, &f), string(b))
	require.NotEmpty(t, f["error"]["reason"])
}

func TestPinLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "one")
	code, b := e.do(tokenAlice, "POST", "/pins", map[string]any{
		"cid": c.String(), "name": "hello", "meta": map[string]string{"app": "x"},
		"origins": []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + e.fake.IPFSID().String()},
	})
	require.Equal(t, http.StatusAccepted, code, string(b))
	ps := decodeStatus(t, b)
	require.NotEmpty(t, ps.RequestID)
	require.Equal(t, StatusPinning, ps.Status)
	require.Equal(t, c.String(), ps.Pin.Cid)
	require.Equal(t, "hello", ps.Pin.Name)
	require.Equal(t, map[string]string{"app": "x"}, ps.Pin.Meta)
	require.Len(t, ps.Delegates, 1)
	require.Equal(t, "/ip4/127.0.0.1/tcp/9096/p2p/"+e.fake.Self().String(), ps.Delegates[0])
	pin, err := e.fake.PinGet(context.Background(), c)
	require.NoError(t, err)
	require.Len(t, pin.Origins, 1, "origins reach the cluster pin")
	require.Equal(t, "hello", pin.Name)

	code, b = e.do(tokenAlice, "GET", "/pins/"+ps.RequestID, nil)
	require.Equal(t, 200, code)
	require.Equal(t, ps.RequestID, decodeStatus(t, b).RequestID)

	e.fake.SetStatus(c, pincluster.TrackerStatusPinned)
	code, b = e.do(tokenAlice, "GET", "/pins/"+ps.RequestID, nil)
	require.Equal(t, 200, code)
	require.Equal(t, StatusPinned, decodeStatus(t, b).Status)

	// Bob cannot see it.
	code, b = e.do(tokenBob, "GET", "/pins/"+ps.RequestID, nil)
	requireFailure(t, code, 404, b)
	code, b = e.do(tokenBob, "DELETE", "/pins/"+ps.RequestID, nil)
	requireFailure(t, code, 404, b)

	code, _ = e.do(tokenAlice, "DELETE", "/pins/"+ps.RequestID, nil)
	require.Equal(t, http.StatusAccepted, code)
	require.False(t, e.fake.Has(c))
	code, b = e.do(tokenAlice, "GET", "/pins/"+ps.RequestID, nil)
	requireFailure(t, code, 404, b)
}

func TestReferenceCounting(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "shared")
	_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c.String()})
	a1 := decodeStatus(t, b).RequestID
	_, b = e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c.String()})
	a2 := decodeStatus(t, b).RequestID
	_, b = e.do(tokenBob, "POST", "/pins", map[string]any{"cid": c.String()})
	b1 := decodeStatus(t, b).RequestID
	require.NotEqual(t, a1, a2)
	require.NotEqual(t, a1, b1)
	require.Equal(t, 1, e.fake.Calls("Pin"), "one cluster pin for three requests")

	for _, step := range []struct {
		tok, id string
		still   bool
	}{{tokenAlice, a1, true}, {tokenBob, b1, true}, {tokenAlice, a2, false}} {
		code, _ := e.do(step.tok, "DELETE", "/pins/"+step.id, nil)
		require.Equal(t, 202, code)
		require.Equal(t, step.still, e.fake.Has(c))
	}

	// A CID pinned in the cluster by someone else is never unpinned by
	// this service.
	other := testCID(t, "theirs")
	_, err := e.fake.Pin(context.Background(), other, pincluster.PinOptions{Name: "rest"})
	require.NoError(t, err)
	_, b = e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": other.String(), "name": "mine"})
	id := decodeStatus(t, b).RequestID
	p, _ := e.fake.PinGet(context.Background(), other)
	require.Equal(t, "rest", p.Name, "their pin is left alone")
	code, _ := e.do(tokenAlice, "DELETE", "/pins/"+id, nil)
	require.Equal(t, 202, code)
	require.True(t, e.fake.Has(other))
}

func TestReplace(t *testing.T) {
	e := newEnv(t, nil)
	c1, c2 := testCID(t, "v1"), testCID(t, "v2")
	_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c1.String(), "name": "site"})
	old := decodeStatus(t, b)
	code, b := e.do(tokenAlice, "POST", "/pins/"+old.RequestID, map[string]any{"cid": c2.String(), "name": "site"})
	require.Equal(t, 202, code, string(b))
	nw := decodeStatus(t, b)
	require.NotEqual(t, old.RequestID, nw.RequestID)
	require.Equal(t, c2.String(), nw.Pin.Cid)
	code, b = e.do(tokenAlice, "GET", "/pins/"+old.RequestID, nil)
	requireFailure(t, code, 404, b)
	code, _ = e.do(tokenAlice, "GET", "/pins/"+nw.RequestID, nil)
	require.Equal(t, 200, code)
	require.False(t, e.fake.Has(c1))
	p, err := e.fake.PinGet(context.Background(), c2)
	require.NoError(t, err)
	require.True(t, p.PinUpdate.Equals(c1))
	// Replace of an unknown request: 404 and nothing pinned.
	code, b = e.do(tokenAlice, "POST", "/pins/nope", map[string]any{"cid": testCID(t, "v3").String()})
	requireFailure(t, code, 404, b)
	require.False(t, e.fake.Has(testCID(t, "v3")))
}

func TestListFilters(t *testing.T) {
	e := newEnv(t, nil)
	var ids []string
	var cids []cid.Cid
	for i := range 6 {
		c := testCID(t, fmt.Sprint("l", i))
		cids = append(cids, c)
		_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{
			"cid": c.String(), "name": fmt.Sprintf("Report-%d", i), "meta": map[string]string{"parity": fmt.Sprint(i % 2)},
		})
		ids = append(ids, decodeStatus(t, b).RequestID)
	}
	e.fake.SetStatus(cids[0], pincluster.TrackerStatusPinned)
	e.fake.SetStatus(cids[1], pincluster.TrackerStatusPinError)
	e.fake.SetStatus(cids[2], pincluster.TrackerStatusPinQueued)
	list := func(q string) pinResultsJSON {
		code, b := e.do(tokenAlice, "GET", "/pins?"+q, nil)
		require.Equal(t, 200, code, string(b))
		return decodeResults(t, b)
	}
	all := list("")
	require.Equal(t, 6, all.Count, "absent status means every status")
	require.Equal(t, ids[5], all.Results[0].RequestID, "newest first")
	require.Equal(t, 1, list("status=pinned").Count)
	require.Equal(t, 1, list("status=failed").Count)
	require.Equal(t, 1, list("status=queued").Count)
	require.Equal(t, 3, list("status=pinning").Count)
	require.Equal(t, 2, list("status=queued,failed").Count)
	require.Equal(t, 6, list("status=queued,pinning,pinned,failed").Count)
	require.Equal(t, 1, list("name=Report-3").Count)
	require.Equal(t, 0, list("name=report-3").Count)
	require.Equal(t, 1, list("name=report-3&match=iexact").Count)
	require.Equal(t, 6, list("name=port-&match=partial").Count)
	require.Equal(t, 6, list("name=PORT&match=ipartial").Count)
	require.Equal(t, 2, list("cid="+cids[1].String()+","+cids[2].String()).Count)
	require.Equal(t, 3, list("meta="+url.QueryEscape(`{"parity":"1"}`)).Count)
	p := list("limit=2")
	require.Equal(t, 6, p.Count)
	require.Len(t, p.Results, 2)
	// Bob sees nothing.
	code, b := e.do(tokenBob, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 0, decodeResults(t, b).Count)

	for name, q := range map[string]string{
		"limit 0": "limit=0", "limit 1001": "limit=1001", "limit x": "limit=x",
		"bad status": "status=done", "bad match": "match=regex&name=a", "bad before": "before=yesterday",
		"bad cid": "cid=xyz", "11 cids": "cid=" + strings.TrimSuffix(strings.Repeat(cids[0].String()+",", 11), ","),
		"bad meta": "meta=" + url.QueryEscape(`{"a":1}`), "long name": "name=" + strings.Repeat("n", 256),
	} {
		code, b := e.do(tokenAlice, "GET", "/pins?"+q, nil)
		requireFailure(t, code, 400, b)
		_ = name
	}
}

// TestPaginationUniqueCreated pins many requests within the same clock
// tick and pages through them with before, as boxo's client does.
func TestPaginationUniqueCreated(t *testing.T) {
	frozen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return frozen } })
	const n = 1100
	seen := make(map[string]bool)
	for i := range n {
		_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": testCID(t, fmt.Sprint("p", i)).String()})
		seen[decodeStatus(t, b).RequestID] = false
	}
	before := ""
	pages := 0
	for {
		q := "limit=1000"
		if before != "" {
			q += "&before=" + url.QueryEscape(before)
		}
		code, b := e.do(tokenAlice, "GET", "/pins?"+q, nil)
		require.Equal(t, 200, code)
		res := decodeResults(t, b)
		pages++
		for _, r := range res.Results {
			require.False(t, seen[r.RequestID], "request %s seen twice", r.RequestID)
			seen[r.RequestID] = true
		}
		if res.Count == len(res.Results) {
			break
		}
		require.NotEmpty(t, res.Results, "count > 0 with no results")
		before = res.Results[len(res.Results)-1].Created.Format(time.RFC3339Nano)
	}
	require.Equal(t, 2, pages)
	for id, ok := range seen {
		require.True(t, ok, "request %s never listed", id)
	}
}

func TestAuthAndLimits(t *testing.T) {
	e := newEnv(t, nil)
	code, b := e.do("", "GET", "/pins", nil)
	requireFailure(t, code, 401, b)
	require.Contains(t, string(b), "UNAUTHORIZED")
	code, b = e.do("wrong", "GET", "/pins", nil)
	requireFailure(t, code, 401, b)
	code, b = e.do(tokenAlice, "GET", "/nothing", nil)
	requireFailure(t, code, 404, b)

	cases := badPinBodies(t)
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			code, b := e.do(tokenAlice, "POST", "/pins", body)
			requireFailure(t, code, 400, b)
			if name == "1 MiB body" {
				require.Contains(t, string(b), "exceeds the limit of 1048576 bytes")
			}
		})
	}
	require.Equal(t, 0, e.fake.PinCount(), "nothing pinned")
	code, b = e.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 0, decodeResults(t, b).Count, "nothing recorded")

	// A cluster that refuses the pin: nothing recorded.
	e.fake.Fail("Pin", pincluster.ErrClosed)
	code, b = e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": testCID(t, "lim").String()})
	requireFailure(t, code, 503, b)
	e.fake.Fail("Pin", nil)
	code, b = e.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 0, decodeResults(t, b).Count)
}

// badPinBodies are POST /pins bodies that must be refused with 400
// (pincluster's input limits and malformed JSON).
func badPinBodies(t *testing.T) map[string]any {
	c := testCID(t, "lim").String()
	origins := make([]string, 21)
	for i := range origins {
		origins[i] = fmt.Sprintf("/ip4/1.2.3.%d/tcp/4001", i)
	}
	meta65 := map[string]string{}
	for i := range 65 {
		meta65[fmt.Sprint("k", i)] = "v"
	}
	return map[string]any{
		"name 256 B":   map[string]any{"cid": c, "name": strings.Repeat("n", 256)},
		"21 origins":   map[string]any{"cid": c, "origins": origins},
		"65 meta keys": map[string]any{"cid": c, "meta": meta65},
		"2 KiB meta":   map[string]any{"cid": c, "meta": map[string]string{"k": strings.Repeat("v", 2048)}},
		"1001 meta keys": map[string]any{"cid": c, "meta": func() map[string]string {
			m := map[string]string{}
			for i := range 1001 {
				m[fmt.Sprint(i)] = "v"
			}
			return m
		}()},
		"no cid":          map[string]any{"name": "x"},
		"bad cid":         map[string]any{"cid": "Qmnope"},
		"bad origin":      map[string]any{"cid": c, "origins": []string{"nope"}},
		"meta not string": `{"cid":"` + c + `","meta":{"a":1}}`,
		"not json":        "{",
		"two values":      `{"cid":"` + c + `"}{}`,
		"1 MiB body":      `{"cid":"` + c + `","name":"` + strings.Repeat("x", 1<<20) + `"}`,
	}
}

func TestRecordsSurviveRestart(t *testing.T) {
	d := dssync.MutexWrap(ds.NewMapDatastore())
	fb := fake.New()
	cfg := Config{Tokens: map[string]string{tokenAlice: "alice"}, Datastore: d}
	a, err := New(fb, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	e := &env{t: t, fake: fb, api: a, srv: srv, url: srv.URL}
	c := testCID(t, "persist")
	_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c.String(), "name": "kept"})
	first := decodeStatus(t, b)
	_, b = e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c.String()})
	second := decodeStatus(t, b)
	srv.Close()

	a2, err := New(fb, cfg)
	require.NoError(t, err)
	srv2 := httptest.NewServer(a2.Handler())
	defer srv2.Close()
	e2 := &env{t: t, fake: fb, api: a2, srv: srv2, url: srv2.URL}
	code, b := e2.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	res := decodeResults(t, b)
	require.Equal(t, 2, res.Count)
	require.Equal(t, second.RequestID, res.Results[0].RequestID)
	require.True(t, res.Results[1].Created.Equal(first.Created))
	require.Equal(t, "kept", res.Results[1].Pin.Name)
	// Refcount and ownership were restored: deleting both unpins.
	e2.do(tokenAlice, "DELETE", "/pins/"+first.RequestID, nil)
	require.True(t, fb.Has(c))
	e2.do(tokenAlice, "DELETE", "/pins/"+second.RequestID, nil)
	require.False(t, fb.Has(c))
}

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "race")
	var wg sync.WaitGroup
	ids := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": c.String()})
			ids <- decodeStatus(t, b).RequestID
		})
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		wg.Go(func() { e.do(tokenAlice, "DELETE", "/pins/"+id, nil) })
	}
	wg.Wait()
	require.False(t, e.fake.Has(c))
	require.Equal(t, 1, e.fake.Calls("Pin"))
}

func TestMapStatus(t *testing.T) {
	p1, p2, p3 := peer.ID("a"), peer.ID("b"), peer.ID("c")
	g := func(st ...pincluster.TrackerStatus) pincluster.GlobalPinInfo {
		out := pincluster.GlobalPinInfo{PeerMap: map[peer.ID]pincluster.PinInfoShort{}}
		for i, s := range st {
			out.PeerMap[[]peer.ID{p1, p2, p3}[i]] = pincluster.PinInfoShort{Status: s}
		}
		return out
	}
	S := pincluster.TrackerStatusPinned
	for _, tc := range []struct {
		g    pincluster.GlobalPinInfo
		rmin int
		want Status
	}{
		{g(), 0, StatusQueued},
		{g(pincluster.TrackerStatusPinQueued), 0, StatusQueued},
		{g(pincluster.TrackerStatusUndefined), 0, StatusQueued},
		{g(pincluster.TrackerStatusPinning), 0, StatusPinning},
		{g(S), 0, StatusPinned},
		{g(S, pincluster.TrackerStatusRemote), 1, StatusPinned},
		{g(S, pincluster.TrackerStatusPinning), 2, StatusPinning},
		{g(S, S), 2, StatusPinned},
		{g(S, pincluster.TrackerStatusPinning), -1, StatusPinning},
		{g(S, S, S), -1, StatusPinned},
		{g(pincluster.TrackerStatusPinError, pincluster.TrackerStatusClusterError), 1, StatusFailed},
		{g(pincluster.TrackerStatusPinError, pincluster.TrackerStatusPinning), 1, StatusPinning},
		{g(pincluster.TrackerStatusPinError, S), 1, StatusPinned},
		{g(pincluster.TrackerStatusRemote), 1, StatusQueued},
		{g(pincluster.TrackerStatusUnexpectedlyUnpinned), 1, StatusQueued},
	} {
		got, _ := MapStatus(tc.g, tc.rmin)
		require.Equal(t, tc.want, got, "%v rmin %d", tc.g.PeerMap, tc.rmin)
	}
}
