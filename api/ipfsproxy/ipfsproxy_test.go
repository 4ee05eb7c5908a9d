package ipfsproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCid(t *testing.T, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

// fakeBackend keeps pins in a map; Add reads every file and adds one pin
// per call, named after the last file.
type fakeBackend struct {
	mu    sync.Mutex
	pins  map[cid.Cid]pincluster.Pin
	adds  [][]string // names of each Add call
	stats []pincluster.PeerRepoStat
}

func newFake() *fakeBackend { return &fakeBackend{pins: map[cid.Cid]pincluster.Pin{}} }

func (f *fakeBackend) PinPath(_ context.Context, p string, o pincluster.PinOptions) (pincluster.Pin, error) {
	c, err := cid.Decode(strings.TrimPrefix(p, "/ipfs/"))
	if err != nil {
		return pincluster.Pin{}, &pincluster.ValidationError{Field: "path", Err: pincluster.ErrInvalidCID}
	}
	pin := pincluster.NewPin(c, o)
	f.mu.Lock()
	f.pins[c] = pin
	f.mu.Unlock()
	return pin, nil
}

func (f *fakeBackend) UnpinPath(ctx context.Context, p string) (pincluster.Pin, error) {
	c, err := cid.Decode(strings.TrimPrefix(p, "/ipfs/"))
	if err != nil {
		return pincluster.Pin{}, err
	}
	return f.Unpin(ctx, c)
}

func (f *fakeBackend) Unpin(_ context.Context, c cid.Cid) (pincluster.Pin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pins[c]
	if !ok {
		return pincluster.Pin{}, pincluster.ErrNotFound
	}
	delete(f.pins, c)
	return p, nil
}

func (f *fakeBackend) PinUpdate(_ context.Context, from, to cid.Cid, o pincluster.PinOptions) (pincluster.Pin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.pins[from]
	if !ok {
		return pincluster.Pin{}, pincluster.ErrNotFound
	}
	p := pincluster.NewPin(to, old.PinOptions)
	f.pins[to] = p
	return p, nil
}

func (f *fakeBackend) PinGet(_ context.Context, c cid.Cid) (pincluster.Pin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pins[c]
	if !ok {
		return pincluster.Pin{}, pincluster.ErrNotFound
	}
	return p, nil
}

func (f *fakeBackend) Pins(context.Context, pincluster.PinFilter) iter.Seq2[pincluster.Pin, error] {
	f.mu.Lock()
	var ps []pincluster.Pin
	for _, p := range f.pins {
		ps = append(ps, p)
	}
	f.mu.Unlock()
	return func(yield func(pincluster.Pin, error) bool) {
		for _, p := range ps {
			if !yield(p, nil) {
				return
			}
		}
	}
}

func (f *fakeBackend) Add(_ context.Context, files iter.Seq2[string, io.Reader], p pincluster.AddParams) ([]pincluster.AddedFile, error) {
	var names []string
	var out []pincluster.AddedFile
	for name, r := range files {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("fake add: %w", err)
		}
		names = append(names, name)
		out = append(out, pincluster.AddedFile{Name: name, Cid: cid.NewCidV1(cid.Raw, mustSum(b)), Size: uint64(len(b))})
	}
	if p.Wrap {
		out = append(out, pincluster.AddedFile{Cid: cid.NewCidV1(cid.DagProtobuf, mustSum([]byte(strings.Join(names, ","))))})
	}
	f.mu.Lock()
	f.adds = append(f.adds, names)
	f.mu.Unlock()
	return out, nil
}

func mustSum(b []byte) mh.Multihash {
	h, err := mh.Sum(b, mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return h
}

func (f *fakeBackend) RepoStatAll(context.Context) ([]pincluster.PeerRepoStat, error) {
	return f.stats, nil
}

// newTestProxy returns a proxy over a fake backend and a fake Kubo that
// answers every forwarded request with its path.
func newTestProxy(t *testing.T, cfg Config) (*fakeBackend, *httptest.Server) {
	t.Helper()
	kubo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v0/repo/stat" {
			_, _ = io.WriteString(w, `{"RepoSize":10,"StorageMax":100,"NumObjects":7,"RepoPath":"/repo","Version":"fs-repo@18"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"Forwarded": r.URL.Path, "Host": r.Host})
	}))
	t.Cleanup(kubo.Close)
	b := newFake()
	cfg.NodeURL = kubo.URL
	p, err := New(b, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return b, srv
}

func post(t *testing.T, url string, ct string, body io.Reader) (int, string) {
	t.Helper()
	res, err := http.Post(url, ct, body)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestForwardsOtherCommands(t *testing.T) {
	_, srv := newTestProxy(t, Config{})
	code, body := post(t, srv.URL+"/api/v0/id", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"Forwarded":"/api/v0/id"`)
	require.NotContains(t, body, strings.TrimPrefix(srv.URL, "http://"), "the Host header is Kubo's")
}

func TestKuboDownIs502(t *testing.T) {
	p, err := New(newFake(), Config{NodeURL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	code, body := post(t, srv.URL+"/api/v0/id", "", nil)
	require.Equal(t, http.StatusBadGateway, code)
	require.Contains(t, body, `"Type":"error"`)
}

func TestPinAddLsRmUpdate(t *testing.T) {
	b, srv := newTestProxy(t, Config{})
	c1, c2 := testCid(t, "one"), testCid(t, "two")
	code, body := post(t, srv.URL+"/api/v0/pin/add?arg="+c1.String()+"&name=n1", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"Pins":["`+c1.String()+`"]}`, body)
	require.Equal(t, "n1", b.pins[c1].Name)
	// The undocumented /pin/add/<arg> form, and a direct pin.
	code, body = post(t, srv.URL+"/api/v0/pin/add/"+c2.String()+"?recursive=false", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, pincluster.PinModeDirect, b.pins[c2].Mode)

	code, body = post(t, srv.URL+"/api/v0/pin/ls?type=recursive", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"Keys":{"`+c1.String()+`":{"Type":"recursive"}}}`, body)
	code, body = post(t, srv.URL+"/api/v0/pin/ls?stream=true&names=true", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 2, strings.Count(body, "\n"), body)
	require.Contains(t, body, `{"Cid":"`+c1.String()+`","Type":"recursive","Name":"n1"}`)
	code, body = post(t, srv.URL+"/api/v0/pin/ls?arg="+testCid(t, "none").String(), "", nil)
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "is not pinned")

	c3 := testCid(t, "three")
	code, body = post(t, srv.URL+"/api/v0/pin/update?arg="+c1.String()+"&arg=/ipfs/"+c3.String(), "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"Pins":["`+c1.String()+`","`+c3.String()+`"]}`, body)
	_, stillThere := b.pins[c1]
	require.False(t, stillThere, "unpin defaults to true")
	require.Equal(t, "n1", b.pins[c3].Name, "the new pin has the old one's options")

	code, body = post(t, srv.URL+"/api/v0/pin/rm?arg="+c3.String(), "", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = post(t, srv.URL+"/api/v0/pin/rm?arg="+c3.String(), "", nil)
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "not pinned")
}

func TestBadInput(t *testing.T) {
	b, srv := newTestProxy(t, Config{MaxAddBytes: 1 << 10})
	many := strings.Repeat("arg="+testCid(t, "x").String()+"&", maxArgs+1)
	for _, tc := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{http.MethodGet, "/api/v0/pin/add?arg=" + testCid(t, "x").String(), 405, "use POST"},
		{http.MethodPost, "/api/v0/pin/add", 400, "is required"},
		{http.MethodPost, "/api/v0/pin/add?" + many, 400, "arguments"},
		{http.MethodPost, "/api/v0/pin/add?arg=" + strings.Repeat("a", maxPathLen+1), 400, "longer"},
		{http.MethodPost, "/api/v0/pin/add?arg=x&recursive=maybe", 400, "not a boolean"},
		{http.MethodPost, "/api/v0/pin/ls?type=bogus", 400, "invalid type"},
		{http.MethodPost, "/api/v0/pin/update?arg=" + testCid(t, "x").String(), 400, "to-path"},
		{http.MethodPost, "/api/v0/pin/update?arg=nope&arg=nope", 400, "from-path"},
		{http.MethodPost, "/api/v0/add?only-hash=true", 400, "only-hash"},
		{http.MethodPost, "/api/v0/add?pin=false", 400, "pin=false"},
		{http.MethodPost, "/api/v0/add", 400, "multipart"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, tc.code, res.StatusCode, "%s %s: %s", tc.method, tc.path[:min(len(tc.path), 60)], body)
		require.Contains(t, string(body), tc.msg)
		require.Contains(t, string(body), `"Type":"error"`)
	}
	// Hostile file names are refused, and nothing is added.
	for _, name := range []string{"..%2Fescape", "a%2F..%2F..%2Fb", "", "a%2F%2Fb"} {
		code, body := post(t, srv.URL+"/api/v0/add", multipartCT, multipartBody(t, part{name: name, data: "x"}))
		require.Equal(t, http.StatusBadRequest, code, "%q: %s", name, body)
	}
	// Over MaxAddBytes.
	code, body := post(t, srv.URL+"/api/v0/add", multipartCT, multipartBody(t, part{name: "big", data: strings.Repeat("x", 2<<10)}))
	require.NotEqual(t, http.StatusOK, code, body)
	require.Empty(t, b.pins)
}

const boundary = "testboundary"

var multipartCT = "multipart/form-data; boundary=" + boundary

type part struct {
	name string // URL-escaped, as the ipfs CLI writes it
	dir  bool
	data string
}

func multipartBody(t *testing.T, parts ...part) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	require.NoError(t, w.SetBoundary(boundary))
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+p.name+`"`)
		if p.dir {
			h.Set("Content-Type", "application/x-directory")
		} else {
			h.Set("Content-Type", "application/octet-stream")
		}
		pw, err := w.CreatePart(h)
		require.NoError(t, err)
		_, err = io.WriteString(pw, p.data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return &buf
}

// add imports each top-level file on its own and a directory as one
// wrapped import whose root carries the directory's name.
func TestAddLikeKubo(t *testing.T) {
	b, srv := newTestProxy(t, Config{})
	code, body := post(t, srv.URL+"/api/v0/add", multipartCT, multipartBody(t,
		part{name: "one.txt", data: "1"},
		part{name: "tree", dir: true},
		part{name: "tree%2Fa.txt", data: "a"},
		part{name: "tree%2Fsub", dir: true},
		part{name: "tree%2Fsub%2Fb.txt", data: "b"},
		part{name: "two.txt", data: "2"},
	))
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, [][]string{{"one.txt"}, {"a.txt", "sub/b.txt"}, {"two.txt"}}, b.adds)
	var names []string
	dec := json.NewDecoder(strings.NewReader(body))
	for dec.More() {
		var o addOut
		require.NoError(t, dec.Decode(&o))
		require.NotEmpty(t, o.Hash)
		names = append(names, o.Name)
	}
	require.Equal(t, []string{"one.txt", "tree/a.txt", "tree/sub/b.txt", "tree", "two.txt"}, names)
}

func TestRepoStatAndGC(t *testing.T) {
	gcd := []cid.Cid{testCid(t, "gc1"), testCid(t, "gc2")}
	b, srv := newTestProxy(t, Config{RepoGC: func(context.Context) ([]RepoGCResult, error) {
		return []RepoGCResult{{Removed: gcd}, {Err: errors.New("peer X: boom")}}, nil
	}})
	b.stats = []pincluster.PeerRepoStat{
		{RepoStat: pincluster.RepoStat{RepoSize: 10, StorageMax: 100, NumObjects: 0}},
		{RepoStat: pincluster.RepoStat{RepoSize: 5, StorageMax: 50, NumObjects: 3}},
		{Err: errors.New("unreachable")},
	}
	code, body := post(t, srv.URL+"/api/v0/repo/stat", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"RepoSize":15,"StorageMax":150,"NumObjects":10,"RepoPath":"/repo","Version":"fs-repo@18"}`, body)
	code, body = post(t, srv.URL+"/api/v0/repo/stat?size-only=true", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"RepoSize":15,"StorageMax":150,"NumObjects":0}`, body)

	code, body = post(t, srv.URL+"/api/v0/repo/gc", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, `{"Key":{"/":"`+gcd[0].String()+`"}}`+"\n"+`{"Key":{"/":"`+gcd[1].String()+`"}}`+"\n"+`{"Error":"peer X: boom"}`+"\n", body)
}

func TestStartShutdown(t *testing.T) {
	p, err := New(newFake(), Config{ListenAddr: "127.0.0.1:0", NodeURL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	require.NotNil(t, p.Addr())
	require.NoError(t, p.Shutdown(context.Background()))
	_, err = New(newFake(), Config{NodeURL: "/ip4/127.0.0.1/tcp/5001"})
	require.ErrorIs(t, err, ErrConfig)
}

// With wrap-with-directory every file goes into one import whose root,
// named "", comes last.
func TestAddWrapped(t *testing.T) {
	b, srv := newTestProxy(t, Config{})
	code, body := post(t, srv.URL+"/api/v0/add?wrap-with-directory=true", multipartCT, multipartBody(t,
		part{name: "one.txt", data: "1"},
		part{name: "tree", dir: true},
		part{name: "tree%2Fa.txt", data: "a"},
	))
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, [][]string{{"one.txt", "tree/a.txt"}}, b.adds)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	require.Len(t, lines, 3)
	var last addOut
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &last))
	require.Equal(t, "", last.Name)
	require.NotEmpty(t, last.Hash)
}
