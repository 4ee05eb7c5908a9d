package kubo_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
)

// Pin a CID on a local Kubo daemon and watch its progress; a pin whose
// block count stops moving can be abandoned by cancelling ctx.
func Example() {
	conn, err := kubo.New(kubo.Config{
		APIAddr: "/ip4/127.0.0.1/tcp/5001",
		Logger:  slog.Default(),
	})
	if err != nil {
		panic(err)
	}
	defer conn.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, _ := cid.Decode("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
	err = conn.Pin(ctx, pincluster.NewPin(c, pincluster.PinOptions{Name: "foo"}), func(p pincluster.PinProgress) {
		fmt.Println("fetched", p.Blocks, "blocks,", p.Bytes, "bytes")
	})
	switch {
	case errors.Is(err, pincluster.ErrIPFSUnavailable):
		fmt.Println("daemon down, retry later:", err)
	case err != nil:
		fmt.Println("pin failed:", err)
	}
}
