package optracker_test

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster/internal/optracker"
)

// The owner supplies the pin and unpin functions and learns how each
// operation ended through OnFinish.
func Example() {
	finished := make(chan optracker.Op, 4)
	tr, err := optracker.New(optracker.Config{
		Pin: func(ctx context.Context, op optracker.Op, progress optracker.ProgressFunc) error {
			// A real owner asks its IPFS node, reporting progress as
			// blocks arrive; each report resets the idle timeout.
			progress(optracker.Progress{Bytes: 1024, Blocks: 4})
			return nil
		},
		Unpin: func(ctx context.Context, op optracker.Op, _ optracker.ProgressFunc) error {
			return nil
		},
		OnFinish: func(op optracker.Op) { finished <- op },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close(context.Background())

	c, _ := cid.Decode("bafkqaaa")
	if _, err := tr.Enqueue(c, optracker.OpPin, "my pin"); err != nil {
		fmt.Println(err)
		return
	}
	op := <-finished
	fmt.Println(op.Type, op.Phase, op.Attempts, op.Progress.Blocks, op.Meta)
	// Output: pin done 1 4 my pin
}
