package main

import (
	"testing"

	"github.com/pincluster/pincluster/internal/kubotest"
)

// TestRunSmall runs the whole benchmark on a few pins with the in-memory
// state, so that the program keeps building and working.
func TestRunSmall(t *testing.T) {
	if err := run(30, 4, "memory", "", "", 2); err != nil {
		t.Fatal(err)
	}
}

// TestRunKubo runs the benchmark in Kubo mode: three Kubo daemons started
// by the program, each behind its counting proxy.
func TestRunKubo(t *testing.T) {
	kubotest.Binary(t)
	if err := run(30, 4, "memory", "start", "", 2); err != nil {
		t.Fatal(err)
	}
}
