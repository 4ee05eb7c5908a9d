package clustertest_test

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/clustertest"
)

// recordingTB records Logf lines and holds the cleanups until run.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	lines    []string
	cleanups []func()
}

func (r *recordingTB) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recordingTB) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// NewLogger writes one t.Logf line per record at or above its level, and
// nothing once the test's cleanups ran.
func TestNewLogger(t *testing.T) {
	rec := &recordingTB{TB: t}
	log := clustertest.NewLogger(rec, slog.LevelInfo).With("peer", 2)
	log.Debug("hidden")
	log.Info("hello", "k", 1)
	log.Warn("careful")
	lines := rec.Lines()
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "level=INFO msg=hello peer=2 k=1")
	require.Contains(t, lines[1], "level=WARN msg=careful peer=2")
	require.NotContains(t, lines[0], "\n")

	for _, f := range rec.cleanups {
		f()
	}
	log.Error("after the test")
	require.Len(t, rec.Lines(), 2, "nothing logged after cleanup")
}

// Start's peers log to t.Log; Setup.LogLevel chooses the least level.
func TestStartLogsToTest(t *testing.T) {
	rec := &recordingTB{TB: t}
	clustertest.Start(rec, clustertest.Setup{N: 1, LogLevel: slog.LevelDebug, ReadyOnly: true})
	for i := len(rec.cleanups) - 1; i >= 0; i-- { // as the test's end would
		rec.cleanups[i]()
	}
	lines := rec.Lines()
	require.NotEmpty(t, lines)
	require.Contains(t, lines[0], "index=0")
}
