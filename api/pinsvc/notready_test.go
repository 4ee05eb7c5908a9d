package pinsvc

import (
	"io"
	"net/http"
	"strings"
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
	req, err := http.NewRequest("POST", e.url+"/pins", strings.NewReader(`{"cid":"`+testCID(t, "warming").String()+`"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tokenAlice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	requireFailure(t, resp.StatusCode, 503, body)
	require.Equal(t, "3", resp.Header.Get("Retry-After"))
	require.Equal(t, 0, e.fake.PinCount(), "nothing recorded")
}
