package kubo_test

// Faults a real daemon cannot produce on demand, played by a small fake of
// the far side (httptest). Everything else is tested against a real Kubo.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testPeer = "12D3KooWGRUVh5qPZUfMWSxnCJmzkJCaLoFTBgMM59H6GqbZdYWc"

func rawCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte(s))
	require.NoError(t, err)
	return c
}

// fake starts a fake Kubo API answering with h and returns a Connector to it.
func fake(t *testing.T, h http.HandlerFunc, cfg kubo.Config) *kubo.Connector {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.APIAddr = srv.URL
	c, err := kubo.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

func kuboErr(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `{"Message":%q,"Code":%d,"Type":"error"}`, msg, code)
}

func TestFaultCommandErrors(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/pin/rm":
			kuboErr(w, "not pinned or pinned indirectly", 0)
		case "/api/v0/pin/ls":
			kuboErr(w, "path '"+r.URL.Query().Get("arg")+"' is not pinned", 0)
		case "/api/v0/pin/add":
			kuboErr(w, "pin: invalid path", 0)
		case "/api/v0/block/get":
			kuboErr(w, "block was not found locally (offline): ipld: could not find bafk...", 0)
		case "/api/v0/repo/stat":
			kuboErr(w, "something broke inside", 2)
		case "/api/v0/id":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		case "/api/v0/config":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "403 - Forbidden")
		default:
			http.NotFound(w, r)
		}
	}, kubo.Config{})
	ctx := t.Context()
	a := rawCID(t, "a")

	err := c.Unpin(ctx, a)
	require.ErrorIs(t, err, pincluster.ErrNotPinned)
	var ke *kubo.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, "pin/rm", ke.Op)
	require.Equal(t, http.StatusInternalServerError, ke.StatusCode)
	require.Contains(t, err.Error(), "not pinned or pinned indirectly")
	require.True(t, strings.HasPrefix(err.Error(), "kubo: pin/rm: "), err.Error())

	st, err := c.PinLsCid(ctx, pincluster.NewPin(a, pincluster.PinOptions{}))
	require.NoError(t, err, "not pinned is a status, not an error")
	require.Equal(t, pincluster.IPFSPinStatusUnpinned, st)

	err = c.Pin(ctx, pincluster.NewPin(a, pincluster.PinOptions{}), nil)
	require.ErrorAs(t, err, &ke)
	require.Equal(t, "pin: invalid path", ke.Message)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable, "a command error is not an outage")

	_, err = c.BlockGet(ctx, a)
	require.ErrorIs(t, err, pincluster.ErrNotFound)

	_, err = c.RepoStat(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable, "implementation errors are server errors")

	id, err := c.ID(ctx)
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable, "a 502 that is not Kubo's")
	require.Contains(t, id.Error, "bad gateway")

	_, err = c.ConfigKey(ctx, "Datastore.StorageMax")
	require.ErrorAs(t, err, &ke)
	require.Equal(t, http.StatusForbidden, ke.StatusCode)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)

	_, err = c.SwarmPeers(ctx)
	require.ErrorAs(t, err, &ke)
	require.Equal(t, http.StatusNotFound, ke.StatusCode)
}

func TestFaultMalformedJSON(t *testing.T) {
	bodies := map[string]string{
		"/api/v0/id":          `{"ID": 12`,
		"/api/v0/repo/stat":   `{"RepoSize":"lots"}`,
		"/api/v0/swarm/peers": `{"Peers":[{"Peer":"not-a-peer"}]}`,
		"/api/v0/resolve":     `{"Path":"/ipns/x"}`,
		"/api/v0/block/put":   `{"Key":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy","Size":3}`,
		"/api/v0/block/get":   `not the block`,
		"/api/v0/pin/ls":      "{\"Cid\":\"nope\",\"Type\":\"recursive\"}\n",
		"/api/v0/pin/add":     "{\"Progress\":1}\n{garbage\n",
		"/api/v0/repo/gc":     "{\"Key\":{\"/\":\"zzz\"}}\n",
		"/api/v0/dag/stat":    `[]`,
		"/api/v0/config":      `{"Key":`,
	}
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v0/pin/ls" && r.URL.Query().Get("arg") != "" {
			io.WriteString(w, `{"Keys":{"x":{"Type":"weird"}}}`)
			return
		}
		io.WriteString(w, bodies[r.URL.Path])
	}, kubo.Config{})
	ctx := t.Context()
	a := rawCID(t, "a")
	unavailable := func(err error) {
		t.Helper()
		require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	}
	_, err := c.ID(ctx)
	unavailable(err)
	_, err = c.RepoStat(ctx)
	unavailable(err)
	_, err = c.SwarmPeers(ctx)
	unavailable(err)
	_, err = c.Resolve(ctx, "/ipns/example.org")
	unavailable(err)
	_, err = c.BlockPut(ctx, []byte("not foo"), cid.Prefix{})
	unavailable(err) // Kubo's CID does not match the data
	_, err = c.BlockGet(ctx, a)
	unavailable(err) // bytes do not match the CID
	for _, err := range c.PinLs(ctx) {
		unavailable(err)
	}
	_, err = c.PinLsCid(ctx, pincluster.NewPin(a, pincluster.PinOptions{}))
	unavailable(err)
	progress := 0
	err = c.Pin(ctx, pincluster.NewPin(a, pincluster.PinOptions{}), func(pincluster.PinProgress) { progress++ })
	unavailable(err)
	require.Equal(t, 1, progress)
	_, err = c.RepoGC(ctx)
	unavailable(err)
	_, err = c.DAGSize(ctx, a)
	unavailable(err)
	_, err = c.ConfigKey(ctx, "x")
	unavailable(err)
}

// breakStream writes lines, then cuts the connection without ending the
// chunked body.
func breakStream(w http.ResponseWriter, lines ...string) {
	w.Header().Set("Trailer", "X-Stream-Error")
	w.WriteHeader(http.StatusOK)
	for _, l := range lines {
		io.WriteString(w, l+"\n")
	}
	w.(http.Flusher).Flush()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestFaultStreams(t *testing.T) {
	a, b := rawCID(t, "a"), rawCID(t, "b")
	mode := "break"
	var mu sync.Mutex
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		mu.Unlock()
		line := func(ci cid.Cid) string { return fmt.Sprintf(`{"Cid":%q,"Type":"recursive","Name":""}`, ci.String()) }
		switch {
		case m == "break" && r.URL.Path == "/api/v0/pin/ls":
			breakStream(w, line(a), line(b))
		case m == "break" && r.URL.Path == "/api/v0/pin/add":
			breakStream(w, `{"Progress":3,"Bytes":30}`)
		case m == "trailer" && r.URL.Path == "/api/v0/pin/ls":
			w.Header().Set("Trailer", "X-Stream-Error")
			io.WriteString(w, line(a)+"\n")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Stream-Error", "datastore: closed")
		case m == "trailer" && r.URL.Path == "/api/v0/pin/add":
			w.Header().Set("Trailer", "X-Stream-Error")
			io.WriteString(w, `{"Progress":1,"Bytes":10}`+"\n")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Stream-Error", "context canceled")
		case m == "errline" && r.URL.Path == "/api/v0/pin/ls":
			io.WriteString(w, line(a)+"\n"+`{"Message":"pin: not pinned","Code":0,"Type":"error"}`+"\n")
		case m == "truncated" && r.URL.Path == "/api/v0/pin/add":
			io.WriteString(w, `{"Progress":1,"Bytes":10}`+"\n")
		case m == "long" && r.URL.Path == "/api/v0/pin/ls":
			io.WriteString(w, `{"Cid":"`+strings.Repeat("x", 2<<20)+"\"}\n")
		default:
			http.NotFound(w, r)
		}
	}, kubo.Config{})
	setMode := func(m string) { mu.Lock(); mode = m; mu.Unlock() }
	ctx := t.Context()
	pin := pincluster.NewPin(a, pincluster.PinOptions{})

	// A stream cut mid-way: the items before the cut, then an outage.
	var got []cid.Cid
	var lastErr error
	for info, err := range c.PinLs(ctx, pincluster.IPFSPinStatusRecursive) {
		if err != nil {
			lastErr = err
			break
		}
		got = append(got, info.Cid)
	}
	require.Equal(t, []cid.Cid{a, b}, got)
	require.ErrorIs(t, lastErr, pincluster.ErrIPFSUnavailable)
	var progress []pincluster.PinProgress
	err := c.Pin(ctx, pin, func(p pincluster.PinProgress) { progress = append(progress, p) })
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.Equal(t, []pincluster.PinProgress{{Blocks: 3, Bytes: 30}}, progress)

	// An error in the X-Stream-Error trailer.
	setMode("trailer")
	got, lastErr = nil, nil
	for info, err := range c.PinLs(ctx, pincluster.IPFSPinStatusRecursive) {
		if err != nil {
			lastErr = err
			break
		}
		got = append(got, info.Cid)
	}
	require.Equal(t, []cid.Cid{a}, got)
	var ke *kubo.Error
	require.ErrorAs(t, lastErr, &ke)
	require.Equal(t, "datastore: closed", ke.Message)
	err = c.Pin(ctx, pin, nil)
	require.ErrorAs(t, err, &ke)
	require.Equal(t, "context canceled", ke.Message)

	// An error object as a line.
	setMode("errline")
	n := 0
	for _, err := range c.PinLs(ctx) {
		if err != nil {
			lastErr = err
			break
		}
		n++
	}
	require.Equal(t, 1, n)
	require.ErrorIs(t, lastErr, pincluster.ErrNotPinned)

	// A pin stream that ends cleanly but without a result.
	setMode("truncated")
	require.ErrorIs(t, c.Pin(ctx, pin, nil), pincluster.ErrIPFSUnavailable)

	// A line over the bound.
	setMode("long")
	for _, err := range c.PinLs(ctx) {
		require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
		require.ErrorContains(t, err, "too long")
	}
}

func TestFaultBounds(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/id":
			io.WriteString(w, `{"ID":"`)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for range 9 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			io.WriteString(w, `"}`)
		case "/api/v0/block/get":
			w.Write(make([]byte, 2048))
		}
	}, kubo.Config{MaxBlockSize: 1024})
	_, err := c.ID(t.Context())
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.ErrorContains(t, err, "larger than")
	_, err = c.BlockGet(t.Context(), rawCID(t, "a"))
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.ErrorContains(t, err, "larger than 1024")
}

// hangServer answers nothing until the client goes away.
func hangServer(t *testing.T, cfg kubo.Config) (*kubo.Connector, <-chan string) {
	arrived := make(chan string, 64)
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		<-r.Context().Done()
	}, cfg)
	return c, arrived
}

func TestFaultHangingServer(t *testing.T) {
	c, _ := hangServer(t, kubo.Config{RequestTimeout: 100 * time.Millisecond})

	// The per-call timeout: the node is unavailable.
	_, err := c.ID(t.Context())
	require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The caller's deadline: the caller's error, not an outage.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = c.Pin(ctx, pincluster.NewPin(rawCID(t, "a"), pincluster.PinOptions{}), nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)

	for _, err := range c.PinLs(ctx) {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
}

func TestFaultConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().(*net.TCPAddr)
	require.NoError(t, l.Close())
	c, err := kubo.New(kubo.Config{APIAddr: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", addr.Port)})
	require.NoError(t, err)
	defer c.Shutdown(context.Background())
	ctx := t.Context()
	a := rawCID(t, "a")
	pin := pincluster.NewPin(a, pincluster.PinOptions{})

	calls := map[string]func() error{
		"ID":       func() error { _, err := c.ID(ctx); return err },
		"Pin":      func() error { return c.Pin(ctx, pin, nil) },
		"Unpin":    func() error { return c.Unpin(ctx, a) },
		"PinLsCid": func() error { _, err := c.PinLsCid(ctx, pin); return err },
		"PinLs": func() error {
			for _, err := range c.PinLs(ctx) {
				return err
			}
			return nil
		},
		"ConnectSwarms": func() error { return c.ConnectSwarms(ctx, []peer.AddrInfo{{ID: peer.ID("x")}}) },
		"SwarmPeers":    func() error { _, err := c.SwarmPeers(ctx); return err },
		"ConfigKey":     func() error { _, err := c.ConfigKey(ctx, "Datastore.StorageMax"); return err },
		"RepoStat":      func() error { _, err := c.RepoStat(ctx); return err },
		"Resolve":       func() error { _, err := c.Resolve(ctx, "/ipfs/"+a.String()); return err },
		"BlockPut":      func() error { _, err := c.BlockPut(ctx, []byte("x"), cid.Prefix{}); return err },
		"BlockGet":      func() error { _, err := c.BlockGet(ctx, a); return err },
		"DAGSize":       func() error { _, err := c.DAGSize(ctx, a); return err },
		"PinUpdate":     func() error { return c.PinUpdate(ctx, a, a, false) },
		"RepoGC":        func() error { _, err := c.RepoGC(ctx); return err },
	}
	for name, call := range calls {
		err := call()
		if name == "ConnectSwarms" {
			// peer.ID("x") is not encodable: an error of its own.
			require.Error(t, err)
			continue
		}
		require.ErrorIs(t, err, pincluster.ErrIPFSUnavailable, name)
		require.NotErrorIs(t, err, context.Canceled, name)
	}
}

func TestFaultConcurrencyBound(t *testing.T) {
	c, arrived := hangServer(t, kubo.Config{MaxConcurrentRequests: 2})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = c.ID(ctx) })
	}
	<-arrived
	<-arrived
	short, cancelShort := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancelShort()
	_, err := c.ID(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "request slot")
	select {
	case p := <-arrived:
		t.Fatalf("a third request reached the server: %s", p)
	default:
	}
	cancel()
	wg.Wait()
}

func TestShutdown(t *testing.T) {
	c, arrived := hangServer(t, kubo.Config{})
	res := make(chan error, 1)
	go func() {
		res <- c.Pin(context.Background(), pincluster.NewPin(rawCID(t, "a"), pincluster.PinOptions{}), nil)
	}()
	<-arrived

	// The pin does not end by itself: Shutdown's deadline aborts it.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Shutdown(ctx), context.DeadlineExceeded)
	require.ErrorIs(t, <-res, pincluster.ErrClosed)

	_, err := c.ID(t.Context())
	require.ErrorIs(t, err, pincluster.ErrClosed)
	for _, err := range c.PinLs(t.Context()) {
		require.ErrorIs(t, err, pincluster.ErrClosed)
	}
	require.ErrorIs(t, c.Shutdown(t.Context()), pincluster.ErrClosed)
}

func TestConfig(t *testing.T) {
	for _, bad := range []kubo.Config{
		{},
		{APIAddr: "ftp://x"},
		{APIAddr: "http://127.0.0.1:5001/api/v0"},
		{APIAddr: "/ip4/127.0.0.1/udp/5001"},
		{APIAddr: "/nonsense"},
		{APIAddr: "http://127.0.0.1:5001", RequestTimeout: -1},
		{APIAddr: "http://127.0.0.1:5001", MaxConcurrentRequests: -1},
		{APIAddr: "/unix/tmp/x.sock", HTTPClient: &http.Client{}},
	} {
		_, err := kubo.New(bad)
		require.Error(t, err, "%+v", bad)
		require.True(t, strings.HasPrefix(err.Error(), "kubo: "), err.Error())
	}
	for _, good := range []string{
		"/ip4/127.0.0.1/tcp/5001", "/ip6/::1/tcp/5001", "/dns4/localhost/tcp/5001",
		"/ip4/127.0.0.1/tcp/5001/http", "/dns/example.org/tcp/443/https",
		"http://127.0.0.1:5001", "https://example.org", "/unix/tmp/kubo.sock",
	} {
		c, err := kubo.New(kubo.Config{APIAddr: good})
		require.NoError(t, err, good)
		require.NoError(t, c.Shutdown(t.Context()))
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ID":"`+testPeer+`","Addresses":["/ip4/127.0.0.1/tcp/4001/p2p/`+testPeer+`","garbage"]}`)
	})}}
	srv.Start()
	defer srv.Close()
	c, err := kubo.New(kubo.Config{APIAddr: "/unix" + sock})
	require.NoError(t, err)
	defer c.Shutdown(t.Context())
	id, err := c.ID(t.Context())
	require.NoError(t, err)
	require.Equal(t, testPeer, id.ID.String())
	require.Len(t, id.Addresses, 1, "unparsable addresses are skipped")
}

// roundTripper answers every request with a fixed status and body, without
// a network.
type roundTripper struct {
	status int
	body   []byte
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: rt.status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(rt.body)), Request: r}, nil
}

// FuzzAnswers feeds arbitrary answers to every method: errors are fine,
// panics are not.
func FuzzAnswers(f *testing.F) {
	for _, s := range []string{
		`{"ID":"` + testPeer + `","Addresses":["/ip4/1.2.3.4/tcp/1"]}`,
		`{"Pins":["bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"]}`,
		"{\"Progress\":1,\"Bytes\":2}\n{\"Pins\":[\"x\"]}\n",
		`{"Keys":{"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy":{"Type":"indirect through x"}}}`,
		"{\"Cid\":\"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy\",\"Type\":\"direct\"}\n",
		`{"Message":"x","Code":0,"Type":"error"}`,
		`{"Peers":[{"Peer":"` + testPeer + `"}]}`,
		`{"Path":"/ipfs/bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy/a"}`,
		"{\"Key\":{\"/\":\"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy\"}}\n{\"Error\":\"e\"}\n",
		`{"TotalSize":12}`, `{"Key":"k","Value":{"a":[1,2]}}`, "", "\n\n", "null", `{"Pins":null}`,
	} {
		f.Add(200, []byte(s))
	}
	f.Add(500, []byte(`{"Message":"not pinned","Code":0,"Type":"error"}`))
	f.Add(502, []byte(`oops`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		c, err := kubo.New(kubo.Config{APIAddr: "http://127.0.0.1:1", HTTPClient: &http.Client{Transport: roundTripper{status, body}}})
		require.NoError(t, err)
		defer c.Shutdown(context.Background())
		ctx := context.Background()
		a, _ := cid.Decode("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
		pin := pincluster.NewPin(a, pincluster.PinOptions{})
		_, _ = c.ID(ctx)
		_ = c.Pin(ctx, pin, func(pincluster.PinProgress) {})
		_ = c.Unpin(ctx, a)
		_, _ = c.PinLsCid(ctx, pin)
		for _, err := range c.PinLs(ctx) {
			if err != nil {
				break
			}
		}
		_, _ = c.SwarmPeers(ctx)
		_, _ = c.ConfigKey(ctx, "k")
		_, _ = c.RepoStat(ctx)
		_, _ = c.Resolve(ctx, "/ipfs/"+a.String())
		_, _ = c.BlockPut(ctx, []byte("foo"), cid.Prefix{})
		_, _ = c.BlockGet(ctx, a)
		_, _ = c.DAGSize(ctx, a)
		_ = c.PinUpdate(ctx, a, a, true)
		_, _ = c.RepoGC(ctx)
		_ = c.ConnectSwarms(ctx, []peer.AddrInfo{{ID: mustPeer(t)}})
	})
}

func mustPeer(t testing.TB) peer.ID {
	id, err := peer.Decode(testPeer)
	require.NoError(t, err)
	return id
}

func TestPinProgressInterval(t *testing.T) {
	a := rawCID(t, "a")
	// Kubo's heartbeats: nothing yet, then each count twice.
	body := "{}\n{}\n"
	for i := 1; i <= 50; i++ {
		body += fmt.Sprintf(`{"Progress":%d,"Bytes":%d}`+"\n", i, i*10)
		body += fmt.Sprintf(`{"Progress":%d,"Bytes":%d}`+"\n", i, i*10)
	}
	body += `{"Pins":["` + a.String() + `"]}` + "\n"
	handler := func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "true", r.URL.Query().Get("progress"))
		assert.Equal(t, "false", r.URL.Query().Get("recursive"), "direct pin")
		assert.Equal(t, "name", r.URL.Query().Get("name"), "PinNames")
		io.WriteString(w, body)
	}
	pin := pincluster.NewPin(a, pincluster.PinOptions{Mode: pincluster.PinModeDirect, Name: "name"})

	var got []pincluster.PinProgress
	c := fake(t, handler, kubo.Config{PinNames: true})
	require.NoError(t, c.Pin(t.Context(), pin, func(p pincluster.PinProgress) { got = append(got, p) }))
	require.Len(t, got, 50, "every report of new blocks, no heartbeat")

	got = nil
	c = fake(t, handler, kubo.Config{PinProgressInterval: time.Hour, PinNames: true})
	require.NoError(t, c.Pin(t.Context(), pin, func(p pincluster.PinProgress) { got = append(got, p) }))
	require.Equal(t, []pincluster.PinProgress{{Blocks: 1, Bytes: 10}, {Blocks: 50, Bytes: 500}}, got, "first, then the last")
}

func TestDAGSizeTimeout(t *testing.T) {
	c, _ := hangServer(t, kubo.Config{DAGSizeTimeout: 50 * time.Millisecond})
	_, err := c.DAGSize(t.Context(), rawCID(t, "a"))
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, pincluster.ErrIPFSUnavailable)
}
