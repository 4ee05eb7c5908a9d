package poll_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUntil(t *testing.T) {
	t.Run("done after three checks, one interval apart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			n := 0
			err := poll.Until(t.Context(), "op", 10*time.Millisecond, func() (bool, error) {
				n++
				return n == 3, nil
			})
			require.NoError(t, err)
			require.Equal(t, 3, n)
			require.Equal(t, 20*time.Millisecond, time.Since(start), "checked at once, then every interval")
		})
	})
	t.Run("error returned as is", func(t *testing.T) {
		boom := errors.New("boom")
		err := poll.Until(t.Context(), "op", time.Hour, func() (bool, error) { return false, boom })
		require.Same(t, boom, err)
	})
	t.Run("ctx ends the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			n := 0
			err := poll.Until(ctx, "wait for x", 300*time.Millisecond, func() (bool, error) { n++; return false, nil })
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.EqualError(t, err, "wait for x: context deadline exceeded")
			require.Equal(t, 4, n, "at 0, 300, 600 and 900 ms")
		})
	})
}
