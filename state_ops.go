package pincluster

import (
	"context"
	"errors"
	"fmt"
	"io"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
)

// ExportState writes the shared pinset, as this peer holds it, to w in the
// export format of DatastoreState.Export: a header line, then one pin per
// line in IPFS Cluster's JSON form. It is what `pinclusterd state export`
// runs on a peer started without network.
func (c *Cluster) ExportState(ctx context.Context, w io.Writer) error {
	if err := c.live("export state"); err != nil {
		return err
	}
	st, err := c.state(ctx)
	if err != nil {
		return err
	}
	if ex, ok := st.(Exporter); ok {
		return ex.Export(ctx, w)
	}
	// A consensus whose state cannot export itself: copy it first.
	mem := NewMemoryState()
	for p, err := range st.List(ctx) {
		if err != nil {
			return fmt.Errorf("pincluster: export state: %w", err)
		}
		if err := mem.Add(ctx, p); err != nil {
			return fmt.Errorf("pincluster: export state: %w", err)
		}
	}
	return mem.Export(ctx, w)
}

// ImportState reads an export stream (ExportState, DatastoreState.Export)
// and logs every pin in it, as it is (allocations, options and timestamps
// kept), through the consensus. The whole stream is decoded and validated
// first: a corrupt or hostile stream returns a *RecordError naming the line
// and nothing is written. Pins of the state that are not in the stream are
// kept. It returns how many pins were logged. The stream is staged in
// memory (a few hundred bytes a pin).
func (c *Cluster) ImportState(ctx context.Context, r io.Reader) (int, error) {
	if err := c.writable("import state"); err != nil {
		return 0, err
	}
	staged := NewMemoryState()
	if err := staged.Import(ctx, r); err != nil {
		return 0, err
	}
	// The CRDT writes a batch as one delta: import in batches of the
	// consensus's batch size rather than one delta per pin.
	var batch *StateBatch
	if cc, ok := c.consensus.(*crdtConsensus); ok {
		b, err := cc.state.Batch(ctx)
		if err != nil {
			return 0, fmt.Errorf("pincluster: import state: %w", closedErr(err))
		}
		batch = b
	}
	n := 0
	for p, err := range staged.List(ctx) {
		if err != nil {
			return n, fmt.Errorf("pincluster: import state: %w", err)
		}
		if batch == nil {
			if err := c.consensus.LogPin(ctx, p); err != nil {
				return n, fmt.Errorf("pincluster: import state %s: %w", p.Cid, err)
			}
			n++
			continue
		}
		if err := batch.Add(ctx, p); err != nil {
			return n, fmt.Errorf("pincluster: import state %s: %w", p.Cid, err)
		}
		if batch.Len() >= max(c.cfg.batchMaxSize, 1) {
			k := batch.Len()
			if err := batch.Commit(ctx); err != nil {
				return n, fmt.Errorf("pincluster: import state: %w", closedErr(err))
			}
			n += k
		}
	}
	if batch != nil && batch.Len() > 0 {
		k := batch.Len()
		if err := batch.Commit(ctx); err != nil {
			return n, fmt.Errorf("pincluster: import state: %w", closedErr(err))
		}
		n += k
	}
	return n, nil
}

// ConsensusStats is a snapshot of the default CRDT consensus's counters.
type ConsensusStats struct {
	// Heads is the number of current heads of the Merkle-CRDT DAG; Height
	// the highest priority among them.
	Heads  int
	Height uint64
	// LocalDeltas counts the deltas this peer wrote since start;
	// RemoteDeltas the deltas of other peers applied since start.
	LocalDeltas, RemoteDeltas uint64
	// QueuedDeltas is the number of received heads waiting to be fetched
	// or applied.
	QueuedDeltas int64
	// SentBroadcasts and ReceivedBroadcasts count the head announcements
	// published and received.
	SentBroadcasts, ReceivedBroadcasts uint64
	// RejectedDeltas counts deltas refused (undecodable, over limits).
	RejectedDeltas uint64
}

// ConsensusStats returns the counters of the default CRDT consensus; ok is
// false with another consensus (WithConsensus) or after Shutdown.
func (c *Cluster) ConsensusStats() (stats ConsensusStats, ok bool) {
	cc, isCRDT := c.consensus.(*crdtConsensus)
	if !isCRDT || cc.closed.Load() {
		return ConsensusStats{}, false
	}
	s := cc.store.Stats()
	return ConsensusStats{
		Heads:              s.Heads,
		Height:             s.Height,
		LocalDeltas:        s.LocalDeltas,
		RemoteDeltas:       s.RemoteNodes,
		QueuedDeltas:       s.QueuedJobs,
		SentBroadcasts:     s.SentBroadcasts,
		ReceivedBroadcasts: s.ReceivedBroadcasts,
		RejectedDeltas:     s.RejectedNodes,
	}, true
}

// CleanState deletes the shared state that a Cluster with the default CRDT
// consensus keeps in the datastore selected by the datastore options
// (WithBadger, WithPebble, WithDatastore), as IPFS Cluster's `state
// cleanup` does: the peer starts again with an empty pinset and catches up
// from the other peers. The data of the in-process IPFS node, kept in the
// same datastore, stays. No Cluster may be running on the datastore.
func CleanState(ctx context.Context, opts ...Option) error {
	cfg, err := newConfig(opts...)
	if err != nil {
		return err
	}
	d, closer, err := cfg.openDatastore()
	if err != nil {
		return err
	}
	st := &DatastoreState{store: namespace.Wrap(d, nsConsensus)}
	err = st.clearNamespace(ctx, ds.NewKey("/"))
	if closer != nil {
		err = errors.Join(err, closer.Close())
	}
	if err != nil {
		return fmt.Errorf("pincluster: clean state: %w", err)
	}
	return nil
}
