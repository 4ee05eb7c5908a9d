package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pebbleds "github.com/ipfs/go-ds-pebble"
	libp2p "github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/ipfsproxy"
	"github.com/pincluster/pincluster/api/pinsvc"
	"github.com/pincluster/pincluster/api/rest"
	"github.com/pincluster/pincluster/connector/kubo"
)

// Files and directories of the data directory.
const (
	identityFile = "identity.key"
	stateDir     = "state"
	pinsvcDir    = "pinsvc"
)

type daemonParams struct {
	cfg            Config
	dir            string
	stdout, stderr io.Writer
	// reload delivers SIGHUP: reload the tokens file.
	reload <-chan os.Signal
}

// Routes of each API, for the HTTP metrics' route label.
var (
	restRoutes = []string{"/health", "/token", "/id", "/version", "/peers", "/peers/{peer}", "/pins",
		"/pins/recover", "/pins/{rest...}", "/allocations", "/allocations/{cid}", "/add",
		"/monitor/metrics", "/monitor/metrics/{name}", "/health/alerts", "/health/graph"}
	pinsvcRoutes = []string{"/health", "/pins", "/pins/{requestid}"}
)

// newLogger returns the daemon's logger on stderr.
func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadKey reads the identity key.
func loadKey(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("no identity at %s: run 'pinclusterd init' first", path)}
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return k, nil
}

func newKey() (crypto.PrivKey, []byte, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	b, err := crypto.MarshalPrivateKey(k)
	return k, b, err
}

// health is the daemon's readiness, served on /health.
type health struct {
	state    atomic.Value // string: starting, ready, stopping
	peer     string
	follower bool
}

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, _ := h.state.Load().(string)
	code := http.StatusServiceUnavailable
	if st == "ready" {
		code = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": st, "peer": h.peer, "follower": h.follower})
}

// opsServer serves /metrics and /health.
type opsServer struct {
	srv *http.Server
	l   net.Listener
	wg  sync.WaitGroup
}

func startOps(addr string, t *telemetry, h *health) (*opsServer, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", t.handler())
	mux.Handle("GET /health", h)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ConfigError{Field: "metrics.listen", Err: err}
	}
	o := &opsServer{l: l, srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
	}}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		_ = o.srv.Serve(l)
	}()
	return o, nil
}

func (o *opsServer) shutdown(ctx context.Context) {
	_ = o.srv.Shutdown(ctx)
	o.wg.Wait()
}

// proxyTarget turns Kubo's API multiaddr into the URL the proxy forwards to.
func proxyTarget(addr string) (string, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return "", err
	}
	_, hostport, err := manet.DialArgs(m)
	if err != nil {
		return "", err
	}
	scheme := "http"
	if _, err := m.ValueForProtocol(ma.P_HTTPS); err == nil {
		scheme = "https"
	}
	return scheme + "://" + hostport, nil
}

// clusterOptions returns the library options of cfg (without APIs); with
// ipfs.kubo_api set, the Kubo connector among them.
func clusterOptions(cfg Config, dir string, logger *slog.Logger) ([]pincluster.Option, error) {
	state := filepath.Join(dir, stateDir)
	opts := []pincluster.Option{
		pincluster.WithLogger(logger),
		pincluster.WithClusterName(cfg.Peer.Cluster),
		pincluster.WithReplication(cfg.Peer.ReplicationMin, cfg.Peer.ReplicationMax),
		pincluster.WithFollowerMode(cfg.Peer.Follower),
		pincluster.WithMonitorInterval(cfg.Peer.MonitorInterval.Duration),
		pincluster.WithRepinning(cfg.Peer.Repinning),
	}
	if cfg.Peer.Datastore == "pebble" {
		opts = append(opts, pincluster.WithPebble(state))
	} else {
		opts = append(opts, pincluster.WithBadger(state))
	}
	if cfg.Peer.Name != "" {
		opts = append(opts, pincluster.WithPeerName(cfg.Peer.Name))
	}
	if len(cfg.Peer.Trusted) > 0 {
		var ids []peer.ID
		for _, s := range cfg.Peer.Trusted {
			p, err := peer.Decode(s)
			if err != nil {
				return nil, &ConfigError{Field: "peer.trusted", Err: err}
			}
			ids = append(ids, p)
		}
		opts = append(opts, pincluster.WithTrustedPeers(ids...))
	}
	if cfg.IPFS.KuboAPI != "" {
		kc, err := kubo.New(kubo.Config{APIAddr: cfg.IPFS.KuboAPI, Logger: logger})
		if err != nil {
			return nil, &ConfigError{Field: "ipfs.kubo_api", Err: err}
		}
		opts = append(opts, pincluster.WithConnector(kc))
	}
	return opts, nil
}

// p2p is the libp2p stack of a peer.
type p2p struct {
	h        host.Host
	kad      *dht.IpfsDHT
	ps       *pubsub.PubSub
	psCancel context.CancelFunc
}

func startP2P(key crypto.PrivKey, listen []string, bc *broadcastCounter, psOpts ...pubsub.Option) (*p2p, error) {
	lopt := libp2p.ListenAddrStrings(listen...)
	if len(listen) == 0 {
		lopt = libp2p.NoListenAddrs
	}
	h, err := libp2p.New(libp2p.Identity(key), lopt)
	if err != nil {
		return nil, fmt.Errorf("libp2p: %w", err)
	}
	kad, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/pincluster"))
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("dht: %w", err)
	}
	// pubsub lives until psCancel, after the cluster has shut down.
	psCtx, psCancel := context.WithCancel(context.Background())
	if bc != nil {
		psOpts = append(psOpts, pubsub.WithRawTracer(bc))
	}
	ps, err := pubsub.NewGossipSub(psCtx, h, psOpts...)
	if err != nil {
		psCancel()
		_ = kad.Close()
		_ = h.Close()
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	return &p2p{h: h, kad: kad, ps: ps, psCancel: psCancel}, nil
}

func (p *p2p) close() {
	_ = p.kad.Close()
	p.psCancel()
	_ = p.h.Close()
}

// loadTokens builds the Pinning Service token set from the config.
func loadTokens(cfg PinSvcConfig) (map[string]string, error) {
	tokens := map[string]string{}
	if cfg.TokensFile != "" {
		t, err := parseTokens(cfg.TokensFile)
		if err != nil {
			return nil, &ConfigError{Field: "pinsvc.tokens_file", Err: err}
		}
		tokens = t
	}
	single := cfg.Token
	if cfg.TokenFile != "" {
		s, err := readSecret("pinsvc.token_file", cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		single = s
	}
	if single != "" {
		if u, ok := tokens[single]; ok && u != "default" {
			return nil, &ConfigError{Field: "pinsvc.token", Err: fmt.Errorf("also in the tokens file, for user %q", u)}
		}
		tokens[single] = "default"
	}
	return tokens, nil
}

// repoGCFunc is what the proxy's repo/gc runs: a cluster-wide garbage
// collection (Cluster.RepoGC), one result per peer.
func repoGCFunc(c *pincluster.Cluster) func(ctx context.Context) ([]ipfsproxy.RepoGCResult, error) {
	return func(ctx context.Context) ([]ipfsproxy.RepoGCResult, error) {
		g, err := c.RepoGC(ctx, false)
		if err != nil {
			return nil, err
		}
		out := make([]ipfsproxy.RepoGCResult, 0, len(g.PeerMap))
		for _, r := range g.PeerMap {
			res := ipfsproxy.RepoGCResult{Removed: r.Keys}
			if r.Error != "" {
				res.Err = fmt.Errorf("peer %s (%s): %s", r.Peer, r.PeerName, r.Error)
			}
			out = append(out, res)
		}
		return out, nil
	}
}

func runDaemon(ctx context.Context, p daemonParams) (err error) {
	cfg := p.cfg
	logger := newLogger(cfg.Log, p.stderr)
	key, err := loadKey(p.dir)
	if err != nil {
		return err
	}

	// Secrets and the API configs first: a mistake stops the start before
	// anything listens.
	restCfg := rest.Config{ListenAddr: cfg.REST.Listen, Logger: logger}
	var jwtKey []byte
	if cfg.REST.JWTKeyFile != "" {
		s, err := readSecret("rest.jwt_key_file", cfg.REST.JWTKeyFile)
		if err != nil {
			return err
		}
		jwtKey = []byte(s)
		restCfg.JWTKey = jwtKey
		restCfg.Revocations = rest.NewRevocations() // shared with the Pinning Service API
	}
	pass := cfg.REST.BasicAuthPass
	if cfg.REST.BasicAuthPassFil != "" {
		if pass, err = readSecret("rest.basic_auth_password_file", cfg.REST.BasicAuthPassFil); err != nil {
			return err
		}
	}
	if pass != "" {
		restCfg.BasicAuth = map[string]string{cfg.REST.BasicAuthUser: pass}
	}
	var tokens map[string]string
	if cfg.PinSvc.Listen != "" {
		if tokens, err = loadTokens(cfg.PinSvc); err != nil {
			return err
		}
	}
	var proxyURL string
	if cfg.Proxy.Listen != "" {
		if proxyURL, err = proxyTarget(cfg.IPFS.KuboAPI); err != nil {
			return &ConfigError{Field: "ipfs.kubo_api", Err: fmt.Errorf("the IPFS proxy cannot forward to it: %w", err)}
		}
	}

	bc := newBroadcastCounter()
	// Peers that send forged metrics are scored out of the mesh.
	net, err := startP2P(key, cfg.Peer.Listen, bc, pincluster.GossipSubScoring(cfg.Peer.Cluster))
	if err != nil {
		return err
	}
	defer net.close()

	tel, err := newTelemetry(net.h, bc)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer func() { _ = tel.mp.Shutdown(context.Background()) }()
	hl := &health{peer: net.h.ID().String(), follower: cfg.Peer.Follower}
	hl.state.Store("starting")
	var lines []string
	if cfg.Metrics.Listen != "" {
		ops, err := startOps(cfg.Metrics.Listen, tel, hl)
		if err != nil {
			return err
		}
		defer ops.shutdown(context.Background())
		lines = append(lines, "metrics http://"+ops.l.Addr().String())
	}

	opts, err := clusterOptions(cfg, p.dir, logger)
	if err != nil {
		return err
	}
	opts = append(opts, pincluster.WithMeterProvider(tel.mp))
	if cfg.Metrics.OTLPEndpoint != "" {
		eopts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Metrics.OTLPEndpoint)}
		if cfg.Metrics.OTLPInsecure {
			eopts = append(eopts, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, eopts...)
		if err != nil {
			return &ConfigError{Field: "metrics.otlp_endpoint", Err: err}
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		opts = append(opts, pincluster.WithTracerProvider(tp))
	}

	var linesMu sync.Mutex
	addLine := func(s string) {
		linesMu.Lock()
		lines = append(lines, s)
		linesMu.Unlock()
	}
	if cfg.REST.Listen != "" {
		restCfg.Middleware = tel.middleware("rest", restRoutes)
		opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			a, err := rest.New(c, restCfg)
			if err != nil {
				return nil, &ConfigError{Field: "rest", Err: err}
			}
			if err := a.Start(); err != nil {
				return nil, &ConfigError{Field: "rest.listen", Err: err}
			}
			addLine("rest http://" + a.Addr().String())
			return a, nil
		}))
	}
	var psa atomic.Pointer[pinsvc.API]
	if cfg.PinSvc.Listen != "" {
		store, err := pebbleds.NewDatastore(filepath.Join(p.dir, pinsvcDir))
		if err != nil {
			return fmt.Errorf("pin request store: %w", err)
		}
		defer store.Close() // after the cluster (and its APIs) shut down
		pcfg := pinsvc.Config{ListenAddr: cfg.PinSvc.Listen, Tokens: tokens, JWTKey: jwtKey, Revocations: restCfg.Revocations, Datastore: store,
			LocalStatus: cfg.PinSvc.LocalStatus, Logger: logger, Middleware: tel.middleware("pinsvc", pinsvcRoutes)}
		opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			a, err := pinsvc.New(c, pcfg)
			if err != nil {
				return nil, &ConfigError{Field: "pinsvc", Err: err}
			}
			if err := a.Start(); err != nil {
				return nil, &ConfigError{Field: "pinsvc.listen", Err: err}
			}
			psa.Store(a)
			addLine("pinsvc http://" + a.Addr().String())
			return a, nil
		}))
	}
	if cfg.Proxy.Listen != "" {
		opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			pc := ipfsproxy.Config{
				ListenAddr: cfg.Proxy.Listen,
				NodeURL:    proxyURL,
				Logger:     logger,
				Middleware: tel.middleware("ipfsproxy", ipfsproxy.Routes),
				RepoGC:     repoGCFunc(c),
			}
			a, err := ipfsproxy.New(c, pc)
			if err != nil {
				return nil, &ConfigError{Field: "ipfsproxy", Err: err}
			}
			if err := a.Start(); err != nil {
				return nil, &ConfigError{Field: "ipfsproxy.listen", Err: err}
			}
			addLine("ipfsproxy http://" + a.Addr().String())
			return a, nil
		}))
	}

	c, err := pincluster.New(ctx, net.h, net.kad, net.ps, opts...)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("start: %w", err)
	}
	tel.cluster.Store(c)
	shutdown := func() error {
		hl.state.Store("stopping")
		logger.Info("shutting down: draining requests, flushing the state")
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Peer.ShutdownTimeout.Duration)
		defer cancel()
		// Cluster.Shutdown stops the APIs first: they stop accepting
		// requests and wait for the ones in progress, which the Cluster
		// still serves.
		err := c.Shutdown(sctx)
		tel.cluster.Store(nil)
		if err != nil && sctx.Err() != nil {
			return fmt.Errorf("%w: %v", errShutdownTimeout, err)
		}
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		logger.Info("stopped")
		return nil
	}
	for _, s := range cfg.Peer.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return errors.Join(&ConfigError{Field: "peer.bootstrap", Err: err}, shutdown())
		}
		if err := net.h.Connect(ctx, *ai); err != nil {
			logger.Warn("bootstrap peer unreachable", "peer", s, "err", err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		serr := shutdown()
		if errors.Is(err, context.Canceled) {
			return serr
		}
		return errors.Join(err, serr)
	}

	addrs := make([]string, 0)
	for _, a := range net.h.Addrs() {
		addrs = append(addrs, a.String())
	}
	linesMu.Lock()
	fmt.Fprintln(p.stdout, "peer", net.h.ID(), strings.Join(addrs, ","))
	for _, l := range lines {
		fmt.Fprintln(p.stdout, l)
	}
	linesMu.Unlock()
	hl.state.Store("ready")
	fmt.Fprintln(p.stdout, "ready")
	logger.Info("ready", "peer", net.h.ID(), "follower", cfg.Peer.Follower)

	for {
		select {
		case <-ctx.Done():
			return shutdown()
		case <-p.reload:
			a := psa.Load()
			if a == nil || cfg.PinSvc.TokensFile == "" {
				logger.Warn("SIGHUP: no pinsvc.tokens_file to reload")
				continue
			}
			t, err := loadTokens(cfg.PinSvc)
			if err == nil {
				err = a.SetTokens(t)
			}
			if err != nil {
				logger.Error("SIGHUP: tokens not reloaded, the previous ones stay in force", "err", err)
				continue
			}
			users := map[string]bool{}
			for _, u := range t {
				users[u] = true
			}
			logger.Info("SIGHUP: tokens reloaded", "tokens", len(t), "users", len(users))
		}
	}
}
