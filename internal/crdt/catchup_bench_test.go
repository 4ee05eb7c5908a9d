package crdt_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
	"github.com/pincluster/pincluster/internal/crdt/crdttest"
)

// latencyDAG delays every fetch of a block that is not in the local store
// by delay (a network round trip); local reads are not delayed.
type latencyDAG struct {
	*crdttest.PeerDAG
	delay atomic.Int64 // nanoseconds
}

func (d *latencyDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if w := time.Duration(d.delay.Load()); w > 0 && !d.Has(c) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(w):
		}
	}
	return d.PeerDAG.Get(ctx, c)
}

// BenchmarkSnapshotCatchUp: a replica that shared the first part of a
// store's history is cut off while the others write `behind` more keys
// in 10-key deltas (and it writes 10 of its own), then catches up, by
// merging the newest snapshot ("merge", SnapshotCatchUpGap 1,000) or by
// replaying the deltas it missed ("replay"). Reports the seconds from
// the heal until it is in sync (its state digest is then checked equal)
// and the remote deltas it applied. Stores are pebble on disk; blocks
// live in the in-memory crdttest.Network, fetched at once ("0ms") or
// after a 5 ms round trip each ("5ms"; local reads are not delayed). The
// 1M variants (100,000 keys behind, 10,000 deltas) build their history
// for minutes:
//
//	go test -run '^$' -bench 'SnapshotCatchUp/100k' -benchtime 1x ./internal/crdt/
//	PINCLUSTER_LONG=1 go test -run '^$' -bench 'SnapshotCatchUp/1M' -benchtime 1x -timeout 60m ./internal/crdt/
//
// The 10M variant (1,000,000 keys behind a 10,000,000-key store, issue 19)
// needs PINCLUSTER_10M=1 too:
//
//	PINCLUSTER_LONG=1 PINCLUSTER_10M=1 go test -run '^$' -bench 'SnapshotCatchUp/10M/5ms' -benchtime 1x -timeout 600m ./internal/crdt/
func BenchmarkSnapshotCatchUp(b *testing.B) {
	for _, size := range []struct {
		name      string
		n, behind int
	}{{"100k", 100_000, 20_000}, {"1M", 1_000_000, 100_000}, {"10M", 10_000_000, 1_000_000}} {
		for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/%dms", size.name, rtt.Milliseconds()), func(b *testing.B) {
				if size.n > 100_000 && os.Getenv("PINCLUSTER_LONG") == "" {
					b.Skip("set PINCLUSTER_LONG=1")
				}
				if size.n > 1_000_000 && os.Getenv("PINCLUSTER_10M") == "" {
					b.Skip("set PINCLUSTER_10M=1 (and PINCLUSTER_LONG=1)")
				}
				for range b.N {
					benchCatchUp(b, size.n, size.behind, rtt)
				}
			})
		}
	}
}

func benchCatchUp(b *testing.B, n, behind int, rtt time.Duration) {
	ctx := context.Background()
	c := &cluster{t: b, net: crdttest.NewNetwork(), bus: crdttest.NewBus(1)}
	base := fastCfg()
	base.RebroadcastInterval = 200 * time.Millisecond
	base.SnapshotCatchUp = true
	base.SnapshotWait = 100 * time.Millisecond
	st0, _ := newDiskStore(b)
	p0 := c.open("p0", st0, base)
	writeBatches(b, p0, 0, n-behind, 1000, pinValue)
	modes := []string{"merge", "replay"}
	late := map[string]*replica{}
	lat := map[string]*latencyDAG{}
	for _, mode := range modes {
		cfg := base
		cfg.SnapshotCatchUpGap = 1000
		if mode == "replay" {
			cfg.SnapshotCatchUpGap = 1 << 30
		}
		cfg.Logger = testLogger(b)
		st, _ := newDiskStore(b)
		dag := &latencyDAG{PeerDAG: c.net.DAG(mode)}
		lat[mode] = dag
		ep := c.bus.Endpoint(mode)
		s, err := crdt.New(ctx, st, dag, ep, cfg)
		require.NoError(b, err)
		b.Cleanup(func() { _ = s.Close() })
		late[mode] = &replica{name: mode, store: st, ep: ep, Datastore: s}
		c.rs = append(c.rs, late[mode])
	}
	waitFor(b, 30*time.Minute, "shared history", func() bool { return synced(b, c.rs) })
	c.partition(map[string]bool{"merge": true, "replay": true})
	t0 := time.Now()
	writeBatches(b, p0, n-behind, n, 10, pinValue)
	for _, mode := range modes {
		for i := range 10 {
			require.NoError(b, late[mode].Put(ctx, key(n+1000+i), []byte(mode)))
		}
	}
	b.Logf("%d keys behind written in %d deltas in %v", behind, behind/10, time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	info, err := p0.Snapshot(ctx)
	require.NoError(b, err)
	b.Logf("snapshot: %d keys, %d nodes, %d blocks, %.1f MiB, produced in %v", info.Keys, info.Nodes, info.Blocks, float64(info.Bytes)/(1<<20), time.Since(t1).Round(time.Millisecond))
	for i, mode := range modes {
		r := late[mode]
		// Heal this one only (the other stays cut off, alone).
		if i+1 < len(modes) {
			c.partition(map[string]bool{modes[i+1]: true})
		} else {
			c.partition(nil)
		}
		lat[mode].delay.Store(int64(rtt))
		before := r.Stats()
		start := time.Now()
		pair := []*replica{p0, r}
		waitFor(b, 60*time.Minute, mode+" in sync", func() bool { return synced(b, pair) })
		took := time.Since(start)
		st := r.Stats()
		b.ReportMetric(took.Seconds(), "s-catch-up-"+mode)
		b.ReportMetric(float64(st.RemoteNodes-before.RemoteNodes), "deltas-"+mode)
		b.Logf("%s: in sync in %v, %d remote deltas applied, %d snapshot(s) merged", mode, took.Round(time.Millisecond), st.RemoteNodes-before.RemoteNodes, st.SnapshotsMerged)
		require.Equal(b, mode == "merge", st.SnapshotsMerged == 1, fmt.Sprint(mode, st))
	}
}
