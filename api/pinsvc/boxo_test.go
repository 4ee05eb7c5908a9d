package pinsvc

import (
	"context"
	"fmt"
	"testing"
	"time"

	pinclient "github.com/ipfs/boxo/pinning/remote/client"
	"github.com/stretchr/testify/require"
)

// TestBoxoClient drives the API with boxo's remote pinning client (the one
// inside Kubo): add, get, replace, delete, and Ls paging by itself over
// more than 1,000 requests created within one clock tick.
func TestBoxoClient(t *testing.T) {
	frozen := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return frozen } })
	ctx := context.Background()
	cl := pinclient.NewClient(e.srv.URL, tokenAlice)

	c := testCID(t, "boxo")
	ps, err := cl.Add(ctx, c, pinclient.PinOpts.WithName("b"), pinclient.PinOpts.AddMeta(map[string]string{"k": "v"}))
	require.NoError(t, err)
	require.Equal(t, pinclient.StatusPinning, ps.GetStatus())
	require.Equal(t, "b", ps.GetPin().GetName())
	require.NotEmpty(t, ps.GetDelegates())
	got, err := cl.GetStatusByID(ctx, ps.GetRequestId())
	require.NoError(t, err)
	require.True(t, got.GetCreated().Equal(ps.GetCreated()))
	c2 := testCID(t, "boxo2")
	rep, err := cl.Replace(ctx, ps.GetRequestId(), c2)
	require.NoError(t, err)
	require.NotEqual(t, ps.GetRequestId(), rep.GetRequestId())
	_, err = cl.GetStatusByID(ctx, ps.GetRequestId())
	require.Error(t, err)
	require.NoError(t, cl.DeleteByID(ctx, rep.GetRequestId()))

	const n = 1050
	for i := range n {
		_, err := e.api.create(ctx, "alice", pinRequest{cid: testCID(t, fmt.Sprint("many", i))}, nil)
		require.NoError(t, err)
	}
	all, err := cl.LsSync(ctx, pinclient.PinOpts.FilterStatus(pinclient.StatusQueued, pinclient.StatusPinning, pinclient.StatusPinned, pinclient.StatusFailed))
	require.NoError(t, err)
	require.Len(t, all, n)
	seen := make(map[string]bool, n)
	for _, p := range all {
		require.False(t, seen[p.GetRequestId()], "duplicate across pages")
		seen[p.GetRequestId()] = true
	}
	byCid, err := cl.LsSync(ctx, pinclient.PinOpts.FilterCIDs(testCID(t, "many7")), pinclient.PinOpts.FilterStatus(pinclient.StatusPinning))
	require.NoError(t, err)
	require.Len(t, byCid, 1)
}
