package pinsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/httpx"
	"github.com/pincluster/pincluster/api/server"
)

// ErrConfig is wrapped by the errors New returns for an impossible Config.
var ErrConfig = errors.New("pinsvc: invalid config")

// API is the IPFS Pinning Service API v1.0.0 over a Backend: an
// http.Handler, and a server that runs it (Serve or Start) until
// Shutdown. Its constructor and server methods have the same shape as
// package api/rest's. It is a pincluster.Component: NewAPI starts it with
// a Cluster (WithAPI).
type API struct {
	// Server runs the API: Handler, Serve, Start, Addr and Shutdown are
	// its methods, the same on every HTTP API of the module.
	*server.Server

	backend Backend
	cfg     Config
	auth    atomic.Pointer[auth.Authenticator]
	log     *slog.Logger
	store   *store

	// writeMu serialises changes to requests and the cluster pins they
	// hold (reference counting per CID).
	writeMu sync.Mutex
}

var _ pincluster.Component = (*API)(nil)

// New returns the Pinning Service API of backend (a *pincluster.Cluster,
// or a stand-in in tests), configured by cfg. It loads the pin requests
// kept in cfg.Datastore. It does not listen: use Handler, Serve or Start.
func New(backend Backend, cfg Config) (*API, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrConfig)
	}
	cfg, sc, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	a, err := auth.New(auth.Config{Tokens: cfg.Tokens, JWTKey: cfg.JWTKey, Revocations: cfg.Revocations,
		FailureBurst: cfg.AuthFailureBurst, FailureInterval: cfg.AuthFailureInterval})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	// The datastore is local (the caller's, or memory): loading it is
	// bounded by its size, not by the network.
	st, err := openStore(context.Background(), cfg.Datastore)
	if err != nil {
		return nil, err
	}
	api := &API{backend: backend, cfg: cfg, log: cfg.Logger, store: st}
	api.auth.Store(a)
	if api.Server, err = server.New(api.routes(), sc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return api, nil
}

// SetTokens replaces the accepted static tokens (token -> user, as
// Config.Tokens) while the API runs: requests that arrive afterwards are
// checked against the new set; Config.JWTKey still applies. It refuses an
// empty token or a set that would leave an API that had credentials with
// none (which would let every request through).
func (a *API) SetTokens(tokens map[string]string) error {
	old := a.auth.Load()
	if len(tokens) == 0 && a.cfg.JWTKey == nil && old.Enabled() {
		return fmt.Errorf("%w: an empty token set would disable authentication", ErrConfig)
	}
	na, err := auth.New(auth.Config{Tokens: tokens, JWTKey: a.cfg.JWTKey, Revocations: a.cfg.Revocations,
		FailureBurst: a.cfg.AuthFailureBurst, FailureInterval: a.cfg.AuthFailureInterval})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	a.auth.Store(na)
	return nil
}

// NewAPI returns a constructor for pincluster.WithAPI that serves the
// Pinning Service API of the Cluster on cfg.ListenAddr: New, then Start,
// once the Cluster is built. The Cluster's Shutdown shuts it down first.
func NewAPI(cfg Config) func(*pincluster.Cluster) (pincluster.Component, error) {
	return httpx.Started(func(c *pincluster.Cluster) (*API, error) { return New(c, cfg) })
}

// RevokeToken refuses a JWT signed with Config.JWTKey from now on, until
// it expires: it adds it to Config.Revocations, so the APIs given the same
// list (the REST API) refuse it too. Revocations are kept in memory: they
// do not survive a restart and do not reach other processes.
// It fails for a token that does not verify, or without a JWTKey.
func (a *API) RevokeToken(token string) error {
	if err := a.auth.Load().Revoke(token); err != nil {
		return fmt.Errorf("pinsvc: %w", err)
	}
	return nil
}
