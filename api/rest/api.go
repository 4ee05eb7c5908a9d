package rest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// ErrConfig is wrapped by the errors New returns for an impossible Config.
var ErrConfig = errors.New("rest: invalid config")

// API is IPFS Cluster's REST API over a Backend: an http.Handler, and a
// server that runs it (Serve or Start) until Shutdown. Its constructor
// and server methods have the same shape as package api/pinsvc's. It is a
// pincluster.Component: NewAPI starts it with a Cluster (WithAPI).
type API struct {
	backend Backend
	cfg     Config
	auth    *auth.Authenticator
	log     *slog.Logger
	handler http.Handler
	server  *httpx.Server
}

var _ pincluster.Component = (*API)(nil)

// New returns the REST API of backend (a *pincluster.Cluster, or a
// stand-in in tests), configured by cfg. It does not listen: use Handler,
// Serve or Start.
func New(backend Backend, cfg Config) (*API, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	sc, err := cfg.serverConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	a, err := auth.New(auth.Config{
		Basic:  cfg.BasicAuth,
		Tokens: cfg.BearerTokens,
		JWTKey: cfg.JWTKey,
		JWTTTL: cfg.JWTTTL,

		Revocations: cfg.Revocations,

		FailureBurst:    cfg.AuthFailureBurst,
		FailureInterval: cfg.AuthFailureInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	api := &API{backend: backend, cfg: cfg, auth: a, log: cfg.Logger}
	api.handler = httpx.CORS(httpx.CORSConfig{
		AllowedOrigins:   cfg.CORS.AllowedOrigins,
		AllowedMethods:   cfg.CORS.AllowedMethods,
		AllowedHeaders:   cfg.CORS.AllowedHeaders,
		AllowCredentials: cfg.CORS.AllowCredentials,
		MaxAge:           cfg.CORS.MaxAge,
	}, api.routes())
	sc.Middleware, sc.Name = cfg.Middleware, "rest"
	api.server = httpx.NewServer(api.handler, sc)
	return api, nil
}

// NewAPI returns a constructor for pincluster.WithAPI: New on the Cluster,
// then Start (listening on cfg.ListenAddr) once the cluster is built; the
// Cluster's Shutdown shuts the API down first.
func NewAPI(cfg Config) func(*pincluster.Cluster) (pincluster.Component, error) {
	return httpx.Started(func(c *pincluster.Cluster) (*API, error) { return New(c, cfg) })
}

// Handler returns the API's http.Handler (routes, authentication, CORS),
// for use with a server of the caller's own.
func (a *API) Handler() http.Handler { return a.handler }

// Serve serves the API on l until Shutdown, then returns
// http.ErrServerClosed.
func (a *API) Serve(l net.Listener) error { return a.server.Serve(l) }

// Start listens on Config.ListenAddr and serves in the background until
// Shutdown. After Shutdown it returns http.ErrServerClosed.
func (a *API) Start() error { return a.server.Listen(a.cfg.ListenAddr) }

// Addr returns the address the API serves on (the first listener of Start
// or Serve), or nil before.
func (a *API) Addr() net.Addr { return a.server.Addr() }

// Shutdown stops listening, waits for the requests in progress and
// returns; ctx.Err() if ctx ends first. A second call returns an error
// wrapping net.ErrClosed.
func (a *API) Shutdown(ctx context.Context) error { return a.server.Shutdown(ctx) }

// IssueToken signs a JWT for user, as POST /token does.
func (a *API) IssueToken(user string) (string, error) {
	tok, _, err := a.auth.Issue(user)
	if err != nil {
		return "", fmt.Errorf("rest: %w", err)
	}
	return tok, nil
}

// RevokeToken refuses a JWT issued by this API from now on, until it
// expires: it adds it to Config.Revocations, so the APIs given the same
// list (a Pinning Service API) refuse it too. Revocations are kept in
// memory: they do not survive a restart and do not reach other processes.
func (a *API) RevokeToken(token string) error {
	if err := a.auth.Revoke(token); err != nil {
		return fmt.Errorf("rest: %w", err)
	}
	return nil
}
