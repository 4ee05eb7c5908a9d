package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), t.TempDir(), 3, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "3 pins; export:") || strings.Count(s, `"name":"example-`) != 3 ||
		!strings.Contains(s, `{"pincluster_state":1}`) {
		t.Fatalf("unexpected output:\n%s", s)
	}
}
