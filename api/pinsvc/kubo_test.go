package pinsvc

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/kubotest"
)

// kuboRemotePin is one line of `ipfs pin remote ls --enc=json`.
type kuboRemotePin struct {
	Status string
	Cid    string
	Name   string
}

func kuboLs(t *testing.T, d *kubotest.Daemon, args ...string) []kuboRemotePin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := d.Run(ctx, append([]string{"pin", "remote", "ls", "--service=pc", "--enc=json"}, args...)...)
	require.NoError(t, err, "%s", out)
	var res []kuboRemotePin
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var p kuboRemotePin
		require.NoError(t, json.Unmarshal([]byte(line), &p), line)
		res = append(res, p)
	}
	return res
}

// serve runs api on a loopback port until the test ends.
func serve(t *testing.T, api *API) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go api.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, api.Shutdown(ctx))
	})
	return "http://" + l.Addr().String()
}

// TestKuboPinRemoteFake drives `ipfs pin remote` of a real Kubo v0.42.0
// against the API over the fake backend: the wire protocol (service add,
// blocking and background add, ls with statuses, rm by name, a wrong
// token). The fake reports "pinned" for CIDs whose block it holds.
func TestKuboPinRemoteFake(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	e := newEnv(t, nil)
	url := serve(t, e.api)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		out, err := d.Run(ctx, args...)
		return string(out), err
	}
	out, err := run("pin", "remote", "service", "add", "pc", url, tokenAlice)
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "service", "add", "bad", url, "wrong-token")
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "service", "ls", "--stat")
	require.NoError(t, err, out)
	require.Regexp(t, `pc\s+\S+\s+0/0/0/0`, out)

	file := filepath.Join(t.TempDir(), "hello.txt")
	require.NoError(t, os.WriteFile(file, []byte("hello from kubo"), 0o644))
	out, err = run("add", "-Q", "--cid-version=1", "--raw-leaves", file)
	require.NoError(t, err, out)
	c, err := cid.Decode(strings.TrimSpace(out))
	require.NoError(t, err)
	// The fake holds the block: it reports pinned, so the blocking add ends.
	_, err = e.fake.BlockPut(ctx, []byte("hello from kubo"), c.Prefix())
	require.NoError(t, err)

	start := time.Now()
	out, err = run("pin", "remote", "add", "--service=pc", "--name=hello", c.String())
	require.NoError(t, err, out)
	t.Logf("blocking pin remote add took %s", time.Since(start))
	require.True(t, e.fake.Has(c))

	absent := testCID(t, "nowhere")
	out, err = run("pin", "remote", "add", "--service=pc", "--name=later", "--background=true", absent.String())
	require.NoError(t, err, out)

	ls := kuboLs(t, d) // default: pinned only
	require.Len(t, ls, 1)
	require.Equal(t, kuboRemotePin{Status: "pinned", Cid: c.String(), Name: "hello"}, ls[0])
	ls = kuboLs(t, d, "--status=queued,pinning,pinned,failed")
	require.Len(t, ls, 2)
	ls = kuboLs(t, d, "--status=pinning", "--cid="+absent.String())
	require.Len(t, ls, 1)
	require.Equal(t, "later", ls[0].Name)

	// A second request for the same CID: rm --name needs --force when
	// several match.
	out, err = run("pin", "remote", "add", "--service=pc", "--name=hello", "--background=true", c.String())
	require.NoError(t, err, out)
	out, err = run("pin", "remote", "rm", "--service=pc", "--name=hello")
	require.Error(t, err, out)
	out, err = run("pin", "remote", "rm", "--service=pc", "--name=hello", "--force")
	require.NoError(t, err, out)
	require.False(t, e.fake.Has(c), "last request gone: unpinned")
	out, err = run("pin", "remote", "rm", "--service=pc", "--status=queued,pinning,pinned,failed", "--force")
	require.NoError(t, err, out)
	require.Empty(t, kuboLs(t, d, "--status=queued,pinning,pinned,failed"))
	require.Equal(t, 0, e.fake.PinCount())

	_, err = run("pin", "remote", "ls", "--service=bad")
	require.ErrorContains(t, err, "UNAUTHORIZED")
	require.ErrorContains(t, err, "401")
}
