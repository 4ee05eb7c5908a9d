package rest

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/httpx"
	"github.com/pincluster/pincluster/api/server"
)

// ErrConfig is wrapped by the errors New returns for an impossible Config.
var ErrConfig = errors.New("rest: invalid config")

// API is IPFS Cluster's REST API over a Backend: an http.Handler, and a
// server that runs it (Serve or Start) until Shutdown. Its constructor
// and server methods have the same shape as package api/pinsvc's. It is a
// pincluster.Component: NewAPI starts it with a Cluster (WithAPI).
type API struct {
	// Server runs the API: Handler, Serve, Start, Addr and Shutdown are
	// its methods, the same on every HTTP API of the module.
	*server.Server

	backend Backend
	cfg     Config
	auth    *auth.Authenticator
	log     *slog.Logger
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
	handler := httpx.CORS(httpx.CORSConfig{
		AllowedOrigins:   cfg.CORS.AllowedOrigins,
		AllowedMethods:   cfg.CORS.AllowedMethods,
		AllowedHeaders:   cfg.CORS.AllowedHeaders,
		AllowCredentials: cfg.CORS.AllowCredentials,
		MaxAge:           cfg.CORS.MaxAge,
	}, api.routes())
	if api.Server, err = server.New(handler, cfg.serverConfig()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return api, nil
}

// NewAPI returns a constructor for pincluster.WithAPI that serves IPFS
// Cluster's REST API of the Cluster on cfg.ListenAddr: New, then Start,
// once the Cluster is built. The Cluster's Shutdown shuts it down first.
func NewAPI(cfg Config) func(*pincluster.Cluster) (pincluster.Component, error) {
	return httpx.Started(func(c *pincluster.Cluster) (*API, error) { return New(c, cfg) })
}

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
