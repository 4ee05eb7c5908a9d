package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The configuration file is TOML: unlike JSON it has comments, so the file
// that init writes documents every setting next to its default, and an
// operator can annotate their changes.

// Config is the configuration of pinclusterd. Each field's toml tag names
// it in the file (section.key), its help tag documents it (in the written
// file and in the flags' usage). Flags (-section-key) and environment
// variables (PINCLUSTER_SECTION_KEY) override the file.
type Config struct {
	Peer    PeerConfig    `toml:"peer" help:"This cluster peer."`
	IPFS    IPFSConfig    `toml:"ipfs" help:"The IPFS node whose pins the peer manages."`
	REST    RESTConfig    `toml:"rest" help:"IPFS Cluster's REST API (what ipfs-cluster-ctl talks to)."`
	PinSvc  PinSvcConfig  `toml:"pinsvc" help:"The IPFS Pinning Service API (what 'ipfs pin remote' talks to)."`
	Proxy   ProxyConfig   `toml:"ipfsproxy" help:"IPFS Cluster's IPFS proxy: a Kubo RPC API endpoint whose pin, add and repo commands act on the cluster."`
	Metrics MetricsConfig `toml:"metrics" help:"Prometheus metrics, health and tracing."`
	Log     LogConfig     `toml:"log" help:"Logging to standard error."`
}

// PeerConfig configures the cluster peer.
type PeerConfig struct {
	Name            string   `toml:"name" help:"This peer's human name (empty: the short peer ID)."`
	Cluster         string   `toml:"cluster" help:"Cluster name; every peer of one cluster uses the same."`
	Listen          []string `toml:"listen" help:"libp2p listen multiaddrs."`
	Bootstrap       []string `toml:"bootstrap" help:"Multiaddrs, with /p2p/<id>, of peers to connect to at start."`
	Trusted         []string `toml:"trusted" help:"Peer IDs allowed to modify the shared pinset (empty: every peer of the cluster)."`
	ReplicationMin  int      `toml:"replication_min" help:"Default minimum replication of a pin (-1: every peer)."`
	ReplicationMax  int      `toml:"replication_max" help:"Default maximum replication of a pin (-1: every peer)."`
	Follower        bool     `toml:"follower" help:"Follower mode: follow the pinset of trusted peers, refuse pins and unpins."`
	Datastore       string   `toml:"datastore" help:"Where the state is kept, in <dir>/state: \"badger\" or \"pebble\"."`
	MonitorInterval Duration `toml:"monitor_interval" help:"How often this peer publishes its metrics (free space, pin count...)."`
	Repinning       bool     `toml:"repinning" help:"Re-allocate the pins of peers that went silent."`
	ShutdownTimeout Duration `toml:"shutdown_timeout" help:"How long a graceful shutdown (draining requests, flushing the state) may take."`
}

// IPFSConfig selects the IPFS node.
type IPFSConfig struct {
	KuboAPI string `toml:"kubo_api" help:"Kubo's RPC API multiaddr (e.g. /ip4/127.0.0.1/tcp/5001); empty: the in-process IPFS node."`
}

// RESTConfig configures the REST API.
type RESTConfig struct {
	Listen           string `toml:"listen" help:"Listen address (host:port); empty disables the API."`
	BasicAuthUser    string `toml:"basic_auth_user" help:"Basic auth user name."`
	BasicAuthPass    string `toml:"basic_auth_password" help:"Basic auth password (empty with no password file: no authentication). Prefer basic_auth_password_file."`
	BasicAuthPassFil string `toml:"basic_auth_password_file" help:"File holding the basic auth password."`
	JWTKeyFile       string `toml:"jwt_key_file" help:"File holding the key (at least 32 bytes) that signs the JWTs of POST /token; the Pinning Service API accepts them too. Empty: no JWTs."`
}

// PinSvcConfig configures the Pinning Service API.
type PinSvcConfig struct {
	Listen      string `toml:"listen" help:"Listen address (host:port); empty disables the API."`
	TokensFile  string `toml:"tokens_file" help:"File of access tokens, one 'token user' pair a line ('#' comments); reloaded on SIGHUP."`
	Token       string `toml:"token" help:"A single access token, of user \"default\" (with tokens_file: added to it). Prefer tokens_file."`
	TokenFile   string `toml:"token_file" help:"File holding a single access token, of user \"default\"."`
	LocalStatus bool   `toml:"local_status" help:"Compute pin statuses from this peer only instead of asking every peer."`
}

// ProxyConfig configures the IPFS proxy.
type ProxyConfig struct {
	Listen string `toml:"listen" help:"Listen address (host:port; IPFS Cluster's is 127.0.0.1:9095); empty disables the proxy. It forwards the commands it does not intercept to ipfs.kubo_api, so it needs one."`
}

// MetricsConfig configures metrics, health and tracing.
type MetricsConfig struct {
	Listen       string `toml:"listen" help:"Address of /metrics (Prometheus text format) and /health; empty disables both."`
	OTLPEndpoint string `toml:"otlp_endpoint" help:"OTLP/HTTP traces endpoint (host:port, e.g. 127.0.0.1:4318); empty: no tracing."`
	OTLPInsecure bool   `toml:"otlp_insecure" help:"Send traces over plain HTTP instead of HTTPS."`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `toml:"level" help:"debug, info, warn or error."`
	Format string `toml:"format" help:"text or json."`
}

// Duration is a time.Duration written as text ("30s") in the file.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// defaultConfig returns every default; init writes them out.
func defaultConfig() Config {
	return Config{
		Peer: PeerConfig{
			Listen:          []string{"/ip4/0.0.0.0/tcp/9096"},
			Bootstrap:       []string{},
			Trusted:         []string{},
			Cluster:         "default",
			ReplicationMin:  -1,
			ReplicationMax:  -1,
			Datastore:       "badger",
			MonitorInterval: Duration{15 * time.Second},
			Repinning:       true,
			ShutdownTimeout: Duration{30 * time.Second},
		},
		REST:    RESTConfig{Listen: "127.0.0.1:9094", BasicAuthUser: "admin"},
		PinSvc:  PinSvcConfig{Listen: "127.0.0.1:9097"},
		Proxy:   ProxyConfig{}, // init sets 127.0.0.1:9095 when ipfs.kubo_api is given
		Metrics: MetricsConfig{Listen: "127.0.0.1:8888"},
		Log:     LogConfig{Level: "info", Format: "text"},
	}
}

// ConfigError is a configuration error about one field, named as in the
// file (section.key) and as its flag and environment variable.
type ConfigError struct {
	Field string
	Err   error
}

// Error names the field, and its flag and environment variable when it
// has them.
func (e *ConfigError) Error() string {
	def := defaultConfig()
	for _, f := range fields(&def) {
		if f.name == e.Field {
			return fmt.Sprintf("config field %s (-%s, %s): %v", e.Field, flagName(e.Field), envName(e.Field), e.Err)
		}
	}
	return fmt.Sprintf("config field %s: %v", e.Field, e.Err)
}

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

func flagName(field string) string {
	return strings.ReplaceAll(strings.ReplaceAll(field, ".", "-"), "_", "-")
}

func envName(field string) string {
	return "PINCLUSTER_" + strings.ToUpper(strings.ReplaceAll(field, ".", "_"))
}

// field is one leaf setting of Config.
type field struct {
	name    string // section.key
	help    string
	section string
	v       reflect.Value // addressable
}

// fields lists the settings of c in file order.
func fields(c *Config) []field {
	var out []field
	rv := reflect.ValueOf(c).Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		sf := rt.Field(i)
		sec := sf.Tag.Get("toml")
		sv := rv.Field(i)
		for j := range sv.Type().NumField() {
			ff := sv.Type().Field(j)
			out = append(out, field{
				name:    sec + "." + ff.Tag.Get("toml"),
				help:    ff.Tag.Get("help"),
				section: sec,
				v:       sv.Field(j),
			})
		}
	}
	return out
}

// set parses s into the field (lists are comma separated).
func (f field) set(s string) error {
	switch p := f.v.Addr().Interface().(type) {
	case *string:
		*p = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", s)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		*p = n
	case *[]string:
		*p = splitList(s)
	case *Duration:
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("not a duration (like 30s or 2m): %q", s)
		}
	default:
		return fmt.Errorf("unsupported type %T", p)
	}
	return nil
}

// String renders the field's value for usage texts.
func (f field) String() string {
	switch v := f.v.Interface().(type) {
	case []string:
		return strings.Join(v, ",")
	case Duration:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

func splitList(s string) []string {
	out := []string{}
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// overrides holds the settings given by flags, applied after the file and
// the environment.
type overrides struct {
	values map[string]string
}

// defineConfigFlags adds one flag per setting to fs; their values are
// collected in o and applied by apply.
func defineConfigFlags(fs *flag.FlagSet) *overrides {
	o := &overrides{values: map[string]string{}}
	def := defaultConfig()
	for _, f := range fields(&def) {
		usage := f.help + " (" + f.name + ", " + envName(f.name) + ")"
		define := fs.Func
		if f.v.Kind() == reflect.Bool {
			define = fs.BoolFunc // -peer-follower alone means true
		}
		define(flagName(f.name), usage, func(s string) error {
			// check the syntax now, apply later (after the file)
			probe := defaultConfig()
			for _, pf := range fields(&probe) {
				if pf.name == f.name {
					if err := pf.set(s); err != nil {
						return err
					}
				}
			}
			o.values[f.name] = s
			return nil
		})
	}
	return o
}

// loadConfig reads the file (missing: defaults), then applies the
// environment and the flags, then reads the secret files and validates.
func loadConfig(path string, o *overrides, lookupEnv func(string) (string, bool)) (Config, error) {
	c := defaultConfig()
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c, fmt.Errorf("no config file at %s: run 'pinclusterd init' first (or pass -config)", path)
	case err != nil:
		return c, fmt.Errorf("config: %w", err)
	}
	if err := decodeConfig(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	for _, f := range fields(&c) {
		if v, ok := lookupEnv(envName(f.name)); ok {
			if err := f.set(v); err != nil {
				return c, &ConfigError{Field: f.name, Err: fmt.Errorf("from %s: %w", envName(f.name), err)}
			}
		}
		if o != nil {
			if v, ok := o.values[f.name]; ok {
				if err := f.set(v); err != nil {
					return c, &ConfigError{Field: f.name, Err: err}
				}
			}
		}
	}
	return c, c.Validate()
}

// decodeConfig decodes a TOML file over c, refusing unknown keys.
func decodeConfig(b []byte, c *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return &ConfigError{Field: und[0].String(), Err: errors.New("unknown field")}
	}
	return nil
}

// Validate checks every field and returns the first error, naming it.
func (c *Config) Validate() error {
	fe := func(field string, format string, args ...any) error {
		return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if c.Peer.Cluster == "" {
		return fe("peer.cluster", "empty cluster name")
	}
	if len(c.Peer.Listen) == 0 {
		return fe("peer.listen", "no listen address")
	}
	for _, s := range c.Peer.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fe("peer.listen", "%q: %v", s, err)
		}
	}
	for _, s := range c.Peer.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return fe("peer.bootstrap", "%q: %v (a multiaddr ending in /p2p/<peer id>)", s, err)
		}
	}
	for _, s := range c.Peer.Trusted {
		if _, err := peer.Decode(s); err != nil {
			return fe("peer.trusted", "%q: not a peer ID: %v", s, err)
		}
	}
	rmin, rmax := c.Peer.ReplicationMin, c.Peer.ReplicationMax
	if rmin < -1 || rmin == 0 {
		return fe("peer.replication_min", "%d: want -1 or at least 1", rmin)
	}
	if rmax < -1 || rmax == 0 {
		return fe("peer.replication_max", "%d: want -1 or at least 1", rmax)
	}
	if (rmin == -1) != (rmax == -1) {
		return fe("peer.replication_max", "%d with replication_min %d: -1 (every peer) goes for both", rmax, rmin)
	}
	if rmax > 0 && rmin > rmax {
		return fe("peer.replication_min", "%d is greater than replication_max %d", rmin, rmax)
	}
	if c.Peer.Datastore != "badger" && c.Peer.Datastore != "pebble" {
		return fe("peer.datastore", "%q: want \"badger\" or \"pebble\"", c.Peer.Datastore)
	}
	if c.Peer.MonitorInterval.Duration <= 0 {
		return fe("peer.monitor_interval", "%s: must be positive", c.Peer.MonitorInterval)
	}
	if c.Peer.ShutdownTimeout.Duration <= 0 {
		return fe("peer.shutdown_timeout", "%s: must be positive", c.Peer.ShutdownTimeout)
	}
	if c.IPFS.KuboAPI != "" {
		if _, err := ma.NewMultiaddr(c.IPFS.KuboAPI); err != nil {
			return fe("ipfs.kubo_api", "%q: %v", c.IPFS.KuboAPI, err)
		}
	}
	for name, addr := range map[string]string{"rest.listen": c.REST.Listen, "pinsvc.listen": c.PinSvc.Listen,
		"ipfsproxy.listen": c.Proxy.Listen, "metrics.listen": c.Metrics.Listen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fe(name, "%q: want host:port: %v", addr, err)
		}
	}
	if c.REST.BasicAuthPass != "" && c.REST.BasicAuthPassFil != "" {
		return fe("rest.basic_auth_password_file", "set together with rest.basic_auth_password: give one")
	}
	if (c.REST.BasicAuthPass != "" || c.REST.BasicAuthPassFil != "") && (c.REST.BasicAuthUser == "" || strings.Contains(c.REST.BasicAuthUser, ":")) {
		return fe("rest.basic_auth_user", "%q: want a non-empty name without ':'", c.REST.BasicAuthUser)
	}
	if c.PinSvc.Token != "" && c.PinSvc.TokenFile != "" {
		return fe("pinsvc.token_file", "set together with pinsvc.token: give one")
	}
	if c.PinSvc.Listen != "" && c.PinSvc.Token == "" && c.PinSvc.TokenFile == "" && c.PinSvc.TokensFile == "" && c.REST.JWTKeyFile == "" {
		return fe("pinsvc.tokens_file", "the Pinning Service API needs credentials: set pinsvc.tokens_file (or pinsvc.token_file), or disable it with an empty pinsvc.listen")
	}
	if c.Proxy.Listen != "" && c.IPFS.KuboAPI == "" {
		return fe("ipfsproxy.listen", "the IPFS proxy forwards to Kubo: set ipfs.kubo_api, or disable the proxy with an empty ipfsproxy.listen")
	}
	if c.Metrics.OTLPEndpoint != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.OTLPEndpoint); err != nil {
			return fe("metrics.otlp_endpoint", "%q: want host:port: %v", c.Metrics.OTLPEndpoint, err)
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return fe("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fe("log.format", "%q: want text or json", c.Log.Format)
	}
	return nil
}

// writeConfig renders c as a commented TOML file: every setting with its
// help above it.
func writeConfig(c *Config) []byte {
	var b bytes.Buffer
	b.WriteString("# pinclusterd configuration (TOML). Every setting is written out with\n")
	b.WriteString("# its default. Flags (-section-key) and environment variables\n")
	b.WriteString("# (PINCLUSTER_SECTION_KEY) override this file; see 'pinclusterd daemon -h'.\n")
	rt := reflect.TypeOf(*c)
	section := ""
	for _, f := range fields(c) {
		if f.section != section {
			section = f.section
			for i := range rt.NumField() {
				if rt.Field(i).Tag.Get("toml") == section {
					fmt.Fprintf(&b, "\n# %s\n", rt.Field(i).Tag.Get("help"))
				}
			}
			fmt.Fprintf(&b, "[%s]\n", section)
		}
		fmt.Fprintf(&b, "\n# %s\n", f.help)
		fmt.Fprintf(&b, "%s = %s\n", strings.TrimPrefix(f.name, section+"."), tomlValue(f.v.Interface()))
	}
	return b.Bytes()
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case Duration:
		return tomlString(v.String())
	default:
		return fmt.Sprint(v)
	}
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// readSecret reads a secret from a file, trimming the final newline.
func readSecret(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &ConfigError{Field: field, Err: err}
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", &ConfigError{Field: field, Err: fmt.Errorf("%s is empty", path)}
	}
	return s, nil
}

// parseTokens reads a tokens file: one "token user" pair a line, blank
// lines and '#' comments ignored. Errors name the line.
func parseTokens(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s line %d: want 'token user', got %d fields", path, i+1, len(f))
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%s line %d: token given twice", path, i+1)
		}
		out[f[0]] = f[1]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, nil
}
