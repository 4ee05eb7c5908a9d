package pinsvc

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/fake"
)

func TestServerLimits(t *testing.T) {
	a, err := New(context.Background(), fake.New(), Config{ListenAddr: "127.0.0.1:0", Tokens: map[string]string{"t": "u"}})
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

	_, err = New(context.Background(), fake.New(), Config{JWTKey: []byte("short")})
	require.ErrorIs(t, err, ErrConfig)
	_, err = New(context.Background(), nil, Config{})
	require.ErrorIs(t, err, ErrConfig)
}

// TestJWTUsers accepts JWTs signed with the shared key (as the REST API's
// POST /token issues them): the subject is the user.
func TestJWTUsers(t *testing.T) {
	key := bytes.Repeat([]byte("j"), 32)
	e := newEnv(t, func(c *Config) { c.JWTKey = key })
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
