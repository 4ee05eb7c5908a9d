package pincluster_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// T3, CI-short variant: 5 peers on mocknet, 3 rounds of a random minority
// cut off then healed, under a continuous load of pins and unpins (5
// clients, each on its own peer and its own CIDs, one op per 100 ms at
// most); each partition lasts until every client has finished 30
// operations during it, so that load runs on both sides however slow the
// machine is.
// After the final heal every peer converges to the same pinset, which is
// exactly what the acknowledged operations say (no acknowledged pin lost,
// no acknowledged unpin undone), and the goroutine count comes back to
// its level before the partitions.
func TestClusterFlappingPartitions(t *testing.T) {
	const peers, rounds = 5, 3
	c := clustertest.Start(t, clustertest.Setup{N: peers})
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 14))

	// want[ci] is the last acknowledged operation on ci: true = pinned.
	var mu sync.Mutex
	want := map[cid.Cid]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops [peers]atomic.Int64 // operations finished, per client
	for client := range peers {
		wg.Go(func() {
			p := c.Peer(client)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			var mine []cid.Cid
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if i > 0 {
					ops[client].Add(1)
				}
				if i%3 == 2 && len(mine) > 0 { // every third op unpins one of ours
					ci := mine[i%len(mine)]
					if _, err := p.Unpin(ctx, ci); err == nil {
						mu.Lock()
						want[ci] = false
						mu.Unlock()
					} else if !errors.Is(err, pincluster.ErrNotFound) {
						t.Errorf("client %d unpin: %v", client, err)
					}
					continue
				}
				ci := testCID(t, fmt.Sprint("flap-", client, "-", i))
				if _, err := p.Pin(ctx, ci, pincluster.PinOptions{Name: fmt.Sprint("c", client)}); err != nil {
					t.Errorf("client %d pin: %v", client, err)
					continue
				}
				mine = append(mine, ci)
				mu.Lock()
				want[ci] = true
				mu.Unlock()
			}
		})
	}

	// opsEach waits until every client has finished n more operations.
	opsEach := func(what string, n int64) {
		var start [peers]int64
		for i := range ops {
			start[i] = ops[i].Load()
		}
		c.WaitFor(what, 2*time.Minute, func() bool {
			for i := range ops {
				if ops[i].Load()-start[i] < n {
					return false
				}
			}
			return true
		})
	}
	opsEach("the load started on every peer", 10)
	runtime.GC()
	baseline := runtime.NumGoroutine()
	for range rounds {
		// A random minority of 1 or 2 peers.
		perm := rng.Perm(peers)
		minority := perm[:1+rng.IntN(2)]
		for _, a := range minority {
			for b := range peers {
				if !contains(minority, b) {
					c.Cut(a, b)
				}
			}
		}
		opsEach("30 operations per client during the partition", 30)
		for _, a := range minority {
			for b := range peers {
				if !contains(minority, b) {
					c.Heal(a, b)
				}
			}
		}
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	// At least 10 + 3·30 operations per client, two in three of them pins
	// of new CIDs.
	require.GreaterOrEqual(t, len(want), peers*60, "the load ran")
	c.WaitFor("every peer's pinset equals the acknowledged operations", 30*time.Second, func() bool {
		for _, p := range c.Peers {
			got := map[cid.Cid]bool{}
			for pin, err := range p.Pins(ctx, pincluster.PinFilter{}) {
				if err != nil {
					return false
				}
				got[pin.Cid] = true
			}
			for ci, pinned := range want {
				if got[ci] != pinned {
					return false
				}
			}
			for ci := range got {
				if _, ok := want[ci]; !ok {
					return false
				}
			}
		}
		return true
	})
	// Nothing accumulates: once the fetches that waited on the other side
	// of a cut have ended, the goroutines are back within 10 % of the
	// count under load before the first cut.
	c.WaitFor("goroutines back to the level before the partitions", 30*time.Second, func() bool {
		runtime.GC()
		return float64(runtime.NumGoroutine()) <= 1.1*float64(baseline)
	})
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
