package clustertest_test

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// A test scripts the mock IPFS node: the first pin attempt fails as if the
// daemon were down, the second succeeds.
func ExampleMockConnector() {
	ctx := context.Background()
	ipfs := clustertest.NewMockConnector(clustertest.MockStorageMax(1 << 20))
	defer ipfs.Shutdown(ctx)

	c, _ := cid.Decode("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
	ipfs.SetSize(c, 3)
	ipfs.FailCalls(clustertest.MethodPin, 1, pincluster.ErrIPFSUnavailable)

	pin := pincluster.NewPin(c, pincluster.PinOptions{Name: "foo"})
	err := ipfs.Pin(ctx, pin, nil)
	fmt.Println("first attempt unavailable:", errors.Is(err, pincluster.ErrIPFSUnavailable))
	err = ipfs.Pin(ctx, pin, nil)
	fmt.Println("second attempt:", err)

	st, _ := ipfs.PinLsCid(ctx, pin)
	repo, _ := ipfs.RepoStat(ctx)
	fmt.Println(st, repo.RepoSize, ipfs.Calls(clustertest.MethodPin))
	// Output:
	// first attempt unavailable: true
	// second attempt: <nil>
	// recursive 3 2
}
