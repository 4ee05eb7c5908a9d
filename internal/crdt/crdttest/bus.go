package crdttest

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/crdt"
)

// maxInbox bounds each endpoint's queue; further messages are dropped.
const maxInbox = 1 << 16

// Bus is a lossy broadcast medium between named endpoints.
type Bus struct {
	mu        sync.Mutex
	rng       *rand.Rand
	endpoints map[string]*Endpoint
	drop      float64
	dup       float64
	minDelay  time.Duration
	maxDelay  time.Duration
	dropFrom  map[string]bool
	link      func(from, to string) bool
	stats     BusStats
}

// BusStats counts what a Bus did.
type BusStats struct {
	Sent, Delivered, Dropped, Duplicated int
}

// NewBus returns a reliable bus whose random choices come from seed.
func NewBus(seed int64) *Bus {
	return &Bus{rng: rand.New(rand.NewSource(seed)), endpoints: map[string]*Endpoint{}, dropFrom: map[string]bool{}}
}

// SetLoss sets the drop and duplicate probabilities, in [0, 1].
func (b *Bus) SetLoss(drop, dup float64) {
	b.mu.Lock()
	b.drop, b.dup = drop, dup
	b.mu.Unlock()
}

// SetDelay delays each delivery by a random duration in [min, max]; with
// min < max this reorders messages.
func (b *Bus) SetDelay(min, max time.Duration) {
	b.mu.Lock()
	b.minDelay, b.maxDelay = min, max
	b.mu.Unlock()
}

// DropFrom switches dropping every message sent by endpoint name.
func (b *Bus) DropFrom(name string, on bool) {
	b.mu.Lock()
	b.dropFrom[name] = on
	b.mu.Unlock()
}

// SetLink sets which directed links carry messages (nil: all).
func (b *Bus) SetLink(fn func(from, to string) bool) {
	b.mu.Lock()
	b.link = fn
	b.mu.Unlock()
}

// Stats returns the bus counters.
func (b *Bus) Stats() BusStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Endpoint returns the endpoint called name (created on first use). Its
// messages carry From = peer.ID(name).
func (b *Bus) Endpoint(name string) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.endpoints[name]; e != nil {
		return e
	}
	e := &Endpoint{bus: b, name: name, notify: make(chan struct{}, 1)}
	b.endpoints[name] = e
	return e
}

type envelope struct {
	at   time.Time
	seq  uint64
	from string
	data []byte
}

// Endpoint is one participant of a Bus; it implements crdt.Broadcaster.
type Endpoint struct {
	bus    *Bus
	name   string
	notify chan struct{}
	inbox  []envelope // sorted by at, guarded by bus.mu
	seq    uint64
	closed bool
}

var _ crdt.Broadcaster = (*Endpoint)(nil)

// Broadcast sends data to every other open endpoint, subject to the bus
// faults.
func (e *Endpoint) Broadcast(ctx context.Context, data []byte) error {
	b := e.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.closed {
		return fmt.Errorf("crdttest: broadcast: %w", crdt.ErrClosed)
	}
	b.stats.Sent++
	if b.dropFrom[e.name] {
		b.stats.Dropped++
		return nil
	}
	now := time.Now()
	for _, to := range b.endpoints {
		if to == e || to.closed || (b.link != nil && !b.link(e.name, to.name)) {
			continue
		}
		copies := 1
		if b.rng.Float64() < b.drop {
			copies = 0
			b.stats.Dropped++
		} else if b.rng.Float64() < b.dup {
			copies = 2
			b.stats.Duplicated++
		}
		for range copies {
			if len(to.inbox) >= maxInbox {
				b.stats.Dropped++
				continue
			}
			d := b.minDelay
			if b.maxDelay > b.minDelay {
				d += time.Duration(b.rng.Int63n(int64(b.maxDelay - b.minDelay)))
			}
			to.seq++
			to.inbox = append(to.inbox, envelope{at: now.Add(d), seq: to.seq, from: e.name, data: append([]byte(nil), data...)})
			sort.SliceStable(to.inbox, func(i, j int) bool { return to.inbox[i].at.Before(to.inbox[j].at) })
			select {
			case to.notify <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// Next returns the next message due for this endpoint.
func (e *Endpoint) Next(ctx context.Context) (crdt.Message, error) {
	b := e.bus
	for {
		b.mu.Lock()
		if e.closed {
			b.mu.Unlock()
			return crdt.Message{}, fmt.Errorf("crdttest: next: %w", crdt.ErrClosed)
		}
		wait := time.Hour
		if len(e.inbox) > 0 {
			now := time.Now()
			if !e.inbox[0].at.After(now) {
				m := e.inbox[0]
				e.inbox = e.inbox[1:]
				b.stats.Delivered++
				b.mu.Unlock()
				return crdt.Message{From: peer.ID(m.from), Data: m.data}, nil
			}
			wait = e.inbox[0].at.Sub(now)
		}
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return crdt.Message{}, ctx.Err()
		case <-e.notify:
		case <-t.C:
		}
		t.Stop()
	}
}

// Close detaches the endpoint; Next returns crdt.ErrClosed.
func (e *Endpoint) Close() error {
	e.bus.mu.Lock()
	e.closed = true
	e.inbox = nil
	e.bus.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
	return nil
}

// Inject delivers raw data to endpoint to as if sent by from, bypassing
// faults (for abuse tests).
func (b *Bus) Inject(from, to string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.endpoints[to]
	if e == nil || e.closed {
		return
	}
	e.seq++
	e.inbox = append(e.inbox, envelope{at: time.Now(), seq: e.seq, from: from, data: append([]byte(nil), data...)})
	sort.SliceStable(e.inbox, func(i, j int) bool { return e.inbox[i].at.Before(e.inbox[j].at) })
	select {
	case e.notify <- struct{}{}:
	default:
	}
}
