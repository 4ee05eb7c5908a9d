package crdt

import "testing"

// TestGatherProbesACohortPlateau: a stream that settles into groups of the
// same size, each ended early because every writer inside submit was in
// it (two cohorts of 4 clients in their round trips), gets a probe after
// probeFirst such groups: a wait that ignores that early end. A probe that
// finds more writers resets the count; one that finds none puts the next
// probe twice as far, up to probeMax, so that 64 goroutines writing in a
// loop (always all in the group) rarely wait for nobody.
func TestGatherProbesACohortPlateau(t *testing.T) {
	var g gatherState
	g.record(4, false, false) // the first group of 4 (it grew to it)
	for i := range probeFirst {
		if g.probe() {
			t.Fatalf("a probe after %d groups of 4, want it after %d", i, probeFirst)
		}
		g.record(4, true, false)
	}
	if !g.probe() {
		t.Fatalf("no probe after %d groups of 4 that each held every writer", probeFirst)
	}
	s := &Datastore{}
	s.writers.Store(4)
	group := make([]*writeReq, 4)
	if !s.gathered(group, 5, false) {
		t.Fatal("4 of target 5 with every writer in: not gathered outside a probe")
	}
	if s.gathered(group, 5, true) {
		t.Fatal("a probe ended at 4 of target 5: it must wait for more")
	}

	// The probe found the other cohort: the count starts again.
	g.record(8, false, true)
	if g.probe() || g.target() != 9 {
		t.Fatalf("after a probe that found 8: probe %v, target %d; want false, 9", g.probe(), g.target())
	}

	// Writers all in the group every time (a loop): probes that find
	// nobody come ever further apart, up to probeMax.
	var l gatherState
	l.record(64, false, false)
	waited, groups := 0, 0
	for range 20000 {
		groups++
		if l.probe() {
			waited++
			l.record(64, false, true)
			continue
		}
		l.record(64, true, false)
	}
	if want := 20000/probeMax + 12; waited > want {
		t.Fatalf("%d probes in %d groups of a loop, want at most %d", waited, groups, want)
	}
	if l.every != probeMax {
		t.Fatalf("the probe interval reached %d, want probeMax %d", l.every, probeMax)
	}
}
