package pincluster_test

// Tests of the root package's default PinTracker (issue 5) over
// clustertest.MockConnector. Each test runs in a testing/synctest bubble:
// time is fake, so the tracker's real defaults (5 s backoff doubling, five
// retries) run in no wall time, and tkEventually checks its condition each
// time every goroutine of the bubble is blocked, failing after a deadline
// of fake time.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
	crypto "github.com/libp2p/go-libp2p/core/crypto"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// tkEnv is one tracker over a mock connector and an in-memory state.
type tkEnv struct {
	t     *testing.T
	ctx   context.Context
	self  peer.ID
	other peer.ID
	mock  *clustertest.MockConnector
	st    *pincluster.DatastoreState
	tr    pincluster.PinTracker
}

// tkRun runs fn in a synctest bubble with a fresh tracker whose IPFS node
// is wrap(e.mock) (e.mock when wrap is nil). The tracker is shut down
// before the bubble ends.
func tkRun(t *testing.T, wrap func(*clustertest.MockConnector) pincluster.IPFSConnector, fn func(e *tkEnv)) {
	synctest.Test(t, func(t *testing.T) {
		e := &tkEnv{t: t, ctx: context.Background(), self: tkPeer(t), other: tkPeer(t),
			mock: clustertest.NewMockConnector(), st: pincluster.NewMemoryState()}
		var conn pincluster.IPFSConnector = e.mock
		if wrap != nil {
			conn = wrap(e.mock)
		}
		tr, err := pincluster.NewTrackerForTest(e.self, conn, e.st)
		require.NoError(t, err)
		e.tr = tr
		defer func() { require.NoError(t, tr.Shutdown(e.ctx)) }()
		fn(e)
	})
}

func tkPeer(t *testing.T) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	return id
}

func tkCID(t *testing.T, i int) cid.Cid {
	h, err := mh.Sum(fmt.Appendf(nil, "tracker-test-%d", i), mh.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, h)
}

// local adds to the state a pin of the i-th CID allocated to every peer.
func (e *tkEnv) local(i int) pincluster.Pin {
	p := pincluster.NewPin(tkCID(e.t, i), pincluster.PinOptions{ReplicationMin: -1, ReplicationMax: -1, Name: fmt.Sprint("p", i)})
	require.NoError(e.t, e.st.Add(e.ctx, p))
	return p
}

// remote adds to the state a pin of the i-th CID allocated to the other
// peer only.
func (e *tkEnv) remote(i int) pincluster.Pin {
	p := pincluster.NewPin(tkCID(e.t, i), pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 1})
	p.Allocations = []peer.ID{e.other}
	require.NoError(e.t, e.st.Add(e.ctx, p))
	return p
}

func (e *tkEnv) track(p pincluster.Pin) {
	e.t.Helper()
	require.NoError(e.t, e.tr.Track(e.ctx, p))
}

func (e *tkEnv) status(c cid.Cid) pincluster.PinInfo {
	e.t.Helper()
	pi, err := e.tr.Status(e.ctx, c)
	require.NoError(e.t, err)
	return pi
}

// eventually waits until c's status is want, within d of fake time.
func (e *tkEnv) eventually(c cid.Cid, want pincluster.TrackerStatus, d time.Duration) pincluster.PinInfo {
	e.t.Helper()
	var pi pincluster.PinInfo
	tkEventually(e.t, d, fmt.Sprintf("%s %s", c, want), func() bool {
		pi = e.status(c)
		return pi.Status == want
	})
	return pi
}

// statusAll collects StatusAll(filter) by CID.
func (e *tkEnv) statusAll(filter pincluster.TrackerStatus) map[cid.Cid]pincluster.TrackerStatus {
	e.t.Helper()
	out := map[cid.Cid]pincluster.TrackerStatus{}
	for pi, err := range e.tr.StatusAll(e.ctx, filter) {
		require.NoError(e.t, err)
		_, dup := out[pi.Cid]
		require.False(e.t, dup, "StatusAll yields %s twice", pi.Cid)
		out[pi.Cid] = pi.Status
	}
	return out
}

// syncAll collects what SyncAll reports as changed, by CID.
func (e *tkEnv) syncAll() map[cid.Cid]pincluster.TrackerStatus {
	e.t.Helper()
	out := map[cid.Cid]pincluster.TrackerStatus{}
	for pi, err := range e.tr.SyncAll(e.ctx) {
		require.NoError(e.t, err)
		out[pi.Cid] = pi.Status
	}
	return out
}

func (e *tkEnv) stats() pincluster.TrackerStats {
	e.t.Helper()
	r, ok := e.tr.(pincluster.TrackerStatsReporter)
	require.True(e.t, ok, "the default tracker reports stats")
	return r.Stats()
}

// tkEventually checks cond each time the bubble is idle, letting fake time
// advance by 100 ms steps, and fails once d of fake time has passed.
func tkEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A pin allocated to other peers only is remote and never reaches the
// node; one allocated here goes pinned; Untrack after the state dropped it
// unpins it; a reallocation elsewhere unpins it and makes it remote.
func TestTrackerStatusRemotePinnedUnpinned(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		rem, loc, moved := e.remote(1), e.local(2), e.local(3)
		e.track(rem)
		e.track(loc)
		e.track(moved)
		synctest.Wait()
		require.Equal(t, pincluster.TrackerStatusRemote, e.status(rem.Cid).Status)
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(rem.Cid))
		pi := e.eventually(loc.Cid, pincluster.TrackerStatusPinned, time.Second)
		require.Equal(t, "p2", pi.Name)
		require.Equal(t, e.self, pi.Peer)
		require.NotEqual(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(loc.Cid))
		e.eventually(moved.Cid, pincluster.TrackerStatusPinned, time.Second)
		require.Equal(t, map[cid.Cid]pincluster.TrackerStatus{
			rem.Cid: pincluster.TrackerStatusRemote, loc.Cid: pincluster.TrackerStatusPinned,
			moved.Cid: pincluster.TrackerStatusPinned,
		}, e.statusAll(0))
		require.Equal(t, map[cid.Cid]pincluster.TrackerStatus{rem.Cid: pincluster.TrackerStatusRemote},
			e.statusAll(pincluster.TrackerStatusRemote))

		require.NoError(t, e.st.Rm(e.ctx, loc.Cid))
		require.NoError(t, e.tr.Untrack(e.ctx, loc.Cid))
		e.eventually(loc.Cid, pincluster.TrackerStatusUnpinned, time.Second)
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(loc.Cid))

		moved.ReplicationMin, moved.ReplicationMax, moved.Allocations = 1, 1, []peer.ID{e.other}
		require.NoError(t, e.st.Add(e.ctx, moved))
		e.track(moved)
		e.eventually(moved.Cid, pincluster.TrackerStatusRemote, time.Second)
		tkEventually(t, time.Second, "reallocated pin unpinned from the node", func() bool {
			return e.mock.PinStatus(moved.Cid) == pincluster.IPFSPinStatusUnpinned
		})
		require.Zero(t, e.mock.Calls(clustertest.MethodPinLsCid), "statuses come from the tracker, not per-CID node calls")
	})
}

// With the pin workers (10 by default) busy on hung pins, the next pin is
// pin_queued while the others are pinning; once released all are pinned.
// The stats show the queue length, the pins in flight and the timings.
func TestTrackerQueuedPinningPinned(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		const n = 11
		var pins []pincluster.Pin
		var releases []func()
		for i := range n {
			p := e.local(i)
			pins = append(pins, p)
			releases = append(releases, e.mock.Hang(p.Cid))
			e.track(p)
			synctest.Wait() // the first ten are taken in Track order
		}
		for _, p := range pins[:n-1] {
			require.Equal(t, pincluster.TrackerStatusPinning, e.status(p.Cid).Status)
		}
		last := e.status(pins[n-1].Cid)
		require.Equal(t, pincluster.TrackerStatusPinQueued, last.Status)
		require.True(t, last.Status.Match(pincluster.TrackerStatusQueued))
		require.Len(t, e.statusAll(pincluster.TrackerStatusPinning), n-1)
		require.Len(t, e.statusAll(pincluster.TrackerStatusQueued), 1)
		q, err := e.tr.PinQueueSize(e.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, q)
		s := e.stats()
		require.Equal(t, n-1, s.PinsInFlight)
		require.Equal(t, 1, s.PinsQueued)
		require.Equal(t, n, s.Ops)
		require.Zero(t, s.Done)

		time.Sleep(3 * time.Second)
		for _, r := range releases {
			r()
		}
		for _, p := range pins {
			e.eventually(p.Cid, pincluster.TrackerStatusPinned, time.Minute)
		}
		require.Len(t, e.statusAll(pincluster.TrackerStatusPinned), n)
		s = e.stats()
		require.Zero(t, s.PinsInFlight+s.PinsQueued+s.Ops+s.Errors)
		require.EqualValues(t, n, s.Done)
		require.Equal(t, n, s.Held)
		require.EqualValues(t, n, s.Pin.Count)
		require.Zero(t, s.Pin.Failed)
		require.GreaterOrEqual(t, s.Pin.Max, 3*time.Second, "the hung pins took the 3 s of fake time")
		require.GreaterOrEqual(t, s.Pin.Total, time.Duration(n-1)*3*time.Second)
	})
}

// A pin that was pinned and vanished from the node (not unpinned by the
// cluster) is unexpectedly_unpinned once Sync or SyncAll sees it; a pin
// allocated here that was never pinned and has no operation is pin_queued,
// not unexpectedly_unpinned. A new Track, Recover or RecoverAll pins the
// lost ones again.
func TestTrackerUnexpectedlyUnpinned(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		a, b, c, never := e.local(1), e.local(2), e.local(3), e.local(4)
		for _, p := range []pincluster.Pin{a, b, c} {
			e.track(p)
			e.eventually(p.Cid, pincluster.TrackerStatusPinned, time.Second)
		}
		require.Equal(t, pincluster.TrackerStatusPinQueued, e.status(never.Cid).Status,
			"never pinned, no operation: pin_queued")

		for _, p := range []pincluster.Pin{a, b, c} {
			require.NoError(t, e.mock.Unpin(e.ctx, p.Cid)) // behind the cluster's back
		}
		pi, err := e.tr.Sync(e.ctx, a.Cid)
		require.NoError(t, err)
		require.Equal(t, pincluster.TrackerStatusUnexpectedlyUnpinned, pi.Status)
		require.False(t, pi.TS.IsZero())

		changed := e.syncAll()
		require.Equal(t, map[cid.Cid]pincluster.TrackerStatus{
			b.Cid: pincluster.TrackerStatusUnexpectedlyUnpinned,
			c.Cid: pincluster.TrackerStatusUnexpectedlyUnpinned,
		}, changed, "SyncAll streams the pins whose status changed (a was synced already)")
		all := e.statusAll(pincluster.TrackerStatusUnexpectedlyUnpinned)
		require.Len(t, all, 3)
		require.NotContains(t, all, never.Cid)
		require.Equal(t, 3, e.stats().Lost)

		// The state sync's Track pins a again; Recover pins b; RecoverAll c.
		e.track(a)
		e.eventually(a.Cid, pincluster.TrackerStatusPinned, time.Second)
		pi, err = e.tr.Recover(e.ctx, b.Cid)
		require.NoError(t, err)
		require.NotEqual(t, pincluster.TrackerStatusUnexpectedlyUnpinned, pi.Status)
		e.eventually(b.Cid, pincluster.TrackerStatusPinned, time.Second)
		var recovered []cid.Cid
		for pi, err := range e.tr.RecoverAll(e.ctx) {
			require.NoError(t, err)
			recovered = append(recovered, pi.Cid)
		}
		require.Equal(t, []cid.Cid{c.Cid}, recovered)
		e.eventually(c.Cid, pincluster.TrackerStatusPinned, time.Second)
		require.Zero(t, e.stats().Lost)
		for _, p := range []pincluster.Pin{a, b, c} {
			require.NotEqual(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(p.Cid))
		}

		// Unpinned by the cluster: unpinned, never unexpectedly.
		require.NoError(t, e.st.Rm(e.ctx, a.Cid))
		require.NoError(t, e.tr.Untrack(e.ctx, a.Cid))
		e.eventually(a.Cid, pincluster.TrackerStatusUnpinned, time.Second)
		e.syncAll()
		require.Empty(t, e.statusAll(pincluster.TrackerStatusUnexpectedlyUnpinned))
	})
}

// A failing connector: pin_error with the connector's error text and the
// attempt count, retries after 5 s, then 10 s (exponential backoff), and
// pinned once the fault is lifted. A pin that fails through every retry
// stays pin_error until Recover; RecoverAll re-queues the others.
func TestTrackerPinErrorRetriesAndRecovers(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		boom := errors.New("disk on fire")
		p := e.local(1)
		e.mock.FailPin(p.Cid, boom)
		start := time.Now()
		e.track(p)
		synctest.Wait()
		pi := e.status(p.Cid)
		require.Equal(t, pincluster.TrackerStatusPinError, pi.Status)
		require.Contains(t, pi.Error, "disk on fire")
		require.Equal(t, 1, pi.AttemptCount)
		s := e.stats()
		require.Equal(t, 1, s.Errors)
		require.Equal(t, 1, s.Retrying)

		attempts := func() int { return e.status(p.Cid).AttemptCount }
		time.Sleep(time.Until(start.Add(5*time.Second - time.Millisecond)))
		synctest.Wait()
		require.Equal(t, 1, attempts(), "no retry before the 5 s backoff")
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, 2, attempts(), "first retry after 5 s")
		require.Equal(t, pincluster.TrackerStatusPinError, e.status(p.Cid).Status)
		time.Sleep(10*time.Second - 2*time.Millisecond)
		synctest.Wait()
		require.Equal(t, 2, attempts(), "second retry waits twice as long")
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, 3, attempts())

		e.mock.FailPin(p.Cid, nil) // the fault is lifted
		pi = e.eventually(p.Cid, pincluster.TrackerStatusPinned, 30*time.Second)
		require.Empty(t, pi.Error)
		s = e.stats()
		require.EqualValues(t, 3, s.Pin.Failed)
		require.EqualValues(t, 4, s.Pin.Count)
		require.EqualValues(t, 1, s.Done)
		require.Zero(t, s.Errors)

		// Every retry fails: after 1 + 5 attempts the pin stays in error.
		q, r := e.local(2), e.local(3)
		e.mock.FailPin(q.Cid, boom)
		e.mock.FailPin(r.Cid, boom)
		e.track(q)
		e.track(r)
		tkEventually(t, 10*time.Minute, "retries exhausted", func() bool {
			s := e.stats()
			return s.Errors == 2 && s.Retrying == 0
		})
		pi = e.status(q.Cid)
		require.Equal(t, pincluster.TrackerStatusPinError, pi.Status)
		require.Equal(t, 6, pi.AttemptCount)
		require.Contains(t, pi.Error, "disk on fire")
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, 6, e.status(q.Cid).AttemptCount, "no more automatic retries")
		require.Len(t, e.statusAll(pincluster.TrackerStatusError), 2)

		e.mock.FailPin(q.Cid, nil)
		e.mock.FailPin(r.Cid, nil)
		_, err := e.tr.Recover(e.ctx, q.Cid)
		require.NoError(t, err)
		e.eventually(q.Cid, pincluster.TrackerStatusPinned, time.Second)
		require.Equal(t, pincluster.TrackerStatusPinError, e.status(r.Cid).Status, "Recover touches one CID")
		var recovered []cid.Cid
		for pi, err := range e.tr.RecoverAll(e.ctx) {
			require.NoError(t, err)
			recovered = append(recovered, pi.Cid)
		}
		require.Equal(t, []cid.Cid{r.Cid}, recovered)
		e.eventually(r.Cid, pincluster.TrackerStatusPinned, time.Second)
		s = e.stats()
		require.EqualValues(t, 2, s.Recovered)
		require.Zero(t, s.Errors)
	})
}

// A node that is down: pins fail with its error, and all end pinned once
// it is back, without any call from the test.
func TestTrackerNodeUnavailableThenBack(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		var pins []pincluster.Pin
		for i := range 5 {
			pins = append(pins, e.local(i))
		}
		e.status(pins[0].Cid) // loads the (empty) pin list while the node is up
		e.mock.Available(false)
		for _, p := range pins {
			e.track(p)
		}
		synctest.Wait()
		for _, p := range pins {
			pi := e.status(p.Cid)
			require.Equal(t, pincluster.TrackerStatusPinError, pi.Status)
			require.Contains(t, pi.Error, pincluster.ErrIPFSUnavailable.Error())
			require.Equal(t, 1, pi.AttemptCount)
		}
		time.Sleep(20 * time.Second)
		e.mock.Available(true)
		for _, p := range pins {
			e.eventually(p.Cid, pincluster.TrackerStatusPinned, time.Minute)
		}
		require.Equal(t, len(pins), e.mock.PinCount())
	})
}

// SyncAll and Sync reconcile with a node whose pinset changed behind the
// tracker: pins lost, pins added (in the state and not), and a node that
// cannot list.
func TestTrackerSyncReconciles(t *testing.T) {
	tkRun(t, nil, func(e *tkEnv) {
		t := e.t
		a, b := e.local(1), e.local(2)
		e.track(a)
		e.track(b)
		e.eventually(a.Cid, pincluster.TrackerStatusPinned, time.Second)
		e.eventually(b.Cid, pincluster.TrackerStatusPinned, time.Second)
		// c is in the state (allocated here) but was never tracked; d is
		// not in the state; both are pinned on the node directly.
		c := e.local(3)
		d := tkCID(t, 4)
		require.NoError(t, e.mock.Pin(e.ctx, c, nil))
		require.NoError(t, e.mock.Pin(e.ctx, pincluster.NewPin(d, pincluster.PinOptions{}), nil))
		require.NoError(t, e.mock.Unpin(e.ctx, a.Cid))

		changed := e.syncAll()
		require.Equal(t, map[cid.Cid]pincluster.TrackerStatus{
			a.Cid: pincluster.TrackerStatusUnexpectedlyUnpinned,
			c.Cid: pincluster.TrackerStatusPinned,
			d:     pincluster.TrackerStatusUnpinned,
		}, changed)
		require.Empty(t, e.syncAll(), "second SyncAll: nothing changed")
		require.Equal(t, pincluster.TrackerStatusPinned, e.status(b.Cid).Status)

		// Sync of one CID: the node pinned it again behind the tracker.
		require.NoError(t, e.mock.Pin(e.ctx, a, nil))
		pi, err := e.tr.Sync(e.ctx, a.Cid)
		require.NoError(t, err)
		require.Equal(t, pincluster.TrackerStatusPinned, pi.Status)
		require.Zero(t, e.stats().Lost)

		// A node that cannot answer: errors, and the statuses are kept.
		e.mock.FailCalls(clustertest.MethodPinLs, 1, errors.New("pin ls broke"))
		var errs int
		for _, err := range e.tr.SyncAll(e.ctx) {
			require.ErrorContains(t, err, "pin ls broke")
			errs++
		}
		require.Equal(t, 1, errs)
		e.mock.FailCID(clustertest.MethodPinLsCid, b.Cid, errors.New("pin ls cid broke"))
		_, err = e.tr.Sync(e.ctx, b.Cid)
		require.ErrorContains(t, err, "pin ls cid broke")
		require.Equal(t, pincluster.TrackerStatusPinned, e.status(b.Cid).Status)
		require.Equal(t, pincluster.TrackerStatusPinned, e.status(a.Cid).Status)
	})
}

// stubbornConn's Pin ignores cancellation: it waits for release, then pins
// (a late success of a superseded pin).
type stubbornConn struct {
	*clustertest.MockConnector
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (s *stubbornConn) Pin(_ context.Context, p pincluster.Pin, progress func(pincluster.PinProgress)) error {
	s.once.Do(func() { close(s.started) })
	<-s.release
	return s.MockConnector.Pin(context.Background(), p, progress)
}

// Pin then unpin of the same CID never ends pinned: neither when the pin
// is still queued, nor running, nor when the running pin succeeds after
// the unpin superseded it.
func TestTrackerPinThenUnpinNeverPinned(t *testing.T) {
	var sc *stubbornConn
	wrap := func(m *clustertest.MockConnector) pincluster.IPFSConnector {
		sc = &stubbornConn{MockConnector: m, release: make(chan struct{}), started: make(chan struct{})}
		return sc
	}
	tkRun(t, wrap, func(e *tkEnv) {
		t := e.t
		p := e.local(0)
		e.track(p)
		<-sc.started
		synctest.Wait()
		require.Equal(t, pincluster.TrackerStatusPinning, e.status(p.Cid).Status)
		require.NoError(t, e.st.Rm(e.ctx, p.Cid))
		require.NoError(t, e.tr.Untrack(e.ctx, p.Cid))
		synctest.Wait()
		require.Equal(t, pincluster.TrackerStatusUnpinQueued, e.status(p.Cid).Status,
			"the unpin waits for the superseded pin")
		close(sc.release) // the superseded pin succeeds late
		e.eventually(p.Cid, pincluster.TrackerStatusUnpinned, time.Second)
		require.Equal(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(p.Cid))
		s := e.stats()
		require.EqualValues(t, 1, s.Superseded)
		require.EqualValues(t, 1, s.Unpin.Count)
		require.Zero(t, s.Unpin.Failed)

		// Many CIDs, pin and unpin back to back, some with slow pins.
		var cids []cid.Cid
		for i := 1; i <= 50; i++ {
			p := e.local(i)
			if i%3 == 0 {
				e.mock.SetCIDLatency(p.Cid, time.Duration(i)*time.Millisecond)
			}
			e.track(p)
			if i%2 == 0 {
				synctest.Wait() // let some start
			}
			require.NoError(t, e.st.Rm(e.ctx, p.Cid))
			require.NoError(t, e.tr.Untrack(e.ctx, p.Cid))
			cids = append(cids, p.Cid)
		}
		tkEventually(t, time.Minute, "no operation left", func() bool { return e.stats().Ops == 0 })
		for _, c := range cids {
			require.Equal(t, pincluster.TrackerStatusUnpinned, e.status(c).Status)
			require.Equal(t, pincluster.IPFSPinStatusUnpinned, e.mock.PinStatus(c), "%s left pinned", c)
		}
		require.False(t, slices.ContainsFunc(e.mock.PinnedCIDs(), func(c cid.Cid) bool { return slices.Contains(cids, c) }))
	})
}
