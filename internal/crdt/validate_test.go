package crdt_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

var errBadValue = errors.New("value starts with bad")

// rejectBad is a ValidateValue hook refusing values that start with "bad".
func rejectBad(key string, value []byte) error {
	if bytes.HasPrefix(value, []byte("bad")) {
		return errBadValue
	}
	return nil
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DecodeDelta runs Limits.ValidateValue on every put.
func TestDecodeDeltaValidateValue(t *testing.T) {
	_, raw, err := crdt.EncodeDelta(&crdt.Delta{Priority: 1, Puts: []crdt.KV{{Key: "/a", Value: []byte("ok")}, {Key: "/b", Value: []byte("bad pin")}}})
	require.NoError(t, err)
	_, err = crdt.DecodeDelta(raw, crdt.Limits{})
	require.NoError(t, err, "no hook: accepted")
	var seen []string
	_, err = crdt.DecodeDelta(raw, crdt.Limits{ValidateValue: func(k string, v []byte) error {
		seen = append(seen, k)
		return rejectBad(k, v)
	}})
	require.ErrorIs(t, err, crdt.ErrInvalidDelta)
	require.ErrorIs(t, err, crdt.ErrInvalidValue)
	require.ErrorIs(t, err, errBadValue)
	require.Contains(t, err.Error(), `"/b"`)
	require.Equal(t, []string{"/a", "/b"}, seen, "the hook sees keys in ds.Key string form")
}

// A local Put or Batch.Put whose value the hook rejects returns its error
// and writes nothing.
func TestValidateValueLocal(t *testing.T) {
	ctx := context.Background()
	s := newCluster(t, 1, 1, crdt.Config{ValidateValue: rejectBad}).rs[0]
	require.NoError(t, s.Put(ctx, key(1), []byte("good")))
	err := s.Put(ctx, key(1), []byte("bad overwrite"))
	require.ErrorIs(t, err, crdt.ErrInvalidValue)
	require.ErrorIs(t, err, errBadValue)
	err = s.Put(ctx, key(2), []byte("bad new"))
	require.ErrorIs(t, err, errBadValue)
	b, err := s.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, key(3), []byte("fine")))
	require.ErrorIs(t, b.Put(ctx, key(4), []byte("bad in batch")), errBadValue)
	require.NoError(t, b.Commit(ctx))

	v, err := s.Get(ctx, key(1))
	require.NoError(t, err)
	require.Equal(t, "good", string(v), "rejected put did not overwrite")
	_, err = s.Get(ctx, key(2))
	require.ErrorIs(t, err, ds.ErrNotFound)
	_, err = s.Get(ctx, key(4))
	require.ErrorIs(t, err, ds.ErrNotFound)
	ok, err := s.Has(ctx, key(3))
	require.NoError(t, err)
	require.True(t, ok, "the valid op of the batch is committed")
	require.EqualValues(t, 2, s.Stats().LocalDeltas, "rejected puts wrote no delta")
	require.NoError(t, s.Delete(ctx, key(1)), "deletes are not checked")
}

// T17 (CRDT side): a delta from a trusted peer holding one put the hook
// rejects is rejected whole (logged, counted, nothing applied); other
// deltas are still applied.
func TestValidateValueRemote(t *testing.T) {
	ctx := context.Background()
	logs := &syncBuffer{}
	cfg := crdt.Config{
		RebroadcastInterval: time.Hour,
		ValidateValue:       rejectBad,
		Logger:              slog.New(slog.NewTextHandler(logs, nil)),
	}
	c := newCluster(t, 1, 1, cfg)
	v := c.rs[0]
	require.NoError(t, v.Put(ctx, key(1), []byte("mine")))
	before, _ := digest(t, v)
	heads := v.Heads()

	bad := c.announce(t, "writer", "p0", &crdt.Delta{Priority: 1, Puts: []crdt.KV{
		{Key: key(1).String(), Value: []byte("overwrite")},
		{Key: key(2).String(), Value: []byte("ok")},
		{Key: key(3).String(), Value: []byte("bad metadata")},
	}})
	waitFor(t, 5*time.Second, "delta with an invalid value rejected", func() bool { return v.Stats().RejectedNodes >= 1 })
	after, _ := digest(t, v)
	require.Equal(t, before, after, "no put of the rejected delta applied")
	require.Equal(t, heads, v.Heads(), "the rejected delta is not a head")
	require.Contains(t, logs.String(), "rejected node")
	require.Contains(t, logs.String(), bad.String())
	require.Contains(t, logs.String(), errBadValue.Error())

	// Other deltas from the same peer are still applied.
	good := c.announce(t, "writer", "p0", &crdt.Delta{Priority: 1, Puts: []crdt.KV{{Key: key(5).String(), Value: []byte("fine")}}})
	waitFor(t, 5*time.Second, "a valid delta still applied", func() bool {
		ok, _ := v.Has(ctx, key(5))
		return ok
	})
	require.Contains(t, v.Heads(), good)
	require.NotContains(t, v.Heads(), bad)
	for _, k := range []int{2, 3} {
		ok, err := v.Has(ctx, key(k))
		require.NoError(t, err)
		require.False(t, ok, "key %d of the rejected delta", k)
	}
	got, err := v.Get(ctx, key(1))
	require.NoError(t, err)
	require.Equal(t, "mine", string(got))
	require.EqualValues(t, 1, v.Stats().RejectedNodes)
	require.False(t, v.Stats().Dirty)
}
