package pincluster

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// syncState is a ReadOnly over a fixed list of pins that counts Get and,
// while listing, calls during once after the first pin.
type syncState struct {
	ReadOnly
	mu     sync.Mutex
	pins   map[cid.Cid]Pin
	order  []cid.Cid
	gets   int
	lists  int
	during func()
}

func (s *syncState) Get(_ context.Context, c cid.Cid) (Pin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	p, ok := s.pins[c]
	if !ok {
		return Pin{}, fmt.Errorf("%s: %w", c, ErrNotFound)
	}
	return p, nil
}

func (s *syncState) Has(_ context.Context, c cid.Cid) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pins[c]
	return ok, nil
}

// List yields the pins as they were when it began (a snapshot, as a
// datastore's query): changes made meanwhile are not seen.
func (s *syncState) List(context.Context) iter.Seq2[Pin, error] {
	s.mu.Lock()
	s.lists++
	snap := make([]Pin, 0, len(s.order))
	for _, c := range s.order {
		snap = append(snap, s.pins[c])
	}
	s.mu.Unlock()
	return func(yield func(Pin, error) bool) {
		for i, p := range snap {
			if !yield(p, nil) {
				return
			}
			if i == 0 && s.during != nil {
				s.during()
			}
		}
	}
}

type syncConsensus struct {
	Consensus
	st *syncState
}

func (c syncConsensus) State(context.Context) (ReadOnly, error) { return c.st, nil }

// syncTracker keeps the last pin it was given for each CID. While fail is
// set, Track fails; SyncAll reports nodeChanged (CIDs whose pin its node
// lost) once.
type syncTracker struct {
	PinTracker
	mu          sync.Mutex
	tracked     map[cid.Cid]Pin
	fail        bool
	nodeChanged []cid.Cid
}

func (t *syncTracker) Track(_ context.Context, p Pin) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		return fmt.Errorf("track %s: %w", p.Cid, ErrQueueFull)
	}
	t.tracked[p.Cid] = p
	return nil
}

func (t *syncTracker) Untrack(_ context.Context, c cid.Cid) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tracked, c)
	return nil
}

func (t *syncTracker) SyncAll(context.Context) iter.Seq2[PinInfo, error] {
	t.mu.Lock()
	changed := t.nodeChanged
	t.nodeChanged = nil
	t.mu.Unlock()
	return func(yield func(PinInfo, error) bool) {
		for _, c := range changed {
			if !yield(PinInfo{Cid: c}, nil) {
				return
			}
		}
	}
}

func (t *syncTracker) StatusAll(context.Context, TrackerStatus) iter.Seq2[PinInfo, error] {
	return func(func(PinInfo, error) bool) {}
}

func syncTestCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// TestStateSyncDuringWritesRereadsOnlyChangedPins: a state sync lists
// 1,000 pins while writes land on every lock stripe (64 new pins, one per
// stripe) and on one listed pin. Only that pin is read again (the listed
// copy is older than its change, which must not be undone); the 999 others
// are handed to the tracker as listed. Before, a change anywhere in a
// stripe made every listed pin of that stripe be read again: with writes
// going on, the whole pinset, once per state sync (issue 19: the CPU per
// written pin grew with the pinset).
func TestStateSyncDuringWritesRereadsOnlyChangedPins(t *testing.T) {
	ctx := context.Background()
	st, tr, c := syncTestCluster(t, "listed-", 1000, PinOptions{Name: "v1"})
	changed := st.order[500]
	st.during = func() {
		// Writes after the listing began: one new pin on every stripe...
		seen := map[int]bool{}
		for i := 0; len(seen) < len(c.changeLocks); i++ {
			n := syncTestCID(t, fmt.Sprint("new-", i))
			if seen[changeStripe(n)] {
				continue
			}
			seen[changeStripe(n)] = true
			p := NewPin(n, PinOptions{Name: "new"})
			st.mu.Lock()
			st.pins[n] = p
			st.mu.Unlock()
			c.onStateChange(ctx, p, false)
		}
		// ... and a new version of a listed pin.
		p := NewPin(changed, PinOptions{Name: "v2"})
		st.mu.Lock()
		st.pins[changed] = p
		st.mu.Unlock()
		c.onStateChange(ctx, p, false)
	}
	if err := c.stateSyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tr.tracked[changed].Name; got != "v2" {
		t.Fatalf("the pin changed during the listing is tracked as %q, want v2 (the listed copy undid the change)", got)
	}
	for _, ci := range st.order {
		if _, ok := tr.tracked[ci]; !ok {
			t.Fatalf("listed pin %s not handed to the tracker", ci)
		}
	}
	if st.gets != 1 {
		t.Fatalf("the state sync read %d pins again, want 1 (only the pin changed during the listing)", st.gets)
	}
	for i := range c.changed {
		if c.changed[i] != nil {
			t.Fatalf("stripe %d still records changes after the sync", i)
		}
	}
}

// A stripe whose record overflows reads every listed pin of it again
// (correct, as before), and records nothing more.
func TestChangedSetOverflow(t *testing.T) {
	s := &changedSet{fps: map[uint64]struct{}{}}
	for h := range uint64(maxChangedPerStripe) {
		s.add(h)
	}
	if s.has(maxChangedPerStripe) || !s.has(1) {
		t.Fatal("a full set must name exactly what it recorded")
	}
	s.add(maxChangedPerStripe)
	if !s.overflow || s.fps != nil || !s.has(1<<40) {
		t.Fatalf("past %d entries the set must overflow and answer true for anything", maxChangedPerStripe)
	}
	var none *changedSet
	none.add(1)
	if !none.has(1) {
		t.Fatal("no record must answer true (read again)")
	}
}

// TestPeriodicStateSyncListsOnlyAfterAMiss: the periodic state sync lists
// the whole state the first time, and afterwards only when a change could
// not be handed to the tracker (or changes do not reach it at all); in
// between it hands the tracker again only the pins its node lost. Before,
// every periodic sync listed the state and tracked every pin: at 10M pins
// 74 % of a core on an idle peer (issue 19).
func TestPeriodicStateSyncListsOnlyAfterAMiss(t *testing.T) {
	ctx := context.Background()
	st, tr, c := syncTestCluster(t, "pin-", 100, PinOptions{})
	c.watching.Store(true)
	pass := func(first bool, wantLists int) {
		t.Helper()
		if err := c.periodicStateSync(ctx, first); err != nil {
			t.Fatal(err)
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.lists != wantLists {
			t.Fatalf("the state was listed %d times, want %d", st.lists, wantLists)
		}
	}
	pass(true, 1)
	if len(tr.tracked) != 100 {
		t.Fatalf("the first sync tracked %d pins, want 100", len(tr.tracked))
	}
	pass(false, 1)
	pass(false, 1)

	// A change the tracker refused (queue full): the next sync lists the
	// state and tracks it; the one after does not list again.
	missed := syncTestCID(t, "missed")
	p := NewPin(missed, PinOptions{})
	st.mu.Lock()
	st.pins[missed] = p
	st.order = append(st.order, missed)
	st.mu.Unlock()
	tr.fail = true
	c.onStateChange(ctx, p, false)
	tr.fail = false
	if _, ok := tr.tracked[missed]; ok {
		t.Fatal("the refused change was tracked")
	}
	pass(false, 2)
	if _, ok := tr.tracked[missed]; !ok {
		t.Fatal("the sync after a refused change did not track it")
	}
	pass(false, 2)

	// A pin its node lost (reported by SyncAll) is handed to the tracker
	// again, without listing the state.
	lost := st.order[7]
	delete(tr.tracked, lost)
	tr.nodeChanged = []cid.Cid{lost}
	pass(false, 2)
	if _, ok := tr.tracked[lost]; !ok {
		t.Fatal("the pin the node lost was not handed to the tracker again")
	}

	// Without every change reaching the tracker, every sync lists.
	c.watching.Store(false)
	pass(false, 3)
	pass(false, 4)
}

// syncTestCluster returns a state of n pins (CIDs of prefix and their
// index, in that order, with opts), a tracker and a Cluster over them for
// the state sync's tests.
func syncTestCluster(t *testing.T, prefix string, n int, opts PinOptions) (*syncState, *syncTracker, *Cluster) {
	t.Helper()
	st := &syncState{pins: map[cid.Cid]Pin{}}
	for i := range n {
		c := syncTestCID(t, fmt.Sprint(prefix, i))
		st.pins[c] = NewPin(c, opts)
		st.order = append(st.order, c)
	}
	tr := &syncTracker{tracked: map[cid.Cid]Pin{}}
	c := &Cluster{
		consensus: syncConsensus{st: st},
		tracker:   tr,
		index:     newPinIndex(),
		log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return st, tr, c
}
