package kubo_test

// A real Kubo daemon on loopback for the tests (INTEROP.md §1.2). Temporary:
// to be replaced by internal/kubotest once it lands.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kuboBinary returns the Kubo binary named by PINCLUSTER_KUBO; the test
// fails without it when CI=true and skips otherwise.
func kuboBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PINCLUSTER_KUBO")
	if bin != "" {
		if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
			return bin
		}
	}
	msg := fmt.Sprintf("Kubo binary not available: set PINCLUSTER_KUBO to an executable ipfs v0.42.0 (got %q)", bin)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type daemonOptions struct {
	offline bool
	apiPort int // 0: any
}

// daemon is one Kubo daemon with its own repository.
type daemon struct {
	t       testing.TB
	bin     string
	repo    string
	opts    daemonOptions
	cmd     *exec.Cmd
	apiAddr string
	log     *syncBuffer
}

type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if strings.Contains(b.buf.String(), "Daemon is ready") {
		b.once.Do(func() { close(b.ready) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startDaemon(t testing.TB, opts daemonOptions) *daemon {
	t.Helper()
	d := &daemon{t: t, bin: kuboBinary(t), repo: t.TempDir(), opts: opts}
	d.run("init", "--profile=test")
	d.run("config", "--json", "Plugins.Plugins.telemetry.Disabled", "true")
	d.run("config", "Routing.Type", "none")
	if opts.apiPort != 0 {
		d.run("config", "Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", opts.apiPort))
	}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) env() []string {
	return append(os.Environ(), "IPFS_PATH="+d.repo, "IPFS_TELEMETRY=off")
}

// run runs the ipfs CLI on the daemon's repository and returns its stdout.
func (d *daemon) run(args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = d.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(d.t, err, "ipfs %v: %s", args, stderr.String())
	return strings.TrimSpace(string(out))
}

func (d *daemon) start() {
	d.t.Helper()
	args := []string{"daemon"}
	if d.opts.offline {
		args = append(args, "--offline")
	}
	d.log = &syncBuffer{ready: make(chan struct{})}
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Env = d.env()
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	require.NoError(d.t, d.cmd.Start())
	select {
	case <-d.log.ready:
	case <-time.After(60 * time.Second):
		d.kill()
		d.t.Fatalf("kubo did not start: %s", d.log.String())
	}
	api, err := os.ReadFile(filepath.Join(d.repo, "api"))
	require.NoError(d.t, err)
	d.apiAddr = strings.TrimSpace(string(api))
}

// kill sends SIGKILL and waits.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}

// stop sends SIGINT and waits (SIGKILL after 20 s).
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	if d.t.Failed() {
		d.t.Logf("kubo log (%s):\n%s", d.repo, d.log.String())
	}
	d.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
