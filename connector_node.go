package pincluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	routing "github.com/libp2p/go-libp2p/core/routing"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// nodeConnector is the default IPFSConnector: the in-process IPFS node
// (internal/ipfsnode) on the cluster's own host, its blocks and pins in the
// cluster's datastore. It also carries the CRDT consensus's blocks
// (crdt.DAG) as system blocks; the heads (extraRoots) keep older delta
// blocks, stored among the user's blocks by earlier versions, from GC.
type nodeConnector struct {
	node *ipfsnode.Node
	// extraRoots is set by the consensus: the CRDT heads.
	extraRoots atomic.Pointer[func() []cid.Cid]
}

var (
	_ IPFSConnector = (*nodeConnector)(nil)
	_ Adder         = (*nodeConnector)(nil)
	_ RepoGCer      = (*nodeConnector)(nil)
)

// newNodeConnector starts the in-process node over d.
func newNodeConnector(ctx context.Context, h host.Host, r routing.Routing, d ds.Batching, cfg *config) (*nodeConnector, error) {
	nc := &nodeConnector{}
	ncfg := ipfsnode.Config{
		Host:       h,
		Datastore:  d,
		StorageMax: cfg.nodeStorageMax,
		Logger:     cfg.logger.With("component", "ipfsnode"),
		ExtraRoots: func(context.Context) ([]cid.Cid, error) {
			if f := nc.extraRoots.Load(); f != nil {
				return (*f)(), nil
			}
			return nil, nil
		},
	}
	if r != nil {
		ncfg.Routing = r
	}
	n, err := ipfsnode.New(ctx, ncfg)
	if err != nil {
		return nil, fmt.Errorf("in-process ipfs node: %w", err)
	}
	nc.node = n
	return nc, nil
}

// nodeErr maps the node's errors onto the root sentinels, keeping the
// original in the chain.
func nodeErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ipfsnode.ErrClosed): // only Shutdown closes the node
		return fmt.Errorf("ipfs node: %s: %w: %w", op, ErrClosed, err)
	case errors.Is(err, ipfsnode.ErrBadPath):
		return fmt.Errorf("ipfs node: %s: %w: %w", op, ErrInvalidCID, err)
	case errors.Is(err, ipfsnode.ErrNotPinned):
		return fmt.Errorf("ipfs node: %s: %w: %w", op, ErrNotPinned, err)
	case errors.Is(err, ipfsnode.ErrNotFound):
		return fmt.Errorf("ipfs node: %s: %w: %w", op, ErrNotFound, err)
	}
	return fmt.Errorf("ipfs node: %s: %w", op, err)
}

// Shutdown implements Component: it closes the node (not the host).
func (n *nodeConnector) Shutdown(ctx context.Context) error {
	if err := n.node.Close(ctx); err != nil && !errors.Is(err, ipfsnode.ErrClosed) {
		return err
	}
	return nil
}

// ID implements IPFSConnector: the node runs on the cluster's host.
func (n *nodeConnector) ID(context.Context) (IPFSID, error) {
	return IPFSID{ID: n.node.ID(), Addresses: n.node.Addrs()}, nil
}

// Pin implements IPFSConnector.
func (n *nodeConnector) Pin(ctx context.Context, pin Pin, progress func(PinProgress)) error {
	if !pin.Cid.Defined() {
		return fmt.Errorf("ipfs node: pin: %w", ErrInvalidCID)
	}
	if pin.MaxDepth == 0 {
		// A direct pin over a recursive one keeps the recursive pin, as
		// Kubo does.
		if old, err := n.node.GetPin(ctx, pin.Cid); err == nil && old.MaxDepth != 0 {
			return nil
		}
	}
	n.connectOrigins(ctx, pin)
	opts := ipfsnode.PinOptions{MaxDepth: pin.MaxDepth, Name: pin.Name}
	if progress != nil {
		opts.Progress = func(p ipfsnode.Progress) { progress(PinProgress{Blocks: p.Blocks, Bytes: p.Bytes}) }
	}
	return nodeErr("pin", n.node.Pin(ctx, pin.Cid, opts))
}

// connectOrigins dials the pin's origins, best effort: the data may also
// be found through connected peers or routing.
func (n *nodeConnector) connectOrigins(ctx context.Context, pin Pin) {
	for _, a := range pin.Origins {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || ai.ID == n.node.ID() {
			continue
		}
		_ = n.node.Connect(ctx, *ai)
	}
}

// Unpin implements IPFSConnector.
func (n *nodeConnector) Unpin(ctx context.Context, c cid.Cid) error {
	return nodeErr("unpin", n.node.Unpin(ctx, c))
}

func ipfsStatusOf(t ipfsnode.PinType) IPFSPinStatus {
	switch t {
	case ipfsnode.PinnedDirect:
		return IPFSPinStatusDirect
	case ipfsnode.PinnedRecursive:
		return IPFSPinStatusRecursive
	case ipfsnode.PinnedIndirect:
		return IPFSPinStatusIndirect
	}
	return IPFSPinStatusUnpinned
}

// PinLsCid implements IPFSConnector. A pin with a bounded MaxDepth counts
// as recursive, as its own record says.
func (n *nodeConnector) PinLsCid(ctx context.Context, pin Pin) (IPFSPinStatus, error) {
	t, err := n.node.PinStatus(ctx, pin.Cid, false)
	if err != nil {
		return IPFSPinStatusError, nodeErr("pin ls", err)
	}
	return ipfsStatusOf(t), nil
}

// PinLs implements IPFSConnector. Indirect pins are not listed (asking for
// them alone yields nothing): the node does not index them.
func (n *nodeConnector) PinLs(ctx context.Context, types ...IPFSPinStatus) iter.Seq2[IPFSPinInfo, error] {
	want := func(s IPFSPinStatus) bool {
		if len(types) == 0 {
			return s == IPFSPinStatusDirect || s == IPFSPinStatusRecursive
		}
		for _, t := range types {
			if t == s {
				return true
			}
		}
		return false
	}
	return func(yield func(IPFSPinInfo, error) bool) {
		for p, err := range n.node.Pins(ctx) {
			if err != nil {
				yield(IPFSPinInfo{}, nodeErr("pin ls", err))
				return
			}
			s := IPFSPinStatusRecursive
			if !p.Recursive() {
				s = IPFSPinStatusDirect
			}
			if want(s) && !yield(IPFSPinInfo{Cid: p.Cid, Type: s, Name: p.Name}, nil) {
				return
			}
		}
	}
}

// ConnectSwarms implements IPFSConnector; it returns the joined errors of
// the peers it could not reach.
func (n *nodeConnector) ConnectSwarms(ctx context.Context, peers []peer.AddrInfo) error {
	var errs []error
	for _, ai := range peers {
		if ai.ID == n.node.ID() {
			continue
		}
		if err := n.node.Connect(ctx, ai); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ai.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nodeErr("connect", err)
	}
	return nil
}

// SwarmPeers implements IPFSConnector.
func (n *nodeConnector) SwarmPeers(context.Context) ([]peer.ID, error) {
	return n.node.Peers(), nil
}

// ConfigKey implements IPFSConnector. The in-process node knows
// "Datastore.StorageMax" (bytes, as uint64); other keys wrap ErrNotFound.
func (n *nodeConnector) ConfigKey(ctx context.Context, key string) (any, error) {
	if key == "Datastore.StorageMax" {
		st, err := n.node.RepoStat(ctx)
		if err != nil {
			return nil, nodeErr("config", err)
		}
		return st.StorageMax, nil
	}
	return nil, fmt.Errorf("ipfs node: config %q: %w", key, ErrNotFound)
}

// RepoStat implements IPFSConnector.
func (n *nodeConnector) RepoStat(ctx context.Context) (RepoStat, error) {
	st, err := n.node.RepoStat(ctx)
	if err != nil {
		return RepoStat{}, nodeErr("repo stat", err)
	}
	return RepoStat{RepoSize: st.RepoSize, StorageMax: st.StorageMax, NumObjects: st.NumObjects}, nil
}

// Resolve implements IPFSConnector.
func (n *nodeConnector) Resolve(ctx context.Context, path string) (cid.Cid, error) {
	c, err := n.node.Resolve(ctx, path)
	return c, nodeErr("resolve", err)
}

// BlockPut implements IPFSConnector.
func (n *nodeConnector) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	c, err := n.node.BlockPut(ctx, data, prefix)
	return c, nodeErr("block put", err)
}

// BlockGet implements IPFSConnector.
func (n *nodeConnector) BlockGet(ctx context.Context, c cid.Cid) ([]byte, error) {
	b, err := n.node.BlockGet(ctx, c)
	return b, nodeErr("block get", err)
}

// RepoGC implements RepoGCer.
func (n *nodeConnector) RepoGC(ctx context.Context) (RepoGC, error) {
	r, err := n.node.GC(ctx)
	if err != nil {
		return RepoGC{}, nodeErr("gc", err)
	}
	return RepoGC{Removed: r.Removed, RemovedCount: r.Blocks, FreedBytes: r.Bytes}, nil
}

// Add implements Adder. Without params.Wrap each file is imported on its
// own; with it, into one directory whose root comes last.
func (n *nodeConnector) Add(ctx context.Context, files iter.Seq2[string, io.Reader], p AddParams) ([]AddedFile, error) {
	return importFiles(ctx, files, p, importer{dir: n.node.AddDirectory, file: n.node.Add, wrap: nodeErr})
}

// nodeDAG is the crdt.DAG over the node's system blocks: the consensus's
// deltas and snapshots are not the user's data, so they are not charged
// against the node's StorageMax nor reported in RepoStat (IPFS Cluster
// keeps them in its own datastore, out of Kubo's repository), and GC
// never removes them. Get fetches through bitswap when the block is not
// local.
type nodeDAG struct{ n *ipfsnode.Node }

func (d nodeDAG) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	return d.n.SysBlockGet(ctx, c)
}

func (d nodeDAG) Put(ctx context.Context, c cid.Cid, data []byte) error {
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return err
	}
	return d.n.SysBlockPut(ctx, b)
}

var _ Catter = (*nodeConnector)(nil)

// Cat implements Catter.
func (n *nodeConnector) Cat(ctx context.Context, c cid.Cid) (io.ReadSeekCloser, error) {
	r, err := n.node.Cat(ctx, c)
	return r, nodeErr("cat", err)
}

// Delete implements crdt.DAGDeleter: compaction removes old deltas.
func (d nodeDAG) Delete(ctx context.Context, c cid.Cid) error {
	return d.n.SysBlockDelete(ctx, c)
}
