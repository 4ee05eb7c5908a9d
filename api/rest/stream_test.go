package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// streamEnv is an API over one real peer, for POST /pins/stream.
func streamEnv(t *testing.T, mod func(*Config)) (*env, *pincluster.Cluster) {
	t.Helper()
	c := realPeers(t, 1).Peer(0).Cluster
	cfg := Config{BasicAuth: map[string]string{testUser: testPass}, JWTKey: testKey}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(c, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close) // before the peer stops (cleanup order)
	return &env{t: t, api: a, srv: srv, url: srv.URL}, c
}

// pinLine is one /pins/stream line for s's CID with name.
func pinLine(t *testing.T, s, name string) string {
	return fmt.Sprintf(`{"cid":%q,"name":%q}`, testCID(t, s).String(), name)
}

// Every line is answered, in order, and every acknowledged pin is in the
// state with its options; blank lines are skipped.
func TestPinStreamAcknowledgesDurablePins(t *testing.T) {
	e, c := streamEnv(t, nil)
	var body strings.Builder
	for i := range 300 {
		body.WriteString(pinLine(t, fmt.Sprint("s", i), fmt.Sprint("n", i)) + "\n")
		if i == 10 {
			body.WriteString("\n   \n")
		}
	}
	resp, b := e.do("POST", "/pins/stream", strings.NewReader(body.String()))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	acks := ndjson(t, b)
	require.Len(t, acks, 300)
	ctx := context.Background()
	for i, ack := range acks {
		line := i + 1
		if i > 10 {
			line += 2 // the two blank lines
		}
		require.EqualValues(t, line, ack["line"])
		require.Equal(t, testCID(t, fmt.Sprint("s", i)).String(), ack["cid"])
		require.Nil(t, ack["error"])
		p, err := c.PinGet(ctx, testCID(t, fmt.Sprint("s", i)))
		require.NoError(t, err, "acknowledged line %d is not in the state", line)
		require.Equal(t, fmt.Sprint("n", i), p.Name)
	}
}

// A line that is not a pin ends the stream with a 4xx line naming it:
// the lines before it are pinned, the lines after it are not read. A pin
// refused for its options is answered with an error and the stream goes
// on.
func TestPinStreamBadLines(t *testing.T) {
	e, c := streamEnv(t, nil)
	ctx := context.Background()
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	body := strings.Join([]string{
		pinLine(t, "ok1", "a"),
		fmt.Sprintf(`{"cid":%q,"expire_at":%q}`, testCID(t, "expired").String(), past),
		pinLine(t, "ok2", "b"),
		`{"cid": "not-a-cid"}`,
		pinLine(t, "after", "c"),
	}, "\n")
	resp, b := e.do("POST", "/pins/stream", strings.NewReader(body))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	acks := ndjson(t, b)
	require.Len(t, acks, 4, string(b))
	require.Equal(t, testCID(t, "ok1").String(), acks[0]["cid"])
	require.EqualValues(t, 2, acks[1]["line"])
	require.EqualValues(t, 400, acks[1]["error"].(map[string]any)["code"], "refused pin")
	require.Equal(t, testCID(t, "ok2").String(), acks[2]["cid"])
	require.EqualValues(t, 4, acks[3]["line"])
	require.EqualValues(t, 400, acks[3]["error"].(map[string]any)["code"], "bad line")
	for _, s := range []string{"ok1", "ok2"} {
		_, err := c.PinGet(ctx, testCID(t, s))
		require.NoError(t, err, s)
	}
	for _, s := range []string{"expired", "after"} {
		_, err := c.PinGet(ctx, testCID(t, s))
		require.ErrorIs(t, err, pincluster.ErrNotFound, s)
	}

	// A bad first line: the whole answer is the error.
	for name, tc := range map[string]struct {
		body string
		code int
	}{
		"not json":  {"{nope\n" + pinLine(t, "x", "x"), http.StatusBadRequest},
		"no cid":    {`{"name":"x"}`, http.StatusBadRequest},
		"too long":  {`{"cid":"` + strings.Repeat("a", maxStreamLine) + `"}`, http.StatusRequestEntityTooLarge},
		"bad field": {fmt.Sprintf(`{"cid":%q,"mode":"sideways"}`, testCID(t, "m").String()), http.StatusBadRequest},
	} {
		resp, b := e.do("POST", "/pins/stream", strings.NewReader(tc.body))
		require.Equal(t, tc.code, resp.StatusCode, "%s: %s", name, b)
		var ej errorJSON
		require.NoError(t, json.Unmarshal(b, &ej), name)
		require.Contains(t, ej.Message, "line 1", name)
	}
	_, err := c.PinGet(ctx, testCID(t, "x"))
	require.ErrorIs(t, err, pincluster.ErrNotFound, "nothing after a bad first line")
}

// The body is bounded by MaxAddBytes: past it the stream ends with 413,
// and what was acknowledged before stays pinned.
func TestPinStreamBodyLimit(t *testing.T) {
	line := pinLine(t, "lim0", "n") + "\n"
	e, c := streamEnv(t, func(cfg *Config) { cfg.MaxAddBytes = int64(10*len(line) + len(line)/2) })
	pr, pw := io.Pipe()
	go func() {
		for i := range 20 {
			if _, err := io.WriteString(pw, pinLine(t, fmt.Sprint("lim", i), "n")+"\n"); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, b := e.do("POST", "/pins/stream", pr)
	acks := ndjson(t, b)
	require.NotEmpty(t, acks)
	last := acks[len(acks)-1]
	if resp.StatusCode == http.StatusOK {
		require.EqualValues(t, 413, last["error"].(map[string]any)["code"], string(b))
		for _, ack := range acks[:len(acks)-1] {
			ci, err := cid.Decode(ack["cid"].(string))
			require.NoError(t, err)
			_, err = c.PinGet(context.Background(), ci)
			require.NoError(t, err, "acknowledged %s is not in the state", ci)
		}
	} else {
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(b))
	}
	_, err := c.PinGet(context.Background(), testCID(t, "lim15"))
	require.ErrorIs(t, err, pincluster.ErrNotFound, "a line past the limit was pinned")
}

// Lines are answered while the body is still open: a client may send one
// line, wait for its answer, then send the next.
func TestPinStreamAnswersAsItReads(t *testing.T) {
	e, _ := streamEnv(t, nil)
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", e.url+"/pins/stream", pr)
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		done <- resp
	}()
	_, err = io.WriteString(pw, pinLine(t, "duplex0", "d")+"\n")
	require.NoError(t, err)
	resp := <-done
	require.NotNil(t, resp)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	for i := range 3 {
		if i > 0 {
			_, err := io.WriteString(pw, pinLine(t, fmt.Sprint("duplex", i), "d")+"\n")
			require.NoError(t, err)
		}
		require.True(t, sc.Scan(), "answer to line %d", i+1)
		var ack streamAck
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ack))
		require.Equal(t, i+1, ack.Line)
		require.Equal(t, testCID(t, fmt.Sprint("duplex", i)).String(), ack.Cid)
	}
	require.NoError(t, pw.Close())
	require.False(t, sc.Scan(), "nothing after the last line")
}

// A backend without bulk pinning answers 501.
func TestPinStreamNeedsBulkPinner(t *testing.T) {
	e := newEnv(t, nil)
	resp, b := e.do("POST", "/pins/stream", strings.NewReader(pinLine(t, "a", "a")))
	require.Equal(t, http.StatusNotImplemented, resp.StatusCode, string(b))
}
