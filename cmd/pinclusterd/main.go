// Command pinclusterd runs a pincluster peer as a standalone service, the
// way operators run ipfs-cluster-service: one binary, a data directory with
// the peer's identity, its configuration and its state.
//
//	go install github.com/pincluster/pincluster/cmd/pinclusterd@latest
//	pinclusterd init                 # identity, commented config.toml
//	pinclusterd daemon               # run the peer
//	pinclusterd state export > pins.ndjson
//	pinclusterd state import pins.ndjson
//	pinclusterd state cleanup -force
//	pinclusterd version
//
// Every command takes -dir (default $PINCLUSTER_DIR, else ~/.pincluster)
// and -config (default <dir>/config.toml). The configuration file is TOML
// (chosen over JSON because it has comments: init writes every setting
// with its documentation and default). Each setting section.key can be
// overridden by the flag -section-key and the environment variable
// PINCLUSTER_SECTION_KEY (flags win); secrets can be read from files
// (rest.basic_auth_password_file, rest.jwt_key_file, pinsvc.tokens_file,
// pinsvc.token_file).
//
// The daemon prints one line per listener, then "ready", on standard
// output once the peer serves writes; /health (on metrics.listen) answers
// 503 until then and 200 afterwards. SIGHUP reloads pinsvc.tokens_file.
// SIGTERM or SIGINT stop it: the APIs stop accepting requests, the ones
// in progress finish, then the state is flushed and closed, all within
// peer.shutdown_timeout.
//
// Exit codes:
//
//	0  success; for the daemon, a clean shutdown after SIGTERM or SIGINT
//	1  failure at run time (start-up failed, an I/O or state error)
//	2  usage or configuration error (bad flag, invalid config, no init)
//	3  the daemon's shutdown did not finish within peer.shutdown_timeout
//	4  state import refused its input (nothing was changed)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/pincluster/pincluster"
)

// Exit codes.
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2
	exitShutdown   = 3
	exitRefused    = 4
	defaultDirName = ".pincluster"
)

// usageError marks errors that exit with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errShutdownTimeout is returned by the daemon when the shutdown did not
// finish in time.
var errShutdownTimeout = errors.New("shutdown did not finish within peer.shutdown_timeout")

// errRefused wraps an input that state import refused.
var errRefused = errors.New("refused")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: pinclusterd <command> [flags]

commands:
  init            create the identity and a commented config.toml
  daemon          run the cluster peer
  state export    write the shared pinset (newline-delimited JSON) to stdout or -o FILE
  state import    read an export (a FILE argument or stdin) into the pinset
  state cleanup   delete this peer's copy of the pinset and its pin requests (not the IPFS data, identity or config)
  version         print the version

Run 'pinclusterd <command> -h' for the command's flags.
`

// run executes one command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], stdout, stderr)
	case "daemon":
		err = cmdDaemon(args[1:], stdout, stderr)
	case "state":
		err = cmdState(args[1:], stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pinclusterd: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "pinclusterd:", err)
	var ue usageError
	var ce *ConfigError
	switch {
	case errors.As(err, &ue), errors.As(err, &ce):
		return exitUsage
	case errors.Is(err, errShutdownTimeout):
		return exitShutdown
	case errors.Is(err, errRefused):
		return exitRefused
	default:
		return exitFailure
	}
}

// versionString is pincluster's version and the build's revision.
func versionString() string {
	s := "pinclusterd " + pincluster.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += " " + kv.Value[:12]
			}
		}
		s += " " + bi.GoVersion
	}
	return s
}

// common holds the flags every command has.
type common struct {
	dir, config string
	over        *overrides
}

func newFlagSet(name string, stderr io.Writer, c *common, withConfig bool) *flag.FlagSet {
	fs := flag.NewFlagSet("pinclusterd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := os.Getenv("PINCLUSTER_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, defaultDirName)
	}
	fs.StringVar(&c.dir, "dir", dir, "data directory: identity.key, config.toml, state/ (PINCLUSTER_DIR)")
	fs.StringVar(&c.config, "config", "", "configuration file (default <dir>/config.toml)")
	if withConfig {
		c.over = defineConfigFlags(fs)
	}
	return fs
}

func (c *common) configPath() string {
	if c.config != "" {
		return c.config
	}
	return filepath.Join(c.dir, "config.toml")
}

func (c *common) load() (Config, error) {
	cfg, err := loadConfig(c.configPath(), c.over, os.LookupEnv)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return cfg, err
		}
		return cfg, usageError{err}
	}
	return cfg, nil
}

// parse parses the flags; errors other than -h are usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func cmdDaemon(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("daemon", stderr, &c, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("daemon: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runDaemon(ctx, daemonParams{cfg: cfg, dir: c.dir, stdout: stdout, stderr: stderr, reload: hup})
}
