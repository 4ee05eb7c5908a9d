package pinsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/api/internal/npmtest"
)

const complianceSpec = "ipfs-pinning-service-v1.0.0.yaml"

// runCompliance runs @ipfs-shipyard/pinning-service-compliance 1.8.1 (with
// the spec in testdata/, a copy of the v1.0.0 OpenAPI file) against the Pinning Service API served by api
// at endpoint (a base URL on 127.0.0.1) and requires all 9 checks to pass.
func runCompliance(t *testing.T, endpoint, token string) {
	t.Helper()
	npmtest.Ensure(t)
	node := npmtest.Node(t)
	pkg := npmtest.File(t, "psc/node_modules/@ipfs-shipyard/pinning-service-compliance")
	spec := filepath.Join(npmtest.RepoRoot(t), "api", "pinsvc", "testdata", complianceSpec)
	if _, err := os.Stat(spec); err != nil {
		npmtest.Missing(t, "the spec "+spec)
	}
	spec, err := filepath.Abs(spec)
	require.NoError(t, err)
	// The suite downloads the spec at run time unless pointed at a file;
	// offline it would silently drop four checks. Re-apply the patch.
	constants := filepath.Join(pkg, "dist", "src", "utils", "constants.js")
	src, err := os.ReadFile(constants)
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^const specLocation = .*$`)
	require.True(t, re.Match(src), "specLocation line not found in %s", constants)
	patched := re.ReplaceAllLiteral(src, []byte(fmt.Sprintf("const specLocation = '%s';", spec)))
	require.NoError(t, os.WriteFile(constants, patched, 0o644))
	docs := filepath.Join(pkg, "dist", "docs")
	require.NoError(t, os.RemoveAll(docs))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(pkg, "dist", "src", "index.js"), "-s", endpoint, token)
	cmd.Dir = t.TempDir()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("compliance suite ran in %s", time.Since(start).Round(time.Second))
	require.NoError(t, err, "suite output:\n%s", out)

	raw, err := os.ReadFile(filepath.Join(docs, "127.0.0.1.json"))
	require.NoError(t, err, "suite output:\n%s", out)
	var report struct {
		Total  int `json:"total"`
		Passed int `json:"passed"`
	}
	require.NoError(t, json.Unmarshal(raw, &report))
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(line, "Summary") {
			t.Logf("suite console: %s", strings.TrimSpace(line))
		}
	}
	t.Logf("%d passed, %d failed", report.Passed, report.Total-report.Passed)
	if report.Total != 9 || report.Passed != 9 {
		md, _ := os.ReadFile(filepath.Join(docs, "127.0.0.1.md"))
		t.Fatalf("compliance: %d of %d passed (want 9 of 9)\nconsole:\n%s\nreport:\n%s", report.Passed, report.Total, out, md)
	}
}
