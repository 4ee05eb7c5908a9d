package kubotest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// EnvBinary is the environment variable naming the Kubo binary.
const EnvBinary = "PINCLUSTER_KUBO"

// ReadyTimeout bounds how long Start and Restart wait for "Daemon is ready".
const ReadyTimeout = 90 * time.Second

// StopTimeout bounds how long Stop waits after SIGINT before it sends
// SIGKILL.
const StopTimeout = 20 * time.Second

// Binary returns the path of the Kubo binary named by PINCLUSTER_KUBO. When
// it is unset or not an executable file, the test fails (t.Fatal) if the
// environment has CI=true, and is skipped otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin != "" {
		if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return bin
		}
	}
	msg := fmt.Sprintf("kubotest: Kubo binary not available: set %s to an executable ipfs v0.42.0 (got %q)", EnvBinary, bin)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Options configure one daemon. The zero value is an online daemon whose
// Routing.Type is "none": swarm on loopback, bitswap with directly
// connected peers only, no DHT.
type Options struct {
	// Offline runs `ipfs daemon --offline`: no swarm, no bitswap; pin/add
	// of missing content fails at once. Default: online.
	Offline bool
	// RoutingNone states explicitly that Routing.Type is "none" (the
	// default anyway); it conflicts with a Routing other than "none".
	RoutingNone bool
	// Routing is the value of Routing.Type (e.g. "dht", "autoclient").
	// Default: "none".
	Routing string
	// Config holds extra configuration set before the first start, as
	// dotted keys (e.g. "Datastore.StorageMax") with JSON-encodable
	// values. Default: none.
	Config map[string]any
}

// Daemon is one running (or stopped) Kubo daemon and its repository.
// Its fields describe the current run: Restart updates them.
type Daemon struct {
	// Repo is the IPFS_PATH directory.
	Repo string
	// APIAddr is the RPC API multiaddr, read from $IPFS_PATH/api.
	APIAddr ma.Multiaddr
	// APIURL is the RPC API base URL, e.g. "http://127.0.0.1:44193".
	APIURL string
	// PeerID is the daemon's peer ID.
	PeerID peer.ID
	// SwarmAddrs are the daemon's swarm addresses without their /p2p/
	// part (empty when offline).
	SwarmAddrs []ma.Multiaddr

	t      testing.TB
	bin    string
	opts   Options
	client *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *logBuffer
	logs   []string // output of previous runs
}

// Start initialises a repository in t.TempDir(), starts a daemon on it and
// waits until it is ready. t.Cleanup stops it.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	if opts.RoutingNone && opts.Routing != "" && opts.Routing != "none" {
		t.Fatalf("kubotest: Options.RoutingNone conflicts with Options.Routing %q", opts.Routing)
	}
	if opts.Routing == "" {
		opts.Routing = "none"
	}
	d := &Daemon{
		Repo:   t.TempDir(),
		t:      t,
		bin:    Binary(t),
		opts:   opts,
		client: &http.Client{Transport: &http.Transport{}},
	}
	t.Cleanup(d.cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if out, err := d.Run(ctx, "init", "--profile=test"); err != nil {
		t.Fatalf("kubotest: ipfs init: %v\n%s", err, out)
	}
	cfg := map[string]any{
		"Plugins.Plugins.telemetry.Disabled": true,
		"Routing.Type":                       opts.Routing,
	}
	for k, v := range opts.Config {
		cfg[k] = v
	}
	if err := d.editConfig(cfg); err != nil {
		t.Fatalf("kubotest: %v", err)
	}
	d.start(t)
	return d
}

// AddrInfo returns the daemon's peer ID and swarm addresses.
func (d *Daemon) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: d.PeerID, Addrs: d.SwarmAddrs}
}

// Output returns everything the daemon printed so far (all runs).
func (d *Daemon) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := strings.Join(d.logs, "")
	if d.out != nil {
		s += d.out.String()
	}
	return s
}

func (d *Daemon) env() []string {
	return append(os.Environ(), "IPFS_PATH="+d.Repo, "IPFS_TELEMETRY=off")
}

// Run runs the ipfs CLI with args against the daemon's repository (through
// the running daemon when there is one) and returns its standard output.
// On failure the error includes the standard error.
func (d *Daemon) Run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = d.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubotest: ipfs %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// RPCError is the error of an RPC call answered with a non-200 status.
type RPCError struct {
	// Cmd is the command called, e.g. "pin/add".
	Cmd string
	// Status is the HTTP status code.
	Status int
	// Message is Kubo's error message (or the raw body).
	Message string
}

// Error implements error.
func (e *RPCError) Error() string {
	return fmt.Sprintf("kubotest: rpc %s: %d: %s", e.Cmd, e.Status, e.Message)
}

// RPC calls POST /api/v0/<cmd> with args as query parameters and returns
// the whole body. A non-200 answer is an *RPCError.
func (d *Daemon) RPC(ctx context.Context, cmd string, args url.Values) ([]byte, error) {
	return d.RPCBody(ctx, cmd, args, "", nil)
}

// RPCBody is RPC with a request body of the given content type (e.g. a
// multipart form for add or block/put).
func (d *Daemon) RPCBody(ctx context.Context, cmd string, args url.Values, contentType string, body io.Reader) ([]byte, error) {
	d.mu.Lock()
	base := d.APIURL
	d.mu.Unlock()
	u := base + "/api/v0/" + cmd
	if len(args) > 0 {
		u += "?" + args.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, fmt.Errorf("kubotest: rpc %s: %w", cmd, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubotest: rpc %s: %w", cmd, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return data, fmt.Errorf("kubotest: rpc %s: reading answer: %w", cmd, err)
	}
	if resp.StatusCode != http.StatusOK {
		var m struct{ Message string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &m) == nil && m.Message != "" {
			msg = m.Message
		}
		return data, &RPCError{Cmd: cmd, Status: resp.StatusCode, Message: msg}
	}
	if e := resp.Trailer.Get("X-Stream-Error"); e != "" {
		return data, &RPCError{Cmd: cmd, Status: resp.StatusCode, Message: e}
	}
	return data, nil
}

// Kill sends SIGKILL to the daemon and waits for it to exit. It does
// nothing when the daemon is not running.
func (d *Daemon) Kill() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	d.detach()
}

// Stop stops the daemon gracefully (SIGINT), sending SIGKILL if it has not
// exited after StopTimeout, and waits for it. It does nothing when the
// daemon is not running.
func (d *Daemon) Stop() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
	}
	d.detach()
}

// Restart stops the daemon if it runs (gracefully) and starts a new one on
// the same repository and the same RPC API address, so that a client made
// before the restart reaches the new daemon; it then refreshes SwarmAddrs
// (the swarm ports may change).
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop()
	d.start(t)
}

// Pid returns the process ID of the running daemon, or 0 when it is not
// running.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Running reports whether the daemon process is alive (as far as this
// package knows: a process that exited on its own is reported too).
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

func (d *Daemon) detach() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.out != nil {
		d.logs = append(d.logs, d.out.String())
	}
	d.cmd, d.exited, d.out = nil, nil, nil
}

func (d *Daemon) cleanup() {
	d.Stop()
	d.client.CloseIdleConnections()
	if d.t.Failed() {
		if out := d.Output(); out != "" {
			d.t.Logf("kubotest: daemon output (%s):\n%s", d.Repo, out)
		}
	}
}

// start launches the daemon and waits until it is ready.
func (d *Daemon) start(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	prevAPI := d.APIAddr
	d.mu.Unlock()
	if prevAPI != nil { // a restart: keep the RPC API where clients know it
		if err := d.editConfig(map[string]any{"Addresses.API": prevAPI.String()}); err != nil {
			t.Fatalf("kubotest: %v", err)
		}
	}
	args := []string{"daemon"}
	if d.opts.Offline {
		args = append(args, "--offline")
	}
	out := &logBuffer{ready: make(chan struct{})}
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.env()
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("kubotest: starting ipfs daemon: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.mu.Lock()
	d.cmd, d.exited, d.out = cmd, exited, out
	d.mu.Unlock()

	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case <-out.ready:
	case <-exited:
		d.detach()
		t.Fatalf("kubotest: ipfs daemon exited before it was ready:\n%s", d.Output())
	case <-timer.C:
		d.Kill()
		t.Fatalf("kubotest: ipfs daemon not ready after %v:\n%s", ReadyTimeout, d.Output())
	}
	if err := d.refresh(); err != nil {
		d.Kill()
		t.Fatalf("kubotest: %v\n%s", err, d.Output())
	}
}

// refresh reads the api file and the id call.
func (d *Daemon) refresh() error {
	raw, err := os.ReadFile(filepath.Join(d.Repo, "api"))
	if err != nil {
		return fmt.Errorf("reading api file: %w", err)
	}
	apiAddr, err := ma.NewMultiaddr(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("parsing api file: %w", err)
	}
	_, hostport, err := manet.DialArgs(apiAddr)
	if err != nil {
		return fmt.Errorf("api address %s: %w", apiAddr, err)
	}
	d.mu.Lock()
	d.APIAddr = apiAddr
	d.APIURL = "http://" + hostport
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := d.RPC(ctx, "id", nil)
	if err != nil {
		return err
	}
	var id struct {
		ID        string
		Addresses []string
	}
	if err := json.Unmarshal(body, &id); err != nil {
		return fmt.Errorf("decoding id: %w", err)
	}
	pid, err := peer.Decode(id.ID)
	if err != nil {
		return fmt.Errorf("id: peer ID %q: %w", id.ID, err)
	}
	var addrs []ma.Multiaddr
	for _, s := range id.Addresses {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("id: address %q: %w", s, err)
		}
		tr, _ := peer.SplitAddr(a)
		if tr != nil {
			addrs = append(addrs, tr)
		}
	}
	d.mu.Lock()
	d.PeerID = pid
	d.SwarmAddrs = addrs
	d.mu.Unlock()
	return nil
}

// editConfig sets dotted keys in the repository's config file.
func (d *Daemon) editConfig(kv map[string]any) error {
	path := filepath.Join(d.Repo, "config")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("decoding config: %w", err)
	}
	for key, v := range kv {
		parts := strings.Split(key, ".")
		m := cfg
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}

// logBuffer collects the daemon's output and signals "Daemon is ready".
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	seen  bool
}

var readyLine = []byte("Daemon is ready")

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if !b.seen && bytes.Contains(b.buf.Bytes(), readyLine) {
		b.seen = true
		close(b.ready)
	}
	return n, err
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ProcCPU returns the user and system CPU time a process has used so far,
// from /proc/<pid>/stat (clock ticks of 10 ms), for benchmarks that
// measure what a Kubo daemon spends.
func ProcCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and ends with the last ')'; then
	// state is the first field, utime and stime the 12th and 13th.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("kubotest: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("kubotest: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("kubotest: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
