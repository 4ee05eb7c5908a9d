package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/metrics"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden from the current answers")

// golden is one file of testdata/golden: a request and IPFS Cluster's
// answer to it, as this API gives it. Response is the JSON body; for a
// streaming endpoint, the array of its NDJSON items.
type golden struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header [][2]string `json:"header,omitempty"`
	Body   string      `json:"body,omitempty"`
	// BodyBase64 holds a body that is not UTF-8 (a CAR upload).
	BodyBase64 string          `json:"body_base64,omitempty"`
	Status     int             `json:"status"`
	Stream     bool            `json:"stream,omitempty"`
	Response   json.RawMessage `json:"response,omitempty"`
}

// goldenCase is a request of the golden test and the upstream type its
// answer decodes into (nil: no body).
type goldenCase struct {
	name   string
	method string
	path   string
	header [][2]string
	body   string
	stream bool
	into   func() any
}

func newOf[T any]() func() any { return func() any { return new(T) } }

const goldenBoundary = "goldenboundary"

// goldenMultipart returns a multipart body with the given files, as
// ipfs-cluster-ctl sends it (directories as application/x-directory).
func goldenMultipart(t *testing.T, parts ...[2]string) string {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.SetBoundary(goldenBoundary))
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p[1] == "<dir>" {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, p[0]))
			h.Set("Content-Type", "application/x-directory")
			_, err := mw.CreatePart(h)
			require.NoError(t, err)
			continue
		}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, p[0]))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, _ = w.Write([]byte(p[1]))
	}
	require.NoError(t, mw.Close())
	return buf.String()
}

// goldenCAR is a CAR v1 of two raw blocks, rooted at the first.
func goldenCAR(t *testing.T) string {
	one, two := testCID(t, "car one"), testCID(t, "car two")
	return string(buildCAR(t, []cid.Cid{one}, map[cid.Cid][]byte{one: []byte("car one"), two: []byte("car two")},
		[]cid.Cid{one, two}))
}

// goldenCases are the requests ipfs-cluster-ctl and IPFS Cluster's Go
// client send, one per endpoint and option set, over the fake backend
// prepared by goldenEnv.
func goldenCases(t *testing.T, e *env) []goldenCase {
	a, b, c := testCID(t, "golden-a").String(), testCID(t, "golden-b").String(), testCID(t, "golden-c").String()
	self := e.fake.Self().String()
	ctlPin := "replication-min=0&replication-max=0&name=x&mode=recursive&shard-size=0&user-allocations=&meta-k=v"
	ctlAdd := "replication-min=0&replication-max=0&name=&mode=recursive&shard-size=104857600&user-allocations=" +
		"&shard=false&local=false&recursive=false&layout=&chunker=size-262144&raw-leaves=false&hidden=false" +
		"&wrap-with-directory=false&progress=false&cid-version=0&hash=sha2-256&stream-channels=true&nocopy=false" +
		"&format=unixfs&no-pin=false"
	mp := [][2]string{{"Content-Type", "multipart/form-data; boundary=" + goldenBoundary}}
	return []goldenCase{
		{name: "health", method: "GET", path: "/health"},
		{name: "id", method: "GET", path: "/id", into: newOf[upID]()},
		{name: "version", method: "GET", path: "/version", into: newOf[upVersion]()},
		{name: "peers", method: "GET", path: "/peers", stream: true, into: newOf[upID]()},
		{name: "peer-add", method: "POST", path: "/peers", body: `{"peer_id":"` + self + `"}` + "\n", into: newOf[upID]()},
		{name: "peer-rm", method: "DELETE", path: "/peers/" + self},
		{name: "pin-add", method: "POST", path: "/pins/ipfs/" + c + "?" + ctlPin, into: newOf[upPin]()},
		{name: "pin-add-cid", method: "POST", path: "/pins/" + c + "?" + strings.Replace(ctlPin, "mode=recursive", "mode=direct", 1) + "&expire-in=1h", into: newOf[upPin]()},
		{name: "pin-update", method: "POST", path: "/pins/ipfs/" + b + "?" + ctlPin + "&pin-update=" + a, into: newOf[upPin]()},
		{name: "pin-rm", method: "DELETE", path: "/pins/ipfs/" + c, into: newOf[upPin]()},
		{name: "pin-rm-cid", method: "DELETE", path: "/pins/" + b, into: newOf[upPin]()},
		{name: "allocations", method: "GET", path: "/allocations?filter=pin", stream: true, into: newOf[upPin]()},
		{name: "allocations-all", method: "GET", path: "/allocations?filter=all", stream: true, into: newOf[upPin]()},
		{name: "allocation", method: "GET", path: "/allocations/" + a, into: newOf[upPin]()},
		{name: "status", method: "GET", path: "/pins/" + a + "?local=false", into: newOf[upGlobalPinInfo]()},
		{name: "status-local", method: "GET", path: "/pins/" + a + "?local=true", into: newOf[upGlobalPinInfo]()},
		{name: "status-all", method: "GET", path: "/pins?local=false&filter=&cids=", stream: true, into: newOf[upGlobalPinInfo]()},
		{name: "status-filter", method: "GET", path: "/pins?local=false&filter=pinned&cids=", stream: true, into: newOf[upGlobalPinInfo]()},
		{name: "status-cids", method: "GET", path: "/pins?local=false&filter=&cids=" + a, stream: true, into: newOf[upGlobalPinInfo]()},
		{name: "recover", method: "POST", path: "/pins/" + a + "/recover?local=true", into: newOf[upGlobalPinInfo]()},
		{name: "recover-all", method: "POST", path: "/pins/recover?local=false", stream: true, into: newOf[upGlobalPinInfo]()},
		{name: "add", method: "POST", path: "/add?" + ctlAdd, header: mp, stream: true, into: newOf[upAddedOutput](),
			body: goldenMultipart(t, [2]string{"a.txt", "hello\n"})},
		{name: "add-wrap", method: "POST", path: "/add?" + strings.NewReplacer("wrap-with-directory=false", "wrap-with-directory=true",
			"cid-version=0", "cid-version=1", "raw-leaves=false", "raw-leaves=true").Replace(ctlAdd), header: mp, stream: true, into: newOf[upAddedOutput](),
			body: goldenMultipart(t, [2]string{"a.txt", "hello\n"}, [2]string{"b.txt", "world\n"})},
		{name: "add-no-stream", method: "POST", path: "/add?stream-channels=false&no-pin=true", header: mp, into: newOf[[]upAddedOutput](),
			body: goldenMultipart(t, [2]string{"a.txt", "hello\n"})},
		{name: "add-car", method: "POST", path: "/add?" + strings.Replace(ctlAdd, "format=unixfs", "format=car", 1), header: mp,
			stream: true, into: newOf[upAddedOutput](), body: goldenMultipart(t, [2]string{"x.car", goldenCAR(t)})},
		{name: "metric-names", method: "GET", path: "/monitor/metrics", into: newOf[[]string]()},
		{name: "metrics", method: "GET", path: "/monitor/metrics/freespace", into: newOf[[]upMetric]()},
		{name: "alerts", method: "GET", path: "/health/alerts", into: newOf[[]upAlert]()},
		{name: "bandwidth", method: "GET", path: "/health/bandwidth", into: newOf[map[string]upBandwidth]()},
		{name: "graph", method: "GET", path: "/health/graph", into: newOf[upConnectGraph]()},
		{name: "gc", method: "POST", path: "/ipfs/gc?local=false", into: newOf[upGlobalRepoGC]()},
		{name: "gc-local", method: "POST", path: "/ipfs/gc?local=true", into: newOf[upGlobalRepoGC]()},
		{name: "token", method: "POST", path: "/token", into: newOf[upToken]()},
		{name: "error-not-found", method: "GET", path: "/allocations/" + c, into: newOf[upError]()},
		{name: "error-bad-cid", method: "GET", path: "/pins/notacid", into: newOf[upError]()},
		{name: "error-bad-option", method: "POST", path: "/add?shard=true", header: mp, into: newOf[upError](),
			body: goldenMultipart(t, [2]string{"a.txt", "hello\n"})},
		{name: "error-no-route", method: "POST", path: "/nothing", into: newOf[upError]()},
	}
}

// fixedBandwidth is a BandwidthReporter with fixed stats.
type fixedBandwidth map[protocol.ID]metrics.Stats

func (f fixedBandwidth) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats { return f }

// goldenEnv is a fake backend with two pins (a with metadata, b), an
// alert, the default metrics, and a bandwidth counter with some traffic.
func goldenEnv(t *testing.T) *env {
	bw := fixedBandwidth{"/pincluster/rpc/default/1.0.0": {TotalIn: 500, TotalOut: 1000, RateIn: 12.5, RateOut: 25}}
	e := newEnv(t, func(c *Config) { c.Bandwidth = bw })
	ctx := t.Context()
	_, err := e.fake.Pin(ctx, testCID(t, "golden-a"), pincluster.PinOptions{Name: "a", Metadata: map[string]string{"k": "v"}})
	require.NoError(t, err)
	_, err = e.fake.Pin(ctx, testCID(t, "golden-b"), pincluster.PinOptions{Name: "b", ReplicationMin: 1, ReplicationMax: 2})
	require.NoError(t, err)
	e.fake.SetStatus(testCID(t, "golden-a"), pincluster.TrackerStatusPinned)
	now := time.Now().UTC()
	e.fake.SetAlerts(pincluster.Alert{
		Metric:      pincluster.Metric{Name: "ping", Peer: e.fake.Self(), Value: `{"peer_name":"fake"}`, ValidUntil: now, ReceivedAt: now.Add(-time.Minute)},
		TriggeredAt: now,
	})
	return e
}

// TestGoldenDocuments sends every request of testdata/golden and checks
// that the answer has the status of the golden file, that its body (each
// item of a stream) decodes into IPFS Cluster's types (upstream_test.go)
// with no unknown field, and that it has the golden body's shape: the
// same keys, JSON kinds, and null versus [] versus omitted. Run with
// -update-golden to rewrite the files from the current answers.
func TestGoldenDocuments(t *testing.T) {
	e := goldenEnv(t)
	dir := filepath.Join("testdata", "golden")
	cases := goldenCases(t, e)
	names := map[string]bool{}
	// The fake peer's ID changes on every run: the files say {self}.
	anon := func(s string) string { return strings.ReplaceAll(s, e.fake.Self().String(), "{self}") }
	for _, tc := range cases {
		names[tc.name+".json"] = true
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			for _, h := range tc.header {
				hdr = append(hdr, h[0], h[1])
			}
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			var resp *http.Response
			var got []byte
			if body != nil {
				resp, got = e.do(tc.method, tc.path, body, hdr...)
			} else {
				resp, got = e.do(tc.method, tc.path, nil, hdr...)
			}
			if resp.StatusCode >= 400 { // every error is api.Error, streams too
				tc.stream, tc.into = false, newOf[upError]()
			}
			if tc.stream && resp.StatusCode == http.StatusOK {
				require.Equal(t, "", resp.Trailer.Get("X-Stream-Error"), "stream error trailer")
				got = ndjsonArray(t, got)
			}
			file := filepath.Join(dir, tc.name+".json")
			if *updateGolden {
				g := golden{Method: tc.method, Path: anon(tc.path), Header: tc.header,
					Status: resp.StatusCode, Stream: tc.stream}
				if utf8.ValidString(tc.body) {
					g.Body = anon(tc.body)
				} else {
					g.BodyBase64 = base64.StdEncoding.EncodeToString([]byte(tc.body))
				}
				if len(bytes.TrimSpace(got)) > 0 {
					g.Response = json.RawMessage(got)
				}
				var out bytes.Buffer
				enc := json.NewEncoder(&out)
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				require.NoError(t, enc.Encode(g))
				require.NoError(t, os.MkdirAll(dir, 0o755))
				require.NoError(t, os.WriteFile(file, out.Bytes(), 0o644))
			}
			raw, err := os.ReadFile(file)
			require.NoError(t, err, "golden file (run with -update-golden to create it)")
			var g golden
			require.NoError(t, json.Unmarshal(raw, &g))
			require.Equal(t, tc.method, g.Method, "the golden request")
			require.Equal(t, anon(tc.path), g.Path, "the golden request")
			if g.BodyBase64 != "" {
				b, err := base64.StdEncoding.DecodeString(g.BodyBase64)
				require.NoError(t, err)
				g.Body = string(b)
			} else {
				g.Body = strings.ReplaceAll(g.Body, "{self}", e.fake.Self().String())
			}
			require.Equal(t, tc.body, g.Body, "the golden request")
			require.Equal(t, g.Status, resp.StatusCode, "status; body %s", got)
			if tc.into == nil {
				require.Empty(t, bytes.TrimSpace(got), "no body")
				require.Empty(t, g.Response)
				return
			}
			decodeUpstream(t, got, tc.stream, tc.into)
			decodeUpstream(t, g.Response, tc.stream, tc.into)
			require.Equal(t, shapeOf(t, g.Response), shapeOf(t, got), "the shape of the golden document; got %s", got)
		})
	}
	// No stale golden file.
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	for _, f := range files {
		require.True(t, names[filepath.Base(f)], "golden file %s has no case", f)
	}
}

// ndjsonArray turns an NDJSON body into a JSON array.
func ndjsonArray(t *testing.T, b []byte) []byte {
	t.Helper()
	var items []json.RawMessage
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		items = append(items, json.RawMessage(line))
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	out, err := json.Marshal(items)
	require.NoError(t, err)
	return out
}

// decodeUpstream decodes doc (each element for a stream) strictly into a
// fresh value of into's type.
func decodeUpstream(t *testing.T, doc []byte, stream bool, into func() any) {
	t.Helper()
	strict := func(b []byte) {
		t.Helper()
		v := into()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(v), "decode %s into %T", b, v)
	}
	if !stream {
		strict(doc)
		return
	}
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal(doc, &items))
	for _, it := range items {
		strict(it)
	}
}

// shapeOf returns the shape of a JSON document: objects with their keys
// (a key that is a peer ID becomes "<peer>"), arrays as the shape of their
// first element ("[]" when empty), scalars as their JSON kind.
func shapeOf(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(doc, &v))
	return shape(v)
}

func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := k
			if _, err := peer.Decode(k); err == nil {
				key = "<peer>"
			}
			s := shape(x[k])
			if prev, ok := m[key]; ok && !reflect.DeepEqual(prev, s) {
				m[key] = []any{"mixed", prev, s}
				continue
			}
			m[key] = s
		}
		return m
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return []any{shape(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
