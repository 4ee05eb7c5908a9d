package pincluster_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// ExampleAllocatePeers places one pin on three of six peers spread over
// two regions: the balanced allocator partitions the peers by their
// "tag:region" metric and orders each region by free space, so the
// replicas alternate between regions, the emptiest peers first. A ledger of
// reservations keeps a burst of pins from overfilling a peer before the
// peers publish fresh free-space metrics.
func ExampleAllocatePeers() {
	ctx := context.Background()
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{
		AllocateBy: []string{"tag:region", pincluster.MetricFreeSpace},
	})
	defer alloc.Shutdown(ctx)

	// Metrics as a PeerMonitor would report them (CollectMetrics).
	validUntil := time.Now().Add(30 * time.Second)
	metrics := map[peer.ID]pincluster.MetricsSet{}
	add := func(id, region string, freeGiB int64) {
		p := peer.ID(id)
		free := freeGiB << 30
		metrics[p] = pincluster.MetricsSet{
			"tag:region": {{Name: "tag:region", Peer: p, Value: region, Partitionable: true, ValidUntil: validUntil}},
			pincluster.MetricFreeSpace: {{Name: pincluster.MetricFreeSpace, Peer: p,
				Value: strconv.FormatInt(free, 10), Weight: free, ValidUntil: validUntil}},
		}
	}
	add("eu-1", "eu", 100)
	add("eu-2", "eu", 300)
	add("eu-3", "eu", 0) // full: never allocated
	add("us-1", "us", 200)
	add("us-2", "us", 50)
	add("us-3", "us", 120)

	c := cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	ledger := pincluster.NewReservations(pincluster.ReservationsConfig{})
	peers, err := pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: c, Size: 10 << 30, Min: 2, Max: 3, Metrics: metrics, Reservations: ledger,
	})
	fmt.Println(names(peers), err)
	fmt.Println("reserved on eu-2:", ledger.Outstanding("eu-2")>>30, "GiB")

	// The user asks for us-2 first; the pin already lives on eu-1.
	peers, err = pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{
		Cid: c, Min: 2, Max: 3, Metrics: metrics,
		Priority: []peer.ID{"us-2"}, Current: []peer.ID{"eu-1"},
	})
	fmt.Println(names(peers), err)

	// Six replicas cannot be placed on five peers with space.
	_, err = pincluster.AllocatePeers(ctx, alloc, pincluster.AllocationRequest{Cid: c, Min: 6, Max: 6, Metrics: metrics})
	var ae *pincluster.AllocationError
	fmt.Println(errors.Is(err, pincluster.ErrNotEnoughPeers), errors.As(err, &ae) && ae.Needed == 6 && ae.Available == 5)
	// Output:
	// [eu-2 us-1 us-3] <nil>
	// reserved on eu-2: 10 GiB
	// [us-2 eu-1 eu-2] <nil>
	// true true
}

// names shows peer IDs as the raw strings used in the example (a real
// peer.ID prints in its base58 form).
func names(ps []peer.ID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
