package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEmbed(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), "hello", "", &out); err != nil {
		t.Fatal(err)
	}
	// The raw-leaves CIDv1 of "hello", as Kubo computes it.
	if !strings.Contains(out.String(), "pinned bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}
