package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// tokensFileName is the Pinning Service tokens file init creates.
const tokensFileName = "pinsvc-tokens"

func cmdInit(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("init", stderr, &c, true)
	force := fs.Bool("force", false, "overwrite an existing config file (an existing identity is kept)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pinclusterd init [-dir DIR] [-force] [-section-key value ...]")
		fmt.Fprintln(stderr, "Creates DIR/identity.key and a commented DIR/config.toml with every default;")
		fmt.Fprintln(stderr, "settings given as flags or PINCLUSTER_* variables are written into the file.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("init: unexpected argument %q", fs.Arg(0))}
	}
	path := c.configPath()
	if _, err := os.Stat(path); err == nil && !*force {
		return usageError{fmt.Errorf("init: %s exists (pass -force to overwrite it)", path)}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	cfg := defaultConfig()
	for _, f := range fields(&cfg) {
		v, ok := os.LookupEnv(envName(f.name))
		if fv, given := c.over.values[f.name]; given {
			v, ok = fv, true
		}
		if ok {
			if err := f.set(v); err != nil {
				return &ConfigError{Field: f.name, Err: err}
			}
		}
	}
	_, proxyGiven := c.over.values["ipfsproxy.listen"]
	if _, env := os.LookupEnv(envName("ipfsproxy.listen")); !proxyGiven && !env && cfg.IPFS.KuboAPI != "" {
		// With Kubo, the IPFS proxy is on by default, on IPFS Cluster's port.
		cfg.Proxy.Listen = "127.0.0.1:9095"
	}
	var tokenMsg string
	if cfg.PinSvc.Listen != "" && cfg.PinSvc.TokensFile == "" && cfg.PinSvc.Token == "" && cfg.PinSvc.TokenFile == "" {
		tf := filepath.Join(c.dir, tokensFileName)
		if _, err := os.Stat(tf); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			content := "# Pinning Service API access tokens: one 'token user' pair a line.\n" +
				"# Requests made with a token belong to its user. Edit, then send SIGHUP\n" +
				"# to the daemon (systemctl reload pinclusterd) to apply.\n" +
				hex.EncodeToString(b) + " default\n"
			if err := os.WriteFile(tf, []byte(content), 0o600); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			tokenMsg = "pinning service token of user \"default\" written to " + tf
		}
		cfg.PinSvc.TokensFile = tf
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	keyPath := filepath.Join(c.dir, identityFile)
	var id peer.ID
	if k, err := loadKey(c.dir); err == nil {
		id, _ = peer.IDFromPrivateKey(k)
	} else {
		k, b, err := newKey()
		if err != nil {
			return fmt.Errorf("init: identity: %w", err)
		}
		if err := os.WriteFile(keyPath, b, 0o600); err != nil {
			return fmt.Errorf("init: identity: %w", err)
		}
		id, _ = peer.IDFromPrivateKey(k)
	}
	if err := os.WriteFile(path, writeConfig(&cfg), 0o600); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintln(stdout, "peer", id)
	fmt.Fprintln(stdout, "identity", keyPath)
	fmt.Fprintln(stdout, "config", path)
	if tokenMsg != "" {
		fmt.Fprintln(stdout, tokenMsg)
	}
	return nil
}

func cmdState(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("state: want export, import or cleanup")}
	}
	var c common
	fs := newFlagSet("state "+args[0], stderr, &c, false)
	switch args[0] {
	case "export":
		out := fs.String("o", "-", "file to write (- for standard output)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		cfg, err := c.load()
		if err != nil {
			return err
		}
		return stateExport(c.dir, cfg, *out, stdout, stderr)
	case "import":
		fs.Usage = func() {
			fmt.Fprintln(stderr, "usage: pinclusterd state import [-dir DIR] [FILE|-]")
			fmt.Fprintln(stderr, "Adds the pins of an export to the pinset (pins not in it are kept).")
			fmt.Fprintln(stderr, "The whole input is checked first: a bad line refuses it all, exit code 4.")
			fs.PrintDefaults()
		}
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 1 {
			return usageError{errors.New("state import: at most one file")}
		}
		cfg, err := c.load()
		if err != nil {
			return err
		}
		in := stdin
		if name := fs.Arg(0); name != "" && name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("state import: %w", err)
			}
			defer f.Close()
			in = f
		}
		return stateImport(c.dir, cfg, in, stdout, stderr)
	case "cleanup":
		force := fs.Bool("force", false, "do not ask for confirmation")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		cfg, err := c.load()
		if err != nil {
			return err
		}
		return stateCleanup(c.dir, cfg, *force, stdin, stdout)
	default:
		return usageError{fmt.Errorf("state: unknown command %q (want export, import or cleanup)", args[0])}
	}
}

// offlineConnector stands in for the IPFS node of an offline peer: the
// state commands must not pin anything anywhere.
type offlineConnector struct{}

var _ pincluster.IPFSConnector = offlineConnector{}

var errOffline = fmt.Errorf("%w: offline state command", pincluster.ErrIPFSUnavailable)

func (offlineConnector) Shutdown(context.Context) error { return nil }
func (offlineConnector) ID(context.Context) (pincluster.IPFSID, error) {
	return pincluster.IPFSID{}, errOffline
}
func (offlineConnector) Pin(context.Context, pincluster.Pin, func(pincluster.PinProgress)) error {
	return errOffline
}
func (offlineConnector) Unpin(context.Context, cid.Cid) error { return errOffline }
func (offlineConnector) PinLsCid(context.Context, pincluster.Pin) (pincluster.IPFSPinStatus, error) {
	return 0, errOffline
}
func (offlineConnector) PinLs(context.Context, ...pincluster.IPFSPinStatus) iter.Seq2[pincluster.IPFSPinInfo, error] {
	return func(yield func(pincluster.IPFSPinInfo, error) bool) { yield(pincluster.IPFSPinInfo{}, errOffline) }
}
func (offlineConnector) ConnectSwarms(context.Context, []peer.AddrInfo) error { return errOffline }
func (offlineConnector) SwarmPeers(context.Context) ([]peer.ID, error)        { return nil, errOffline }
func (offlineConnector) ConfigKey(context.Context, string) (any, error)       { return nil, errOffline }
func (offlineConnector) RepoStat(context.Context) (pincluster.RepoStat, error) {
	return pincluster.RepoStat{}, errOffline
}
func (offlineConnector) Resolve(context.Context, string) (cid.Cid, error) {
	return cid.Undef, errOffline
}
func (offlineConnector) BlockPut(context.Context, []byte, cid.Prefix) (cid.Cid, error) {
	return cid.Undef, errOffline
}
func (offlineConnector) BlockGet(context.Context, cid.Cid) ([]byte, error) { return nil, errOffline }

// withOfflinePeer runs fn on the peer's state: a Cluster over the data
// directory with no network, no APIs and no IPFS node to pin to.
func withOfflinePeer(dir string, cfg Config, stderr io.Writer, fn func(ctx context.Context, c *pincluster.Cluster) error) error {
	ctx := context.Background()
	key, err := loadKey(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, stateDir)); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Join(dir, stateDir), 0o700); err != nil {
			return err
		}
	}
	net, err := startP2P(key, nil, nil)
	if err != nil {
		return err
	}
	defer net.close()
	lc := cfg.Log
	lc.Level = "error"
	logger := newLogger(lc, stderr)
	off := cfg
	off.IPFS.KuboAPI = ""
	off.Peer.Follower = false
	off.Peer.Repinning = false
	opts, err := clusterOptions(off, dir, logger)
	if err != nil {
		return err
	}
	opts = append(opts, pincluster.WithConnector(offlineConnector{}))
	c, err := pincluster.New(ctx, net.h, nil, net.ps, opts...)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("cannot open the state in %s (is the daemon running? stop it first): %w", filepath.Join(dir, stateDir), err)
		}
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = c.WaitReady(rctx)
	cancel()
	if err == nil {
		err = fn(ctx, c)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.Peer.ShutdownTimeout.Duration)
	defer cancel()
	if serr := c.Shutdown(sctx); serr != nil {
		return errors.Join(err, fmt.Errorf("closing the state: %w", serr))
	}
	return err
}

func stateExport(dir string, cfg Config, out string, stdout, stderr io.Writer) error {
	w := stdout
	var f *os.File
	if out != "-" {
		var err error
		if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return fmt.Errorf("state export: %w", err)
		}
		w = f
	}
	err := withOfflinePeer(dir, cfg, stderr, func(ctx context.Context, c *pincluster.Cluster) error {
		bw := bufio.NewWriter(w)
		if err := c.ExportState(ctx, bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("state export: %w", err)
	}
	return nil
}

func stateImport(dir string, cfg Config, in io.Reader, stdout, stderr io.Writer) error {
	var n int
	err := withOfflinePeer(dir, cfg, stderr, func(ctx context.Context, c *pincluster.Cluster) error {
		var err error
		n, err = c.ImportState(ctx, in)
		return err
	})
	if err != nil {
		var re *pincluster.RecordError
		if errors.As(err, &re) {
			return fmt.Errorf("state import: %w: %w (nothing was imported)", errRefused, err)
		}
		return fmt.Errorf("state import: %w", err)
	}
	fmt.Fprintf(stdout, "imported %d pins\n", n)
	return nil
}

func stateCleanup(dir string, cfg Config, force bool, stdin io.Reader, stdout io.Writer) error {
	state, requests := filepath.Join(dir, stateDir), filepath.Join(dir, pinsvcDir)
	if !force {
		fmt.Fprintf(stdout, "This deletes this peer's copy of the shared pinset (in %s; the IPFS node's data stays)\nand its Pinning Service requests (%s). It keeps the identity and the config.\nContinue? [y/N] ", state, requests)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return usageError{errors.New("state cleanup: not confirmed (pass -force to skip the question)")}
		}
	}
	if _, err := os.Stat(state); err == nil {
		opt := pincluster.WithBadger(state)
		if cfg.Peer.Datastore == "pebble" {
			opt = pincluster.WithPebble(state)
		}
		err := pincluster.CleanState(context.Background(), opt, pincluster.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return fmt.Errorf("state cleanup (is the daemon running? stop it first): %w", err)
		}
	}
	if err := os.RemoveAll(requests); err != nil {
		return fmt.Errorf("state cleanup: %w", err)
	}
	fmt.Fprintln(stdout, "state removed")
	return nil
}
