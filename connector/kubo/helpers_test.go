package kubo_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pincluster/pincluster/internal/kubotest"
	"github.com/stretchr/testify/require"
)

// run runs the ipfs CLI against d and returns its trimmed standard output.
func run(t testing.TB, d *kubotest.Daemon, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.Run(ctx, args...)
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// signalTransport signals on ch each time an answer to a call of op starts
// (its headers arrived): the call is in flight on the daemon.
type signalTransport struct {
	op string
	ch chan struct{}
	rt http.RoundTripper
}

func (s *signalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/"+s.op) {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return resp, err
}

// signalClient returns a client whose calls of op signal on the returned
// channel, and closes its idle connections at the end of the test.
func signalClient(t testing.TB, op string) (*http.Client, <-chan struct{}) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ch := make(chan struct{}, 1)
	return &http.Client{Transport: &signalTransport{op: op, ch: ch, rt: tr}}, ch
}
