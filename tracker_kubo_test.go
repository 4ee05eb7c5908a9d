package pincluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// countingConn counts the pin attempts per CID and the successes.
type countingConn struct {
	pincluster.IPFSConnector
	mu       sync.Mutex
	attempts map[cid.Cid]int
	done     int
	failed   int
}

func (c *countingConn) Pin(ctx context.Context, pin pincluster.Pin, progress func(pincluster.PinProgress)) error {
	c.mu.Lock()
	c.attempts[pin.Cid]++
	c.mu.Unlock()
	err := c.IPFSConnector.Pin(ctx, pin, progress)
	c.mu.Lock()
	if err == nil {
		c.done++
	} else {
		c.failed++
	}
	c.mu.Unlock()
	return err
}

func (c *countingConn) stats() (done, maxAttempts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.attempts {
		maxAttempts = max(maxAttempts, n)
	}
	return c.done, maxAttempts
}

// The default tracker on a real Kubo daemon (an IPFS node restart under load): 1,000
// pins queued, the daemon killed after about 300 and started again on the
// same repository: every pin ends pinned, none lost, none pinned twice,
// at most 3 attempts per CID.
func TestTrackerKuboRestart(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{Offline: true})
	kc, err := kubo.New(kubo.Config{APIAddr: d.APIAddr.String(), RequestTimeout: 5 * time.Second})
	require.NoError(t, err)
	conn := &countingConn{IPFSConnector: kc, attempts: map[cid.Cid]int{}}
	ctx := t.Context()
	const n = 1000
	cids := make([]cid.Cid, n)
	for i := range cids {
		cids[i], err = kc.BlockPut(ctx, fmt.Appendf(nil, "tracker-kubo-%d", i), cid.Prefix{})
		require.NoError(t, err)
	}
	c := clustertest.Start(t, clustertest.Setup{N: 1, InProcessIPFS: true,
		Options: []pincluster.Option{pincluster.WithConnector(conn)}})
	p := c.Peer(0)
	for _, ci := range cids {
		_, err := p.Pin(ctx, ci, pincluster.PinOptions{})
		require.NoError(t, err)
	}
	c.WaitFor("about 300 pinned", time.Minute, func() bool { done, _ := conn.stats(); return done >= 300 })
	d.Kill()
	doneAtKill, _ := conn.stats()
	d.Restart(t)

	c.WaitFor("all 1,000 pinned within 60 s of the restart", 60*time.Second, func() bool {
		k := 0
		for _, err := range p.StatusAll(ctx, pincluster.StatusFilter{Local: true, Status: pincluster.TrackerStatusPinned}) {
			if err != nil {
				return false
			}
			k++
		}
		return k == n
	})
	ours := map[cid.Cid]int{}
	for _, ci := range cids {
		ours[ci] = 0
	}
	for pi, err := range kc.PinLs(ctx, pincluster.IPFSPinStatusRecursive) {
		require.NoError(t, err)
		if _, ok := ours[pi.Cid]; ok { // ipfs init pins its own welcome files
			ours[pi.Cid]++
		}
	}
	for ci, k := range ours {
		require.Equal(t, 1, k, "Kubo lists %s once", ci)
	}
	done, most := conn.stats()
	conn.mu.Lock()
	failed := conn.failed
	conn.mu.Unlock()
	t.Logf("pinned before the kill: %d; failed attempts: %d", doneAtKill, failed)
	require.Less(t, doneAtKill, n, "the kill came before the pins were done")
	require.Positive(t, failed, "pins were attempted while Kubo was down (the kill interrupted them)")
	require.GreaterOrEqual(t, done, n)
	require.LessOrEqual(t, most, 3, "no pin/add storm")
	t.Logf("successful pin calls %d, most attempts for one CID %d", done, most)
}

// A direct pin upgraded to recursive through a real Kubo: the tracker
// pins again and Kubo holds the recursive pin before the peer reports
// pinned (issue 14).
func TestTrackerKuboModeUpgrade(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{Offline: true})
	kc, err := kubo.New(kubo.Config{APIAddr: d.APIAddr.String(), RequestTimeout: 5 * time.Second})
	require.NoError(t, err)
	ctx := t.Context()
	ci, err := kc.BlockPut(ctx, []byte("tracker-kubo-mode"), cid.Prefix{})
	require.NoError(t, err)
	c := clustertest.Start(t, clustertest.Setup{N: 1, InProcessIPFS: true,
		Options: []pincluster.Option{pincluster.WithConnector(kc)}})
	p := c.Peer(0)
	kuboMode := func() pincluster.IPFSPinStatus {
		s, err := kc.PinLsCid(ctx, pincluster.NewPin(ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect}))
		require.NoError(t, err)
		return s
	}
	_, err = p.Pin(ctx, ci, pincluster.PinOptions{Mode: pincluster.PinModeDirect})
	require.NoError(t, err)
	c.WaitStatus(0, ci, 20*time.Second, pinnedOn(1))
	require.Equal(t, pincluster.IPFSPinStatusDirect, kuboMode())

	_, err = p.Pin(ctx, ci, pincluster.PinOptions{})
	require.NoError(t, err)
	c.WaitFor("Kubo holds the recursive pin", 20*time.Second, func() bool {
		g, err := p.Status(ctx, ci, true)
		require.NoError(t, err)
		if g.PeerMap[p.ID()].Status == pincluster.TrackerStatusPinned {
			require.Equal(t, pincluster.IPFSPinStatusRecursive, kuboMode(), "reported pinned before Kubo upgraded")
		}
		return kuboMode() == pincluster.IPFSPinStatusRecursive
	})
	c.WaitStatus(0, ci, 20*time.Second, pinnedOn(1))
}
