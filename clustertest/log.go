package clustertest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// NewLogger returns a logger that writes each record at level or above
// through t.Logf (shown with -v or when the test fails), until the test's
// cleanup: the records logged after that are dropped, so that a goroutine
// still running then does not log into a finished test. Start gives one to
// every peer (pincluster.WithLogger), each record carrying the peer's
// index.
func NewLogger(t testing.TB, level slog.Leveler) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// testWriter forwards whole lines to t.Logf until stopped.
type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Logf("%s", strings.TrimSuffix(string(bytes.Clone(p)), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
