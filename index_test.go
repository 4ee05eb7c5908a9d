package pincluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
)

func idxCID(t testing.TB, i int) cid.Cid {
	h, err := mh.Sum(fmt.Appendf(nil, "idx-%d", i), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

func cmpCid(a, b cid.Cid) int {
	switch {
	case a.KeyString() < b.KeyString():
		return -1
	case a.KeyString() > b.KeyString():
		return 1
	}
	return 0
}

func lookupSorted(t *testing.T, x *pinIndex, f PinFilter) []cid.Cid {
	t.Helper()
	got, ok := x.lookup(f)
	require.True(t, ok, "the index narrows %+v", f)
	slices.SortFunc(got, cmpCid)
	return got
}

func sortedCids(cs ...cid.Cid) []cid.Cid {
	out := slices.Clone(cs)
	slices.SortFunc(out, cmpCid)
	return out
}

func TestPinIndex(t *testing.T) {
	x := newPinIndex()
	a, b, c := idxCID(t, 1), idxCID(t, 2), idxCID(t, 3)
	_, ok := x.lookup(PinFilter{Name: "x"})
	require.False(t, ok, "not ready: scan")

	st := NewMemoryState()
	ctx := context.Background()
	require.NoError(t, st.Add(ctx, NewPin(a, PinOptions{Name: "photos-2024", Metadata: map[string]string{"owner": "ann"}})))
	require.NoError(t, st.Add(ctx, NewPin(b, PinOptions{Name: "photos-2025", Metadata: map[string]string{"owner": "bob"}})))
	require.NoError(t, st.Add(ctx, NewPin(c, PinOptions{}))) // nothing to index
	require.NoError(t, x.build(ctx, st))

	require.Equal(t, []cid.Cid{a}, lookupSorted(t, x, PinFilter{Name: "photos-2024"}))
	require.Equal(t, sortedCids(a, b), lookupSorted(t, x, PinFilter{Name: "photos-", Match: MatchPrefix}))
	require.Equal(t, sortedCids(b), lookupSorted(t, x, PinFilter{Name: "2025", Match: MatchPartial}))
	require.Equal(t, sortedCids(a, b), lookupSorted(t, x, PinFilter{Name: "PHOTOS", Match: MatchIPartial}))
	require.Equal(t, []cid.Cid{b}, lookupSorted(t, x, PinFilter{Metadata: map[string]string{"owner": "bob"}}))
	require.Empty(t, lookupSorted(t, x, PinFilter{Name: "photos-2024", Metadata: map[string]string{"owner": "bob"}}))
	require.Empty(t, lookupSorted(t, x, PinFilter{Name: "absent"}))
	_, ok = x.lookup(PinFilter{})
	require.False(t, ok, "no name or metadata filter: scan")

	// Renaming and removing keep the index exact.
	x.update(NewPin(a, PinOptions{Name: "renamed"}), false)
	require.Empty(t, lookupSorted(t, x, PinFilter{Name: "photos-2024"}))
	require.Empty(t, lookupSorted(t, x, PinFilter{Metadata: map[string]string{"owner": "ann"}}))
	require.Equal(t, []cid.Cid{a}, lookupSorted(t, x, PinFilter{Name: "renamed"}))
	x.update(Pin{Cid: b}, true)
	require.Empty(t, lookupSorted(t, x, PinFilter{Name: "photos-", Match: MatchPrefix}))
	require.Empty(t, x.names["photos-2025"], "empty sets are dropped")
}

// A notification during the first listing wins over the listing's older
// view of the same CID.
func TestPinIndexBuildRace(t *testing.T) {
	ctx := context.Background()
	st := NewMemoryState()
	a := idxCID(t, 1)
	require.NoError(t, st.Add(ctx, NewPin(a, PinOptions{Name: "old"})))
	x := newPinIndex()
	x.building = map[cid.Cid]struct{}{}
	x.update(NewPin(a, PinOptions{Name: "new"}), false) // arrives before the listing reaches a
	building := x.building
	x.building = nil
	// Simulate build's loop with the same bookkeeping.
	x.building = building
	for p, err := range st.List(ctx) {
		require.NoError(t, err)
		if _, touched := x.building[p.Cid]; !touched {
			x.putLocked(p)
		}
	}
	x.building, x.ready = nil, true
	require.Equal(t, []cid.Cid{a}, lookupSorted(t, x, PinFilter{Name: "new"}))
	require.Empty(t, lookupSorted(t, x, PinFilter{Name: "old"}))
}

// BenchmarkPinsByName compares a name-filtered listing of 100,000 pins
// through the index (point lookups of the matches) with a scan.
func BenchmarkPinsByName(b *testing.B) {
	ctx := context.Background()
	st := NewMemoryState()
	batch, err := st.Batch(ctx)
	require.NoError(b, err)
	const n = 100_000
	for i := range n {
		require.NoError(b, batch.Add(ctx, NewPin(idxCID(b, i), PinOptions{Name: fmt.Sprintf("name-%d", i%1000)})))
	}
	require.NoError(b, batch.Commit(ctx))
	x := newPinIndex()
	require.NoError(b, x.build(ctx, st))
	f := PinFilter{Name: "name-7"}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			cids, _ := x.lookup(f)
			got := 0
			for _, c := range cids {
				p, err := st.Get(ctx, c)
				if err == nil && f.MatchPin(p) {
					got++
				}
			}
			if got != n/1000 {
				b.Fatalf("got %d", got)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			got := 0
			for p, err := range st.List(ctx) {
				if err == nil && f.MatchPin(p) {
					got++
				}
			}
			if got != n/1000 {
				b.Fatalf("got %d", got)
			}
		}
	})
}

// The index lists exactly the pins with an expiry (what the expiry reads),
// built from the state and kept current by notifications.
func TestPinIndexExpiring(t *testing.T) {
	x := newPinIndex()
	_, ok := x.expiringPins()
	require.False(t, ok, "not ready: the expiry lists the state")
	a, b, c := idxCID(t, 1), idxCID(t, 2), idxCID(t, 3)
	st := NewMemoryState()
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	require.NoError(t, st.Add(ctx, NewPin(a, PinOptions{ExpireAt: later})))
	require.NoError(t, st.Add(ctx, NewPin(b, PinOptions{})))
	require.NoError(t, x.build(ctx, st))
	expiring := func() []cid.Cid {
		got, ok := x.expiringPins()
		require.True(t, ok)
		slices.SortFunc(got, cmpCid)
		return got
	}
	require.Equal(t, []cid.Cid{a}, expiring())
	x.update(NewPin(c, PinOptions{Name: "n", ExpireAt: later}), false)
	x.update(NewPin(b, PinOptions{ExpireAt: later}), false)
	require.Equal(t, sortedCids(a, b, c), expiring())
	x.update(NewPin(a, PinOptions{}), false) // the expiry was dropped
	x.update(Pin{Cid: c}, true)
	require.Equal(t, []cid.Cid{b}, expiring())
}
