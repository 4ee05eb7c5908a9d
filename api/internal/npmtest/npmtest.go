// Package npmtest locates the external tools the API interop tests run:
// node on PATH and the npm packages scripts/npm-tools.sh installs under
// the repository's .cache/. When one is missing the test fails if CI=true
// and is skipped otherwise, with a message saying how to install it.
package npmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
