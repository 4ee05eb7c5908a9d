package rest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
)

// A peer still warming up fails a pin with the transient ErrNotReady: the
// API answers 503 with Retry-After, not 500.
func TestPinNotReadyIs503(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.Fail("Pin", &pincluster.NotReadyError{Op: "pin", RetryAfter: 2500 * time.Millisecond,
		Err: &pincluster.AllocationError{Needed: 2, Available: 1}})
	resp, body := e.do("POST", "/pins/"+testCID(t, "warming").String(), nil)
	require.Equal(t, 503, resp.StatusCode, string(body))
	require.Equal(t, "3", resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "not ready")
}
