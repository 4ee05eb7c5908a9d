package optracker

import "time"

// TimingBounds are the upper bounds of the Timing histogram buckets; the
// last bucket counts longer attempts.
var TimingBounds = [...]time.Duration{
	time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond,
	time.Second, 10 * time.Second, time.Minute, 10 * time.Minute,
}

// Timing summarises the durations of the attempts of one operation type,
// successful or not, since New.
type Timing struct {
	// Count is the number of attempts that returned.
	Count uint64
	// Failed is how many of them returned an error (superseded attempts
	// included).
	Failed uint64
	// Total and Max are the sum and the maximum of their durations.
	Total, Max time.Duration
	// Buckets[i] counts attempts that took at most TimingBounds[i] (and
	// more than TimingBounds[i-1]); the last counts the longer ones.
	Buckets [len(TimingBounds) + 1]uint64
}

// Mean is the average attempt duration, 0 without attempts.
func (t Timing) Mean() time.Duration {
	if t.Count == 0 {
		return 0
	}
	return t.Total / time.Duration(t.Count)
}

func (t *Timing) add(d time.Duration, failed bool) {
	t.Count++
	if failed {
		t.Failed++
	}
	t.Total += d
	t.Max = max(t.Max, d)
	i := 0
	for i < len(TimingBounds) && d > TimingBounds[i] {
		i++
	}
	t.Buckets[i]++
}

// Stats is a snapshot of the tracker's gauges and counters.
type Stats struct {
	// Ops is the number of operations in the tracker (every phase).
	Ops int
	// PinsQueued and UnpinsQueued count operations in PhaseQueued.
	PinsQueued, UnpinsQueued int
	// PinsInFlight and UnpinsInFlight count running operation functions,
	// including superseded ones that have not returned yet.
	PinsInFlight, UnpinsInFlight int
	// Errors counts operations in PhaseError; Retrying counts those with
	// a retry scheduled.
	Errors, Retrying int

	// Done counts operations that succeeded since New.
	Done uint64
	// TimedOut counts attempts failed by an idle timeout since New.
	TimedOut uint64
	// Superseded counts operations replaced by a newer one or cancelled.
	Superseded uint64
	// Recovered counts operations re-queued by Recover and RecoverAll.
	Recovered uint64

	// Pin and Unpin time the attempts of each type.
	Pin, Unpin Timing
}

type counters struct {
	done, timedOut, superseded, recovered uint64
	timing                                [2]Timing
}

func (c *counters) record(k int, d time.Duration, err error) {
	c.timing[k].add(d, err != nil)
}

// Stats returns the current gauges and counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{
		Ops:            len(t.ops),
		PinsQueued:     t.queued[kPin],
		UnpinsQueued:   t.queued[kUnpin],
		PinsInFlight:   t.inflight[kPin],
		UnpinsInFlight: t.inflight[kUnpin],
		Errors:         t.errored,
		Retrying:       t.retrying,
		Done:           t.counters.done,
		TimedOut:       t.counters.timedOut,
		Superseded:     t.counters.superseded,
		Recovered:      t.counters.recovered,
		Pin:            t.counters.timing[kPin],
		Unpin:          t.counters.timing[kUnpin],
	}
}
