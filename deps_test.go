package pincluster_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateDeps = flag.Bool("update-deps", false, "rewrite testdata/deps.txt with the root package's current dependencies")

const module = "github.com/pincluster/pincluster"

type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Standard     bool
	Module       *struct{ Path string }
}

func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"list", "-json=ImportPath,Imports,TestImports,XTestImports,Standard,Module"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// kind classifies a package of this module by its place in the layout.
func kind(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	switch {
	case path == module:
		return "root"
	case !strings.HasPrefix(path, module):
		return "outside"
	case strings.HasPrefix(rel, "internal/"):
		return "internal"
	case strings.HasPrefix(rel, "examples/"), strings.HasPrefix(rel, "bench"):
		return "program"
	default:
		return "public" // connector/, api/, clustertest, consensus/...
	}
}

// leafHelpers are the internal packages that public sub-packages may import
// too: small utilities written once for the whole module (filling config
// defaults, polling a condition), which import the standard library only,
// so that they give no way into an engine.
var leafHelpers = map[string]bool{
	module + "/internal/defaults": true,
	module + "/internal/poll":     true,
}

// TestImportDirection enforces the arrows of STYLE.md §4: internal/ never
// imports the root or a public sub-package; the root never imports a public
// sub-package; public sub-packages use only the root's exported API (no
// internal/ outside their tests but the stdlib-only leafHelpers).
func TestImportDirection(t *testing.T) {
	for _, p := range goList(t, "./...") {
		from := kind(p.ImportPath)
		if leafHelpers[p.ImportPath] {
			for _, imp := range p.Imports {
				if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
					t.Errorf("%s imports %s: a leaf helper imports the standard library only", p.ImportPath, imp)
				}
			}
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to := kind(imp)
				if to == "outside" {
					continue
				}
				bad := false
				switch from {
				case "internal":
					bad = to == "root" || to == "public" || to == "program"
				case "root":
					bad = to == "public" || to == "program"
					if test { // root tests in package pincluster_test may use the public kit
						bad = to == "program"
					}
				case "public":
					bad = (to == "internal" && !test && !leafHelpers[imp]) || to == "program"
				}
				if bad {
					t.Errorf("%s (%s) imports %s (%s): against the layout's dependency direction", p.ImportPath, from, imp, to)
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
}

// TestDependencyList keeps the root package's transitive non-standard
// dependencies in testdata/deps.txt, so that a heavy new import shows in
// review. Regenerate with: go test -run TestDependencyList -update-deps .
func TestDependencyList(t *testing.T) {
	var got []string
	for _, p := range goList(t, "-deps", ".") {
		if p.Standard || p.Module == nil || p.Module.Path == module {
			continue
		}
		got = append(got, p.ImportPath)
	}
	slices.Sort(got)
	file := filepath.Join("testdata", "deps.txt")
	if *updateDeps {
		content := "# Packages the root package depends on (go test -run TestDependencyList -update-deps .)\n" +
			strings.Join(got, "\n") + "\n"
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("%v (create it with -update-deps)", err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			want = append(want, line)
		}
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			t.Errorf("new dependency of the root package: %s (review it, then run with -update-deps)", p)
		}
	}
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("dependency gone: %s (run with -update-deps)", p)
		}
	}
}
