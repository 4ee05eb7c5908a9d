package defaults_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/defaults"
)

func TestSet(t *testing.T) {
	var d time.Duration
	require.NoError(t, defaults.Set("D", &d, time.Second))
	require.Equal(t, time.Second, d, "zero takes the default")
	d = 5 * time.Second
	require.NoError(t, defaults.Set("D", &d, time.Second))
	require.Equal(t, 5*time.Second, d, "a set value stays")
	d = -time.Second
	require.EqualError(t, defaults.Set("D", &d, time.Second), "D -1s is negative")
	require.Equal(t, -time.Second, d)
	n := -3
	require.EqualError(t, defaults.Set("N", &n, 7), "N -3 is negative")

	require.NoError(t, defaults.NotNegative("X", 0))
	err := errors.Join(defaults.NotNegative("X", -1.5), defaults.NotNegative("Y", int64(2)))
	require.EqualError(t, err, "X -1.5 is negative")
}

func TestLogger(t *testing.T) {
	l := slog.New(slog.DiscardHandler)
	require.Same(t, l, defaults.Logger(l))
	require.NotNil(t, defaults.Logger(nil))
	defaults.Logger(nil).Error("discarded")
}
