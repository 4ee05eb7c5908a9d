package pinsvc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/fake"
	"github.com/pincluster/pincluster/api/rest"
)

// bothAPIs serves the REST API and the Pinning Service API of one real
// peer, and returns the peer with a REST caller (method, path: status,
// body) and a Pinning Service env.
func bothAPIs(t *testing.T) (*pincluster.Cluster, func(method, path string) (int, string), *env) {
	t.Helper()
	c, a, psURL := clusterAPI(t)
	r, err := rest.New(c, rest.Config{})
	require.NoError(t, err)
	restURL := serveHandler(t, r.Handler())
	restDo := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, restURL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	return c, restDo, &env{t: t, api: a, url: psURL}
}

func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func hasPin(t *testing.T, c *pincluster.Cluster, ci cid.Cid) (pincluster.Pin, bool) {
	t.Helper()
	for _, p := range pinsOf(t, c) {
		if p.Cid.Equals(ci) {
			return p, true
		}
	}
	return pincluster.Pin{}, false
}

// TestOwnershipAcrossAPIs (issue 15, defects 3 and 4) runs the two
// cross-API sequences on a real peer serving both APIs:
//   - PSA create X → REST pin X (name, metadata) → PSA delete: X stays
//     pinned, with the REST pin's name (before: unpinned);
//   - PSA create X → REST unpin X → PSA create X: X is pinned again and
//     the new request is not failed (before: 202 failed, X absent).
func TestOwnershipAcrossAPIs(t *testing.T) {
	c, restDo, e := bothAPIs(t)

	t.Run("PSA delete keeps the REST pin", func(t *testing.T) {
		e := *e
		e.t = t
		x := testCID(t, "shared between the APIs")
		code, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": x.String(), "name": "psa"})
		require.Equal(t, http.StatusAccepted, code, string(b))
		req := decodeStatus(t, b)
		p, ok := hasPin(t, c, x)
		require.True(t, ok)
		require.Len(t, marks(p), 1, "the pin made for the request carries this API's mark")

		code, body := restDo("POST", "/pins/"+x.String()+"?name=rest-pin&meta-owner=ops")
		require.Equal(t, http.StatusOK, code, body)
		code, b = e.do(tokenAlice, "DELETE", "/pins/"+req.RequestID, nil)
		require.Equal(t, http.StatusAccepted, code, string(b))
		p, ok = hasPin(t, c, x)
		require.True(t, ok, "deleting the Pinning Service request removed the REST API's pin")
		require.Equal(t, "rest-pin", p.Name)
		require.Equal(t, "ops", p.Metadata["owner"])
	})

	t.Run("a new request re-pins", func(t *testing.T) {
		e := *e
		e.t = t
		y := testCID(t, "unpinned behind the service's back")
		code, b := e.do(tokenAlice, "POST", "/pins", map[string]any{"cid": y.String()})
		require.Equal(t, http.StatusAccepted, code, string(b))
		first := decodeStatus(t, b)
		code, body := restDo("DELETE", "/pins/"+y.String())
		require.Equal(t, http.StatusOK, code, body)
		_, ok := hasPin(t, c, y)
		require.False(t, ok)
		code, b = e.do(tokenBob, "POST", "/pins", map[string]any{"cid": y.String()})
		require.Equal(t, http.StatusAccepted, code, string(b))
		second := decodeStatus(t, b)
		require.NotEqual(t, StatusFailed, second.Status, "new request for a CID that left the pinset: %s", second.Info["status_details"])
		_, ok = hasPin(t, c, y)
		require.True(t, ok, "a new request for a CID that left the pinset did not pin it")
		// Both requests hold it now; the last delete unpins it.
		for _, r := range []struct{ tok, id string }{{tokenAlice, first.RequestID}, {tokenBob, second.RequestID}} {
			code, _ = e.do(r.tok, "DELETE", "/pins/"+r.id, nil)
			require.Equal(t, http.StatusAccepted, code)
		}
		_, ok = hasPin(t, c, y)
		require.False(t, ok, "the service's own pin outlived its last request")
	})
}

// TestOwnershipHolders: the holder rules with a fake cluster: a pin made
// by another client (no mark) is never taken over or removed; a REST
// re-pin takes a marked pin over; two Pinning Service APIs (two peers)
// share a pin, and the last one to release it unpins it; a mark copied to
// another CID counts for nothing; request meta may not forge a mark.
func TestOwnershipHolders(t *testing.T) {
	fb := fake.New()
	ctx := context.Background()
	newAPI := func() *API {
		a, err := New(fb, Config{Tokens: map[string]string{tokenAlice: "alice"}})
		require.NoError(t, err)
		return a
	}
	a1 := newAPI()
	// A second peer's service: same cluster, its own peer ID.
	other := otherPeer{fb}
	a2, err := New(other, Config{Tokens: map[string]string{tokenAlice: "alice"}})
	require.NoError(t, err)

	x := testCID(t, "x")
	r1, err := a1.create(ctx, "alice", pinRequest{cid: x, meta: map[string]string{"k": "v"}}, nil)
	require.NoError(t, err)
	r2, err := a2.create(ctx, "alice", pinRequest{cid: x}, nil)
	require.NoError(t, err)
	p, _ := fb.PinGet(ctx, x)
	require.Len(t, marks(p), 2)
	require.Equal(t, "v", p.Metadata["k"], "the first request's meta is kept")
	require.NoError(t, a1.delete(ctx, "alice", r1.RequestID))
	p, err = fb.PinGet(ctx, x)
	require.NoError(t, err, "the other peer's service still holds x")
	require.Len(t, marks(p), 1)
	require.NoError(t, a2.delete(ctx, "alice", r2.RequestID))
	require.False(t, fb.Has(x), "the last holder's release unpins")

	// A pin of another client, without a mark: never taken over.
	theirs := testCID(t, "theirs")
	_, err = fb.Pin(ctx, theirs, pincluster.PinOptions{Name: "rest"})
	require.NoError(t, err)
	r, err := a1.create(ctx, "alice", pinRequest{cid: theirs}, nil)
	require.NoError(t, err)
	p, _ = fb.PinGet(ctx, theirs)
	require.Empty(t, marks(p))
	require.NoError(t, a1.delete(ctx, "alice", r.RequestID))
	require.True(t, fb.Has(theirs))

	// A mark copied onto another CID (PinUpdate copies metadata) does not
	// make that pin the service's.
	y, z := testCID(t, "y"), testCID(t, "z")
	ry, err := a1.create(ctx, "alice", pinRequest{cid: y}, nil)
	require.NoError(t, err)
	_, err = fb.PinUpdate(ctx, y, z, pincluster.PinOptions{})
	require.NoError(t, err)
	rz, err := a1.create(ctx, "alice", pinRequest{cid: z}, nil)
	require.NoError(t, err)
	require.NoError(t, a1.delete(ctx, "alice", rz.RequestID))
	require.True(t, fb.Has(z), "z was pinned by the REST API's update, not by the service")
	require.NoError(t, a1.delete(ctx, "alice", ry.RequestID))
	require.False(t, fb.Has(y))

	// Request meta cannot forge a mark, and leaves room for marks.
	_, err = parsePinBody([]byte(`{"cid":"` + x.String() + `","meta":{"` + HolderMarkPrefix + `x":"y"}}`))
	require.ErrorIs(t, err, errBadRequest)
	meta := make([]string, 0, pincluster.MaxMetadataKeys)
	for i := range pincluster.MaxMetadataKeys - ReservedMetaKeys + 1 {
		meta = append(meta, fmt.Sprintf(`"k%d":"v"`, i))
	}
	_, err = parsePinBody([]byte(`{"cid":"` + x.String() + `","meta":{` + strings.Join(meta, ",") + `}}`))
	require.ErrorIs(t, err, errBadRequest)
	_, err = parsePinBody([]byte(`{"cid":"` + x.String() + `","meta":{` + strings.Join(meta[1:], ",") + `}}`))
	require.NoError(t, err)
}

// otherPeer is the fake cluster seen from another peer (another host ID).
type otherPeer struct{ *fake.Backend }

type otherHost struct{ host.Host }

func (otherHost) ID() peer.ID           { return peer.ID("another peer") }
func (otherHost) Addrs() []ma.Multiaddr { return nil }

func (otherPeer) Host() host.Host { return otherHost{} }
