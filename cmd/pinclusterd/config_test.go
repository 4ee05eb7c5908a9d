package main

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The commented file that init writes decodes back to the defaults.
func TestWrittenConfigRoundTrips(t *testing.T) {
	def := defaultConfig()
	def.Peer.Name = "quote\" back\\slash\ttab"
	def.Peer.Bootstrap = []string{"/ip4/10.0.0.2/tcp/9096/p2p/12D3KooWFVY1nnWaf7UQFowCt83PTGX2W5Y6Yav8gtavdndtCr28"}
	b := writeConfig(&def)
	got := defaultConfig()
	require.NoError(t, decodeConfig(b, &got))
	require.Equal(t, def, got)
	// Every setting is in the file, with its help above it.
	for _, f := range fields(&def) {
		require.Contains(t, string(b), "# "+f.help+"\n")
	}
}

func writeConf(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func noEnv(string) (string, bool) { return "", false }

// Validation errors name the field, its flag and its variable.
func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		file  string
		field string
	}{
		{"[peer]\nreplication_min = 0\n", "peer.replication_min"},
		{"[peer]\nreplication_min = 3\nreplication_max = 2\n", "peer.replication_min"},
		{"[peer]\nreplication_min = -1\nreplication_max = 2\n", "peer.replication_max"},
		{"[peer]\nlisten = [\"not a multiaddr\"]\n", "peer.listen"},
		{"[peer]\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\n", "peer.bootstrap"},
		{"[peer]\ntrusted = [\"nope\"]\n", "peer.trusted"},
		{"[peer]\ndatastore = \"leveldb\"\n", "peer.datastore"},
		{"[peer]\nshutdown_timeout = \"0s\"\n", "peer.shutdown_timeout"},
		{"[rest]\nlisten = \"nohostport\"\n", "rest.listen"},
		{"[rest]\nbasic_auth_password = \"x\"\nbasic_auth_password_file = \"/f\"\n", "rest.basic_auth_password_file"},
		{"[pinsvc]\nlisten = \"127.0.0.1:1\"\n", "pinsvc.tokens_file"},
		{"[ipfsproxy]\nlisten = \"127.0.0.1:1\"\n", "ipfsproxy.listen"},
		{"[log]\nlevel = \"loud\"\n", "log.level"},
		{"[peer]\nnmae = \"typo\"\n", "peer.nmae"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			// The Pinning Service is off unless the case is about it.
			file := c.file
			if c.field != "pinsvc.tokens_file" {
				file = "[pinsvc]\nlisten = \"\"\n" + file
			}
			_, err := loadConfig(writeConf(t, file), nil, noEnv)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			require.Equal(t, c.field, ce.Field, "%v", err)
			if c.field != "peer.nmae" {
				require.Contains(t, err.Error(), envName(c.field))
			} else {
				require.NotContains(t, err.Error(), "PINCLUSTER_", "an unknown field has no variable")
			}
		})
	}
}

// A TOML syntax error names the line.
func TestConfigSyntaxErrorNamesTheLine(t *testing.T) {
	_, err := loadConfig(writeConf(t, "[peer]\nname = \"a\"\ncluster = \n"), nil, noEnv)
	require.ErrorContains(t, err, "line 3")
}

// Flags win over the environment, which wins over the file.
func TestConfigPrecedence(t *testing.T) {
	p := writeConf(t, "[pinsvc]\nlisten = \"\"\n[peer]\nname = \"file\"\ncluster = \"file\"\nreplication_min = 2\nreplication_max = 3\n")
	env := map[string]string{"PINCLUSTER_PEER_NAME": "env", "PINCLUSTER_PEER_CLUSTER": "env"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o := defineConfigFlags(fs)
	require.NoError(t, fs.Parse([]string{"-peer-name", "flag", "-peer-monitor-interval", "3s", "-peer-follower"}))
	cfg, err := loadConfig(p, o, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	require.Equal(t, "flag", cfg.Peer.Name)
	require.Equal(t, "env", cfg.Peer.Cluster)
	require.Equal(t, 2, cfg.Peer.ReplicationMin)
	require.Equal(t, 3*time.Second, cfg.Peer.MonitorInterval.Duration)
	require.True(t, cfg.Peer.Follower)

	// A bad value is refused at flag parsing, and from the environment
	// with the variable named.
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defineConfigFlags(fs)
	require.Error(t, fs.Parse([]string{"-peer-replication-min", "many"}))
	_, err = loadConfig(p, nil, func(k string) (string, bool) {
		if k == "PINCLUSTER_PEER_FOLLOWER" {
			return "maybe", true
		}
		return "", false
	})
	require.ErrorContains(t, err, "PINCLUSTER_PEER_FOLLOWER")
}

func TestParseTokens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(p, []byte("# comment\n\ntokA alice\n  tokB   bob  \n"), 0o600))
	got, err := parseTokens(p)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"tokA": "alice", "tokB": "bob"}, got)

	for content, want := range map[string]string{
		"tokA alice\ntokA bob\n": "line 2: token given twice",
		"tokA\n":                 "line 1: want 'token user'",
		"a b c\n":                "line 1",
		"# only comments\n":      "no tokens",
	} {
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, err := parseTokens(p)
		require.ErrorContains(t, err, want, "%q", content)
	}
}

// /health says 503 until the daemon is ready and again while it stops.
func TestHealthStates(t *testing.T) {
	h := &health{peer: "p"}
	for st, code := range map[string]int{"starting": 503, "ready": 200, "stopping": 503} {
		h.state.Store(st)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		require.Equal(t, code, rec.Code, st)
		require.Contains(t, rec.Body.String(), `"status":"`+st+`"`)
	}
}
