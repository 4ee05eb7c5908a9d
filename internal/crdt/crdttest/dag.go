package crdttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/gorun"
)

// ErrNotFound is returned by a Network DAG's Get when no reachable peer has
// the block, and by FaultDAG for injected failures.
var ErrNotFound = errors.New("crdttest: block not found")

// ErrInjected is returned by FaultDAG.Get for FaultFail.
var ErrInjected = errors.New("crdttest: injected fetch failure")

// Network is a set of per-peer in-memory blockstores.
type Network struct {
	mu        sync.RWMutex
	stores    map[string]map[cid.Cid][]byte
	connected func(a, b string) bool
}

// NewNetwork returns a network where every peer reaches every other.
func NewNetwork() *Network {
	return &Network{stores: map[string]map[cid.Cid][]byte{}}
}

// SetConnected sets the function telling whether peer a can fetch from b
// (nil: all connected).
func (n *Network) SetConnected(fn func(a, b string) bool) {
	n.mu.Lock()
	n.connected = fn
	n.mu.Unlock()
}

// DAG returns the DAG of peer name (created on first use).
func (n *Network) DAG(name string) *PeerDAG {
	n.mu.Lock()
	if n.stores[name] == nil {
		n.stores[name] = map[cid.Cid][]byte{}
	}
	n.mu.Unlock()
	return &PeerDAG{n: n, name: name}
}

// Blocks returns how many blocks peer name stores.
func (n *Network) Blocks(name string) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.stores[name])
}

// Bytes returns the total size of the blocks peer name stores.
func (n *Network) Bytes(name string) int64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var t int64
	for _, b := range n.stores[name] {
		t += int64(len(b))
	}
	return t
}

// PeerDAG is one peer's view of a Network: a crdt.DAG.
type PeerDAG struct {
	n    *Network
	name string
}

var (
	_ crdt.DAG        = (*PeerDAG)(nil)
	_ crdt.DAGDeleter = (*PeerDAG)(nil)
)

// Put stores a block in this peer's store.
func (d *PeerDAG) Put(ctx context.Context, c cid.Cid, data []byte) error {
	d.n.mu.Lock()
	d.n.stores[d.name][c] = append([]byte(nil), data...)
	d.n.mu.Unlock()
	return nil
}

// Get reads the block locally, else from a connected peer, keeping a copy
// (as bitswap does), else fails with ErrNotFound.
func (d *PeerDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.n.mu.RLock()
	if b, ok := d.n.stores[d.name][c]; ok {
		d.n.mu.RUnlock()
		return b, nil
	}
	var found []byte
	for other, st := range d.n.stores {
		if other == d.name || (d.n.connected != nil && !d.n.connected(d.name, other)) {
			continue
		}
		if b, ok := st[c]; ok {
			found = b
			break
		}
	}
	d.n.mu.RUnlock()
	if found == nil {
		return nil, fmt.Errorf("get %s from %s: %w", c, d.name, ErrNotFound)
	}
	d.n.mu.Lock()
	d.n.stores[d.name][c] = found
	d.n.mu.Unlock()
	return found, nil
}

// Delete removes c from this peer's store (crdt.DAGDeleter).
func (d *PeerDAG) Delete(ctx context.Context, c cid.Cid) error {
	d.n.mu.Lock()
	delete(d.n.stores[d.name], c)
	d.n.mu.Unlock()
	return nil
}

// Has reports whether the peer stores c locally.
func (d *PeerDAG) Has(c cid.Cid) bool {
	d.n.mu.RLock()
	defer d.n.mu.RUnlock()
	_, ok := d.n.stores[d.name][c]
	return ok
}

// Fault is what FaultDAG does to a fetch.
type Fault int

// Faults.
const (
	FaultNone    Fault = iota
	FaultFail          // return ErrInjected at once
	FaultHang          // block until the caller's ctx ends
	FaultCorrupt       // return the block with one byte flipped
	FaultDelay         // wait FaultDAG.Delay, then fetch
)

// FaultDAG wraps a DAG and injects faults into Get. Put is passed through.
type FaultDAG struct {
	inner crdt.DAG

	mu       sync.Mutex
	rules    map[cid.Cid]Fault
	everyK   int
	kFault   Fault
	count    int
	delay    time.Duration
	attempts map[cid.Cid]int
	total    int
	bytes    int64
}

var _ crdt.DAG = (*FaultDAG)(nil)

// NewFaultDAG wraps inner with no faults.
func NewFaultDAG(inner crdt.DAG) *FaultDAG {
	return &FaultDAG{inner: inner, rules: map[cid.Cid]Fault{}, attempts: map[cid.Cid]int{}}
}

// SetFault makes every fetch of c behave as f (FaultNone clears it).
func (f *FaultDAG) SetFault(c cid.Cid, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == FaultNone {
		delete(f.rules, c)
		return
	}
	f.rules[c] = fault
}

// SetEveryK makes every k-th fetch (counting all CIDs) behave as fault;
// k <= 0 turns it off.
func (f *FaultDAG) SetEveryK(k int, fault Fault) {
	f.mu.Lock()
	f.everyK, f.kFault, f.count = k, fault, 0
	f.mu.Unlock()
}

// SetDelay sets the wait of FaultDelay.
func (f *FaultDAG) SetDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// Attempts returns how many times c was fetched.
func (f *FaultDAG) Attempts(c cid.Cid) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[c]
}

// TotalAttempts returns how many fetches were made.
func (f *FaultDAG) TotalAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// Put stores through the wrapped DAG.
func (f *FaultDAG) Put(ctx context.Context, c cid.Cid, data []byte) error {
	return f.inner.Put(ctx, c, data)
}

// Delete deletes through the wrapped DAG when it is a crdt.DAGDeleter
// (FaultDAG always offers Delete; it is a no-op otherwise).
func (f *FaultDAG) Delete(ctx context.Context, c cid.Cid) error {
	if d, ok := f.inner.(crdt.DAGDeleter); ok {
		return d.Delete(ctx, c)
	}
	return nil
}

// Bytes returns how many bytes Get returned successfully.
func (f *FaultDAG) Bytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes
}

// Get fetches through the wrapped DAG, applying the configured fault.
func (f *FaultDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	f.mu.Lock()
	f.attempts[c]++
	f.total++
	fault := f.rules[c]
	if f.everyK > 0 {
		f.count++
		if f.count%f.everyK == 0 && fault == FaultNone {
			fault = f.kFault
		}
	}
	delay := f.delay
	f.mu.Unlock()
	switch fault {
	case FaultFail:
		return nil, fmt.Errorf("get %s: %w", c, ErrInjected)
	case FaultHang:
		<-ctx.Done()
		return nil, ctx.Err()
	case FaultDelay:
		if !gorun.Sleep(ctx, delay) {
			return nil, ctx.Err()
		}
	case FaultCorrupt:
		b, err := f.inner.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		b = append([]byte(nil), b...)
		if len(b) > 0 {
			b[len(b)/2] ^= 0xff
		}
		return b, nil
	}
	b, err := f.inner.Get(ctx, c)
	if err == nil {
		f.mu.Lock()
		f.bytes += int64(len(b))
		f.mu.Unlock()
	}
	return b, err
}
