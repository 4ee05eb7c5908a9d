package rest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/server"
	"github.com/pincluster/pincluster/internal/defaults"
)

// Default limits of the REST API.
const (
	// DefaultListenAddr is where Start and NewAPI listen by default:
	// loopback only, IPFS Cluster's REST port.
	DefaultListenAddr = "127.0.0.1:9094"
	// DefaultMaxBodyBytes bounds bodies of requests other than /add.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxAddBytes bounds a /add body (files or CAR).
	DefaultMaxAddBytes = 1 << 30
	// DefaultMaxCARBlocks bounds the blocks of one CAR upload.
	DefaultMaxCARBlocks = 1_000_000
	// MaxListCids bounds the cids= list of GET /pins.
	MaxListCids = 1000
	// DefaultReadTimeout bounds reading a request other than /add.
	DefaultReadTimeout = 30 * time.Second
	// DefaultAddReadTimeout bounds reading a /add request.
	DefaultAddReadTimeout = 30 * time.Minute
	// DefaultWriteTimeout bounds each write of an answer.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultMaxConns bounds the connections open at once on one
	// listener; more are answered 503 and closed.
	DefaultMaxConns = server.DefaultMaxConns
	// DefaultResolveTimeout bounds POST and DELETE of /pins/ipfs/<path>:
	// resolving the path (which may have to fetch blocks from the
	// network) and pinning the result.
	DefaultResolveTimeout = time.Minute
)

// CORS configures cross-origin requests. With no AllowedOrigins no CORS
// header is ever sent and preflights are treated as ordinary requests.
type CORS struct {
	// AllowedOrigins lists the origins allowed, or "*" for any.
	AllowedOrigins []string
	// AllowedMethods. Default: GET, POST, DELETE, OPTIONS.
	AllowedMethods []string
	// AllowedHeaders. Default: Authorization, Content-Type.
	AllowedHeaders []string
	// AllowCredentials sets Access-Control-Allow-Credentials: true.
	AllowCredentials bool
	// MaxAge is how long browsers may cache a preflight. Default: not sent.
	MaxAge time.Duration
}

// BandwidthReporter gives traffic statistics by libp2p protocol, as a
// libp2p bandwidth counter (metrics.BandwidthCounter) does.
type BandwidthReporter interface {
	// GetBandwidthByProtocol returns the totals and rates of each protocol.
	GetBandwidthByProtocol() map[protocol.ID]metrics.Stats
}

// Config configures the REST API. The zero Config serves an API without
// authentication (fine on loopback; set BasicAuth or BearerTokens for
// anything else).
type Config struct {
	// ListenAddr is the TCP address Start and NewAPI listen on.
	// Default: DefaultListenAddr (127.0.0.1:9094).
	ListenAddr string

	// BasicAuth maps user names to passwords accepted with HTTP basic
	// auth. They may also obtain JWTs with POST /token.
	BasicAuth map[string]string
	// BearerTokens maps static bearer tokens to their user name.
	BearerTokens map[string]string
	// JWTKey signs and verifies the JWTs issued by POST /token (HS256, at
	// least 32 bytes). Default: a random key made by New when BasicAuth is
	// set, so tokens do not survive a restart.
	JWTKey []byte
	// JWTTTL is how long an issued JWT is valid. Default: 24h.
	JWTTTL time.Duration
	// Revocations is the list of revoked JWTs (API.RevokeToken) that
	// this API checks. Give the same list to the APIs of this process
	// that accept the same JWTs (a Pinning Service API with the same key)
	// so that a token revoked at one is refused by all. Default: a list
	// of this API's own.
	Revocations *Revocations

	// CORS configures cross-origin requests. Default: none.
	CORS CORS

	// Bandwidth, when set, is the libp2p host's bandwidth counter (the
	// one given to libp2p.BandwidthReporter): GET /health/bandwidth
	// answers its totals and rates by protocol. Default: nil, and that
	// endpoint answers null, as IPFS Cluster does without a counter.
	Bandwidth BandwidthReporter

	// MaxBodyBytes bounds request bodies other than /add, in bytes.
	// Default: DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// MaxAddBytes bounds the body of /add and of /pins/stream, in bytes.
	// Default: DefaultMaxAddBytes (1 GiB).
	MaxAddBytes int64
	// MaxCARBlocks bounds the number of blocks of one CAR upload.
	// Default: DefaultMaxCARBlocks.
	MaxCARBlocks int

	// ReadHeaderTimeout bounds reading request headers (slow-loris
	// protection). Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body, on
	// every route but /add: a client trickling its body slower than that
	// is cut off (408 when the answer can still be written). Default:
	// DefaultReadTimeout (30s; bodies are at most MaxBodyBytes).
	ReadTimeout time.Duration
	// AddReadTimeout bounds reading a /add or /pins/stream request, from
	// the end of its headers. Default: DefaultAddReadTimeout (30m: a
	// MaxAddBytes upload of 1 GiB needs about 600 KB/s).
	AddReadTimeout time.Duration
	// WriteTimeout bounds each write of an answer, not the whole answer:
	// the deadline moves forward as the handler writes, so long NDJSON
	// streams and slow cluster-wide status answers still go out, while a
	// client that stops reading is cut off after about WriteTimeout.
	// Default: DefaultWriteTimeout (60s).
	WriteTimeout time.Duration
	// IdleTimeout bounds idle keep-alive connections. Default: 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers; larger ones are answered
	// 431. Default: 16 KiB.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once on each listener of
	// Serve and Start; a connection beyond it is answered 503 (with
	// Retry-After) and closed without being read. Negative: no limit.
	// Default: DefaultMaxConns (1024). Keep it below the process's open
	// file limit (ulimit -n), with room for the peer's other files.
	MaxConns int
	// AuthFailureBurst is how many wrong credentials one client address
	// (IPv6: its /64) may present in a row; after that its requests with
	// credentials are answered 429 with Retry-After, unchecked, and it
	// earns one more attempt every AuthFailureInterval. Missing
	// credentials do not count. Negative: no throttling. Default: 10.
	AuthFailureBurst int
	// AuthFailureInterval: see AuthFailureBurst. Default: 1s.
	AuthFailureInterval time.Duration
	// ResolveTimeout bounds a pin or unpin of an /ipfs/ path (resolving
	// it, then pinning): a path that cannot be resolved is answered 504
	// after it rather than waiting as long as the client does. Default:
	// DefaultResolveTimeout (1m).
	ResolveTimeout time.Duration

	// Logger receives request errors. Default: discard.
	Logger *slog.Logger
	// Middleware, when set, wraps the handler that the API's own server
	// runs (Start, Serve), for the caller's metrics or logging. Handler
	// returns the API's handler without it.
	Middleware func(http.Handler) http.Handler
}

// Revocations is an in-memory list of revoked JWTs, for
// Config.Revocations; safe for concurrent use.
type Revocations = auth.Revocations

// NewRevocations returns an empty list of revoked JWTs.
func NewRevocations() *Revocations { return auth.NewRevocations() }

func (c Config) withDefaults() (Config, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if err := errors.Join(
		defaults.Set("ResolveTimeout", &c.ResolveTimeout, DefaultResolveTimeout),
		defaults.Set("ReadTimeout", &c.ReadTimeout, DefaultReadTimeout),
		defaults.Set("AddReadTimeout", &c.AddReadTimeout, DefaultAddReadTimeout),
		defaults.Set("WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout),
		defaults.Set("MaxBodyBytes", &c.MaxBodyBytes, DefaultMaxBodyBytes),
		defaults.Set("MaxAddBytes", &c.MaxAddBytes, DefaultMaxAddBytes),
		defaults.Set("MaxCARBlocks", &c.MaxCARBlocks, DefaultMaxCARBlocks),
		defaults.NotNegative("JWTTTL", c.JWTTTL),
		defaults.NotNegative("AuthFailureInterval", c.AuthFailureInterval),
	); err != nil {
		return c, fmt.Errorf("rest: config: %w", err)
	}
	c.Logger = defaults.Logger(c.Logger)
	if c.JWTKey == nil && len(c.BasicAuth) > 0 {
		c.JWTKey = make([]byte, 32)
		if _, err := rand.Read(c.JWTKey); err != nil {
			return c, fmt.Errorf("rest: jwt key: %w", err)
		}
	}
	if c.JWTKey != nil && len(c.JWTKey) < auth.MinJWTKeyLen {
		return c, fmt.Errorf("rest: JWTKey of %d bytes, need at least %d", len(c.JWTKey), auth.MinJWTKeyLen)
	}
	return c, nil
}

// serverConfig is the address and limits of the API's server.
func (c Config) serverConfig() server.Config {
	return server.Config{
		ListenAddr:        c.ListenAddr,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		MaxConns:          c.MaxConns,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		Middleware:        c.Middleware,
		Name:              "rest",
	}
}
