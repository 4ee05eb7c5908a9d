package pinsvc

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

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
