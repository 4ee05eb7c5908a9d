package main

import "testing"

// TestRunSmall runs the whole benchmark on a few pins with the in-memory
// state, so that the program keeps building and working.
func TestRunSmall(t *testing.T) {
	if err := run(30, 4, "memory", "", "", 2); err != nil {
		t.Fatal(err)
	}
}
