package crdt_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// callerSync is a store that records whether a writer's goroutine (one in
// Datastore.Put) ran its Sync, and fails Sync while fail is set.
type callerSync struct {
	ds.Batching
	byWriter atomic.Int32
	fail     atomic.Bool
}

var errSyncFailed = errors.New("sync failed")

func (c *callerSync) Sync(ctx context.Context, k ds.Key) error {
	buf := make([]byte, 64<<10)
	if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "crdt.(*Datastore).Put(") {
		c.byWriter.Add(1)
	}
	if c.fail.Load() {
		return errSyncFailed
	}
	return c.Batching.Sync(ctx, k)
}

// A lone write passes from its writer to the committer and back, nothing
// more: the committer answers it once committed and the writer syncs the
// store itself when no sync runs. (The pipelined committer handed every
// group to a sync goroutine, which answered the writer: one more
// goroutine hand-off per write, which let the work the write had woken up
// elsewhere run first and tripled the latency of a lone write on a store
// whose sync is free, issue 17.)
func TestCommitLoneWriterSyncs(t *testing.T) {
	ctx := context.Background()
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	st := &callerSync{Batching: newMemStore(t)}
	s := c.open("p0", st, crdt.Config{})
	for _, k := range []string{"/a", "/b"} {
		before := st.byWriter.Load()
		require.NoError(t, s.Put(ctx, ds.NewKey(k), []byte("1")))
		require.Greater(t, st.byWriter.Load(), before, "%s: the store was not synced by the writer", k)
	}
}

// A failed sync fails the writes it was to make durable, with the store's
// error; the next write syncs again.
func TestCommitSyncError(t *testing.T) {
	ctx := context.Background()
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	st := &callerSync{Batching: newMemStore(t)}
	s := c.open("p0", st, crdt.Config{})
	st.fail.Store(true)
	err := s.Put(ctx, ds.NewKey("/a"), []byte("1"))
	require.ErrorIs(t, err, errSyncFailed)
	st.fail.Store(false)
	require.NoError(t, s.Put(ctx, ds.NewKey("/b"), []byte("2")))
	for _, k := range []string{"/a", "/b"} {
		ok, err := s.Has(ctx, ds.NewKey(k))
		require.NoError(t, err)
		require.True(t, ok, "%s applied", k) // committed, whatever its sync
	}
}

// Sequential writes share their announcements: a commit after a quiet
// spell is broadcast at once, and those made within BroadcastGap after it
// go out together in one message when the gap ends. The other replica
// still applies every write from the blocks the messages carry, without
// a fetch. (Announcing every commit on its own made each write cost every
// other replica a pubsub signature check: with three peers on two cores,
// the replicas' share of that took the sequential single write from 163
// to 217 µs, issue 17.)
func TestSequentialWritesShareBroadcasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w, r, sent := writerAndReader(t, crdt.Config{})
		const n = 20
		require.NoError(t, w.Put(ctx, key(0), []byte("v")))
		require.Equal(t, uint64(1), sent(), "the first write is announced at once")
		for i := 1; i < n; i++ {
			require.NoError(t, w.Put(ctx, key(i), []byte("v")))
		}
		require.Equal(t, uint64(1), sent(), "%d writes within the gap made their own broadcasts", n-1)
		time.Sleep(crdt.DefaultBroadcastGap) // fake time: the gap ends
		require.Equal(t, uint64(2), sent(), "the writes of the gap share one broadcast")
		requireKeys(t, r, n)
	})
}

// The gap ends early once the blocks waiting for it fill half of what one
// message may carry (64 blocks): blocks past that would be dropped from
// the message and fetched by every other replica instead.
func TestBroadcastGapEndsEarlyWhenBlocksPileUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w, r, sent := writerAndReader(t, crdt.Config{BroadcastGap: time.Hour})
		require.NoError(t, w.Put(ctx, key(0), []byte("v")))
		require.Equal(t, uint64(1), sent())
		for i := 1; i < 32; i++ {
			require.NoError(t, w.Put(ctx, key(i), []byte("v")))
		}
		require.Equal(t, uint64(1), sent(), "31 blocks wait for the gap")
		require.NoError(t, w.Put(ctx, key(32), []byte("v")))
		require.Equal(t, uint64(2), sent(), "32 blocks end the gap")
		requireKeys(t, r, 33)
	})
}

// writerAndReader opens, inside a synctest bubble, a writer configured by
// cfg and a reader, on in-memory maps (pebble's background work cannot
// run inside a bubble). sent returns the writer's broadcasts since, once
// the bubble has settled.
func writerAndReader(t *testing.T, cfg crdt.Config) (w, r *replica, sent func() uint64) {
	c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	w = c.open("w", newMapStore(), cfg)
	r = c.open("r", newMapStore(), crdt.Config{})
	synctest.Wait()
	sent0 := w.Stats().SentBroadcasts
	return w, r, func() uint64 { synctest.Wait(); return w.Stats().SentBroadcasts - sent0 }
}

// requireKeys checks that replica r holds keys 0..n-1, applied from the
// blocks their announcements carried (no fetch).
func requireKeys(t *testing.T, r *replica, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		v, err := r.Get(ctx, key(i))
		require.NoError(t, err, "key %d on the other replica", i)
		require.Equal(t, []byte("v"), v)
	}
	require.Zero(t, r.Stats().Fetches, "every delta travelled with its announcement")
}

// Blocks wait for a broadcast loop that cannot take them in time (here
// it rests after answering a join request; under load, it may not be
// scheduled for many commits) and then go out in as many messages as they
// fill: none is dropped and fetched by every replica instead.
func TestBlocksWaitForABusyBroadcastLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
		w := c.open("w", newMapStore(), crdt.Config{})
		r := c.open("r", newMapStore(), crdt.Config{})
		require.NoError(t, w.Put(ctx, key(0), []byte("v")))
		time.Sleep(crdt.DefaultBroadcastGap)
		synctest.Wait()
		req, err := crdt.EncodeJoinRequest(make([]byte, 16))
		require.NoError(t, err)
		require.NoError(t, c.bus.Endpoint("joiner").Broadcast(ctx, req))
		synctest.Wait() // w answered and rests (no time passes)
		sent0 := w.Stats().SentBroadcasts
		const n = 200
		for i := 1; i <= n; i++ {
			require.NoError(t, w.Put(ctx, key(i), []byte("v")))
		}
		synctest.Wait()
		require.Equal(t, sent0, w.Stats().SentBroadcasts, "the loop rests")
		time.Sleep(time.Second) // the rest and the gap end
		synctest.Wait()
		sent := w.Stats().SentBroadcasts - sent0
		require.GreaterOrEqual(t, sent, uint64(4), "%d blocks in %d messages of at most 64", n, sent)
		requireKeys(t, r, n+1)
	})
}

// slowSync is a store whose Sync takes syncTime (of a synctest bubble's
// fake clock), like a disk's.
type slowSync struct{ ds.Batching }

const syncTime = 200 * time.Microsecond

func (s slowSync) Sync(ctx context.Context, k ds.Key) error {
	time.Sleep(syncTime)
	return s.Batching.Sync(ctx, k)
}

// Writers that come back one by one (clients in a network round trip,
// one write each at a time) form a stream: the committer waits up to
// GatherWait for more and commits them in a few larger deltas. A lone
// write after a quiet spell and a sequential writer are not delayed: each
// write takes one sync. (The committer took only what was queued the
// moment the first write arrived: 8 HTTP clients made deltas of about 3
// pins, and each delta costs every replica a commit, a sync, a signature
// check and an apply, issue 16.)
func TestCommitGathersAStreamOfWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
		w := c.open("w", slowSync{newMapStore()}, crdt.Config{})
		synctest.Wait()

		// A lone write: one sync, no wait.
		start := time.Now()
		require.NoError(t, w.Put(ctx, key(0), []byte("v")))
		require.Equal(t, syncTime, time.Since(start), "a lone write")

		// A sequential writer: one sync per write, no wait.
		time.Sleep(time.Second)
		deltas0 := w.Stats().LocalDeltas
		start = time.Now()
		const seq = 20
		for i := 1; i <= seq; i++ {
			require.NoError(t, w.Put(ctx, key(i), []byte("v")))
		}
		require.Equal(t, seq*syncTime, time.Since(start), "%d sequential writes", seq)
		require.Equal(t, uint64(seq), w.Stats().LocalDeltas-deltas0)

		// A stream: 8 writers arriving 50 µs apart, each writing 10
		// times with a 300 µs round trip between its writes.
		time.Sleep(time.Second)
		deltas0 = w.Stats().LocalDeltas
		const writers, each = 8, 10
		errs := make(chan error, writers)
		for i := range writers {
			go func() {
				time.Sleep(time.Duration(i) * 50 * time.Microsecond)
				for j := range each {
					if err := w.Put(ctx, key(1000+i*each+j), []byte("v")); err != nil {
						errs <- err
						return
					}
					time.Sleep(300 * time.Microsecond)
				}
				errs <- nil
			}()
		}
		for range writers {
			require.NoError(t, <-errs)
		}
		deltas := w.Stats().LocalDeltas - deltas0
		t.Logf("%d writes of a stream in %d deltas", writers*each, deltas)
		require.LessOrEqual(t, deltas, uint64(writers*each/4), "%d writes of a stream in %d deltas", writers*each, deltas)
		for i := range writers * each {
			v, err := w.Get(ctx, key(1000+i))
			require.NoError(t, err)
			require.Equal(t, []byte("v"), v)
		}

		// After the stream, a lone write is again not delayed.
		time.Sleep(time.Second)
		start = time.Now()
		require.NoError(t, w.Put(ctx, key(2000), []byte("v")))
		require.Equal(t, syncTime, time.Since(start), "a lone write after the stream")
	})
}

// Batches committed at the same time (several bulk imports) share a
// commit and their deltas: each batch that fits in a delta is in one, with
// the others that fit beside it, and every batch is durable when Commit
// returns. (Each batch was committed on its own, in a delta of its own:
// small batches from many streams made as many deltas, issue 16.)
func TestConcurrentBatchesShareDeltas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := &cluster{t: t, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
		const maxBatch = 25
		w := c.open("w", slowSync{newMapStore()}, crdt.Config{MaxBatchSize: maxBatch})
		synctest.Wait()
		deltas0 := w.Stats().LocalDeltas

		const streams, batches, size = 8, 10, 10
		errs := make(chan error, streams)
		for i := range streams {
			go func() {
				for j := range batches {
					b, err := w.Batch(ctx)
					if err == nil {
						for k := range size {
							if err = b.Put(ctx, key((i*batches+j)*size+k), []byte("v")); err != nil {
								break
							}
						}
					}
					if err == nil {
						err = b.Commit(ctx)
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range streams {
			require.NoError(t, <-errs)
		}
		deltas := w.Stats().LocalDeltas - deltas0
		t.Logf("%d batches of %d in %d deltas", streams*batches, size, deltas)
		require.LessOrEqual(t, deltas, uint64(streams*batches*3/4), "batches committed at the same time share deltas")
		// Two batches of 10 fill a delta of 25: a batch that fits is not
		// split to fill the rest (that would make 800/25 = 32 deltas).
		require.GreaterOrEqual(t, deltas, uint64(streams*batches/2), "a batch split across deltas")
		for i := range streams * batches * size {
			v, err := w.Get(ctx, key(i))
			require.NoError(t, err)
			require.Equal(t, []byte("v"), v)
		}
	})
}
