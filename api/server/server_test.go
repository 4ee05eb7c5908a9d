package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pincluster/pincluster/api/internal/httpx"
)

// serve runs h on a loopback Server with cfg until the test ends.
func serve(t *testing.T, h http.Handler, cfg Config) string {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	s, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s.Addr().String()
}

// TestWriteTimeoutPerWrite: WriteTimeout bounds each write, not the
// request: an answer computed for longer than WriteTimeout, and a stream
// lasting several times WriteTimeout, still reach the client. (With
// http.Server's own WriteTimeout both would be cut.)
func TestWriteTimeoutPerWrite(t *testing.T) {
	const wt = 200 * time.Millisecond
	h := http.NewServeMux()
	h.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-time.After(2 * wt) // computing the answer
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	})
	h.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		seq := func(yield func(int, error) bool) {
			for i := range 8 {
				if i > 0 {
					<-time.After(wt / 2) // 700ms in all
				}
				if !yield(i, nil) {
					return
				}
			}
		}
		httpx.StreamNDJSON(w, seq, func(i int) any { return i }, func(error) {})
	})
	addr := serve(t, h, Config{WriteTimeout: wt})

	resp, err := http.Get("http://" + addr + "/slow")
	if err != nil {
		t.Fatalf("answer computed for 2×WriteTimeout lost: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "yes") {
		t.Fatalf("slow answer: %d %q", resp.StatusCode, b)
	}

	resp, err = http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "\n") != 8 {
		t.Fatalf("stream of 3.5×WriteTimeout cut: %v, %q", err, b)
	}
	if got := resp.Trailer.Get(httpx.StreamErrorTrailer); got != "" {
		t.Fatalf("stream error trailer %q", got)
	}
}

// TestWriteTimeoutStalledReader: a client that stops reading an endless
// answer is cut off: the handler's writes fail about WriteTimeout after
// the socket buffers fill.
func TestWriteTimeoutStalledReader(t *testing.T) {
	const wt = 200 * time.Millisecond
	failed := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write(chunk); err != nil {
				failed <- err
				return
			}
		}
	})
	addr := serve(t, h, Config{WriteTimeout: wt})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil { // status line, then stop reading
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write failed, but not on the write deadline: %v", err)
		}
		t.Logf("write to a stalled reader failed: %v", err)
	case <-time.After(20 * wt):
		t.Fatal("the server kept writing to a client that does not read")
	}
}

// TestExtendReadDeadline: httpx.ExtendReadDeadline gives one request a longer
// body deadline than ReadTimeout, and httpx.TimeoutBody marks the deadline's
// errors with httpx.ErrBodyTimeout.
func TestExtendReadDeadline(t *testing.T) {
	const rt = 200 * time.Millisecond
	got := make(chan error, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			httpx.ExtendReadDeadline(w, time.Minute)
		}
		_, err := io.ReadAll(httpx.TimeoutBody(r.Body))
		got <- err
	})
	addr := serve(t, h, Config{ReadTimeout: rt})
	send := func(path string) error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(rt / 2)
		defer tick.Stop()
		for range 6 { // 6 bytes over 3×ReadTimeout
			select {
			case err := <-got:
				return err
			case <-tick.C:
				_, _ = conn.Write([]byte{'x'})
			}
		}
		return <-got
	}
	if err := send("/short"); !errors.Is(err, httpx.ErrBodyTimeout) {
		t.Fatalf("slow body on /short: %v, want httpx.ErrBodyTimeout", err)
	}
	if err := send("/long"); err != nil {
		t.Fatalf("slow body on /long within its own timeout: %v", err)
	}
}

// TestServerLifecycle: Start serves on a free port that Addr reports,
// through the Middleware, while Handler is the bare handler; Shutdown
// stops it, a second Shutdown wraps net.ErrClosed, and serving after
// Shutdown is refused with http.ErrServerClosed. A bad address or a
// negative limit is an error, not a panic.
func TestServerLifecycle(t *testing.T) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cfg := Config{ListenAddr: "127.0.0.1:0", Name: "test", Middleware: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Middleware", "yes")
			h.ServeHTTP(w, r)
		})
	}}
	s, err := New(bare, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Fatalf("Addr before Start: %v", s.Addr())
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNoContent || rec.Header().Get("X-Middleware") != "" {
		t.Fatalf("Handler: %d, middleware header %q; want the bare handler", rec.Code, rec.Header().Get("X-Middleware"))
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if addr == nil || strings.HasSuffix(addr.String(), ":0") {
		t.Fatalf("Addr after Start: %v", addr)
	}
	res, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("X-Middleware") != "yes" {
		t.Fatalf("answer %d, middleware header %q", res.StatusCode, res.Header.Get("X-Middleware"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "test: ") {
		t.Fatalf("second Shutdown: %v, want net.ErrClosed prefixed by the Name", err)
	}
	if _, err := http.Get("http://" + addr.String() + "/"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
	if err := s.Start(); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Start after Shutdown: %v, want http.ErrServerClosed", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
	}

	bad, err := New(bare, Config{ListenAddr: "not an address"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
	if _, err := New(bare, Config{ReadTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "ReadTimeout") {
		t.Fatalf("New with a negative ReadTimeout: %v, want an error naming it", err)
	}
}
