// Package httpx holds the HTTP plumbing shared by api/rest and api/pinsvc:
// a server runner with timeouts and limits, NDJSON streaming with the
// X-Stream-Error trailer, CORS, and CID/path parameter parsing.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pincluster/pincluster/internal/defaults"
)

// ServerConfig holds the limits of a Server. Zero fields take the
// defaults named on each.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers (slow-loris).
	// Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from the
	// start of its headers. 0: none. A handler gives a longer deadline to
	// an authenticated upload with ExtendReadDeadline, never before it
	// has checked the credentials.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of a response: the connection's write
	// deadline is pushed to now + WriteTimeout whenever the handler writes
	// (at most every WriteTimeout/8), so a client that stops reading is
	// cut off after about WriteTimeout, while a long NDJSON stream, or an
	// answer that took longer than WriteTimeout to compute, still goes
	// out. 0: none.
	WriteTimeout time.Duration
	// IdleTimeout bounds keep-alive idleness. Default: 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers; larger ones get 431.
	// Default: 16 KiB.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once on each listener
	// given to Serve or Start. A connection beyond it is answered 503
	// Service Unavailable (Connection: close, Retry-After) and closed at
	// once, without reading it, so that a flood is shed rather than
	// queued. Negative: no limit. Default: DefaultMaxConns.
	MaxConns int
	// Middleware, when set, wraps the handler the Server runs (the
	// caller's metrics or logging), inside the write deadlines. Default:
	// none.
	Middleware func(http.Handler) http.Handler
	// Name prefixes the errors of Listen and Shutdown ("rest: listen:
	// ..."): the package of the API. Default: "httpx".
	Name string
}

// DefaultMaxConns is the default ServerConfig.MaxConns: connections open
// at once on one listener. Each costs a file descriptor and a goroutine.
const DefaultMaxConns = 1024

// Defaults fills zero fields and rejects negative ones.
func (c *ServerConfig) Defaults() error {
	if c.MaxConns == 0 { // negative: no limit
		c.MaxConns = DefaultMaxConns
	}
	if c.Name == "" {
		c.Name = "httpx"
	}
	return errors.Join(
		defaults.Set("ReadHeaderTimeout", &c.ReadHeaderTimeout, 5*time.Second),
		defaults.Set("IdleTimeout", &c.IdleTimeout, 2*time.Minute),
		defaults.Set("MaxHeaderBytes", &c.MaxHeaderBytes, 16<<10),
		defaults.NotNegative("ReadTimeout", c.ReadTimeout),
		defaults.NotNegative("WriteTimeout", c.WriteTimeout),
	)
}

// Server runs an http.Handler on listeners until Shutdown: the server
// lifecycle of every HTTP API of the module (api/rest, api/pinsvc,
// api/ipfsproxy), whose Serve, Start, Addr and Shutdown methods are these.
type Server struct {
	srv      *http.Server
	maxConns int
	name     string

	mu     sync.Mutex
	closed bool
	addr   net.Addr // of the first listener served
	wg     sync.WaitGroup
}

// NewServer returns a Server for h with the limits of cfg (defaults
// filled by the caller).
func NewServer(h http.Handler, cfg ServerConfig) *Server {
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}
	if cfg.WriteTimeout > 0 {
		h = deadlines(cfg, h)
	}
	return &Server{maxConns: cfg.MaxConns, name: cfg.Name, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}}
}

// limit wraps l in the connection cap of the Server, if any.
func (s *Server) limit(l net.Listener) net.Listener {
	if s.maxConns <= 0 {
		return l
	}
	return LimitListener(l, s.maxConns)
}

// Serve serves on l until Shutdown; it then returns http.ErrServerClosed
// (at once, closing l, when Shutdown already began).
func (s *Server) Serve(l net.Listener) error {
	if err := s.add(l); err != nil {
		return err
	}
	defer s.wg.Done()
	return s.srv.Serve(s.limit(l))
}

// add counts one more listener served, or closes l and returns
// http.ErrServerClosed after Shutdown.
func (s *Server) add(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return http.ErrServerClosed
	}
	if s.addr == nil {
		s.addr = l.Addr()
	}
	s.wg.Add(1)
	return nil
}

// Listen listens on the TCP address addr ("host:port"; port 0 picks a
// free one, which Addr then reports) and serves there in the background,
// as Start.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen: %w", s.name, err)
	}
	if err := s.Start(l); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// Addr returns the address of the first listener given to Serve, Start or
// Listen, or nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start serves on l in a goroutine that Shutdown waits for. After
// Shutdown it closes l and returns http.ErrServerClosed.
func (s *Server) Start(l net.Listener) error {
	if err := s.add(l); err != nil {
		return err
	}
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(s.limit(l)) // ErrServerClosed after Shutdown
	}()
	return nil
}

// Shutdown stops the listeners, waits for active requests and for the
// goroutines started by Start, or returns ctx.Err() (wrapped). A second
// call returns an error wrapping net.ErrClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.shutdown(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("shutdown: %w", net.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// ExtendReadDeadline gives the request of w d from now to send the rest
// of its body, in place of the server's ReadTimeout: for an upload route.
// Call it only once the request is authenticated, so that an anonymous
// client never holds a connection longer than ReadTimeout.
func ExtendReadDeadline(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}

// Refuse prepares w for an answer that refuses a request without reading
// its body (401, 413, 429...): the connection is closed after the answer
// (Connection: close), and the read deadline is moved to now so that
// net/http does not wait, after the answer, for a body the client
// declared and never sends. Without it such a request holds its
// connection, and a file descriptor, until the read deadline.
func Refuse(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// deadlines wraps h so that each request gets a write deadline refreshed
// at every write (see ServerConfig).
func deadlines(cfg ServerConfig, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w = &deadlineWriter{ResponseWriter: w, rc: rc, d: cfg.WriteTimeout}
		h.ServeHTTP(w, r)
	})
}

// deadlineWriter pushes the connection's write deadline to now + d before
// a write when the last push is more than d/8 old.
type deadlineWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	d    time.Duration
	last time.Time
}

func (w *deadlineWriter) refresh() {
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < w.d/8 {
		return
	}
	w.last = now
	_ = w.rc.SetWriteDeadline(now.Add(w.d))
}

// WriteHeader refreshes the write deadline and writes the status line.
func (w *deadlineWriter) WriteHeader(code int) {
	w.refresh()
	w.ResponseWriter.WriteHeader(code)
}

// Write refreshes the write deadline and writes p.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.refresh()
	return w.ResponseWriter.Write(p)
}

// FlushError refreshes the write deadline and flushes (used by
// http.ResponseController.Flush).
func (w *deadlineWriter) FlushError() error {
	w.refresh()
	return w.rc.Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ErrBodyTimeout is wrapped by the read errors of a TimeoutBody when the
// server's read deadline passed before the body was received (a slow or
// stalled client); the APIs answer 408.
var ErrBodyTimeout = errors.New("request body not received in time")

// TimeoutBody wraps a request body so that a read failing on the
// connection's read deadline returns an error wrapping both
// ErrBodyTimeout and the original error. Other errors are unchanged.
func TimeoutBody(b io.ReadCloser) io.ReadCloser { return timeoutBody{b} }

type timeoutBody struct{ io.ReadCloser }

func (b timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %w", ErrBodyTimeout, err)
	}
	return n, err
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"code":500,"message":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// StreamErrorTrailer is the trailer that carries an error that happened
// after a stream started.
const StreamErrorTrailer = "X-Stream-Error"

// StreamNDJSON writes seq as newline-delimited JSON: exactly one JSON
// object per line. An error before the first item is handed to onErr (the
// caller writes a normal error answer); an error after it goes into the
// X-Stream-Error trailer. conv turns each item into its JSON form.
func StreamNDJSON[T any](w http.ResponseWriter, seq iter.Seq2[T, error], conv func(T) any, onErr func(error)) {
	started := false
	start := func() {
		w.Header().Set("Trailer", StreamErrorTrailer)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		started = true
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w) // Encode writes one line, no inner newlines
	n := 0
	for v, err := range seq {
		if err != nil {
			if !started {
				onErr(err)
				return
			}
			w.Header().Set(StreamErrorTrailer, oneLine(err.Error()))
			return
		}
		if !started {
			start()
		}
		if err := enc.Encode(conv(v)); err != nil {
			return // client gone
		}
		n++
		if n%64 == 0 {
			_ = rc.Flush()
		}
	}
	if !started {
		start()
	}
	w.Header().Set(StreamErrorTrailer, "")
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// CORSConfig configures cross-origin requests. No allowed origin: CORS
// headers are never sent.
type CORSConfig struct {
	// AllowedOrigins lists origins, or "*" for any.
	AllowedOrigins []string
	// AllowedMethods. Default: GET, POST, DELETE, OPTIONS.
	AllowedMethods []string
	// AllowedHeaders. Default: Authorization, Content-Type.
	AllowedHeaders []string
	// ExposedHeaders. Default: X-Stream-Error.
	ExposedHeaders []string
	// AllowCredentials sets Access-Control-Allow-Credentials.
	AllowCredentials bool
	// MaxAge is how long browsers may cache a preflight answer.
	MaxAge time.Duration
}

// CORS wraps next: preflight OPTIONS requests from an allowed origin are
// answered (204) before authentication; other requests from an allowed
// origin get the Allow-Origin headers.
func CORS(cfg CORSConfig, next http.Handler) http.Handler {
	if len(cfg.AllowedOrigins) == 0 {
		return next
	}
	methods := cfg.AllowedMethods
	if len(methods) == 0 {
		methods = []string{"GET", "POST", "DELETE", "OPTIONS"}
	}
	headers := cfg.AllowedHeaders
	if len(headers) == 0 {
		headers = []string{"Authorization", "Content-Type"}
	}
	exposed := cfg.ExposedHeaders
	if len(exposed) == 0 {
		exposed = []string{StreamErrorTrailer}
	}
	any := slices.Contains(cfg.AllowedOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || (!any && !slices.Contains(cfg.AllowedOrigins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if any && !cfg.AllowCredentials {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if cfg.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
			h.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
			if cfg.MaxAge > 0 {
				h.Set("Access-Control-Max-Age", strconv.Itoa(int(cfg.MaxAge/time.Second)))
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", strings.Join(exposed, ", "))
		next.ServeHTTP(w, r)
	})
}
