package rest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/fake"
)

// Config.Middleware wraps what the API's own server runs, not Handler.
func TestMiddleware(t *testing.T) {
	var codes atomic.Int64
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			codes.Add(1)
			next.ServeHTTP(w, r)
		})
	}
	a, err := New(fake.New(), Config{ListenAddr: "127.0.0.1:0", Middleware: mw})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	defer func() { require.NoError(t, a.Shutdown(context.Background())) }()
	res, err := http.Get("http://" + a.Addr().String() + "/version")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, int64(1), codes.Load())
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/version", nil))
	require.Equal(t, int64(1), codes.Load())
}
