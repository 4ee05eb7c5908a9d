// Package npmtest locates the external tools the API interop tests run:
// node on PATH and the npm packages scripts/npm-tools.sh installs under
// the repository's .cache/. Ensure runs that script (idempotent, locked
// against concurrent runs), so `go test ./...` installs what it needs.
// When a tool is still missing the test fails if CI=true and is skipped
// otherwise, with a message saying how to install it.
package npmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// RepoRoot returns the module root: the nearest parent of the working
// directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("npmtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Missing fails (CI=true) or skips the test because what is not there.
func Missing(t testing.TB, what string) {
	t.Helper()
	msg := what + " is missing: run ./scripts/npm-tools.sh (needs node and npm on PATH)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var (
	ensureOnce sync.Once
	ensureOut  []byte
	ensureErr  error
)

// Ensure runs scripts/npm-tools.sh once per test binary (up to 10
// minutes), installing the npm packages into .cache/ if they are not
// there. Its failure fails (CI=true) or skips the test.
func Ensure(t testing.TB) {
	t.Helper()
	root := RepoRoot(t)
	ensureOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "npm-tools.sh"))
		cmd.Dir = root
		ensureOut, ensureErr = cmd.CombinedOutput()
	})
	if ensureErr != nil {
		Missing(t, "the npm tools (scripts/npm-tools.sh failed: "+ensureErr.Error()+"; output: "+string(ensureOut)+")")
	}
}

// Node returns the path of node, or fails/skips.
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node (on PATH)")
	}
	return p
}

// File returns root/.cache/rel if it exists, or fails/skips.
func File(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), ".cache", rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, p)
	}
	return p
}
