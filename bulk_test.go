package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// PinMany logs its requests as one batch (one delta for fewer than the
// batch size), answers each in order, refuses the bad ones alone, and
// every pin it acknowledges is in the state, and reaches the other peer.
func TestPinManyOneBatch(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 2})
	p, q := c.Peer(0), c.Peer(1)
	ctx := context.Background()
	var reqs []pincluster.PinRequest
	for i := range 500 {
		reqs = append(reqs, pincluster.PinRequest{Cid: testCID(t, fmt.Sprint("many-", i)), Opts: pincluster.PinOptions{Name: fmt.Sprint("n", i)}})
	}
	reqs[7].Cid = cid.Undef
	reqs[9].Opts.ExpireAt = time.Now().Add(-time.Hour)
	before := pincluster.LocalDeltas(p.Cluster)
	res, err := p.PinMany(ctx, reqs)
	require.NoError(t, err)
	require.Len(t, res, len(reqs))
	require.Equal(t, before+1, pincluster.LocalDeltas(p.Cluster), "one delta for the batch")
	for i, r := range res {
		switch i {
		case 7:
			require.ErrorIs(t, r.Err, pincluster.ErrInvalidCID)
		case 9:
			require.ErrorIs(t, r.Err, pincluster.ErrExpired)
		default:
			require.NoError(t, r.Err, i)
			require.Equal(t, reqs[i].Cid, r.Pin.Cid)
			got, err := p.PinGet(ctx, reqs[i].Cid)
			require.NoError(t, err, "acknowledged pin %d not in the state", i)
			require.Equal(t, fmt.Sprint("n", i), got.Name)
		}
	}
	_, err = p.PinGet(ctx, testCID(t, "many-9"))
	require.ErrorIs(t, err, pincluster.ErrNotFound)
	c.WaitFor("the batch on the other peer", 30*time.Second, func() bool {
		_, err := q.PinGet(ctx, reqs[len(reqs)-1].Cid)
		return err == nil
	})

	// Pinning the same again logs nothing.
	res, err = p.PinMany(ctx, reqs[:5])
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.Equal(t, before+1, pincluster.LocalDeltas(p.Cluster), "nothing changed, nothing logged")

	_, err = p.PinMany(ctx, make([]pincluster.PinRequest, pincluster.MaxPinBatch+1))
	var ve *pincluster.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
}

// PinStream pins what a channel carries, in batches, and yields every
// result once durable; it ends when the channel is closed.
func TestPinStream(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 1})
	p := c.Peer(0)
	ctx := context.Background()
	reqs := make(chan pincluster.PinRequest)
	const n = 2500
	go func() {
		defer close(reqs)
		for i := range n {
			reqs <- pincluster.PinRequest{Cid: testCID(t, fmt.Sprint("stream-", i))}
		}
	}()
	got := 0
	for res, err := range p.PinStream(ctx, reqs) {
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
			require.Equal(t, testCID(t, fmt.Sprint("stream-", got)), r.Pin.Cid, "in order")
			_, err := p.PinGet(ctx, r.Pin.Cid)
			require.NoError(t, err, "yielded before it was in the state")
			got++
		}
	}
	require.Equal(t, n, got)

	// A closed peer ends the stream with an error.
	more := make(chan pincluster.PinRequest, 1)
	more <- pincluster.PinRequest{Cid: testCID(t, "after-close")}
	require.NoError(t, p.Shutdown(ctx))
	var last error
	for _, err := range p.PinStream(ctx, more) {
		last = err
	}
	require.ErrorIs(t, last, pincluster.ErrClosed)
}
