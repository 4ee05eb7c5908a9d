// Package poll waits for a condition that nothing signals, by asking it
// again at a fixed interval until it holds, fails, or the caller's context
// ends. The consensuses' WaitForSync use it.
package poll

import (
	"context"
	"fmt"
	"time"
)

// Until calls check at once and then every interval until check reports
// done or returns an error (returned as is), or ctx ends: then the error
// is "<op>: " and ctx.Err(), wrapped. interval must be positive.
func Until(ctx context.Context, op string, interval time.Duration, check func() (done bool, err error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
}
