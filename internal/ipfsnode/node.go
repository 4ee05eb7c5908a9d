package ipfsnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Node is an in-process IPFS block node: a verified, size-bounded
// blockstore in the caller's datastore, bitswap on the caller's host, a
// persisted pinset, garbage collection and UnixFS import and reading. It
// is safe for concurrent use. After Close, every method that returns an
// error returns ErrClosed.
type Node struct {
	cfg    Config
	log    *slog.Logger
	g      *gorun.Group
	closed atomic.Bool

	host  host.Host
	ds    ds.Batching
	store *store
	bswap *bitswap.Bitswap
	bserv blockservice.BlockService
	dag   ipld.DAGService
	// sysServ fetches and stores system blocks (see SysBlockPut), over
	// the same bitswap.
	sysServ blockservice.BlockService

	// gcMu: GC holds it exclusively from mark to the end of sweep; a pin
	// records itself (and releases its holds) under the read lock, so a
	// GC either sees the pin record or the pin's holds.
	gcMu *sync.RWMutex
	// holds counts, per multihash, the operations (pins in progress,
	// imports) that need a block; GC never deletes a held block. holdMu
	// also orders a GC deletion against a new hold.
	holdMu sync.Mutex
	holds  map[string]int
	// pinMu serialises reads-then-writes of pin records.
	pinMu sync.Mutex
	// pinq gathers concurrent pin record writes into batches (putPin).
	pinq pinWrites

	prov *provider

	// walkers are the fetches in progress (told when storage is full).
	walkMu  sync.Mutex
	walkers map[*walker]struct{}
}

// New starts a node on cfg.Host over cfg.Datastore. ctx bounds start-up
// only (counting the blocks already stored, when the last run did not end
// with Close); the node runs until Close.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	g := gorun.New()
	st, err := newStore(ctx, cfg.Datastore, cfg.StorageMax, g)
	if err != nil {
		g.Stop()
		return nil, err
	}
	n := &Node{
		gcMu:    st.gcMu,
		cfg:     cfg,
		log:     cfg.Logger,
		g:       g,
		host:    cfg.Host,
		ds:      cfg.Datastore,
		store:   st,
		holds:   map[string]int{},
		walkers: map[*walker]struct{}{},
	}
	st.onFull = n.storageFull
	// bitswap lives until Close; its context is the group's.
	n.bswap = bitswap.New(g.Context(), bsnet.NewFromIpfsHost(cfg.Host), cfg.Routing, servedStore{st})
	n.bserv = blockservice.New(st, n.bswap)
	n.sysServ = blockservice.New(sysStore{st}, n.bswap) // never closed: bserv closes bitswap
	n.dag = merkledag.NewDAGService(n.bserv)
	if cfg.Routing != nil {
		n.prov = newProvider(n)
		if err := n.prov.start(); err != nil {
			_ = n.bswap.Close()
			g.Stop()
			return nil, err
		}
	}
	n.log.Debug("ipfsnode: started", "peer", cfg.Host.ID(), "blocks", st.count.Load(), "bytes", st.used.Load())
	return n, nil
}

// Close stops bitswap, the provider and every goroutine of the node, and
// waits for them (or returns ctx's error at its deadline). It then stops
// every write of blocks and saves the totals of the stored blocks in the
// datastore, so that the next New need not count them. It closes neither
// the host nor the datastore. A second Close returns ErrClosed.
func (n *Node) Close(ctx context.Context) error {
	if n.closed.Swap(true) {
		return ErrClosed
	}
	n.g.Stop()
	err := n.bserv.Close() // closes bitswap
	if gerr := n.g.Wait(ctx); gerr != nil {
		err = errors.Join(err, fmt.Errorf("ipfsnode: close: %w", gerr))
	}
	// Quick, and what makes the next start quick: done even past ctx's
	// deadline.
	return errors.Join(err, n.store.close(context.WithoutCancel(ctx)))
}

// opCtx returns a context cancelled when ctx is or when the node closes.
func (n *Node) opCtx(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if n.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.g.Context(), cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// ctxErr wraps err as ErrClosed when the node closed during the call.
func (n *Node) ctxErr(err error) error {
	if err != nil && n.closed.Load() && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// ID returns the node's peer ID (its host's).
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs returns the host's listen addresses.
func (n *Node) Addrs() []ma.Multiaddr { return n.host.Addrs() }

// Host returns the host the node runs on.
func (n *Node) Host() host.Host { return n.host }

// Blockstore returns the node's blockstore (verified reads and writes,
// StorageMax enforced). Blocks put there directly are not pinned: they
// survive GC only when reachable from a pin or Config.ExtraRoots.
func (n *Node) Blockstore() blockstore.Blockstore { return n.store }

// DAGService returns a DAG service over the blockstore and bitswap:
// gets fetch missing nodes from the network.
func (n *Node) DAGService() ipld.DAGService { return n.dag }

// Connect connects the host to a peer (swarm connect).
func (n *Node) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if err := n.host.Connect(ctx, pi); err != nil {
		return fmt.Errorf("ipfsnode: connect %s: %w", pi.ID, err)
	}
	return nil
}

// Peers returns the peers the host is connected to (swarm peers).
func (n *Node) Peers() []peer.ID {
	var out []peer.ID
	for _, p := range n.host.Network().Peers() {
		if n.host.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	return out
}

// Wantlist returns the blocks bitswap is currently asking peers for.
func (n *Node) Wantlist() []cid.Cid {
	st, err := n.bswap.Stat()
	if err != nil {
		return nil
	}
	return st.Wantlist
}

// RepoStat is the node's storage usage. System blocks (SysBlockPut) are
// not counted.
type RepoStat struct {
	// RepoSize is the bytes of block data stored.
	RepoSize uint64
	// NumObjects is the number of blocks stored.
	NumObjects uint64
	// StorageMax is Config.StorageMax, in bytes.
	StorageMax uint64
}

// RepoStat reports the node's storage usage (kept up to date in memory;
// at New, read from what the last Close saved, or counted).
func (n *Node) RepoStat(context.Context) (RepoStat, error) {
	if n.closed.Load() {
		return RepoStat{}, ErrClosed
	}
	return RepoStat{
		RepoSize:   uint64(max(n.store.used.Load(), 0)),
		NumObjects: uint64(max(n.store.count.Load(), 0)),
		StorageMax: n.cfg.StorageMax,
	}, nil
}

// BlockPut stores data as one block whose CID is built with prefix
// (prefix.Version 0 with an unset codec means CIDv1, raw, sha2-256) and
// returns the CID. The block is not pinned. ErrStorageFull when full.
func (n *Node) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	if n.closed.Load() {
		return cid.Undef, ErrClosed
	}
	if prefix.Version == 0 && prefix.Codec == 0 {
		prefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}
	}
	c, err := prefix.Sum(data)
	if err != nil {
		return cid.Undef, fmt.Errorf("ipfsnode: block put: %w", err)
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return cid.Undef, fmt.Errorf("ipfsnode: block put: %w", err)
	}
	if err := n.putBlock(ctx, b); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// PutBlock stores a block whose CID is already known, after checking its
// bytes against it (*CorruptBlockError otherwise). The block is not
// pinned.
func (n *Node) PutBlock(ctx context.Context, b blocks.Block) error {
	if n.closed.Load() {
		return ErrClosed
	}
	return n.putBlock(ctx, b)
}

func (n *Node) putBlock(ctx context.Context, b blocks.Block) error {
	if err := n.store.Put(ctx, b); err != nil {
		return err
	}
	// Tell bitswap: peers that want it get it, waiting sessions wake.
	if err := n.bswap.NotifyNewBlocks(ctx, b); err != nil {
		n.log.Debug("ipfsnode: notify new block", "cid", b.Cid(), "err", err)
	}
	return nil
}

// SysBlockPut stores a system block, after checking its bytes against its
// CID (*CorruptBlockError otherwise). System blocks are the node's owner's
// own data (the cluster's consensus stores its deltas and snapshots
// there), kept apart from the user's blocks as IPFS Cluster keeps its
// consensus data out of the IPFS repository: they are not charged against
// StorageMax nor counted by RepoStat, GC never removes them (only
// SysBlockDelete does), and bitswap serves them to peers like any block.
func (n *Node) SysBlockPut(ctx context.Context, b blocks.Block) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if err := n.store.sysPut(ctx, b); err != nil {
		return err
	}
	if err := n.bswap.NotifyNewBlocks(ctx, b); err != nil {
		n.log.Debug("ipfsnode: notify new block", "cid", b.Cid(), "err", err)
	}
	return nil
}

// SysBlockGet returns the bytes of a system block: stored as one, else
// among the user's blocks (where a node of an earlier version stored its
// owner's blocks), else fetched from the network through bitswap (until
// ctx ends) and stored as a system block. Errors are BlockGet's.
func (n *Node) SysBlockGet(ctx context.Context, c cid.Cid) ([]byte, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := n.sysServ.GetBlock(ctx, c)
	if err != nil {
		return nil, n.ctxErr(n.getErr(ctx, c, err))
	}
	return b.RawData(), nil
}

// SysBlockDelete removes a system block, and its copy among the user's
// blocks if there is one (see SysBlockGet; as Blockstore().DeleteBlock
// would); a missing block is not an error.
func (n *Node) SysBlockDelete(ctx context.Context, c cid.Cid) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if err := n.store.sysDelete(ctx, c); err != nil {
		return err
	}
	return n.store.DeleteBlock(ctx, c)
}

// BlockGet returns the bytes of one block, from the store or, when
// missing, from the network through bitswap (until ctx ends). A block whose
// bytes do not match its CID is a *CorruptBlockError; a block that could
// not be found wraps ErrNotFound and ctx's error.
func (n *Node) BlockGet(ctx context.Context, c cid.Cid) ([]byte, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	b, err := n.bserv.GetBlock(ctx, c)
	if err != nil {
		return nil, n.ctxErr(n.getErr(ctx, c, err))
	}
	return b.RawData(), nil
}

// HasBlock reports whether the block of c is stored locally.
func (n *Node) HasBlock(ctx context.Context, c cid.Cid) (bool, error) {
	if n.closed.Load() {
		return false, ErrClosed
	}
	return n.store.Has(ctx, c)
}

func (n *Node) getErr(ctx context.Context, c cid.Cid, err error) error {
	var corrupt *CorruptBlockError
	if errors.As(err, &corrupt) {
		return err
	}
	if ctx.Err() != nil || ipld.IsNotFound(err) {
		return fmt.Errorf("ipfsnode: get block %s: %w: %w", c, ErrNotFound, errors.Join(ctx.Err(), err))
	}
	return fmt.Errorf("ipfsnode: get block %s: %w", c, err)
}

// storageFull fails the fetches waiting for c, which the store refused.
func (n *Node) storageFull(c cid.Cid, err error) {
	h := c.Hash()
	n.walkMu.Lock()
	defer n.walkMu.Unlock()
	for w := range n.walkers {
		n.holdMu.Lock()
		_, waiting := w.h.keys[string(h)]
		n.holdMu.Unlock()
		if waiting {
			w.fail(err)
			w.cancel()
		}
	}
}

// hold is the set of blocks one operation keeps safe from GC.
type hold struct {
	n    *Node
	keys map[string]struct{}
}

func (n *Node) newHold() *hold { return &hold{n: n, keys: map[string]struct{}{}} }

// add holds the block of c. Call it before fetching or storing the block.
func (h *hold) add(c cid.Cid) {
	k := string(c.Hash())
	h.n.holdMu.Lock()
	defer h.n.holdMu.Unlock()
	if _, ok := h.keys[k]; ok {
		return
	}
	h.keys[k] = struct{}{}
	h.n.holds[k]++
}

// release drops every hold. GC may collect the blocks afterwards unless a
// pin or root reaches them.
func (h *hold) release() {
	h.n.holdMu.Lock()
	defer h.n.holdMu.Unlock()
	for k := range h.keys {
		if h.n.holds[k] <= 1 {
			delete(h.n.holds, k)
		} else {
			h.n.holds[k]--
		}
	}
	clear(h.keys)
}
