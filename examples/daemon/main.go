// Command daemon is an example of embedding pincluster in a service: one
// peer with its own libp2p host, DHT and gossipsub, the shared state in
// Badger, the in-process IPFS node (or a Kubo daemon with -kubo-api), and
// both HTTP APIs (IPFS Cluster's REST API and the IPFS Pinning Service API)
// on loopback. SIGINT or SIGTERM shut it down gracefully. Operators run
// cmd/pinclusterd instead: a config file, several Pinning Service users,
// metrics, the IPFS proxy and the state commands.
//
//	go run ./examples/daemon -dir ~/.pincluster -bootstrap /ip4/10.0.0.2/tcp/9096/p2p/12D3Koo...
//
// Every flag can also be set by an environment variable: -rest-listen by
// PINCLUSTER_REST_LISTEN, and so on (flags win). Secrets are better given
// by environment: PINCLUSTER_REST_PASSWORD, PINCLUSTER_PINSVC_TOKEN.
// -kubo-api (PINCLUSTER_KUBO_API) takes Kubo's RPC multiaddr; it is
// unrelated to PINCLUSTER_KUBO, the Kubo binary the project's tests use.
//
// Once ready it prints one line per listener to standard output:
//
//	peer 12D3Koo... /ip4/127.0.0.1/tcp/9096
//	rest http://127.0.0.1:9094
//	pinsvc http://127.0.0.1:9097
//	ready
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	pebbleds "github.com/ipfs/go-ds-pebble"
	libp2p "github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/pinsvc"
	"github.com/pincluster/pincluster/api/rest"
	"github.com/pincluster/pincluster/connector/kubo"
)

type options struct {
	dir          string
	listen       string
	bootstrap    string
	trusted      string
	name         string
	cluster      string
	kubo         string
	replication  string
	restListen   string
	restUser     string
	restPassword string
	pinsvcListen string
	pinsvcToken  string
	shutdown     time.Duration
	verbose      bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("daemon", flag.ExitOnError)
	defineFlags(fs, &o)
	_ = fs.Parse(os.Args[1:])
	if err := applyEnv(fs); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
}

func defineFlags(fs *flag.FlagSet, o *options) {
	home, _ := os.UserHomeDir()
	fs.StringVar(&o.dir, "dir", filepath.Join(home, ".pincluster"), "data directory (identity key, Badger state, pin requests)")
	fs.StringVar(&o.listen, "listen", "/ip4/0.0.0.0/tcp/9096", "libp2p listen multiaddrs, comma separated")
	fs.StringVar(&o.bootstrap, "bootstrap", "", "multiaddrs (with /p2p/) of peers to connect to, comma separated")
	fs.StringVar(&o.trusted, "trusted", "", "peer IDs allowed to modify the shared state, comma separated (default: every peer)")
	fs.StringVar(&o.name, "name", "", "this peer's human name (default: short peer ID)")
	fs.StringVar(&o.cluster, "cluster", "", "cluster name; peers of one cluster share it (default: pincluster's)")
	fs.StringVar(&o.kubo, "kubo-api", "", "Kubo RPC API address (e.g. /ip4/127.0.0.1/tcp/5001); default: the in-process IPFS node")
	fs.StringVar(&o.replication, "replication", "", "default replication factors min:max (e.g. 2:3; -1:-1 for every peer)")
	fs.StringVar(&o.restListen, "rest-listen", "127.0.0.1:9094", "REST API address; empty disables it")
	fs.StringVar(&o.restUser, "rest-user", "admin", "REST API basic auth user")
	fs.StringVar(&o.restPassword, "rest-password", "", "REST API basic auth password (empty: no authentication)")
	fs.StringVar(&o.pinsvcListen, "pinsvc-listen", "127.0.0.1:9097", "Pinning Service API address; empty disables it")
	fs.StringVar(&o.pinsvcToken, "pinsvc-token", "", "Pinning Service API access token (required to serve it)")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	fs.BoolVar(&o.verbose, "v", false, "log to standard error")
}

// applyEnv sets each flag not given on the command line from
// PINCLUSTER_<FLAG> (upper case, dashes as underscores).
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "PINCLUSTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadKey reads the identity key from path, creating it on first run.
func loadKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return crypto.UnmarshalPrivateKey(b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return k, os.WriteFile(path, b, 0o600)
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	key, err := loadKey(filepath.Join(o.dir, "identity.key"))
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	bw := metrics.NewBandwidthCounter() // REST GET /health/bandwidth
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(splitList(o.listen)...), libp2p.BandwidthReporter(bw))
	if err != nil {
		return fmt.Errorf("libp2p: %w", err)
	}
	defer h.Close()
	kad, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/pincluster"))
	if err != nil {
		return fmt.Errorf("dht: %w", err)
	}
	defer kad.Close()
	// pubsub lives until psCtx is cancelled, after the cluster has shut down.
	psCtx, psCancel := context.WithCancel(context.Background())
	defer psCancel()
	// Peer scoring: a peer that sends invalid metrics leaves the mesh.
	// ("default" is the cluster name when -cluster is not given.)
	ps, err := pubsub.NewGossipSub(psCtx, h, pincluster.GossipSubScoring(cmp.Or(o.cluster, "default")))
	if err != nil {
		return fmt.Errorf("pubsub: %w", err)
	}

	opts := []pincluster.Option{
		pincluster.WithBadger(filepath.Join(o.dir, "state")),
		pincluster.WithLogger(logger),
	}
	if o.name != "" {
		opts = append(opts, pincluster.WithPeerName(o.name))
	}
	if o.cluster != "" {
		opts = append(opts, pincluster.WithClusterName(o.cluster))
	}
	if o.replication != "" {
		var rmin, rmax int
		if _, err := fmt.Sscanf(o.replication, "%d:%d", &rmin, &rmax); err != nil {
			return fmt.Errorf("-replication %q: want min:max", o.replication)
		}
		opts = append(opts, pincluster.WithReplication(rmin, rmax))
	}
	if ids := splitList(o.trusted); len(ids) > 0 {
		var trusted []peer.ID
		for _, s := range ids {
			p, err := peer.Decode(s)
			if err != nil {
				return fmt.Errorf("-trusted %q: %w", s, err)
			}
			trusted = append(trusted, p)
		}
		opts = append(opts, pincluster.WithTrustedPeers(trusted...))
	}
	if o.kubo != "" {
		conn, err := kubo.New(kubo.Config{APIAddr: o.kubo})
		if err != nil {
			return fmt.Errorf("kubo connector: %w", err)
		}
		opts = append(opts, pincluster.WithConnector(conn))
	}
	var lines []string
	if o.restListen != "" {
		cfg := rest.Config{ListenAddr: o.restListen, Logger: logger, Bandwidth: bw}
		if o.restPassword != "" {
			cfg.BasicAuth = map[string]string{o.restUser: o.restPassword}
		}
		opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			a, err := rest.New(c, cfg)
			if err != nil {
				return nil, err
			}
			if err := a.Start(); err != nil {
				return nil, err
			}
			lines = append(lines, "rest http://"+a.Addr().String())
			return a, nil
		}))
	}
	if o.pinsvcListen != "" {
		if o.pinsvcToken == "" {
			return errors.New("-pinsvc-token (or PINCLUSTER_PINSVC_TOKEN) is required to serve the Pinning Service API; pass -pinsvc-listen= to disable it")
		}
		store, err := pebbleds.NewDatastore(filepath.Join(o.dir, "pinsvc"))
		if err != nil {
			return fmt.Errorf("pin request store: %w", err)
		}
		defer store.Close() // after the cluster (and its APIs) shut down
		cfg := pinsvc.Config{ListenAddr: o.pinsvcListen, Tokens: map[string]string{o.pinsvcToken: "default"}, Datastore: store, Logger: logger}
		opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
			a, err := pinsvc.New(c, cfg)
			if err != nil {
				return nil, err
			}
			if err := a.Start(); err != nil {
				return nil, err
			}
			lines = append(lines, "pinsvc http://"+a.Addr().String())
			return a, nil
		}))
	}

	c, err := pincluster.New(ctx, h, kad, ps, opts...)
	if err != nil {
		return err
	}
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
		defer cancel()
		return c.Shutdown(sctx)
	}
	for _, s := range splitList(o.bootstrap) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			_ = shutdown()
			return fmt.Errorf("-bootstrap %q: %w", s, err)
		}
		if err := h.Connect(ctx, *ai); err != nil {
			logger.Warn("bootstrap peer unreachable", "peer", s, "err", err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return shutdown()
		}
		_ = shutdown()
		return err
	}
	fmt.Fprintln(stdout, "peer", h.ID(), joinAddrs(h.Addrs()))
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	logger.Info("shutting down")
	return shutdown()
}

func joinAddrs(as []ma.Multiaddr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
