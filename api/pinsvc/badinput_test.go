package pinsvc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/fake"
	"github.com/pincluster/pincluster/api/rest"
)

// doCT is e.do with a Content-Type header ("" for none).
func (e *env) doCT(method, path, ct, body string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+tokenAlice)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, b
}

// TestContentType: POST /pins and POST /pins/{requestid} refuse a body
// declared as anything but JSON with 415 and a Failure, recording and
// pinning nothing; application/json (with parameters) and no
// Content-Type pass.
func TestContentType(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"cid":"` + testCID(t, "ct").String() + `"}`
	code, b := e.doCT("POST", "/pins", "application/json", body)
	require.Equal(t, http.StatusAccepted, code, string(b))
	id := decodeStatus(t, b).RequestID
	pins := e.fake.PinCount()

	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json-seq", "application/json; =x", ";"} {
		for _, path := range []string{"/pins", "/pins/" + id} {
			code, b := e.doCT("POST", path, ct, `{"cid":"`+testCID(t, "ct2").String()+`"}`)
			requireFailure(t, code, http.StatusUnsupportedMediaType, b)
			require.Contains(t, string(b), "UNSUPPORTED_MEDIA_TYPE", "%s %s", ct, path)
		}
	}
	require.Equal(t, pins, e.fake.PinCount(), "a refused body pinned something")
	code, b = e.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 1, decodeResults(t, b).Count, "a refused body was recorded")

	for i, ct := range []string{"", "application/json; charset=utf-8", "APPLICATION/JSON"} {
		code, b := e.doCT("POST", "/pins", ct, `{"cid":"`+testCID(t, fmt.Sprint("ok", i)).String()+`"}`)
		require.Equal(t, http.StatusAccepted, code, "%q: %s", ct, b)
	}
	code, b = e.doCT("POST", "/pins/"+id, "application/json", body)
	require.Equal(t, http.StatusAccepted, code, string(b))
}

// TestUnknownQueryOption: GET /pins refuses an unknown query key (a
// misspelt filter would list everything) with 400 naming the key.
func TestUnknownQueryOption(t *testing.T) {
	e := newEnv(t, nil)
	for q, key := range map[string]string{
		"stauts=pinned":     "stauts",
		"limit=5&offset=10": "offset",
		"cid=" + testCID(t, "x").String() + "&CID=y": "CID",
	} {
		code, b := e.do(tokenAlice, "GET", "/pins?"+q, nil)
		requireFailure(t, code, http.StatusBadRequest, b)
		var f failureJSON
		require.NoError(t, json.Unmarshal(b, &f))
		require.Contains(t, f.Error.Details, fmt.Sprintf("unknown query option %q", key), q)
	}
	all := "cid=" + testCID(t, "x").String() + "&name=a&match=partial&status=pinned&before=2030-01-01T00:00:00Z&after=2020-01-01T00:00:00Z&limit=5&meta=%7B%7D"
	code, b := e.do(tokenAlice, "GET", "/pins?"+all, nil)
	require.Equal(t, http.StatusOK, code, string(b))
}

// TestSlowBody (slow clients): a pin body trickled slower
// than ReadTimeout is cut off with 408 (or a closed connection) before
// the client is done; nothing is pinned and the server keeps serving.
func TestSlowBody(t *testing.T) {
	fb := fake.New()
	a, conn := serveRaw(t, fb, Config{ReadTimeout: 300 * time.Millisecond})
	body := []byte(`{"cid":"` + testCID(t, "slow").String() + `"}`) // 70 bytes: 3.5s at 50ms a byte
	_, err := fmt.Fprintf(conn, "POST /pins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	require.NoError(t, err)
	type answer struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			done <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{status: resp.StatusCode, body: b}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	var got answer
loop:
	for {
		select {
		case got = <-done:
			break loop
		case <-tick.C:
			if sent == len(body) {
				got = <-done
				break loop
			}
			if _, err := conn.Write(body[sent : sent+1]); err != nil {
				got = <-done
				break loop
			}
			sent++
		}
	}
	t.Logf("answer after %d of %d body bytes: %d %s %v", sent, len(body), got.status, got.body, got.err)
	require.Less(t, sent, len(body), "the server waited for the whole slow body")
	if got.err == nil {
		requireFailure(t, got.status, http.StatusRequestTimeout, got.body)
		require.Contains(t, string(got.body), "REQUEST_TIMEOUT")
	}
	require.Equal(t, 0, fb.PinCount())

	resp, err := http.Get("http://" + a.Addr().String() + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// TestRevokeSharedWithREST: with the REST API and this API sharing a JWT
// key and a revocation list, a token issued by POST /token works here
// until it is revoked at either API, after which both refuse it.
func TestRevokeSharedWithREST(t *testing.T) {
	key := bytes.Repeat([]byte("r"), 32)
	revoked := rest.NewRevocations()
	e := newEnv(t, func(c *Config) { c.JWTKey, c.Revocations = key, revoked })
	r, err := rest.New(fake.New(), rest.Config{BasicAuth: map[string]string{"alice": "pw"}, JWTKey: key, Revocations: revoked})
	require.NoError(t, err)
	hs := httptest.NewServer(r.Handler())
	t.Cleanup(hs.Close)
	rsrv := hs.URL

	restGet := func(tok string) int {
		req, err := http.NewRequest("GET", rsrv+"/version", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	issue := func() string {
		req, err := http.NewRequest("POST", rsrv+"/token", nil)
		require.NoError(t, err)
		req.SetBasicAuth("alice", "pw")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		var tj struct {
			Token string `json:"token"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&tj))
		return tj.Token
	}

	t1, t2 := issue(), issue()
	for _, tok := range []string{t1, t2} {
		code, b := e.do(tok, "GET", "/pins", nil)
		require.Equal(t, 200, code, string(b))
		require.Equal(t, 200, restGet(tok))
	}
	// Revoked at REST: refused here.
	require.NoError(t, r.RevokeToken(t1))
	code, b := e.do(t1, "GET", "/pins", nil)
	requireFailure(t, code, http.StatusUnauthorized, b)
	require.Equal(t, 401, restGet(t1))
	// Revoked here: refused at REST.
	require.NoError(t, e.api.RevokeToken(t2))
	code, b = e.do(t2, "GET", "/pins", nil)
	requireFailure(t, code, http.StatusUnauthorized, b)
	require.Equal(t, 401, restGet(t2))
	// Other tokens are unaffected; junk and tokens without a key do not
	// revoke.
	code, _ = e.do(tokenAlice, "GET", "/pins", nil)
	require.Equal(t, 200, code)
	require.Error(t, e.api.RevokeToken("junk"))
	noJWT := newEnv(t, nil)
	require.Error(t, noJWT.api.RevokeToken(issue()))
}
