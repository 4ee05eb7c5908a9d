package pinsvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/server"
	"github.com/pincluster/pincluster/internal/defaults"
)

// Defaults of the Pinning Service API.
const (
	// DefaultListenAddr is where Start and NewAPI listen by default.
	DefaultListenAddr = "127.0.0.1:9097"
	// DefaultMaxBodyBytes bounds request bodies (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// MaxDelegates is the most delegates answered (the spec's limit).
	MaxDelegates = 20
)

// Config configures the Pinning Service API.
type Config struct {
	// ListenAddr is the TCP address Start and NewAPI listen on. Default:
	// DefaultListenAddr (127.0.0.1:9097).
	ListenAddr string

	// Tokens maps the accepted bearer access tokens to their user. Pin
	// requests belong to the user of the token that made them. With no
	// Tokens and no JWTKey, every request is accepted as user "".
	Tokens map[string]string
	// JWTKey, when set, also accepts JWTs signed with it (HS256, as the
	// REST API's POST /token issues with the same key); the user is the
	// token's subject.
	JWTKey []byte
	// Revocations is the list of revoked JWTs (API.RevokeToken) that
	// this API checks; give it the REST API's list (rest.NewRevocations,
	// the same type) so that each refuses the tokens the other revoked.
	// Default: a list of this API's own.
	Revocations *Revocations

	// Datastore keeps the pin requests. They live on the peer that serves
	// this API, not in the cluster's shared state. Default: in memory.
	Datastore ds.Batching

	// LocalStatus computes statuses from this peer's view only instead of
	// asking every peer. Default: false (ask every peer).
	LocalStatus bool

	// MaxBodyBytes bounds request bodies. Larger ones are answered 400.
	// Default: DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout,
	// MaxHeaderBytes and MaxConns are the server's limits for hostile
	// clients, with the meaning package api/server's Config gives them.
	// ReadHeaderTimeout: default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout: default 30s (a body trickled slower is answered 408
	// REQUEST_TIMEOUT when the answer can still be written).
	ReadTimeout time.Duration
	// WriteTimeout, per write of an answer: default 60s.
	WriteTimeout time.Duration
	// IdleTimeout: default 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes: default 16 KiB (431 beyond).
	MaxHeaderBytes int
	// MaxConns, per listener: default server.DefaultMaxConns (1024), as
	// the REST API's; negative: no limit.
	MaxConns int
	// AuthFailureBurst is how many wrong tokens one client address (IPv6:
	// its /64) may present in a row; after that its requests with a
	// token are answered 429 TOO_MANY_REQUESTS with Retry-After,
	// unchecked, and it earns one more attempt every AuthFailureInterval.
	// Missing tokens do not count. Negative: no throttling. Default: 10.
	AuthFailureBurst int
	// AuthFailureInterval: see AuthFailureBurst. Default: 1s.
	AuthFailureInterval time.Duration

	// Middleware, when set, wraps the handler that the API's own server
	// runs (Start, Serve), for the caller's metrics or logging. Handler
	// returns the API's handler without it.
	Middleware func(http.Handler) http.Handler

	// Now is the clock giving creation times. Default: time.Now.
	Now func() time.Time
	// Logger receives errors. Default: discard.
	Logger *slog.Logger
}

// Revocations is an in-memory list of revoked JWTs, for
// Config.Revocations; the same type as rest.Revocations.
type Revocations = auth.Revocations

func (c Config) withDefaults() (Config, server.Config, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if err := errors.Join(
		defaults.Set("MaxBodyBytes", &c.MaxBodyBytes, DefaultMaxBodyBytes),
		defaults.Set("ReadTimeout", &c.ReadTimeout, 30*time.Second),
		defaults.Set("WriteTimeout", &c.WriteTimeout, 60*time.Second),
	); err != nil {
		return c, server.Config{}, err
	}
	if c.Datastore == nil {
		c.Datastore = dssync.MutexWrap(ds.NewMapDatastore())
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Logger = defaults.Logger(c.Logger)
	if c.Revocations == nil { // kept by SetTokens
		c.Revocations = auth.NewRevocations()
	}
	if c.JWTKey != nil && len(c.JWTKey) < auth.MinJWTKeyLen {
		return c, server.Config{}, fmt.Errorf("JWTKey of %d bytes, need at least %d", len(c.JWTKey), auth.MinJWTKeyLen)
	}
	return c, server.Config{
		ListenAddr:        c.ListenAddr,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		MaxConns:          c.MaxConns,
		Middleware:        c.Middleware,
		Name:              "pinsvc",
	}, nil
}
