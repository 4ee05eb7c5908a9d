package kubo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/pincluster/pincluster/internal/defaults"
)

// Default values of Config.
const (
	// DefaultRequestTimeout bounds one unary RPC call.
	DefaultRequestTimeout = 2 * time.Minute
	// DefaultMaxConcurrentRequests bounds the calls in flight.
	DefaultMaxConcurrentRequests = 32
	// DefaultDAGSizeTimeout bounds one DAGSize call.
	DefaultDAGSizeTimeout = 10 * time.Second
	// DefaultOriginConnectTimeout bounds the swarm connection to one origin
	// made before a pin.
	DefaultOriginConnectTimeout = 10 * time.Second
	// DefaultMaxBlockSize bounds what BlockGet reads.
	DefaultMaxBlockSize = 4 << 20
)

// maxJSONResponse bounds a unary JSON answer read into memory; maxLine bounds
// one line of a streamed answer; maxErrorBody bounds an error answer.
const (
	maxJSONResponse = 8 << 20
	maxLine         = 1 << 20
	maxErrorBody    = 64 << 10
	maxGCRemoved    = 10_000
)

// Config configures a Connector. The zero value of every field but APIAddr
// has a meaning; New copies the Config, so changing it afterwards has no
// effect.
type Config struct {
	// APIAddr is the address of Kubo's RPC API: a multiaddr such as
	// "/ip4/127.0.0.1/tcp/5001" (also /ip6, /dns, /dns4, /dns6, /unix/<path>;
	// a trailing /http or /https selects the scheme) or a URL such as
	// "http://127.0.0.1:5001". Required.
	APIAddr string
	// HTTPClient makes the calls. nil: the Connector builds its own client
	// with its own transport (no proxy, keep-alive pool sized to
	// MaxConcurrentRequests) and closes its idle connections at Shutdown.
	// A given client's Timeout must be 0 or larger than every pin takes;
	// /unix addresses need the default client. Default: nil.
	HTTPClient *http.Client
	// RequestTimeout bounds each unary call (id, pin/rm, pin/ls of one CID,
	// repo/stat, swarm/*, block/*, resolve, config). Pin, PinUpdate, PinLs
	// and RepoGC are bounded only by their ctx: a pin's liveness is told by
	// its progress callback. Default: DefaultRequestTimeout (2m).
	RequestTimeout time.Duration
	// MaxConcurrentRequests bounds the calls in flight at once; further
	// calls wait for a slot (or their ctx). A pin holds its slot until it
	// ends, so this must exceed the caller's pin concurrency. Default:
	// DefaultMaxConcurrentRequests (32).
	MaxConcurrentRequests int
	// PinProgressInterval is the minimum time between two calls of a Pin's
	// progress callback. Kubo reports every 500 ms; reports with unchanged
	// counts are never passed on, so with 0 the callback runs on every
	// report that shows new blocks. The last counts of a pin are always
	// delivered. Default: 0.
	PinProgressInterval time.Duration
	// OriginConnectTimeout bounds the connection to one of a pin's origins
	// made before pinning; failures are logged, not returned. Default:
	// DefaultOriginConnectTimeout (10s).
	OriginConnectTimeout time.Duration
	// DAGSizeTimeout bounds one DAGSize call, which walks the local blocks
	// of the DAG only. Default: DefaultDAGSizeTimeout (10s).
	DAGSizeTimeout time.Duration
	// MaxBlockSize is the largest block BlockGet accepts, in bytes.
	// Default: DefaultMaxBlockSize (4 MiB).
	MaxBlockSize int64
	// CheckIndirect makes PinLsCid ask Kubo for every pin type, so that a
	// CID held only as part of another pin is reported as
	// IPFSPinStatusIndirect. Kubo then walks every recursive pin's DAG for
	// each CID that is not pinned itself, which is slow on large repos.
	// Default: false (such a CID is reported as IPFSPinStatusUnpinned).
	CheckIndirect bool
	// PinNames passes each pin's name to Kubo (pin/add name=...), so that
	// `ipfs pin ls --names` shows it. It costs Kubo a name index write per
	// pin: on Kubo v0.42.0, 8 % more Kubo CPU per pin and 14 % longer
	// until 5,000 pins are pinned on 3 peers (BENCHMARKS.md). The
	// cluster's state keeps the names either way and nothing here reads
	// them back from Kubo; IPFS Cluster does not pass them. Default: false.
	PinNames bool
	// Logger receives the connector's logs. nil: logs are discarded.
	Logger *slog.Logger
}

// withDefaults returns a copy of cfg with defaults filled in, or an error
// naming the impossible value.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.APIAddr == "" {
		return cfg, errors.New("kubo: config: APIAddr is required")
	}
	if err := errors.Join(
		defaults.Set("RequestTimeout", &cfg.RequestTimeout, DefaultRequestTimeout),
		defaults.Set("MaxConcurrentRequests", &cfg.MaxConcurrentRequests, DefaultMaxConcurrentRequests),
		defaults.Set("OriginConnectTimeout", &cfg.OriginConnectTimeout, DefaultOriginConnectTimeout),
		defaults.Set("DAGSizeTimeout", &cfg.DAGSizeTimeout, DefaultDAGSizeTimeout),
		defaults.Set("MaxBlockSize", &cfg.MaxBlockSize, DefaultMaxBlockSize),
		defaults.NotNegative("PinProgressInterval", cfg.PinProgressInterval),
	); err != nil {
		return cfg, fmt.Errorf("kubo: config: %w", err)
	}
	cfg.Logger = defaults.Logger(cfg.Logger)
	return cfg, nil
}

// endpoint is a parsed APIAddr: the base URL of the API ("http://h:p") and,
// for a unix socket, its path.
type endpoint struct {
	base string
	unix string
}

// parseAPIAddr parses a multiaddr or URL API address.
func parseAPIAddr(s string) (endpoint, error) {
	if strings.HasPrefix(s, "/") {
		return parseMultiaddr(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: want an http(s) URL or a multiaddr", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: a URL must have no path, query or user", s)
	}
	return endpoint{base: u.Scheme + "://" + u.Host}, nil
}

func parseMultiaddr(s string) (endpoint, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: %w", s, err)
	}
	scheme := "http"
	var rest []ma.Component
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_HTTP:
		case ma.P_HTTPS:
			scheme = "https"
		case ma.P_TLS:
			scheme = "https"
		default:
			rest = append(rest, c)
		}
	}
	network, host, err := manet.DialArgs(ma.Multiaddr(rest))
	if err != nil {
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: %w", s, err)
	}
	switch network {
	case "unix":
		return endpoint{base: "http://unix", unix: host}, nil
	case "tcp", "tcp4", "tcp6":
		return endpoint{base: scheme + "://" + host}, nil
	default:
		return endpoint{}, fmt.Errorf("kubo: config: APIAddr %q: network %s not supported", s, network)
	}
}

// newTransport returns the Connector's own HTTP transport.
func newTransport(ep endpoint, maxConns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	if ep.unix != "" {
		path := ep.unix
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	return t
}
