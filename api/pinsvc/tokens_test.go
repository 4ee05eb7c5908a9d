package pinsvc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/fake"
)

func listAs(t *testing.T, h http.Handler, token string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/pins", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// SetTokens replaces the token set of a running API; an empty set that
// would open the API is refused and the old set stays.
func TestSetTokens(t *testing.T) {
	a, err := New(fake.New(), Config{Tokens: map[string]string{"tokA": "alice", "tokB": "bob"}})
	require.NoError(t, err)
	h := a.Handler()
	require.Equal(t, http.StatusOK, listAs(t, h, "tokB"))
	require.Equal(t, http.StatusUnauthorized, listAs(t, h, "tokC"))

	require.NoError(t, a.SetTokens(map[string]string{"tokA": "alice", "tokC": "carol"}))
	require.Equal(t, http.StatusOK, listAs(t, h, "tokA"))
	require.Equal(t, http.StatusUnauthorized, listAs(t, h, "tokB"))
	require.Equal(t, http.StatusOK, listAs(t, h, "tokC"))

	require.ErrorIs(t, a.SetTokens(nil), ErrConfig)
	require.ErrorIs(t, a.SetTokens(map[string]string{"": "nobody"}), ErrConfig)
	require.Equal(t, http.StatusOK, listAs(t, h, "tokC"), "a refused set leaves the old one in force")
	require.Equal(t, http.StatusUnauthorized, listAs(t, h, ""))
}

// Config.Middleware wraps what the API's own server runs, not Handler.
func TestMiddleware(t *testing.T) {
	var seen atomic.Int64
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			next.ServeHTTP(w, r)
		})
	}
	a, err := New(fake.New(), Config{ListenAddr: "127.0.0.1:0", Tokens: map[string]string{"t": "u"}, Middleware: mw})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	defer func() { require.NoError(t, a.Shutdown(context.Background())) }()
	res, err := http.Get("http://" + a.Addr().String() + "/health")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, int64(1), seen.Load())
	listAs(t, a.Handler(), "t")
	require.Equal(t, int64(1), seen.Load())
}
