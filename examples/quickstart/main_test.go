package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README's main job runs to its end: pinned on two peers, re-pinned on
// two after one stopped.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "OK: pinned on exactly 2 peers") || strings.Count(s, "pinned\n") < 4 {
		t.Fatalf("unexpected output:\n%s", s)
	}
}
