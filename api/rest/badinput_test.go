package rest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/fake"
)

// TestPeerAddContentType: POST /peers refuses a body declared as anything
// but JSON with 415 and IPFS Cluster's error object, and adds no peer;
// application/json (any case, with parameters) and no Content-Type pass.
func TestPeerAddContentType(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"peer_id":"` + e.fake.Self().String() + `"}`
	for _, ct := range []string{
		"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/jsonx", "application/json; =bad", ";",
	} {
		resp, b := e.do("POST", "/peers", strings.NewReader(body), "Content-Type", ct)
		requireError(t, resp.StatusCode, http.StatusUnsupportedMediaType, b)
		require.Contains(t, string(b), "unsupported media type", ct)
	}
	require.Equal(t, 0, e.fake.Calls("AddPeer"), "a refused body added a peer")

	for i, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON"} {
		var hdr []string
		if ct != "" {
			hdr = []string{"Content-Type", ct}
		}
		resp, b := e.do("POST", "/peers", strings.NewReader(body), hdr...)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%q: %s", ct, b)
		require.Equal(t, i+1, e.fake.Calls("AddPeer"))
	}
}

// trickle sends the headers of a request with a body of n bytes, then the
// body one byte every gap, and returns the status of the answer (0 when
// the server closed the connection without one), how many body bytes the
// client could send before that, and when the answer came.
func trickle(t *testing.T, addr, head string, n int, gap time.Duration) (status, sent int, took time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n", head, n)
	require.NoError(t, err)
	start := time.Now()
	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			done <- answer{0, err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- answer{resp.StatusCode, nil}
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for sent < n {
		select {
		case a := <-done:
			t.Logf("answer after %d of %d body bytes, %s: status %d, err %v", sent, n, time.Since(start), a.status, a.err)
			return a.status, sent, time.Since(start)
		case <-tick.C:
			if _, err := conn.Write([]byte{' '}); err != nil {
				a := <-done
				return a.status, sent, time.Since(start)
			}
			sent++
		}
	}
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	a := <-done
	t.Logf("whole body of %d bytes sent in %s: status %d, err %v", n, time.Since(start), a.status, a.err)
	return a.status, sent, time.Since(start)
}

// TestSlowBody (slow clients): a body trickled slower than
// ReadTimeout is cut off with 408 (or a closed connection) before the
// client is done, /add gets AddReadTimeout instead, and the server keeps
// serving.
func TestSlowBody(t *testing.T) {
	const limit = 300 * time.Millisecond
	const n, gap = 40, 50 * time.Millisecond // 2s for the whole body
	start := func(cfg Config) (*API, string) {
		cfg.ListenAddr = "127.0.0.1:0"
		a, err := New(fake.New(), cfg)
		require.NoError(t, err)
		require.NoError(t, a.Start())
		t.Cleanup(func() { require.NoError(t, a.Shutdown(context.Background())) })
		return a, a.Addr().String()
	}
	cutOff := func(t *testing.T, status, sent int) {
		t.Helper()
		require.Less(t, sent, n, "the server waited for the whole slow body")
		if status != 0 {
			require.Equal(t, http.StatusRequestTimeout, status)
		}
	}

	_, addr := start(Config{ReadTimeout: limit})
	status, sent, _ := trickle(t, addr, "POST /peers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", n, gap)
	cutOff(t, status, sent)
	resp, err := http.Get("http://" + addr + "/version")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "still serving after a slow client")

	const addHead = "POST /add HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
	// /add is not bound by ReadTimeout but by AddReadTimeout.
	_, addr = start(Config{ReadTimeout: time.Minute, AddReadTimeout: limit})
	status, sent, _ = trickle(t, addr, addHead, n, gap)
	cutOff(t, status, sent)
	_, addr = start(Config{ReadTimeout: limit, AddReadTimeout: time.Minute})
	status, sent, _ = trickle(t, addr, addHead, 12, gap) // 600ms > ReadTimeout
	require.Equal(t, 12, sent)
	require.Equal(t, http.StatusBadRequest, status, "a slow /add within AddReadTimeout is read to its end (then refused: no file)")
}

// TestTimeoutDefaults: the REST API has non-zero read and write timeouts
// by default, and refuses negative ones.
func TestTimeoutDefaults(t *testing.T) {
	a, err := New(fake.New(), Config{})
	require.NoError(t, err)
	require.Equal(t, DefaultReadTimeout, a.cfg.ReadTimeout)
	require.Equal(t, DefaultAddReadTimeout, a.cfg.AddReadTimeout)
	require.Equal(t, DefaultWriteTimeout, a.cfg.WriteTimeout)
	for _, c := range []Config{{ReadTimeout: -1}, {AddReadTimeout: -1}, {WriteTimeout: -1}} {
		_, err := New(fake.New(), c)
		require.ErrorIs(t, err, ErrConfig)
	}
}
