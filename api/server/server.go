// Package server runs an HTTP API of the module (api/rest, api/pinsvc,
// api/ipfsproxy) until Shutdown: the one server lifecycle they share.
// Each API embeds a *Server, so Handler, Serve, Start, Addr and Shutdown
// are the same methods, with the same limits, on all three.
//
// The limits are for clients that are assumed hostile: a bound on reading
// headers (slow-loris) and bodies, a write deadline refreshed at every
// write (so a client that stops reading is cut off while a long stream
// still goes out), a cap on open connections beyond which a connection is
// answered 503 and closed without being read.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pincluster/pincluster/api/internal/httpx"
	"github.com/pincluster/pincluster/internal/defaults"
)

// DefaultMaxConns is the default Config.MaxConns: connections open at
// once on one listener. Each costs a file descriptor and a goroutine.
const DefaultMaxConns = 1024

// Config holds the address and limits of a Server. Zero fields take the
// defaults named on each; the APIs fill it from their own Config.
type Config struct {
	// ListenAddr is the TCP address ("host:port") Start listens on; port
	// 0 picks a free one, which Addr then reports.
	ListenAddr string
	// ReadHeaderTimeout bounds reading a request's headers (slow-loris).
	// Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from the
	// start of its headers. 0: none. A handler gives a longer deadline to
	// an authenticated upload (the APIs' add routes), never before it has
	// checked the credentials.
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
	// caller's metrics or logging), inside the write deadlines; Handler
	// returns the handler without it. Default: none.
	Middleware func(http.Handler) http.Handler
	// Name prefixes the errors of Start and Shutdown ("rest: listen:
	// ..."): the package of the API. Default: "server".
	Name string
}

// withDefaults fills zero fields and rejects negative ones.
func (c Config) withDefaults() (Config, error) {
	if c.MaxConns == 0 { // negative: no limit
		c.MaxConns = DefaultMaxConns
	}
	if c.Name == "" {
		c.Name = "server"
	}
	return c, errors.Join(
		defaults.Set("ReadHeaderTimeout", &c.ReadHeaderTimeout, 5*time.Second),
		defaults.Set("IdleTimeout", &c.IdleTimeout, 2*time.Minute),
		defaults.Set("MaxHeaderBytes", &c.MaxHeaderBytes, 16<<10),
		defaults.NotNegative("ReadTimeout", c.ReadTimeout),
		defaults.NotNegative("WriteTimeout", c.WriteTimeout),
	)
}

// Server runs an http.Handler on listeners until Shutdown.
type Server struct {
	handler  http.Handler
	srv      *http.Server
	listen   string
	maxConns int
	name     string

	mu     sync.Mutex
	closed bool
	addr   net.Addr // of the first listener served
	wg     sync.WaitGroup
}

// New returns a Server for h with the address and limits of cfg. It does
// not listen: use Serve or Start. It fails for a negative timeout or
// size in cfg.
func New(h http.Handler, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	run := h
	if cfg.Middleware != nil {
		run = cfg.Middleware(run)
	}
	if cfg.WriteTimeout > 0 {
		run = httpx.WriteDeadlines(cfg.WriteTimeout, run)
	}
	return &Server{handler: h, listen: cfg.ListenAddr, maxConns: cfg.MaxConns, name: cfg.Name, srv: &http.Server{
		Handler:           run,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}}, nil
}

// Handler returns the API's http.Handler (without Config.Middleware and
// the Server's limits), for a server of the caller's own.
func (s *Server) Handler() http.Handler { return s.handler }

// limit wraps l in the connection cap of the Server, if any.
func (s *Server) limit(l net.Listener) net.Listener {
	if s.maxConns <= 0 {
		return l
	}
	return httpx.LimitListener(l, s.maxConns)
}

// Serve serves on l until Shutdown, then returns http.ErrServerClosed (at
// once, closing l, when Shutdown already began).
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

// Start listens on Config.ListenAddr and serves in the background until
// Shutdown, which waits for it. After Shutdown it returns an error
// wrapping http.ErrServerClosed.
func (s *Server) Start() error {
	l, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("%s: listen: %w", s.name, err)
	}
	if err := s.add(l); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(s.limit(l)) // ErrServerClosed after Shutdown
	}()
	return nil
}

// Addr returns the address of the first listener given to Serve or
// opened by Start, or nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops listening, waits for the requests in progress and for
// the goroutine of Start, and returns; ctx.Err() (wrapped) if ctx ends
// first. A second call returns an error wrapping net.ErrClosed. What the
// API was given (a datastore, the Cluster) stays open: it is the
// caller's.
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
