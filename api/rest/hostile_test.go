package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/fake"
)

// The stalled-upload attack of issue 15 runs in a child process (the test
// binary again, see TestMain), so that /proc/self/fd of the test counts
// the server's descriptors only.
const (
	attackEnv  = "PINCLUSTER_TEST_ATTACK_ADDR"
	attackNEnv = "PINCLUSTER_TEST_ATTACK_N"
	// stalledAdd declares a 1000-byte multipart body and never sends it.
	stalledAdd = "POST /add HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n" +
		"Content-Type: multipart/form-data; boundary=X\r\n\r\n"
)

// runAttacker opens n connections to addr, sends stalledAdd on each and
// then stays silent. It prints "sent" once every request is out, then
// "answered <n>" once every connection got an answer or was closed by
// the server (never, on a server that holds them), and exits when its
// stdin closes.
func runAttacker(addr string, n int) int {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "attacker: dial:", err)
			return 1
		}
		conns = append(conns, c)
		_, _ = io.WriteString(c, stalledAdd) // a shed connection may be closed already
	}
	fmt.Println("sent")
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			// Any byte, EOF or reset means the server let go; a
			// stall blocks here until stdin closes.
			var b [1]byte
			_, _ = c.Read(b[:])
			answered.Add(1)
		})
	}
	go func() {
		wg.Wait()
		fmt.Println("answered", answered.Load())
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

func countFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(es)
}

// TestStalledUnauthenticatedUploads (issue 15, defect 1): 2,000
// connections that send an unauthenticated /add declaring a body and then
// stall are each answered at once (401, or 503 beyond the connection
// cap) and let go, so the server's descriptors stay within MaxConns while
// an authenticated client pins and /health answers. On the old code each
// got the 30-minute upload deadline before authentication and was held
// while the server waited for its body.
func TestStalledUnauthenticatedUploads(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skipf("the test counts the server's open descriptors in /proc/self/fd (Linux only): %v", err)
	}
	const (
		attackers = 2000
		maxConns  = 200
		slack     = 24 // the test's own clients, the listener, runtime pipes
	)
	fb := fake.New()
	a, err := New(fb, Config{
		ListenAddr: "127.0.0.1:0",
		BasicAuth:  map[string]string{testUser: testPass},
		MaxConns:   maxConns,
	})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	addr := a.Addr().String()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(client.CloseIdleConnections)

	baseline := countFDs(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			es, err := os.ReadDir("/proc/self/fd")
			if err == nil && int64(len(es)) > peak.Load() {
				peak.Store(int64(len(es)))
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), attackEnv+"="+addr, attackNEnv+"="+strconv.Itoa(attackers))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(d time.Duration) string {
		select {
		case l := <-lines:
			return l
		case <-time.After(d):
			return fmt.Sprintf("nothing within %s", d)
		}
	}
	require.Equal(t, "sent", next(time.Minute))

	// An authenticated client pins, and /health answers, while the
	// attackers' sockets are open and silent. A 503 (shed at the cap
	// while the flood is being answered) is retried as a client would.
	c := testCID(t, "pinned during the attack")
	do := func(method, path string, authed bool) int {
		t.Helper()
		var code int
		require.Eventually(t, func() bool {
			req, err := http.NewRequest(method, "http://"+addr+path, nil)
			require.NoError(t, err)
			if authed {
				req.SetBasicAuth(testUser, testPass)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			resp, err := client.Do(req.WithContext(ctx))
			if err != nil {
				return false
			}
			resp.Body.Close()
			code = resp.StatusCode
			return code != http.StatusServiceUnavailable
		}, 10*time.Second, 20*time.Millisecond, "%s %s not answered", method, path)
		return code
	}
	require.Equal(t, http.StatusNoContent, do("GET", "/health", false))
	require.Equal(t, http.StatusOK, do("POST", "/pins/"+c.String(), true))
	require.True(t, fb.Has(c))
	require.Equal(t, http.StatusNoContent, do("GET", "/health", false))

	// Every attacker connection was answered or closed, none held, and
	// the server's descriptors stayed within the cap all along.
	answered := next(30 * time.Second)
	close(stop)
	<-sampled
	held := int(peak.Load()) - baseline
	t.Logf("descriptors: baseline %d, peak %d (+%d), cap %d", baseline, peak.Load(), held, maxConns)
	require.LessOrEqual(t, held, maxConns+slack, "the server held more descriptors than MaxConns")
	require.Equal(t, "answered "+strconv.Itoa(attackers), answered, "stalled connections held by the server")
}

// TestConnectionCapSheds: connections beyond MaxConns get a 503 with
// Retry-After at once instead of waiting, and the slots come back when
// the held connections close.
func TestConnectionCapSheds(t *testing.T) {
	const maxConns = 4
	a, err := New(fake.New(), Config{ListenAddr: "127.0.0.1:0", MaxConns: maxConns})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	addr := a.Addr().String()
	// Fill the cap with idle connections; the server has accepted them
	// once a request on each was answered.
	var held []net.Conn
	for range maxConns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		held = append(held, c)
		_, err = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil) // nothing sent: the server speaks first
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "too many connections")

	for _, c := range held {
		c.Close()
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, 10*time.Second, 10*time.Millisecond)
}

// TestAuthFailuresThrottled: after AuthFailureBurst wrong passwords from
// one address, its requests with credentials are answered 429 with
// Retry-After, the right password included, without being checked;
// requests without credentials still get 401. Before, 10,000 wrong
// passwords in 1.5 s met no throttling.
func TestAuthFailuresThrottled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AuthFailureBurst = 5; c.AuthFailureInterval = time.Hour })
	for i := range 5 {
		resp, _ := e.do("GET", "/id", nil, "Authorization", basic(testUser, "wrong"+strconv.Itoa(i)))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "attempt %d", i)
	}
	resp, b := e.do("GET", "/id", nil, "Authorization", basic(testUser, "wrong again"))
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", b)
	sec, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, sec, 0)
	resp, _ = e.do("GET", "/id", nil) // the right password: not checked while throttled
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	resp, _ = e.do("GET", "/id", nil, "Authorization", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "missing credentials are not throttled")

	// Throttling off: only 401s.
	e = newEnv(t, func(c *Config) { c.AuthFailureBurst = -1 })
	for range 50 {
		resp, _ := e.do("GET", "/id", nil, "Authorization", basic(testUser, "wrong"))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, _ = e.do("GET", "/id", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// stuckResolver is a backend whose path resolution never finishes (a
// path under a CID nobody provides): it waits for its context.
type stuckResolver struct{ *fake.Backend }

func (stuckResolver) PinPath(ctx context.Context, path string, _ pincluster.PinOptions) (pincluster.Pin, error) {
	<-ctx.Done()
	return pincluster.Pin{}, fmt.Errorf("resolve %s: %w", path, ctx.Err())
}

func (stuckResolver) UnpinPath(ctx context.Context, path string) (pincluster.Pin, error) {
	<-ctx.Done()
	return pincluster.Pin{}, fmt.Errorf("resolve %s: %w", path, ctx.Err())
}

// TestResolveTimeout (issue 15): POST and DELETE of /pins/ipfs/<unknown
// cid>/a/b end with 504 after ResolveTimeout, not when the client gives
// up (before: the request waited as long as the client did).
func TestResolveTimeout(t *testing.T) {
	a, err := New(stuckResolver{fake.New()}, Config{ResolveTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	srv := newServer(t, a)
	c := testCID(t, "nobody has it")
	for _, method := range []string{"POST", "DELETE"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // the patient client
		req, err := http.NewRequestWithContext(ctx, method, srv+"/pins/ipfs/"+c.String()+"/a/b", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		if errors.Is(err, context.DeadlineExceeded) {
			cancel()
			t.Fatalf("%s of an unresolvable path waited as long as the client", method)
		}
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "%s: %s", method, b)
		require.Contains(t, string(b), "ResolveTimeout", method)
	}
	_, err = New(fake.New(), Config{ResolveTimeout: -1})
	require.ErrorIs(t, err, ErrConfig)
	a, err = New(fake.New(), Config{})
	require.NoError(t, err)
	require.Equal(t, DefaultResolveTimeout, a.cfg.ResolveTimeout)
}

func newServer(t *testing.T, a *API) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	return "http://" + l.Addr().String()
}

// TestCARDigestBombAllocation (issue 15, defect 2): a small CAR upload
// whose block CID declares a 32 MiB digest is refused 400, and a request
// allocates less than carBombAllocLimit (client and server together,
// averaged over the requests). Before, each allocated the declared 32 MiB.
func TestCARDigestBombAllocation(t *testing.T) {
	const carBombAllocLimit = 1 << 20
	e := newEnv(t, nil)
	root := testCID(t, "root")
	sec := []byte{0x01, 0x55, 0x12}           // CIDv1, raw, sha2-256
	sec = binary.AppendUvarint(sec, 32<<20-1) // declared digest length
	sec = append(sec, bytes.Repeat([]byte{'0'}, 40)...)
	data := buildCAR(t, []cid.Cid{root}, nil, nil)
	data = binary.AppendUvarint(data, uint64(len(sec)))
	data = append(data, sec...)
	send := func() {
		body, ct := multipartBody(t, [2]string{"x.car", string(data)})
		resp, b := e.do("POST", "/add?format=car", body, "Content-Type", ct)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", b)
	}
	send() // warm up connections and buffers
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		send()
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d-byte CAR declaring a 32 MiB digest: %d bytes allocated per request (limit %d)", len(data), per, carBombAllocLimit)
	require.Less(t, per, uint64(carBombAllocLimit))
	require.Equal(t, 0, e.fake.PinCount())
}

// TestResolveTimeoutCluster: the same against a real peer, whose
// in-process IPFS node looks for the unknown CID's block on the network
// until the ResolveTimeout ends the request.
func TestResolveTimeoutCluster(t *testing.T) {
	cl := realPeers(t, 1)
	a, err := New(cl.Peer(0).Cluster, Config{ResolveTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	srv := newServer(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // the patient client
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv+"/pins/ipfs/"+testCID(t, "nobody has it").String()+"/a/b", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "the request waited as long as the client")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "%s", b)
	require.Contains(t, string(b), "ResolveTimeout")
}
