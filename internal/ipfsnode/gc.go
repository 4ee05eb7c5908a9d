package ipfsnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/datastore/dshelp"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	ipld "github.com/ipfs/go-ipld-format"
)

// GCMaxRemovedList bounds GCResult.Removed.
const GCMaxRemovedList = 1000

// gcBatch is how many unmarked blocks are deleted under one hold check.
const gcBatch = 1024

// GCResult reports one garbage collection.
type GCResult struct {
	// Blocks is the number of blocks removed.
	Blocks uint64
	// Bytes is the number of bytes freed.
	Bytes uint64
	// Removed lists the first GCMaxRemovedList removed blocks, as CIDv1
	// with the raw codec (the store keeps multihashes only).
	Removed []cid.Cid
}

// GC removes every stored block that is not reachable from a pin (within
// its MaxDepth) or from Config.ExtraRoots (whole DAGs), and not held by a
// pin or import in progress. Reachability follows dag-pb, dag-cbor and
// dag-json links; blocks missing from a DAG are skipped. It returns what
// it freed; on an error (datastore, ExtraRoots, ctx) the result says what
// was freed before it.
func (n *Node) GC(ctx context.Context) (GCResult, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return GCResult{}, err
	}
	defer cancel()
	n.gcMu.Lock()
	defer n.gcMu.Unlock()

	marks, err := n.gcMark(ctx)
	if err != nil {
		return GCResult{}, n.ctxErr(fmt.Errorf("ipfsnode: gc: mark: %w", err))
	}
	res, err := n.gcSweep(ctx, marks)
	if err != nil {
		return res, n.ctxErr(fmt.Errorf("ipfsnode: gc: sweep: %w", err))
	}
	n.log.Debug("ipfsnode: gc", "removed", res.Blocks, "bytes", res.Bytes, "kept", len(marks))
	return res, nil
}

func (n *Node) gcMark(ctx context.Context) (map[string]int, error) {
	marks := map[string]int{}
	for p, err := range n.Pins(ctx) {
		if err != nil {
			return nil, err
		}
		if err := n.walkLocal(ctx, p.Cid, p.MaxDepth, marks, nil); err != nil {
			return nil, err
		}
	}
	if n.cfg.ExtraRoots != nil {
		roots, err := n.cfg.ExtraRoots(ctx)
		if err != nil {
			return nil, fmt.Errorf("extra roots: %w", err)
		}
		for _, r := range roots {
			if err := n.walkLocal(ctx, r, -1, marks, nil); err != nil {
				return nil, err
			}
		}
	}
	return marks, nil
}

// walkLocal visits the locally stored DAG under root down to maxDepth,
// recording in marks (multihash -> deepest depth visited) and calling
// visit, when not nil, with each multihash; visit returning false stops
// the walk. Missing blocks are skipped, corrupt ones are not followed.
// Blocks are read from the user's blocks, then the system blocks: a DAG of
// the owner's (ExtraRoots) may span both, its older blocks stored as user
// blocks by an earlier version.
func (n *Node) walkLocal(ctx context.Context, root cid.Cid, maxDepth int, marks map[string]int, visit func(h string) bool) error {
	stack := []task{{c: root, depth: maxDepth}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := string(t.c.Hash())
		if d, ok := marks[k]; ok && (d == -1 || (t.depth != -1 && d >= t.depth)) {
			continue
		}
		marks[k] = t.depth
		if visit != nil && !visit(k) {
			return nil
		}
		if t.depth == 0 || !hasLinks(t.c) {
			continue
		}
		b, err := servedStore{n.store}.Get(ctx, t.c)
		switch {
		case ipld.IsNotFound(err):
			continue
		case isCorrupt(err):
			n.log.Warn("ipfsnode: corrupt block in a pinned dag", "cid", t.c)
			continue
		case err != nil:
			return err
		}
		ls, err := links(t.c, b.RawData())
		if err != nil {
			if errors.Is(err, ErrUnsupportedCodec) {
				continue
			}
			n.log.Warn("ipfsnode: undecodable block in a pinned dag", "cid", t.c, "err", err)
			continue
		}
		next := t.depth - 1
		if t.depth == -1 {
			next = -1
		}
		for _, c := range ls {
			stack = append(stack, task{c: c, depth: next})
		}
	}
	return nil
}

type gcCandidate struct {
	key  ds.Key
	hash []byte
	size int // from the query; -1: unknown
}

func (n *Node) gcSweep(ctx context.Context, marks map[string]int) (GCResult, error) {
	var res GCResult
	q, err := n.store.d.Query(ctx, dsq.Query{KeysOnly: true, ReturnsSizes: true})
	if err != nil {
		return res, err
	}
	defer q.Close()
	batch := make([]gcCandidate, 0, gcBatch)
	for r := range q.Next() {
		if r.Error != nil {
			return res, r.Error
		}
		k := ds.RawKey(r.Key)
		h, err := dshelp.DsKeyToMultihash(k)
		if err != nil {
			n.log.Warn("ipfsnode: gc: foreign key in the blocks namespace", "key", r.Key)
			continue
		}
		if _, ok := marks[string(h)]; ok {
			continue
		}
		size := r.Size
		if size == 0 {
			size = -1 // some datastores leave it unset
		}
		batch = append(batch, gcCandidate{key: k, hash: h, size: size})
		if len(batch) == gcBatch {
			if err := n.gcDelete(ctx, batch, &res); err != nil {
				return res, err
			}
			batch = batch[:0]
		}
	}
	if err := n.gcDelete(ctx, batch, &res); err != nil {
		return res, err
	}
	return res, nil
}

// gcDelete deletes the candidates not held, in one datastore batch, under
// holdMu (no operation takes a hold on one of them meanwhile) and with
// every blockstore stripe locked (no put of them meanwhile, so the
// counters stay exact).
func (n *Node) gcDelete(ctx context.Context, cands []gcCandidate, res *GCResult) error {
	if len(cands) == 0 {
		return nil
	}
	n.holdMu.Lock()
	defer n.holdMu.Unlock()
	unlock := n.store.lockAll()
	defer unlock()
	if n.store.closed {
		return ErrClosed
	}
	b, err := n.store.d.Batch(ctx)
	if err != nil {
		return err
	}
	var blocks, bytes int64
	removed := res.Removed
	for _, c := range cands {
		if n.holds[string(c.hash)] > 0 {
			continue
		}
		// Nothing else deletes blocks while GC runs (DeleteBlock waits
		// for gcMu), so a listed block is still there.
		size := c.size
		if size < 0 {
			size, err = n.store.d.GetSize(ctx, c.key)
			if errors.Is(err, ds.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
		}
		if err := b.Delete(ctx, c.key); err != nil {
			return err
		}
		blocks++
		bytes += int64(size)
		if len(removed) < GCMaxRemovedList {
			removed = append(removed, cid.NewCidV1(cid.Raw, c.hash))
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	n.store.used.Add(-bytes)
	n.store.count.Add(-blocks)
	res.Blocks += uint64(blocks)
	res.Bytes += uint64(bytes)
	res.Removed = removed
	return nil
}
