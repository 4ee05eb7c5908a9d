package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
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
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/kubotest"
	"github.com/pincluster/pincluster/internal/poll"
)

// TestMain lets the test binary run as the daemon itself (child process)
// when PINCLUSTER_DAEMON_CHILD is set, so the smoke test needs no go build.
func TestMain(m *testing.M) {
	if os.Getenv("PINCLUSTER_DAEMON_CHILD") == "1" {
		os.Args = append([]string{"daemon"}, strings.Fields(os.Getenv("PINCLUSTER_DAEMON_ARGS"))...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// lockedBuffer collects a child's standard error; exec copies into it
// from its own goroutine while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is one run of the daemon as a child process.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	// peer is the peer ID printed on the "peer" line; urls maps "rest" and
	// "pinsvc" to their base URLs.
	peer    string
	urls    map[string]string
	drained chan struct{}
}

// childEnv is the test's environment without PINCLUSTER_* variables (the
// test command sets PINCLUSTER_KUBO, which is not the daemon's business),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PINCLUSTER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startDaemon runs the daemon on dir with loopback listeners and extra
// flags, and waits for its "ready" line.
func startDaemon(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = childEnv(
		"PINCLUSTER_DAEMON_CHILD=1",
		"PINCLUSTER_DAEMON_ARGS=-dir "+dir+" -listen /ip4/127.0.0.1/tcp/0 -rest-listen 127.0.0.1:0 -pinsvc-listen 127.0.0.1:0 "+strings.Join(extra, " "),
		"PINCLUSTER_REST_PASSWORD=pw", // secrets from the environment
		"PINCLUSTER_PINSVC_TOKEN=tok",
	)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	d := &daemon{t: t, cmd: cmd, stderr: &lockedBuffer{}, urls: map[string]string{}, drained: make(chan struct{})}
	cmd.Stderr = d.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if line == "ready" {
			ready = true
			break
		}
		k, v, _ := strings.Cut(line, " ")
		if k == "peer" {
			d.peer, _, _ = strings.Cut(v, " ")
		} else {
			d.urls[k] = v
		}
	}
	require.True(t, ready, "no ready line; stderr: %s", d.stderr.String())
	require.Contains(t, d.urls, "rest")
	require.Contains(t, d.urls, "pinsvc")
	require.NotEmpty(t, d.peer)
	go func() { // read the child's output to its end before Wait
		defer close(d.drained)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return d
}

// stop sends SIGTERM and requires a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGTERM))
	<-d.drained
	require.NoError(d.t, d.cmd.Wait(), "exit status; stderr: %s", d.stderr.String())
}

// do sends a request with the REST password or PSA token (auth true) and
// decodes a JSON answer into out (unless nil).
func (d *daemon) do(api, method, path, contentType string, body io.Reader, auth bool, out any) int {
	d.t.Helper()
	req, err := http.NewRequest(method, d.urls[api]+path, body)
	require.NoError(d.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth && api == "rest" {
		req.SetBasicAuth("admin", "pw")
	} else if auth {
		req.Header.Set("Authorization", "Bearer tok")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(d.t, json.Unmarshal(b, out), "%s", b)
	}
	if resp.StatusCode >= 500 {
		d.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// TestSmoke runs the daemon, uses both APIs, stops it with SIGTERM, and
// starts it again on the same directory: same identity, the pin and the
// pin request are still there.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)

	require.Equal(t, http.StatusNoContent, d.do("rest", "GET", "/health", "", nil, false, nil))
	require.Equal(t, http.StatusUnauthorized, d.do("rest", "GET", "/id", "", nil, false, nil))
	var id struct {
		ID    string `json:"id"`
		Error string `json:"error"`
		IPFS  struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		} `json:"ipfs"`
	}
	require.Equal(t, http.StatusOK, d.do("rest", "GET", "/id", "", nil, true, &id))
	require.Equal(t, d.peer, id.ID)
	require.Empty(t, id.Error)
	require.Empty(t, id.IPFS.Error)
	require.NotEmpty(t, id.IPFS.ID)

	// Add "foo" through the REST API: the in-process node holds and pins it.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "foo.txt")
	require.NoError(t, err)
	_, _ = io.WriteString(fw, "foo")
	require.NoError(t, mw.Close())
	var added []struct {
		Cid string `json:"cid"`
	}
	require.Equal(t, http.StatusOK, d.do("rest", "POST", "/add?cid-version=1&raw-leaves=true&stream-channels=false", mw.FormDataContentType(), &body, true, &added))
	require.Len(t, added, 1)
	const foo = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
	require.Equal(t, foo, added[0].Cid)
	waitPinned(t, d, foo)

	// A pin request through the Pinning Service API.
	require.Equal(t, http.StatusUnauthorized, d.do("pinsvc", "GET", "/pins", "", nil, false, nil))
	var ps struct {
		RequestID string   `json:"requestid"`
		Delegates []string `json:"delegates"`
	}
	require.Equal(t, http.StatusAccepted, d.do("pinsvc", "POST", "/pins", "application/json",
		strings.NewReader(`{"cid":"`+foo+`","name":"smoke"}`), true, &ps))
	require.NotEmpty(t, ps.RequestID)
	require.NotEmpty(t, ps.Delegates)
	d.stop()

	// Restart on the same directory.
	d2 := startDaemon(t, dir)
	require.Equal(t, d.peer, d2.peer, "identity kept")
	waitPinned(t, d2, foo)
	var got struct {
		Status string `json:"status"`
		Pin    struct {
			Name string `json:"name"`
		} `json:"pin"`
	}
	require.Equal(t, http.StatusOK, d2.do("pinsvc", "GET", "/pins/"+ps.RequestID, "", nil, true, &got))
	require.Equal(t, "smoke", got.Pin.Name)
	require.Equal(t, "pinned", got.Status)
	d2.stop()
}

// waitPinned polls GET /pins/<cid> (100 ms apart, up to 30 s) until the
// daemon's own peer reports pinned.
func waitPinned(t *testing.T, d *daemon, c string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var last string
	err := poll.Until(ctx, "waiting for pinned", 100*time.Millisecond, func() (bool, error) {
		var st struct {
			PeerMap map[string]struct {
				Status string `json:"status"`
			} `json:"peer_map"`
		}
		if d.do("rest", "GET", "/pins/"+c, "", nil, true, &st) == http.StatusOK {
			last = st.PeerMap[d.peer].Status
		}
		return last == "pinned", nil
	})
	if err != nil {
		t.Fatalf("%s not pinned on %s within 30 s (last status %q): %v", c, d.peer, last, err)
	}
}

// TestKubo runs the README's "pointing Kubo at the daemon" steps with a
// real Kubo v0.42.0: Kubo pins into the daemon with `ipfs pin remote`
// (data fetched from Kubo), and a second daemon uses Kubo as its IPFS node
// (-kubo-api), so a pin made through the REST API is pinned in Kubo.
func TestKubo(t *testing.T) {
	k := kubotest.Start(t, kubotest.Options{})
	d := startDaemon(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		out, err := k.Run(ctx, args...)
		require.NoError(t, err, "ipfs %s: %s", strings.Join(args, " "), out)
		return strings.TrimSpace(string(out))
	}
	run("pin", "remote", "service", "add", "pincluster", d.urls["pinsvc"], "tok")
	file := filepath.Join(t.TempDir(), "hello.txt")
	require.NoError(t, os.WriteFile(file, []byte("hello from kubo "+t.Name()), 0o644))
	c := run("add", "-Q", "--cid-version=1", file)
	run("pin", "remote", "add", "--service=pincluster", "--name=hello", c) // blocks until pinned
	out := run("pin", "remote", "ls", "--service=pincluster")
	require.Contains(t, out, c)
	require.Contains(t, out, "hello")
	waitPinned(t, d, c) // in the cluster, on the daemon's own node
	run("pin", "remote", "rm", "--service=pincluster", "--name=hello")
	require.Empty(t, run("pin", "remote", "ls", "--service=pincluster"))
	d.stop()

	// The daemon with Kubo as its IPFS node: a CID Kubo holds, pinned
	// through the REST API, ends up pinned in Kubo. (The Kubo connector
	// cannot import files: /add needs the in-process node.)
	d2 := startDaemon(t, t.TempDir(), "-kubo-api", k.APIAddr.String())
	require.NoError(t, os.WriteFile(file, []byte("pinned through the daemon into kubo "+t.Name()), 0o644))
	c2 := run("add", "-Q", "--cid-version=1", "--pin=false", file)
	require.Equal(t, http.StatusOK, d2.do("rest", "POST", "/pins/"+c2+"?name=via-kubo", "", nil, true, nil))
	waitPinned(t, d2, c2)
	require.Contains(t, run("pin", "ls", "--type=recursive", c2), c2, "pinned in Kubo")
	d2.stop()
}
