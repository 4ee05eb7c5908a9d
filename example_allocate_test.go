package pincluster_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// The balanced allocator orders six peers spread over two regions: it
// partitions them by their "tag:region" metric and orders each region by
// free space, so consecutive replicas alternate between regions, the
// emptiest peers first; a full peer is never chosen. In a Cluster the same
// allocator is configured with WithAllocateBy("tag:region", "freespace"),
// and the answer is trimmed to the pin's replication factors.
func ExampleBalancedAllocator() {
	ctx := context.Background()
	alloc := pincluster.NewBalancedAllocator(pincluster.BalancedConfig{
		AllocateBy: []string{"tag:region", pincluster.MetricFreeSpace},
	})
	defer alloc.Shutdown(ctx)

	// Metrics as the peers publish them (Cluster.Metrics shows them).
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
	peers, err := alloc.Allocate(ctx, c, nil, metrics, nil)
	fmt.Println(names(peers), err)

	// The pin already lives on eu-1, and the user asks for us-2 first:
	// the user's peers come first, then the current ones, then the rest.
	priority := map[peer.ID]pincluster.MetricsSet{"us-2": metrics["us-2"]}
	current := map[peer.ID]pincluster.MetricsSet{"eu-1": metrics["eu-1"]}
	candidates := map[peer.ID]pincluster.MetricsSet{}
	for p, ms := range metrics {
		if p != "us-2" && p != "eu-1" {
			candidates[p] = ms
		}
	}
	peers, err = alloc.Allocate(ctx, c, current, candidates, priority)
	fmt.Println(names(peers), err)
	// Output:
	// [eu-2 us-1 us-3 eu-1 us-2] <nil>
	// [us-2 eu-1 eu-2 us-1 us-3] <nil>
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
