package kubotest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pincluster/pincluster/internal/kubotest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartRPCRunRestart(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	require.NotEmpty(t, d.PeerID)
	require.NotEmpty(t, d.SwarmAddrs, "online daemon has swarm addresses")
	require.True(t, strings.HasPrefix(d.APIURL, "http://127.0.0.1:"), d.APIURL)

	body, err := d.RPC(ctx, "version", nil)
	require.NoError(t, err)
	var v struct{ Version string }
	require.NoError(t, json.Unmarshal(body, &v))
	require.Equal(t, "0.42.0", v.Version)

	body, err = d.RPC(ctx, "config", url.Values{"arg": {"Routing.Type"}})
	require.NoError(t, err)
	require.Contains(t, string(body), `"none"`)

	// A bad call is an RPCError.
	_, err = d.RPC(ctx, "pin/rm", url.Values{"arg": {"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"}})
	var rpcErr *kubotest.RPCError
	require.ErrorAs(t, err, &rpcErr)
	require.Equal(t, 500, rpcErr.Status)

	// The CLI goes through the running daemon.
	f := filepath.Join(t.TempDir(), "foo.txt")
	require.NoError(t, os.WriteFile(f, []byte("foo"), 0o600))
	out, err := d.Run(ctx, "add", "-Q", "--cid-version=1", "--raw-leaves", f)
	require.NoError(t, err)
	c := strings.TrimSpace(string(out))
	require.Equal(t, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", c)

	// SIGKILL then restart on the same repo: the pin survives.
	apiURL := d.APIURL
	d.Kill()
	require.False(t, d.Running())
	d.Restart(t)
	require.True(t, d.Running())
	require.Equal(t, apiURL, d.APIURL, "a restart keeps the RPC API address")
	body, err = d.RPC(ctx, "pin/ls", url.Values{"arg": {c}, "type": {"recursive"}})
	require.NoError(t, err)
	require.Contains(t, string(body), c)

	d.Stop()
	require.False(t, d.Running())
	_, err = d.RPC(ctx, "id", nil)
	require.Error(t, err)
	require.False(t, errors.As(err, &rpcErr), "no answer at all from a stopped daemon")
}

func TestOffline(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{Offline: true, Config: map[string]any{"Datastore.StorageMax": "1GB"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.Empty(t, d.SwarmAddrs)
	_, err := d.RPC(ctx, "pin/add", url.Values{"arg": {"bafkreih43yvs5w5fnp2aqya7w4q75g24gogrb3sct2qe7lsvcg3i7p4pxe"}})
	require.Error(t, err)
	body, err := d.RPC(ctx, "config", url.Values{"arg": {"Datastore.StorageMax"}})
	require.NoError(t, err)
	require.Contains(t, string(body), "1GB")
}
