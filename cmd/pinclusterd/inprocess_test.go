package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lineWriter collects what the daemon prints and signals its ready line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "\nready\n") {
		select {
		case <-w.ready:
		default:
			close(w.ready)
		}
	}
	return len(p), nil
}

func (w *lineWriter) url(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for l := range strings.SplitSeq(w.buf.String(), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// inProcess runs the daemon in this process with cfg over a fresh data
// directory, waits for its ready line and returns what it printed and a
// function that stops it (SIGTERM's path) and returns its error.
func inProcess(t *testing.T, cfg Config) (*lineWriter, func() error) {
	t.Helper()
	dir := t.TempDir()
	_, key, err := newKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, identityFile), key, 0o600))
	require.NoError(t, cfg.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- runDaemon(ctx, daemonParams{cfg: cfg, dir: dir, stdout: out, stderr: io.Discard})
	}()
	stopped := false
	stop := func() error {
		t.Helper()
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("daemon did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-out.ready:
	case err := <-done:
		stopped = true
		cancel()
		t.Fatalf("daemon stopped before ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("daemon not ready")
	}
	return out, stop
}

// testConfig is a loopback configuration with the REST API only.
func testConfig() Config {
	cfg := defaultConfig()
	cfg.Peer.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.REST.Listen = "127.0.0.1:0"
	cfg.PinSvc.Listen = ""
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Log.Level = "error"
	return cfg
}

// With metrics.otlp_endpoint, the spans of the Cluster's operations are
// exported over OTLP/HTTP (flushed at shutdown at the latest).
func TestOTLPTraces(t *testing.T) {
	spans := make(chan int, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && len(b) > 0 {
			select {
			case spans <- len(b):
			default: // enough seen
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	cfg := testConfig()
	cfg.Metrics.OTLPEndpoint = strings.TrimPrefix(collector.URL, "http://")
	cfg.Metrics.OTLPInsecure = true
	out, stop := inProcess(t, cfg)
	res, err := http.Post(out.url("rest")+"/pins/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "", nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, stop())
	select {
	case n := <-spans:
		require.Positive(t, n)
	default:
		t.Fatal("no spans reached the OTLP endpoint")
	}
}

// peer.follower makes a follower: /health says so, and writes are refused.
func TestFollowerMode(t *testing.T) {
	cfg := testConfig()
	cfg.Peer.Follower = true
	out, stop := inProcess(t, cfg)
	res, err := http.Get(out.url("metrics") + "/health")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(b), `"follower":true`)
	res, err = http.Post(out.url("rest")+"/pins/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "", nil)
	require.NoError(t, err)
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.GreaterOrEqual(t, res.StatusCode, 400, string(b))
	require.Contains(t, string(b), "follower")
	require.NoError(t, stop())
}
