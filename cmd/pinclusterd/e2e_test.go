package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/kubotest"
)

// buildBinary builds pinclusterd into a temporary directory, as an
// operator's `go install` would.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pinclusterd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// lockedBuffer collects a child's output; exec copies into it from its
// own goroutine while the test may read it.
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

// childEnv is the environment without PINCLUSTER_* variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PINCLUSTER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCmd runs the binary to completion and returns its exit code and
// outputs.
func runCmd(t *testing.T, bin string, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return code, o.String(), e.String()
}

// daemonProc is one run of `pinclusterd daemon`.
type daemonProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	urls   map[string]string // rest, pinsvc, ipfsproxy, metrics
	peer   string
	exited chan struct{}
	code   int
}

// startDaemon starts the daemon and waits for its ready line.
func startDaemon(t *testing.T, bin, dir string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, "daemon", "-dir", dir)
	cmd.Env = childEnv()
	d := &daemonProc{t: t, cmd: cmd, stderr: &lockedBuffer{}, urls: map[string]string{}, exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(ready)
			case len(f) >= 2 && f[0] == "peer":
				d.peer = f[1]
			case len(f) == 2:
				d.urls[f[0]] = f[1]
			}
		}
		_ = cmd.Wait()
		d.code = cmd.ProcessState.ExitCode()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", d.stderr.String())
		}
	})
	select {
	case <-ready:
	case <-d.exited:
		t.Fatalf("daemon exited with %d before ready:\n%s", d.code, d.stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("daemon not ready after 90s:\n%s", d.stderr.String())
	}
	return d
}

// stop sends SIGTERM and returns the exit code.
func (d *daemonProc) stop() int {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.exited:
	case <-time.After(90 * time.Second):
		d.t.Fatalf("daemon did not exit 90s after SIGTERM:\n%s", d.stderr.String())
	}
	return d.code
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func doHTTP(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

// restPins lists the shared pinset through the REST API.
func restPins(t *testing.T, rest string) []string {
	t.Helper()
	code, body := doHTTP(t, http.MethodGet, rest+"/allocations", "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var out []string
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
		var list []struct {
			Cid string `json:"cid"`
		}
		if err := json.Unmarshal(v, &list); err != nil {
			var one struct {
				Cid string `json:"cid"`
			}
			require.NoError(t, json.Unmarshal(v, &one))
			list = append(list, one)
		}
		for _, p := range list {
			out = append(out, p.Cid)
		}
	}
	slices.Sort(out)
	return out
}

// restStatus returns the pin's status on the (single) peer.
func restStatus(t *testing.T, rest, c string) string {
	t.Helper()
	code, body := doHTTP(t, http.MethodGet, rest+"/pins/"+c, "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var gpi struct {
		PeerMap map[string]struct {
			Status string `json:"status"`
		} `json:"peer_map"`
	}
	require.NoError(t, json.Unmarshal(body, &gpi))
	for _, s := range gpi.PeerMap {
		return s.Status
	}
	return ""
}

func scrape(t *testing.T, metricsURL string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := doHTTP(t, http.MethodGet, metricsURL+"/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "the scrape does not parse as the Prometheus text format")
	return fams
}

// value returns the value of the family's series whose labels include
// labels; ok false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// ipfsCLI runs Kubo's command line against the proxy.
func ipfsCLI(t *testing.T, kubo *kubotest.Daemon, proxyURL string, args ...string) string {
	t.Helper()
	hostport := strings.TrimPrefix(proxyURL, "http://")
	host, port, _ := strings.Cut(hostport, ":")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := kubo.Run(ctx, append([]string{"--api=/ip4/" + host + "/tcp/" + port}, args...)...)
	require.NoError(t, err, "ipfs %v through the proxy", args)
	return string(out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// TestOperatorLifecycle runs the built binary as an operator would: init,
// daemon over Kubo, pins through REST, the Pinning Service with two users
// from a tokens file (reloaded on SIGHUP) and the IPFS proxy through the
// real ipfs command line, a Prometheus scrape, SIGTERM, restart, state
// export, import into a fresh peer, and identical pinsets.
func TestOperatorLifecycle(t *testing.T) {
	kubo := kubotest.Start(t, kubotest.Options{})
	bin := buildBinary(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, "# test users\ntokA alice\ntokB bob\n")

	code, out, errOut := runCmd(t, bin, nil, "init", "-dir", dir,
		"-ipfs-kubo-api", kubo.APIAddr.String(),
		"-peer-listen", "/ip4/127.0.0.1/tcp/0",
		"-rest-listen", "127.0.0.1:0", "-pinsvc-listen", "127.0.0.1:0",
		"-ipfsproxy-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0",
		"-pinsvc-tokens-file", tokens, "-peer-monitor-interval", "2s")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "peer 12D3Koo")
	conf, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	require.NoError(t, err)
	require.Contains(t, string(conf), "# Cluster name; every peer of one cluster uses the same.\ncluster = \"default\"")
	require.Contains(t, string(conf), "tokens_file = "+tomlString(tokens))

	// A second init refuses to overwrite.
	code, _, errOut = runCmd(t, bin, nil, "init", "-dir", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "exists")

	d := startDaemon(t, bin, dir)
	for _, k := range []string{"rest", "pinsvc", "ipfsproxy", "metrics"} {
		require.NotEmpty(t, d.urls[k], "ready lines name the %s listener", k)
	}
	code, body := doHTTP(t, http.MethodGet, d.urls["metrics"]+"/health", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"status":"ready"`)

	ctx := context.Background()
	// Content in Kubo, not pinned there: the cluster pins it.
	var cids []string
	for i := range 4 {
		f := filepath.Join(t.TempDir(), "f")
		writeFile(t, f, fmt.Sprintf("pinclusterd e2e content %d", i))
		out, err := kubo.Run(ctx, "add", "-Q", "--pin=false", f)
		require.NoError(t, err)
		cids = append(cids, strings.TrimSpace(string(out)))
	}

	// REST.
	rest := d.urls["rest"]
	for _, c := range cids[:2] {
		code, body := doHTTP(t, http.MethodPost, rest+"/pins/"+c, "", nil)
		require.Equal(t, http.StatusOK, code, string(body))
	}
	for _, c := range cids[:2] {
		require.Eventually(t, func() bool { return restStatus(t, rest, c) == "pinned" }, time.Minute, 100*time.Millisecond)
	}

	// Pinning Service: two users of the tokens file.
	psa := d.urls["pinsvc"]
	code, body = doHTTP(t, http.MethodPost, psa+"/pins", "tokA", strings.NewReader(`{"cid":"`+cids[2]+`","name":"alice's"}`))
	require.Equal(t, http.StatusAccepted, code, string(body))
	code, body = doHTTP(t, http.MethodPost, psa+"/pins", "tokB", strings.NewReader(`{"cid":"`+cids[3]+`","name":"bob's"}`))
	require.Equal(t, http.StatusAccepted, code, string(body))
	listOf := func(tok string) (int, []string) {
		code, body := doHTTP(t, http.MethodGet, psa+"/pins", tok, nil)
		var l struct {
			Count   int `json:"count"`
			Results []struct {
				Pin struct {
					Cid string `json:"cid"`
				} `json:"pin"`
			} `json:"results"`
		}
		if code == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &l))
		}
		var cs []string
		for _, r := range l.Results {
			cs = append(cs, r.Pin.Cid)
		}
		return code, cs
	}
	code, got := listOf("tokA")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []string{cids[2]}, got, "alice sees her request only")
	code, got = listOf("tokB")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []string{cids[3]}, got, "bob sees his request only")
	code, _ = listOf("nope")
	require.Equal(t, http.StatusUnauthorized, code)

	// SIGHUP reloads the tokens file: bob leaves, carol arrives.
	writeFile(t, tokens, "tokA alice\ntokC carol\n")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		c1, _ := listOf("tokB")
		c2, _ := listOf("tokC")
		return c1 == http.StatusUnauthorized && c2 == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	// A broken tokens file is refused; the tokens in force stay.
	writeFile(t, tokens, "tokA alice extra-field\n")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(d.stderr.String(), "tokens not reloaded") }, 30*time.Second, 50*time.Millisecond)
	code, _ = listOf("tokC")
	require.Equal(t, http.StatusOK, code)
	writeFile(t, tokens, "tokA alice\ntokC carol\n")

	// Kubo's own Pinning Service client, as user alice.
	_, err = kubo.Run(ctx, "pin", "remote", "service", "add", "pc", psa, "tokA")
	require.NoError(t, err)
	_, err = kubo.Run(ctx, "pin", "remote", "add", "--service=pc", "--name=via-kubo", cids[0])
	require.NoError(t, err)
	remote, err := kubo.Run(ctx, "pin", "remote", "ls", "--service=pc", "--status=pinned")
	require.NoError(t, err)
	require.Contains(t, string(remote), cids[0])
	require.Contains(t, string(remote), "via-kubo")

	// The IPFS proxy through Kubo's own command line.
	proxy := d.urls["ipfsproxy"]
	extra := filepath.Join(t.TempDir(), "extra")
	writeFile(t, extra, "pinned through the proxy")
	out2, err := kubo.Run(ctx, "add", "-Q", "--pin=false", extra)
	require.NoError(t, err)
	viaProxy := strings.TrimSpace(string(out2))
	require.Contains(t, ipfsCLI(t, kubo, proxy, "pin", "add", viaProxy), "pinned "+viaProxy+" recursively")
	require.Contains(t, restPins(t, rest), viaProxy, "pin add through the proxy pins in the cluster")
	ls := ipfsCLI(t, kubo, proxy, "pin", "ls", "--type=recursive")
	for _, c := range append([]string{viaProxy}, cids...) {
		require.Contains(t, ls, c+" recursive")
	}
	require.Contains(t, ipfsCLI(t, kubo, proxy, "pin", "rm", viaProxy), "unpinned "+viaProxy)
	require.NotContains(t, restPins(t, rest), viaProxy)

	// pin update moves the pin; repo gc then removes the old content.
	require.Contains(t, ipfsCLI(t, kubo, proxy, "pin", "add", viaProxy), "pinned "+viaProxy)
	extra2 := filepath.Join(t.TempDir(), "extra2")
	writeFile(t, extra2, "the updated content")
	out2, err = kubo.Run(ctx, "add", "-Q", "--pin=false", extra2)
	require.NoError(t, err)
	updated := strings.TrimSpace(string(out2))
	ipfsCLI(t, kubo, proxy, "pin", "update", viaProxy, updated)
	pins := restPins(t, rest)
	require.Contains(t, pins, updated)
	require.NotContains(t, pins, viaProxy)
	require.Eventually(t, func() bool { return restStatus(t, rest, updated) == "pinned" }, time.Minute, 100*time.Millisecond)
	// Kubo unpins the old CID once the tracker has caught up with the unpin.
	require.Eventually(t, func() bool {
		out, err := kubo.Run(ctx, "pin", "ls", "--type=recursive")
		return err == nil && !strings.Contains(string(out), viaProxy)
	}, time.Minute, 100*time.Millisecond)
	// Kubo names removed blocks by their multihash, as raw CIDv1.
	old, err := cid.Decode(viaProxy)
	require.NoError(t, err)
	require.Contains(t, ipfsCLI(t, kubo, proxy, "repo", "gc"), "removed "+cid.NewCidV1(cid.Raw, old.Hash()).String())

	tree := filepath.Join(t.TempDir(), "tree")
	writeFile(t, filepath.Join(tree, "a.txt"), "file a")
	writeFile(t, filepath.Join(tree, "sub", "b.txt"), "file b")
	added := ipfsCLI(t, kubo, proxy, "add", "-r", tree)
	want, err := kubo.Run(ctx, "add", "-r", "-Q", "--only-hash", tree)
	require.NoError(t, err)
	treeRoot := strings.TrimSpace(string(want))
	require.Contains(t, added, "added "+treeRoot+" tree", "ipfs add -r through the proxy gives Kubo's root CID:\n%s", added)
	require.Contains(t, restPins(t, rest), treeRoot)
	require.Eventually(t, func() bool { return restStatus(t, rest, treeRoot) == "pinned" }, time.Minute, 100*time.Millisecond)

	stat := ipfsCLI(t, kubo, proxy, "repo", "stat")
	require.Regexp(t, `NumObjects:\s+[1-9]`, stat)
	require.Regexp(t, `RepoSize:\s+[1-9]`, stat)
	var id struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(ipfsCLI(t, kubo, proxy, "id")), &id))
	require.Equal(t, kubo.PeerID.String(), id.ID, "ipfs id is forwarded to Kubo")

	// The scrape parses and has sane values.
	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		fams = scrape(t, d.urls["metrics"])
		n, ok := value(fams, "pincluster_pins", map[string]string{"status": "pinned"})
		return ok && n >= 6 // 4 through REST and PSA, the updated pin, the tree; refreshed every 10s
	}, time.Minute, 500*time.Millisecond)
	checks := []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
	}{
		{"pincluster_pinset_size", nil, func(v float64) bool { return v == 6 }},
		{"pincluster_tracker_queue", map[string]string{"op": "pin", "state": "queued"}, func(v float64) bool { return v == 0 }},
		{"pincluster_tracker_ops_total", map[string]string{"op": "pin", "outcome": "ok"}, func(v float64) bool { return v >= 5 }},
		{"pincluster_tracker_op_duration_seconds_total", map[string]string{"op": "pin"}, func(v float64) bool { return v > 0 && v < 300 }},
		{"pincluster_op_duration_seconds", map[string]string{"op": "Cluster.Pin", "outcome": "ok"}, func(v float64) bool { return v >= 3 }},
		{"pincluster_crdt_heads", nil, func(v float64) bool { return v >= 1 }},
		{"pincluster_crdt_deltas_total", map[string]string{"origin": "local"}, func(v float64) bool { return v >= 5 }},
		{"pincluster_pubsub_bytes_total", map[string]string{"topic": "crdt", "direction": "sent"}, func(v float64) bool { return v >= 0 }},
		{"pincluster_peers", nil, func(v float64) bool { return v == 1 }},
		{"pincluster_metric_age_seconds", map[string]string{"name": "ping"}, func(v float64) bool { return v >= 0 && v < 60 }},
		{"pincluster_http_requests_total", map[string]string{"api": "rest", "route": "/pins/{rest...}", "code": "200"}, func(v float64) bool { return v >= 2 }},
		{"pincluster_http_requests_total", map[string]string{"api": "pinsvc", "route": "/pins", "code": "401"}, func(v float64) bool { return v >= 1 }},
		{"pincluster_http_requests_total", map[string]string{"api": "ipfsproxy", "route": "/api/v0/pin/add", "code": "200"}, func(v float64) bool { return v == 2 }},
		{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
	}
	for _, c := range checks {
		v, ok := value(fams, c.name, c.labels)
		require.True(t, ok, "series %s%v in the scrape", c.name, c.labels)
		require.True(t, c.ok(v), "series %s%v = %v", c.name, c.labels, v)
	}

	// The state commands refuse a state the daemon holds.
	code, _, errOut = runCmd(t, bin, nil, "state", "export", "-dir", dir)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "is the daemon running?")

	// SIGTERM: a clean exit; the restart finds the pins.
	before := restPins(t, rest)
	require.Len(t, before, 6)
	require.Equal(t, exitOK, d.stop(), d.stderr.String())
	require.Contains(t, d.stderr.String(), "msg=stopped")
	d = startDaemon(t, bin, dir)
	require.Equal(t, before, restPins(t, d.urls["rest"]))
	require.Equal(t, exitOK, d.stop())

	// Export, import into a fresh peer: the same pinset, record for record.
	export := filepath.Join(t.TempDir(), "pins.ndjson")
	code, _, errOut = runCmd(t, bin, nil, "state", "export", "-dir", dir, "-o", export)
	require.Equal(t, exitOK, code, errOut)
	fresh := t.TempDir()
	code, _, errOut = runCmd(t, bin, nil, "init", "-dir", fresh)
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = runCmd(t, bin, nil, "state", "import", "-dir", fresh, export)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "imported 6 pins")
	code, reexport, errOut := runCmd(t, bin, nil, "state", "export", "-dir", fresh)
	require.Equal(t, exitOK, code, errOut)
	orig, err := os.ReadFile(export)
	require.NoError(t, err)
	require.Equal(t, sortedLines(string(orig)), sortedLines(reexport))

	// A corrupt stream is refused whole, naming the line; nothing changes.
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	lines := strings.SplitAfter(string(orig), "\n")
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	rec["cid"] = map[string]string{"/": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"} // a pin not in the state
	newPin, err := json.Marshal(rec)
	require.NoError(t, err)
	writeFile(t, bad, lines[0]+string(newPin)+"\n"+`{"cid":{"/":"not a cid"}}`+"\n")
	code, _, errOut = runCmd(t, bin, nil, "state", "import", "-dir", fresh, bad)
	require.Equal(t, exitRefused, code, errOut)
	require.Contains(t, errOut, "line 3")
	code, _, _ = runCmd(t, bin, nil, "state", "import", "-dir", fresh, "-")
	require.Equal(t, exitRefused, code, "an empty stream has no header")
	code, reexport, errOut = runCmd(t, bin, nil, "state", "export", "-dir", fresh)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, sortedLines(string(orig)), sortedLines(reexport))

	// Cleanup empties the fresh peer's state.
	code, _, errOut = runCmd(t, bin, strings.NewReader("n\n"), "state", "cleanup", "-dir", fresh)
	require.Equal(t, exitUsage, code, errOut)
	code, _, errOut = runCmd(t, bin, nil, "state", "cleanup", "-dir", fresh, "-force")
	require.Equal(t, exitOK, code, errOut)
	code, reexport, errOut = runCmd(t, bin, nil, "state", "export", "-dir", fresh)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, []string{`{"pincluster_state":1}`}, sortedLines(reexport))
}

func sortedLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestBinaryUsageErrors checks the exit codes and messages of bad command
// lines and configurations, with the built binary.
func TestBinaryUsageErrors(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	code, _, errOut := runCmd(t, bin, nil, "daemon", "-dir", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "pinclusterd init")

	code, _, errOut = runCmd(t, bin, nil, "init", "-dir", dir, "-rest-listen", "127.0.0.1:0", "-peer-replication-min", "0")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "peer.replication_min")

	code, first, errOut := runCmd(t, bin, nil, "init", "-dir", dir)
	require.Equal(t, exitOK, code, errOut)
	// -force rewrites the config and keeps the identity.
	code, second, errOut := runCmd(t, bin, nil, "init", "-dir", dir, "-force", "-peer-name", "renamed")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, strings.SplitN(first, "\n", 2)[0], strings.SplitN(second, "\n", 2)[0])
	conf := filepath.Join(dir, "config.toml")
	b, err := os.ReadFile(conf)
	require.NoError(t, err)
	require.Contains(t, string(b), `name = "renamed"`)
	require.NoError(t, os.WriteFile(conf, append(b, "\n[rest]\nlisten_typo = 1\n"...), 0o600))
	code, _, errOut = runCmd(t, bin, nil, "daemon", "-dir", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "line")

	require.NoError(t, os.WriteFile(conf, bytes.Replace(b, []byte("[log]"), []byte("[log]\nverbose = true"), 1), 0o600))
	code, _, errOut = runCmd(t, bin, nil, "daemon", "-dir", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "log.verbose")
	require.Contains(t, errOut, "unknown field")

	code, _, _ = runCmd(t, bin, nil, "frobnicate")
	require.Equal(t, exitUsage, code)
	code, out, _ := runCmd(t, bin, nil, "version")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "pinclusterd ")
}

// TestSIGTERMDrainsRequests sends SIGTERM while an upload to the REST API
// is in progress: the request completes, the daemon exits 0, and the pin
// it made is in the state after a restart.
func TestSIGTERMDrainsRequests(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	code, _, errOut := runCmd(t, bin, nil, "init", "-dir", dir, "-peer-listen", "/ip4/127.0.0.1/tcp/0",
		"-rest-listen", "127.0.0.1:0", "-pinsvc-listen", "", "-metrics-listen", "127.0.0.1:0")
	require.Equal(t, exitOK, code, errOut)
	d := startDaemon(t, bin, dir)

	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, d.urls["rest"]+"/add", pr)
	require.NoError(t, err)
	const boundary = "drainboundary"
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	// With Expect: 100-continue the body is sent only once the handler
	// reads it: when the first write returns, the request is in flight.
	req.Header.Set("Expect", "100-continue")
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- result{code: res.StatusCode, body: string(b)}
	}()
	_, err = io.WriteString(pw, "--"+boundary+"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"drain.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nfirst half, ")
	require.NoError(t, err)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	// The body ends only once the shutdown is under way.
	require.Eventually(t, func() bool {
		res, err := httpClient.Get(d.urls["metrics"] + "/health")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "stopping")
	}, time.Minute, 20*time.Millisecond)
	_, err = io.WriteString(pw, "second half after SIGTERM\r\n--"+boundary+"--\r\n")
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the in-flight request got no answer")
	}
	require.NoError(t, res.err)
	require.Equal(t, http.StatusOK, res.code, res.body)
	var added struct {
		Cid string `json:"cid"`
	}
	require.NoError(t, json.NewDecoder(strings.NewReader(res.body)).Decode(&added))
	require.NotEmpty(t, added.Cid)
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		t.Fatal("daemon did not exit after SIGTERM")
	}
	require.Equal(t, exitOK, d.code, d.stderr.String())

	d = startDaemon(t, bin, dir)
	require.Equal(t, []string{added.Cid}, restPins(t, d.urls["rest"]))
	require.Equal(t, exitOK, d.stop())
}
