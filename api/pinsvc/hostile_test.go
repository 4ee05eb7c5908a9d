package pinsvc

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/fake"
)

// TestUnauthenticatedStalledBody (issue 15, defect 1): a request without
// a token that declares a body and never sends it is answered 401 at once
// and its connection closed. Before, net/http waited for the body (until
// ReadTimeout) before it wrote the 401, holding the connection.
func TestUnauthenticatedStalledBody(t *testing.T) {
	_, conn := serveRaw(t, fake.New(), Config{ReadTimeout: 10 * time.Minute})
	_, err := io.WriteString(conn, "POST /pins HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "no answer to an unauthenticated request with a stalled body")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", b)
	require.True(t, resp.Close, "the connection of a refused request is not kept")
	_, err = br.ReadByte()
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the connection open: %v", err)
}

// TestAuthThrottled: after AuthFailureBurst wrong tokens from one
// address, its requests with a token get 429 TOO_MANY_REQUESTS with
// Retry-After (the right token too); without a token, still 401.
func TestAuthThrottled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AuthFailureBurst = 3; c.AuthFailureInterval = time.Hour })
	for i := range 3 {
		code, b := e.do("wrong"+strconv.Itoa(i), "GET", "/pins", nil)
		requireFailure(t, code, http.StatusUnauthorized, b)
	}
	req, err := http.NewRequest("GET", e.url+"/pins", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tokenAlice)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	requireFailure(t, resp.StatusCode, http.StatusTooManyRequests, b)
	require.Contains(t, string(b), "TOO_MANY_REQUESTS")
	sec, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, sec)
	code, b := e.do("", "GET", "/pins", nil)
	requireFailure(t, code, http.StatusUnauthorized, b)
}
