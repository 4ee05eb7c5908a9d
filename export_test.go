package pincluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	host "github.com/libp2p/go-libp2p/core/host"
)

// SnapshotsLoaded returns how many snapshots the default CRDT consensus of
// c has loaded since it started (0 with another consensus). For tests of
// package pincluster_test only.
func SnapshotsLoaded(c *Cluster) uint64 {
	cc, ok := c.consensus.(*crdtConsensus)
	if !ok {
		return 0
	}
	return cc.store.Stats().SnapshotsLoaded
}

// CRDTJoining reports whether the default CRDT consensus of c is still
// joining (waiting for or loading a snapshot).
func CRDTJoining(c *Cluster) bool {
	cc, ok := c.consensus.(*crdtConsensus)
	return ok && cc.store.Stats().Joining
}

// Snapshot makes the default CRDT consensus of c write a snapshot now.
func Snapshot(ctx context.Context, c *Cluster) error {
	cc, ok := c.consensus.(*crdtConsensus)
	if !ok {
		return errors.New("not the CRDT consensus")
	}
	_, err := cc.store.Snapshot(ctx)
	return err
}

// WithNodeStorageMax sets the in-process node's StorageMax (bytes).
func WithNodeStorageMax(n uint64) Option {
	return func(c *config) error { c.nodeStorageMax = n; return nil }
}

// CRDTStats describes the default CRDT consensus's counters (for test
// failure messages).
func CRDTStats(c *Cluster) string {
	cc, ok := c.consensus.(*crdtConsensus)
	if !ok {
		return "not the CRDT consensus"
	}
	return fmt.Sprintf("%+v", cc.store.Stats())
}

// KnowsSnapshot reports whether the default CRDT consensus of c knows a
// snapshot (produced or announced).
func KnowsSnapshot(c *Cluster) bool {
	cc, ok := c.consensus.(*crdtConsensus)
	return ok && cc.store.Stats().NewestSnapshot.Defined()
}

// LocalDeltas returns how many deltas the default CRDT consensus of c has
// written since it started (0 with another consensus).
func LocalDeltas(c *Cluster) uint64 {
	cc, ok := c.consensus.(*crdtConsensus)
	if !ok {
		return 0
	}
	return cc.store.Stats().LocalDeltas
}

// The allocation machinery that only the Cluster uses, under the names
// the external tests (package pincluster_test) use.
type (
	AllocationRequest  = allocationRequest
	Reservations       = reservationLedger
	ReservationsConfig = reservationLedgerConfig
)

var (
	AllocatePeers   = allocatePeers
	CollectMetrics  = collectMetrics
	NewReservations = newReservationLedger
)

// NewNodeConnector returns the in-process node connector (the default
// IPFSConnector) on h over d, without routing, for the connector
// conformance suite.
func NewNodeConnector(ctx context.Context, h host.Host, d ds.Batching) (IPFSConnector, error) {
	cfg, err := newConfig()
	if err != nil {
		return nil, err
	}
	return newNodeConnector(ctx, h, nil, d, cfg)
}

// HoldTrustProbe makes c's trust verdict (acceptedByPeers) stale, so that
// the next write probes the peers again, and makes that probe wait until
// release is called; entered is closed when it starts.
func HoldTrustProbe(c *Cluster) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var started, released sync.Once
	c.trustMu.Lock()
	c.trustAt = time.Now().Add(-c.cfg.monitorInterval)
	c.trustHook = func() {
		started.Do(func() { close(in) })
		<-out
	}
	c.trustMu.Unlock()
	return in, func() { released.Do(func() { close(out) }) }
}
