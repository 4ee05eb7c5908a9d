package rest

import (
	"net/http"
	"net/http/httptest"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

func streamTest(w http.ResponseWriter, seq func(yield func(pincluster.GlobalPinInfo, error) bool)) {
	httpx.StreamNDJSON(w, seq, func(g pincluster.GlobalPinInfo) any { return toGlobalPinInfoJSON(g) }, func(error) {})
}

func serveTest(t interface{ Cleanup(func()) }, a *API) *httptest.Server {
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func cidMust(t require.TestingT, s string) cid.Cid {
	c, err := cid.Decode(s)
	require.NoError(t, err)
	return c
}
