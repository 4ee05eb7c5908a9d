// Command state opens a pinset stored in Badger, adds pins to it, lists
// them and exports them as newline-delimited JSON: the State part of
// pincluster on its own.
//
//	go run ./examples/state [-dir DIR] [-n N]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
)

func main() {
	dir := flag.String("dir", "", "Badger directory (default: a temporary one, removed at exit)")
	n := flag.Int("n", 5, "how many pins to add")
	flag.Parse()
	if err := run(context.Background(), *dir, *n, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "state:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, n int, out io.Writer) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pincluster-state-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	st, err := pincluster.OpenState(pincluster.WithBadger(dir))
	if err != nil {
		return err
	}
	defer st.Close()

	for i := range n {
		h, err := mh.Sum(fmt.Appendf(nil, "example %d", i), mh.SHA2_256, -1)
		if err != nil {
			return err
		}
		pin := pincluster.NewPin(cid.NewCidV1(cid.Raw, h), pincluster.PinOptions{
			Name:           fmt.Sprintf("example-%d", i),
			ReplicationMin: 1,
			ReplicationMax: 2,
		})
		if err := st.Add(ctx, pin); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "pins in %s:\n", dir)
	count := 0
	for pin, err := range st.List(ctx) {
		if err != nil {
			return err
		}
		count++
		fmt.Fprintf(out, "  %s  %s\n", pin.Cid, pin.Name)
	}
	fmt.Fprintf(out, "%d pins; export:\n", count)
	return st.Export(ctx, out)
}
