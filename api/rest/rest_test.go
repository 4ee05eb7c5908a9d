package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	jwt "github.com/golang-jwt/jwt/v5"
	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/fake"
)

const (
	testUser = "admin"
	testPass = "s3cret"
)

var testKey = bytes.Repeat([]byte("k"), 32)

type env struct {
	t    *testing.T
	fake *fake.Backend
	api  *API
	srv  *httptest.Server
	url  string
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	cfg := Config{
		BasicAuth:    map[string]string{testUser: testPass},
		BearerTokens: map[string]string{"static-token": "robot"},
		JWTKey:       testKey,
	}
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

// do sends an authenticated request and returns the answer with its body.
func (e *env) do(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	require.NoError(e.t, err)
	req.SetBasicAuth(testUser, testPass)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" && hdr[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, b
}

func testCID(t testing.TB, s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func ndjson(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		out = append(out, m)
	}
	return out
}

func TestIDVersionPeers(t *testing.T) {
	e := newEnv(t, nil)
	resp, b := e.do("GET", "/id", nil)
	require.Equal(t, 200, resp.StatusCode)
	var id map[string]any
	require.NoError(t, json.Unmarshal(b, &id))
	require.Equal(t, e.fake.Self().String(), id["id"])
	require.Equal(t, "", id["error"])
	ipfs := id["ipfs"].(map[string]any)
	require.Equal(t, e.fake.IPFSID().String(), ipfs["id"])
	for _, k := range []string{"addresses", "version", "commit", "peername", "rpc_protocol_version", "cluster_peers", "cluster_peers_addresses"} {
		require.Contains(t, id, k)
	}

	resp, b = e.do("GET", "/version", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `{"version":"`+pincluster.Version+`"}`, string(b))

	resp, b = e.do("GET", "/peers", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Trailer, "X-Stream-Error", "the trailer is declared")
	peers := ndjson(t, b)
	require.Len(t, peers, 1)
	require.Equal(t, e.fake.Self().String(), peers[0]["id"])

	resp, _ = e.do("POST", "/peers", strings.NewReader(`{"peer_id":"`+e.fake.Self().String()+`"}`))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 1, e.fake.Calls("AddPeer"))
	resp, _ = e.do("DELETE", "/peers/"+e.fake.Self().String(), nil)
	require.Equal(t, 204, resp.StatusCode)
	resp, _ = e.do("DELETE", "/peers/notapeer", nil)
	require.Equal(t, 400, resp.StatusCode)
}

func TestPinLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "one")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	q := url.Values{}
	q.Set("name", "hello")
	q.Set("mode", "recursive")
	q.Set("replication-min", "1")
	q.Set("replication-max", "2")
	q.Set("expire-at", exp.Format(time.RFC3339))
	q.Set("meta-owner", "alice")
	q.Set("origins", "/ip4/127.0.0.1/tcp/4001/p2p/"+e.fake.IPFSID().String())
	resp, b := e.do("POST", "/pins/"+c.String()+"?"+q.Encode(), nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	var pin map[string]any
	require.NoError(t, json.Unmarshal(b, &pin))
	require.Equal(t, c.String(), pin["cid"], "cid is a plain string")
	require.Equal(t, "hello", pin["name"])
	require.EqualValues(t, 1, pin["replication_factor_min"])
	require.EqualValues(t, 2, pin["replication_factor_max"])
	require.Equal(t, map[string]any{"owner": "alice"}, pin["metadata"])
	require.Equal(t, "recursive", pin["mode"])
	got, err := time.Parse(time.RFC3339, pin["expire_at"].(string))
	require.NoError(t, err)
	require.True(t, got.Equal(exp))
	for _, k := range []string{"type", "allocations", "max_depth", "reference", "shard_size", "user_allocations", "pin_update", "origins", "timestamp"} {
		require.Contains(t, pin, k)
	}

	resp, b = e.do("GET", "/allocations/"+c.String(), nil)
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, json.Unmarshal(b, &pin))
	require.Equal(t, "hello", pin["name"])

	resp, b = e.do("GET", "/allocations", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, ndjson(t, b), 1)

	resp, b = e.do("GET", "/pins/"+c.String()+"?local=true", nil)
	require.Equal(t, 200, resp.StatusCode)
	var st map[string]any
	require.NoError(t, json.Unmarshal(b, &st))
	require.Equal(t, c.String(), st["cid"])
	pm := st["peer_map"].(map[string]any)[e.fake.Self().String()].(map[string]any)
	require.Equal(t, "pinning", pm["status"])
	require.Equal(t, e.fake.IPFSID().String(), pm["ipfs_peer_id"])
	require.Equal(t, "fake", pm["peername"])
	for _, k := range []string{"timestamp", "error"} {
		require.Contains(t, pm, k)
	}

	resp, _ = e.do("POST", "/pins/"+c.String()+"/recover", nil)
	require.Equal(t, 200, resp.StatusCode)
	resp, b = e.do("POST", "/pins/recover?local=true", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, ndjson(t, b), 1)

	// pin-update
	c2 := testCID(t, "two")
	resp, b = e.do("POST", "/pins/"+c2.String()+"?pin-update="+c.String(), nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	require.NoError(t, json.Unmarshal(b, &pin))
	require.Equal(t, c.String(), pin["pin_update"])

	// path pin and unpin
	c3 := testCID(t, "three")
	resp, b = e.do("POST", "/pins/ipfs/"+c3.String(), nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	require.True(t, e.fake.Has(c3))
	resp, _ = e.do("DELETE", "/pins/ipfs/"+c3.String(), nil)
	require.Equal(t, 200, resp.StatusCode)
	require.False(t, e.fake.Has(c3))

	resp, b = e.do("DELETE", "/pins/"+c.String(), nil)
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, json.Unmarshal(b, &pin))
	require.Equal(t, c.String(), pin["cid"])
	resp, b = e.do("DELETE", "/pins/"+c.String(), nil)
	require.Equal(t, 404, resp.StatusCode)
	var ej errorJSON
	require.NoError(t, json.Unmarshal(b, &ej))
	require.Equal(t, 404, ej.Code)
	require.NotEmpty(t, ej.Message)
}

func TestStatusAllFilters(t *testing.T) {
	e := newEnv(t, nil)
	var cs []cid.Cid
	for i := range 5 {
		c := testCID(t, fmt.Sprint("s", i))
		cs = append(cs, c)
		resp, _ := e.do("POST", "/pins/"+c.String(), nil)
		require.Equal(t, 200, resp.StatusCode)
	}
	e.fake.SetStatus(cs[0], pincluster.TrackerStatusPinError)
	e.fake.SetStatus(cs[1], pincluster.TrackerStatusPinned)

	resp, b := e.do("GET", "/pins", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, ndjson(t, b), 5)
	require.Equal(t, "", resp.Trailer.Get("X-Stream-Error"))

	_, b = e.do("GET", "/pins?filter=pin_error,pinned", nil)
	require.Len(t, ndjson(t, b), 2)
	_, b = e.do("GET", "/pins?filter=error", nil)
	require.Len(t, ndjson(t, b), 1)
	_, b = e.do("GET", "/pins?cids="+cs[2].String()+","+cs[3].String()+"&local=false", nil)
	require.Len(t, ndjson(t, b), 2)

	resp, _ = e.do("GET", "/pins?filter=nonsense", nil)
	require.Equal(t, 400, resp.StatusCode)
	resp, _ = e.do("GET", "/pins?cids=bad", nil)
	require.Equal(t, 400, resp.StatusCode)
	resp, _ = e.do("GET", "/pins?bogus=1", nil)
	require.Equal(t, 400, resp.StatusCode)

	// An error before the stream starts is a normal error answer.
	e.fake.Fail("StatusAll", pincluster.ErrClosed)
	resp, _ = e.do("GET", "/pins", nil)
	require.Equal(t, 503, resp.StatusCode)
}

func TestStreamErrorTrailer(t *testing.T) {
	e := newEnv(t, nil)
	// RecoverAll over a backend that fails mid-stream.
	seq := func(yield func(pincluster.GlobalPinInfo, error) bool) {
		if !yield(pincluster.GlobalPinInfo{Cid: testCID(t, "a")}, nil) {
			return
		}
		yield(pincluster.GlobalPinInfo{}, errors.New("boom\nsecond line"))
	}
	rec := httptest.NewRecorder()
	streamTest(rec, seq)
	res := rec.Result()
	require.Equal(t, 200, res.StatusCode)
	require.Len(t, ndjson(t, rec.Body.Bytes()), 1)
	require.Equal(t, "boom second line", rec.Header().Get("X-Stream-Error"))
	_ = e
}

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, nil)
	resp, b := e.do("GET", "/monitor/metrics", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `["ping","freespace"]`, string(b))
	resp, b = e.do("GET", "/monitor/metrics/freespace", nil)
	require.Equal(t, 200, resp.StatusCode)
	var ms []map[string]any
	require.NoError(t, json.Unmarshal(b, &ms))
	require.Len(t, ms, 1)
	require.Equal(t, "1000000", ms[0]["value"])
	require.Equal(t, true, ms[0]["valid"])
	resp, b = e.do("GET", "/health/alerts", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `[]`, string(b))

	// /health is the only route without authentication.
	resp, err := http.Get(e.url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode)
	c := testCID(t, "open").String()
	routes := [][2]string{
		{"POST", "/token"}, {"GET", "/id"}, {"GET", "/version"}, {"GET", "/peers"}, {"POST", "/peers"},
		{"DELETE", "/peers/" + e.fake.Self().String()}, {"GET", "/pins"}, {"POST", "/pins/recover"},
		{"GET", "/pins/" + c}, {"POST", "/pins/" + c}, {"DELETE", "/pins/" + c}, {"POST", "/pins/" + c + "/recover"},
		{"POST", "/pins/ipfs/" + c}, {"DELETE", "/pins/ipfs/" + c}, {"GET", "/allocations"}, {"GET", "/allocations/" + c},
		{"POST", "/add"}, {"GET", "/monitor/metrics"}, {"GET", "/monitor/metrics/ping"}, {"GET", "/health/alerts"},
		{"GET", "/health/"}, {"GET", "/nope"}, {"GET", "/"},
	}
	for _, r := range routes {
		// A 2 MiB body: authentication is checked first (401, not 400).
		req, err := http.NewRequest(r[0], e.url+r[1], bytes.NewReader(make([]byte, 2<<20)))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode, r)
	}
	require.Zero(t, e.fake.Calls("Pin")+e.fake.Calls("Unpin")+e.fake.Calls("AddPeer")+e.fake.Calls("RmPeer"))
}

// multipartBody builds an /add body with the given files.
func multipartBody(t *testing.T, files ...[2]string) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		w, err := mw.CreateFormFile("file", f[0])
		require.NoError(t, err)
		_, err = io.WriteString(w, f[1])
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

func TestAdd(t *testing.T) {
	e := newEnv(t, nil)
	body, ct := multipartBody(t, [2]string{"foo.txt", "foo"})
	resp, b := e.do("POST", "/add?cid-version=1&raw-leaves=true&stream-channels=false&name=x", body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, string(b))
	var out []addedJSON
	require.NoError(t, json.Unmarshal(b, &out))
	require.Len(t, out, 1)
	require.Equal(t, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", out[0].Cid)
	require.EqualValues(t, 3, out[0].Size)
	p, err := e.fake.PinGet(context.Background(), cid.MustParse(out[0].Cid))
	require.NoError(t, err)
	require.Equal(t, "x", p.Name)

	body, ct = multipartBody(t, [2]string{"foo.txt", "foo"}, [2]string{"bar.txt", "bar"})
	resp, b = e.do("POST", "/add?cid-version=1&raw-leaves=true&wrap-with-directory=true", body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, string(b))
	lines := ndjson(t, b) // stream-channels defaults to true: NDJSON
	require.Len(t, lines, 3)
	require.Equal(t, "bafybeidhbfwu4j2zckkqd42azgxm7hlvjjqj7dunvv7o7c3avyrhgtvppm", lines[2]["cid"])
	require.Equal(t, "", lines[2]["name"])
	require.EqualValues(t, 112, lines[2]["size"])

	// bad inputs: nothing pinned
	before := e.fake.PinCount()
	resp, _ = e.do("POST", "/add?shard=true", nil)
	require.Equal(t, 400, resp.StatusCode)
	resp, _ = e.do("POST", "/add?bogus=1", nil)
	require.Equal(t, 400, resp.StatusCode)
	resp, _ = e.do("POST", "/add", strings.NewReader("x"), "Content-Type", "text/plain")
	require.Equal(t, 400, resp.StatusCode)
	// a truncated multipart stream fails the import
	body, ct = multipartBody(t, [2]string{"a.txt", "aaaa"}, [2]string{"b.txt", "bbbb"})
	raw, _ := io.ReadAll(body)
	resp, _ = e.do("POST", "/add?wrap=true", bytes.NewReader(raw[:len(raw)-20]), "Content-Type", ct)
	require.Equal(t, 400, resp.StatusCode)
	// relative names
	body, ct = multipartBody(t, [2]string{"../etc/passwd", "x"})
	resp, _ = e.do("POST", "/add", body, "Content-Type", ct)
	require.Equal(t, 400, resp.StatusCode)
	require.Equal(t, before, e.fake.PinCount())
}

// buildCAR writes a CAR v1 with the given root and blocks.
func buildCAR(t testing.TB, roots []cid.Cid, blocks map[cid.Cid][]byte, order []cid.Cid) []byte {
	type hdr struct {
		Roots   []cbor.Tag `cbor:"roots"`
		Version uint64     `cbor:"version"`
	}
	h := hdr{Version: 1}
	for _, r := range roots {
		h.Roots = append(h.Roots, cbor.Tag{Number: 42, Content: append([]byte{0}, r.Bytes()...)})
	}
	hb, err := cbor.Marshal(h)
	require.NoError(t, err)
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, uint64(len(hb))))
	buf.Write(hb)
	for _, c := range order {
		sec := append(c.Bytes(), blocks[c]...)
		buf.Write(binary.AppendUvarint(nil, uint64(len(sec))))
		buf.Write(sec)
	}
	return buf.Bytes()
}

func TestAddCAR(t *testing.T) {
	e := newEnv(t, nil)
	data := map[cid.Cid][]byte{}
	var order []cid.Cid
	for _, s := range []string{"block one", "block two"} {
		c := testCID(t, s)
		data[c] = []byte(s)
		order = append(order, c)
	}
	car := buildCAR(t, order[:1], data, order)
	body, ct := multipartBody(t, [2]string{"x.car", string(car)})
	resp, b := e.do("POST", "/add?format=car&stream-channels=false", body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, string(b))
	var out []addedJSON
	require.NoError(t, json.Unmarshal(b, &out))
	require.Len(t, out, 1)
	require.Equal(t, order[0].String(), out[0].Cid)
	require.EqualValues(t, len("block one")+len("block two"), out[0].Bytes)
	require.True(t, e.fake.Has(order[0]))
	require.Equal(t, 2, e.fake.Blocks(context.Background()))

	// Corrupt block: refused, nothing pinned.
	bad := map[cid.Cid][]byte{order[1]: []byte("tampered")}
	car = buildCAR(t, order[1:], bad, order[1:])
	body, ct = multipartBody(t, [2]string{"x.car", string(car)})
	resp, b = e.do("POST", "/add?format=car", body, "Content-Type", ct)
	require.Equal(t, 400, resp.StatusCode, string(b))
	require.False(t, e.fake.Has(order[1]))
	// Two roots: refused.
	car = buildCAR(t, order, data, order)
	body, ct = multipartBody(t, [2]string{"x.car", string(car)})
	resp, _ = e.do("POST", "/add?format=car", body, "Content-Type", ct)
	require.Equal(t, 400, resp.StatusCode)
	// Too many blocks for the configured cap.
	e2 := newEnv(t, func(c *Config) { c.MaxCARBlocks = 1 })
	car = buildCAR(t, order[:1], data, order)
	body, ct = multipartBody(t, [2]string{"x.car", string(car)})
	resp, b = e2.do("POST", "/add?format=car", body, "Content-Type", ct)
	require.Equal(t, 400, resp.StatusCode, string(b))
	require.Contains(t, string(b), "more than 1 blocks")
	require.Equal(t, 0, e2.fake.PinCount())
}

func TestBadPinInput(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "x").String()
	many := func(n int, f func(i int) string) string {
		var parts []string
		for i := range n {
			parts = append(parts, f(i))
		}
		return strings.Join(parts, "&")
	}
	cases := map[string]string{
		"malformed cid":        "/pins/notacid",
		"short hash cid":       "/pins/" + cid.NewCidV1(cid.Raw, mustSum(t, mh.SHA2_256, 10)).String(),
		"unknown option":       "/pins/" + c + "?colour=blue",
		"repeated option":      "/pins/" + c + "?name=a&name=b",
		"name 256 bytes":       "/pins/" + c + "?name=" + strings.Repeat("n", 256),
		"65 metadata keys":     "/pins/" + c + "?" + many(65, func(i int) string { return fmt.Sprintf("meta-k%d=v", i) }),
		"2 KiB metadata value": "/pins/" + c + "?meta-k=" + strings.Repeat("v", 2048),
		"21 origins":           "/pins/" + c + "?origins=" + strings.TrimSuffix(strings.Repeat("/ip4/1.2.3.4/tcp/1,", 21), ","),
		"bad origin":           "/pins/" + c + "?origins=nope",
		"bad mode":             "/pins/" + c + "?mode=sideways",
		"bad replication":      "/pins/" + c + "?replication-min=abc",
		"min above max":        "/pins/" + c + "?replication-min=3&replication-max=2",
		"bad expire-at":        "/pins/" + c + "?expire-at=tomorrow",
		"bad expire-in":        "/pins/" + c + "?expire-in=-5m",
		"bad user allocation":  "/pins/" + c + "?user-allocations=bob",
		"bad pin-update":       "/pins/" + c + "?pin-update=zzz",
		"bad path":             "/pins/ipfs/" + c + "/../x",
		"bad namespace":        "/pins/ipxx/" + c,
		"unknown subpath":      "/pins/" + c + "/frobnicate",
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			resp, b := e.do("POST", path, nil)
			require.Equal(t, 400, resp.StatusCode, string(b))
			var ej errorJSON
			require.NoError(t, json.Unmarshal(b, &ej))
			require.Equal(t, 400, ej.Code)
			require.NotEmpty(t, ej.Message)
		})
	}
	require.Equal(t, 0, e.fake.PinCount(), "nothing reached the backend's pinset")
	require.Equal(t, 0, e.fake.Calls("Pin"))

	// Oversized body on a JSON route: 400 with the limit in the message.
	resp, b := e.do("POST", "/peers", bytes.NewReader(bytes.Repeat([]byte(" "), 2<<20)))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(b), "exceeds the limit of 1048576 bytes")
}

func mustSum(t *testing.T, code uint64, length int) mh.Multihash {
	h, err := mh.Sum([]byte("x"), code, length)
	require.NoError(t, err)
	return h
}

// TestRevocationsPerServer: two REST APIs of one process with the same JWT
// key (two clusters, or a test's servers) keep their own revocations
// unless they are given the same list.
func TestRevocationsPerServer(t *testing.T) {
	a, b := newEnv(t, nil), newEnv(t, nil)
	issue := func(e *env) string {
		resp, body := e.do("POST", "/token", nil)
		require.Equal(t, 200, resp.StatusCode)
		var tj tokenJSON
		require.NoError(t, json.Unmarshal(body, &tj))
		return tj.Token
	}
	status := func(e *env, tok string) int {
		resp, _ := e.do("GET", "/version", nil, "Authorization", "Bearer "+tok)
		return resp.StatusCode
	}
	tok := issue(a)
	require.Equal(t, 200, status(b, tok), "same key: b accepts a's token")
	require.NoError(t, a.api.RevokeToken(tok))
	require.Equal(t, 401, status(a, tok))
	require.Equal(t, 200, status(b, tok), "a's revocation does not reach b")

	shared := NewRevocations()
	c := newEnv(t, func(c *Config) { c.Revocations = shared })
	d := newEnv(t, func(c *Config) { c.Revocations = shared })
	tok = issue(c)
	require.NoError(t, d.api.RevokeToken(tok))
	require.Equal(t, 401, status(c, tok), "a shared list carries the revocation")
	require.Equal(t, 200, status(a, tok))
}

func TestAuth(t *testing.T) {
	// Each forged credential must be refused as such (401): throttling,
	// which would answer 429 after a few, is TestAuthFailuresThrottled's.
	e := newEnv(t, func(c *Config) { c.JWTTTL = time.Hour; c.AuthFailureBurst = -1 })
	get := func(hdr ...string) int {
		resp, _ := e.do("GET", "/version", nil, hdr...)
		return resp.StatusCode
	}
	basic := func(u, p string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
	}
	require.Equal(t, 200, get())
	require.Equal(t, 401, get("Authorization", ""))
	require.Equal(t, 401, get("Authorization", basic(testUser, "wrong")))
	require.Equal(t, 401, get("Authorization", basic("nobody", testPass)))
	require.Equal(t, 401, get("Authorization", "Bearer nope"))
	require.Equal(t, 401, get("Authorization", "Digest abc"))
	require.Equal(t, 200, get("Authorization", "Bearer static-token"))

	// JWT from POST /token.
	resp, b := e.do("POST", "/token", nil)
	require.Equal(t, 200, resp.StatusCode)
	var tj tokenJSON
	require.NoError(t, json.Unmarshal(b, &tj))
	require.Equal(t, 200, get("Authorization", "Bearer "+tj.Token))
	// /token refuses bearer credentials and wrong passwords.
	resp, _ = e.do("POST", "/token", nil, "Authorization", "Bearer "+tj.Token)
	require.Equal(t, 401, resp.StatusCode)
	resp, _ = e.do("POST", "/token", nil, "Authorization", basic(testUser, "wrong"))
	require.Equal(t, 401, resp.StatusCode)

	// Revoked.
	require.NoError(t, e.api.RevokeToken(tj.Token))
	require.Equal(t, 401, get("Authorization", "Bearer "+tj.Token))

	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	now := time.Now()
	valid := jwt.MapClaims{"sub": testUser, "jti": "x1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	require.Equal(t, 200, get("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, testKey, valid)))
	expired := jwt.MapClaims{"sub": testUser, "jti": "x2", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}
	require.Equal(t, 401, get("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, testKey, expired)))
	noExp := jwt.MapClaims{"sub": testUser, "jti": "x3"}
	require.Equal(t, 401, get("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, testKey, noExp)))
	other := bytes.Repeat([]byte("o"), 32)
	require.Equal(t, 401, get("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, other, valid)))
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)
	require.Equal(t, 401, get("Authorization", "Bearer "+none))
	hs512 := sign(jwt.SigningMethodHS512, testKey, valid)
	require.Equal(t, 401, get("Authorization", "Bearer "+hs512))
}

func TestHeaderLimitAndSlowLoris(t *testing.T) {
	fb := fake.New()
	a, err := New(fb, Config{ListenAddr: "127.0.0.1:0", ReadHeaderTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() { require.NoError(t, a.Shutdown(context.Background())) })
	base := "http://" + a.Addr().String()

	req, err := http.NewRequest("GET", base+"/version", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// Slow-loris: half a request line, then silence. The server must
	// close the connection after ReadHeaderTimeout.
	conn, err := net.Dial("tcp", a.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /version HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadByte()
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "server kept the connection open: %v", err)
	t.Logf("slow-loris connection closed after %s", time.Since(start))

	// Still serving afterwards; no auth configured: open API.
	resp, err = http.Get(base + "/version")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// Second Shutdown is an error wrapping net.ErrClosed.
	a2, err := New(fb, Config{ListenAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, a2.Start())
	require.NoError(t, a2.Shutdown(context.Background()))
	require.ErrorIs(t, a2.Shutdown(context.Background()), net.ErrClosed)
}

func TestCORS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORS = CORS{AllowedOrigins: []string{"https://app.example"}, MaxAge: time.Minute} })
	req, _ := http.NewRequest("OPTIONS", e.url+"/pins", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode, "preflight answered before auth")
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	resp2, _ := e.do("GET", "/version", nil, "Origin", "https://evil.example")
	require.Empty(t, resp2.Header.Get("Access-Control-Allow-Origin"))
}

func TestConfigErrors(t *testing.T) {
	_, err := New(fake.New(), Config{JWTKey: []byte("short")})
	require.ErrorIs(t, err, ErrConfig)
	_, err = New(nil, Config{})
	require.ErrorIs(t, err, ErrConfig)
	_, err = New(fake.New(), Config{MaxBodyBytes: -1})
	require.ErrorIs(t, err, ErrConfig)
}
