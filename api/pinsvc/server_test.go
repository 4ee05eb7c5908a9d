package pinsvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/fake"
)

func TestServerLimits(t *testing.T) {
	a, err := New(fake.New(), Config{ListenAddr: "127.0.0.1:0", Tokens: map[string]string{"t": "u"}})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	base := "http://" + a.Addr().String()
	req, _ := http.NewRequest("GET", base+"/pins", nil)
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	require.NoError(t, a.Shutdown(context.Background()))
	require.ErrorIs(t, a.Shutdown(context.Background()), net.ErrClosed)

	_, err = New(fake.New(), Config{JWTKey: []byte("short")})
	require.ErrorIs(t, err, ErrConfig)
	_, err = New(nil, Config{})
	require.ErrorIs(t, err, ErrConfig)
}

// TestJWTUsers accepts JWTs signed with the shared key (as the REST API's
// POST /token issues them): the subject is the user.
func TestJWTUsers(t *testing.T) {
	key := bytes.Repeat([]byte("j"), 32)
	// Each forged token must be refused as such (401): throttling, which
	// would answer 429 after a few, is TestAuthThrottled's.
	e := newEnv(t, func(c *Config) { c.JWTKey = key; c.AuthFailureBurst = -1 })
	issuer, err := auth.New(auth.Config{JWTKey: key})
	require.NoError(t, err)
	tok, _, err := issuer.Issue("alice")
	require.NoError(t, err)
	_, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": testCID(t, "jwt").String()})
	id := decodeStatus(t, b).RequestID
	code, _ := e.do(tok, "GET", "/pins/"+id, nil)
	require.Equal(t, 200, code, "the JWT of alice sees alice's request")
	other, err := auth.New(auth.Config{JWTKey: bytes.Repeat([]byte("o"), 32)})
	require.NoError(t, err)
	forged, _, _ := other.Issue("alice")
	code, b = e.do(forged, "GET", "/pins/"+id, nil)
	requireFailure(t, code, 401, b)
}

// TestAuthAttacks attacks the Pinning Service API's auth: forged,
// expired and unsigned JWTs, tokens of another key, and /health the only
// route open without a token.
func TestAuthAttacks(t *testing.T) {
	key := bytes.Repeat([]byte("j"), 32)
	// Each forged token must be refused as such (401): throttling, which
	// would answer 429 after a few, is TestAuthThrottled's.
	e := newEnv(t, func(c *Config) { c.JWTKey = key; c.AuthFailureBurst = -1 })
	sign := func(method jwt.SigningMethod, k any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(k)
		require.NoError(t, err)
		return s
	}
	now := time.Now()
	valid := jwt.MapClaims{"sub": "alice", "jti": "v1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	code, b := e.do(sign(jwt.SigningMethodHS256, key, valid), "GET", "/pins", nil)
	require.Equal(t, 200, code, string(b))

	bad := map[string]string{
		"no token":      "",
		"wrong token":   "not-a-token",
		"expired JWT":   sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "jti": "v2", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}),
		"JWT no exp":    sign(jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "jti": "v3"}),
		"alg none JWT":  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"other key JWT": sign(jwt.SigningMethodHS256, bytes.Repeat([]byte("o"), 32), valid),
		"HS512 JWT":     sign(jwt.SigningMethodHS512, key, valid),
		"token + junk":  tokenAlice + "x",
		"token prefix":  tokenAlice[:len(tokenAlice)-1],
	}
	routes := [][2]string{{"GET", "/pins"}, {"POST", "/pins"}, {"GET", "/pins/x"}, {"POST", "/pins/x"}, {"DELETE", "/pins/x"}, {"GET", "/"}, {"GET", "/health/x"}}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			for _, r := range routes {
				code, b := e.do(tok, r[0], r[1], `{"cid":"`+testCID(t, "a").String()+`"}`)
				requireFailure(t, code, 401, b)
				require.Contains(t, string(b), "UNAUTHORIZED")
			}
		})
	}
	require.Equal(t, 0, e.fake.PinCount())

	// Basic auth is not a Pinning Service credential.
	req, err := http.NewRequest("GET", e.url+"/pins", nil)
	require.NoError(t, err)
	req.SetBasicAuth("alice", tokenAlice)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)

	code, b = e.do("", "GET", "/health", nil)
	require.Equal(t, http.StatusNoContent, code, string(b))
}

// serveRaw starts an API over b with cfg (on a loopback port, with the
// token "t"), shut down at the end of the test, and returns it with a raw
// TCP connection to it, for clients that misbehave below HTTP.
func serveRaw(t *testing.T, b Backend, cfg Config) (*API, net.Conn) {
	t.Helper()
	cfg.ListenAddr, cfg.Tokens = "127.0.0.1:0", map[string]string{"t": "u"}
	a, err := New(b, cfg)
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() { require.NoError(t, a.Shutdown(context.Background())) })
	conn, err := net.Dial("tcp", a.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return a, conn
}

// TestSlowLoris: a client that sends half a request and goes silent is
// disconnected after ReadHeaderTimeout, and the server keeps serving.
func TestSlowLoris(t *testing.T) {
	a, conn := serveRaw(t, fake.New(), Config{ReadHeaderTimeout: 300 * time.Millisecond})
	_, err := io.WriteString(conn, "GET /pins HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadByte()
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "server kept the connection open: %v", err)
	t.Logf("slow-loris connection closed after %s", time.Since(start))

	resp, err := http.Get("http://" + a.Addr().String() + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}
