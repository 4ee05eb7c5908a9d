package kubo_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seenRequest is what the fake Kubo recorded of one request.
type seenRequest struct {
	method, path string
	query        url.Values
	body         int
	remote       string
}

// recorder is a fake Kubo that answers pin/add as Kubo does (a progress
// line, then the result) and records every request.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (rec *recorder) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seenRequest{r.Method, r.URL.Path, r.URL.Query(), len(body), r.RemoteAddr})
	rec.mu.Unlock()
	if r.URL.Path != "/api/v0/pin/add" {
		kuboErr(w, "unexpected call "+r.URL.Path, 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Trailer", "X-Stream-Error")
	w.Header().Set("X-Chunked-Output", "1")
	fmt.Fprintf(w, "{\"Progress\":1,\"Bytes\":1024}\n{\"Pins\":[%q]}\n", r.URL.Query().Get("arg"))
}

func (rec *recorder) take() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.reqs
	rec.reqs = nil
	return out
}

// TestPinRequestShape pins the exact requests a Pin sends, the same as
// IPFS Cluster's connector sends for pin/add: one POST of pin/add per pin
// with arg, recursive and progress, no body, and nothing else: no pin/ls
// before it (IPFS Cluster asks pin/ls first; the tracker knows what the
// node holds), no dag/stat, no second pin/add, and no name unless
// Config.PinNames (a named pin costs Kubo an index write). Kubo's CPU per
// pin is its pin/add: any further call or option per pin shows in it.
func TestPinRequestShape(t *testing.T) {
	rec := &recorder{}
	c := fake(t, rec.handle, kubo.Config{})
	named := fake(t, rec.handle, kubo.Config{PinNames: true})
	ctx := context.Background()
	ci := rawCID(t, "shape")

	cases := []struct {
		name string
		conn *kubo.Connector
		pin  pincluster.Pin
		want url.Values
	}{
		{"recursive", c, pincluster.NewPin(ci, pincluster.PinOptions{}),
			url.Values{"arg": {ci.String()}, "recursive": {"true"}, "progress": {"true"}}},
		{"direct", c, func() pincluster.Pin {
			p := pincluster.NewPin(ci, pincluster.PinOptions{})
			p.MaxDepth = 0
			return p
		}(), url.Values{"arg": {ci.String()}, "recursive": {"false"}, "progress": {"true"}}},
		{"named", c, pincluster.NewPin(ci, pincluster.PinOptions{Name: "a name"}),
			url.Values{"arg": {ci.String()}, "recursive": {"true"}, "progress": {"true"}}},
		{"named with PinNames", named, pincluster.NewPin(ci, pincluster.PinOptions{Name: "a name"}),
			url.Values{"arg": {ci.String()}, "recursive": {"true"}, "progress": {"true"}, "name": {"a name"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []pincluster.PinProgress
			require.NoError(t, tc.conn.Pin(ctx, tc.pin, func(p pincluster.PinProgress) { got = append(got, p) }))
			reqs := rec.take()
			require.Len(t, reqs, 1, "one call per pin: %+v", reqs)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.method)
			assert.Equal(t, "/api/v0/pin/add", r.path)
			assert.Equal(t, tc.want, r.query)
			assert.Zero(t, r.body)
			assert.Equal(t, []pincluster.PinProgress{{Blocks: 1, Bytes: 1024}}, got)
		})
	}
}

// TestPinKeepAlive checks that pins reuse their connections: 200 pins from
// 10 goroutines (the tracker's default pin concurrency) arrive on about 10
// connections. A connection per pin would cost Kubo an accept and a new
// server goroutine for each.
func TestPinKeepAlive(t *testing.T) {
	rec := &recorder{}
	c := fake(t, rec.handle, kubo.Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := range 20 {
				pin := pincluster.NewPin(rawCID(t, fmt.Sprint(w, "/", i)), pincluster.PinOptions{})
				assert.NoError(t, c.Pin(ctx, pin, nil))
			}
		})
	}
	wg.Wait()
	reqs := rec.take()
	require.Len(t, reqs, 200)
	conns := map[string]bool{}
	for _, r := range reqs {
		conns[r.remote] = true
	}
	// net/http puts a connection back in its idle pool from its read
	// loop, after the body's EOF has been returned, so a goroutine's next
	// request now and then dials before its last connection is back: a
	// few more than 10, never one per pin.
	assert.LessOrEqual(t, len(conns), 20, "connections used by 200 pins")
}
