package pincluster_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocQuickStart keeps the package manual's quick start compiled: the
// code block under "# Quick start" in doc.go must equal the body of
// embedding (readme_test.go), which TestREADMEEmbedding runs and compares
// with the README.
func TestDocQuickStart(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for l := range strings.Lines(between(t, string(src), "\t// README:begin\n", "\t// README:end\n")) {
		want.WriteString(strings.TrimPrefix(l, "\t"))
	}
	section := between(t, string(doc), "// # Quick start\n", "// More: ")
	var got []string
	started := false
	for l := range strings.Lines(section) {
		code, isCode := strings.CutPrefix(l, "//\t")
		if isCode {
			started = true
			got = append(got, code)
			continue
		}
		if started {
			got = append(got, strings.TrimPrefix(l, "//")) // a blank line inside the block
		}
	}
	for len(got) > 0 && strings.TrimSpace(got[len(got)-1]) == "" {
		got = got[:len(got)-1]
	}
	if g := strings.Join(got, ""); g != want.String() {
		t.Fatalf("doc.go's quick start differs from embedding() in readme_test.go; doc.go has:\n%s\nthe compiled code is:\n%s", g, want.String())
	}
}
