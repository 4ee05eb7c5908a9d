package rest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/npmtest"
)

// jsClientTests is the number of tests in testdata/jsclient.test.mjs.
const jsClientTests = 15

// runJSClient runs testdata/jsclient.test.mjs (the JS REST client
// @nftstorage/ipfs-cluster 5.0.1, INTEROP.md §4) against api, served on
// 127.0.0.1 with basic auth, and requires every test to pass.
func runJSClient(t *testing.T, api *API, user, password string) {
	t.Helper()
	npmtest.Ensure(t)
	node := npmtest.Node(t)
	client := npmtest.File(t, "jsclient/node_modules/@nftstorage/ipfs-cluster/src/index.js")
	script, err := filepath.Abs(filepath.Join("testdata", "jsclient.test.mjs"))
	require.NoError(t, err)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go api.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, api.Shutdown(ctx))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"CLUSTER_URL=http://"+l.Addr().String(), "CLUSTER_USER="+user, "CLUSTER_PASS="+password, "JSCLIENT="+client)
	out, runErr := cmd.CombinedOutput()
	count := func(what string) int {
		m := regexp.MustCompile(`(?m)^# ` + what + ` (\d+)$`).FindSubmatch(out)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	pass, fail := count("pass"), count("fail")
	t.Logf("JS client: %d passed, %d failed", pass, fail)
	if runErr != nil || fail != 0 || pass != jsClientTests {
		t.Fatalf("JS client tests: pass %d (want %d), fail %d, err %v\n%s", pass, jsClientTests, fail, runErr, out)
	}
}

func TestJSClientFake(t *testing.T) {
	e := newEnv(t, nil)
	runJSClient(t, e.api, testUser, testPass)
}
