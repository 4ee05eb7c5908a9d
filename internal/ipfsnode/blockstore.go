package ipfsnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/datastore/dshelp"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dsq "github.com/ipfs/go-datastore/query"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Datastore namespaces used by the node.
var (
	blocksPrefix = ds.NewKey("/ipfsnode/blocks")
	pinsPrefix   = ds.NewKey("/ipfsnode/pins")
	// sysPrefix holds the system blocks (see Node.SysBlockPut), apart
	// from the user's blocks, uncounted and never swept by GC.
	sysPrefix = ds.NewKey("/ipfsnode/sysblocks")
	// usageKey holds the user's blocks' totals, written by a clean Close
	// and removed at start (see newStore).
	usageKey = ds.NewKey("/ipfsnode/usage")
)

// store is the node's blockstore: blocks keyed by multihash (like boxo's and
// Kubo's), every read and write checked against its CID, the bytes and
// blocks stored counted and bounded by StorageMax.
type store struct {
	d   ds.Batching // namespaced to blocksPrefix
	sys ds.Batching // namespaced to sysPrefix: system blocks, not counted
	max uint64
	g   *gorun.Group
	// gcMu is the node's GC lock (see Node.gcMu).
	gcMu *sync.RWMutex
	// onFull, when set, is told of each block refused for lack of space
	// (bitswap only logs a failed put; the node fails the pin waiting
	// for the block instead).
	onFull func(c cid.Cid, err error)

	meta ds.Datastore // the node's datastore, for usageKey

	used  atomic.Int64
	count atomic.Int64
	// closed is set by close with every stripe locked, and read under
	// one: no block is written or deleted after the totals are saved.
	closed bool

	seed    maphash.Seed
	stripes [256]sync.Mutex
}

var _ blockstore.Blockstore = (*store)(nil)

// newStore opens the blockstore over d. The totals of the user's blocks
// (used, count) come from usageKey when the last Close saved them there;
// otherwise (first start, a crash, a version before the key) every block
// is counted, which at millions of blocks takes seconds. The key is
// removed, durably, before any block is written, so that a crash always
// leads to a count at the next start: the totals are exact or recounted,
// never stale.
func newStore(ctx context.Context, d ds.Batching, max uint64, g *gorun.Group) (*store, error) {
	s := &store{d: namespace.Wrap(d, blocksPrefix), sys: namespace.Wrap(d, sysPrefix), meta: d, max: max, g: g, gcMu: new(sync.RWMutex), seed: maphash.MakeSeed()}
	v, err := d.Get(ctx, usageKey)
	switch {
	case errors.Is(err, ds.ErrNotFound):
		return s, s.countAll(ctx)
	case err != nil:
		return nil, fmt.Errorf("ipfsnode: reading the saved block totals: %w", err)
	}
	if err := d.Delete(ctx, usageKey); err != nil {
		return nil, fmt.Errorf("ipfsnode: removing the saved block totals: %w", err)
	}
	if err := d.Sync(ctx, usageKey); err != nil {
		return nil, fmt.Errorf("ipfsnode: removing the saved block totals: %w", err)
	}
	used, count, ok := decodeUsage(v)
	if !ok {
		return s, s.countAll(ctx)
	}
	s.used.Store(used)
	s.count.Store(count)
	return s, nil
}

// countAll counts the user's blocks (KeysOnly + sizes: no block data
// read, though a datastore may read it to know the size).
func (s *store) countAll(ctx context.Context) error {
	res, err := s.d.Query(ctx, dsq.Query{KeysOnly: true, ReturnsSizes: true})
	if err != nil {
		return fmt.Errorf("ipfsnode: counting blocks: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return fmt.Errorf("ipfsnode: counting blocks: %w", r.Error)
		}
		size := r.Size
		if size < 0 {
			if size, err = s.d.GetSize(ctx, ds.RawKey(r.Key)); err != nil {
				return fmt.Errorf("ipfsnode: counting blocks: %w", err)
			}
		}
		s.used.Add(int64(size))
		s.count.Add(1)
	}
	return nil
}

// usageVersion starts the encoding of the saved totals.
const usageVersion = 1

func encodeUsage(used, count int64) []byte {
	b := []byte{usageVersion}
	b = binary.AppendUvarint(b, uint64(max(used, 0)))
	return binary.AppendUvarint(b, uint64(max(count, 0)))
}

func decodeUsage(b []byte) (used, count int64, ok bool) {
	if len(b) == 0 || b[0] != usageVersion {
		return 0, 0, false
	}
	u, n := binary.Uvarint(b[1:])
	if n <= 0 || u > math.MaxInt64 {
		return 0, 0, false
	}
	c, m := binary.Uvarint(b[1+n:])
	if m <= 0 || c > math.MaxInt64 || 1+n+m != len(b) {
		return 0, 0, false
	}
	return int64(u), int64(c), true
}

// close stops every write and delete of user blocks and saves the totals
// under usageKey (synced), for the next start. A second close does
// nothing.
func (s *store) close(ctx context.Context) error {
	unlock := s.lockAll()
	defer unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.meta.Put(ctx, usageKey, encodeUsage(s.used.Load(), s.count.Load())); err != nil {
		return fmt.Errorf("ipfsnode: saving the block totals: %w", err)
	}
	if err := s.meta.Sync(ctx, usageKey); err != nil {
		return fmt.Errorf("ipfsnode: saving the block totals: %w", err)
	}
	return nil
}

// lockAll locks every stripe (in order) and returns the unlock.
func (s *store) lockAll() func() {
	for i := range s.stripes {
		s.stripes[i].Lock()
	}
	return func() {
		for i := range s.stripes {
			s.stripes[i].Unlock()
		}
	}
}

func (s *store) stripe(h mh.Multihash) *sync.Mutex {
	return &s.stripes[maphash.Bytes(s.seed, h)%uint64(len(s.stripes))]
}

// verify checks that data hashes to c.
func verify(c cid.Cid, data []byte) error {
	if c.Prefix().MhType == mh.IDENTITY {
		d, err := mh.Decode(c.Hash())
		if err != nil || string(d.Digest) != string(data) {
			return &CorruptBlockError{Cid: c}
		}
		return nil
	}
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("ipfsnode: hashing block %s: %w", c, err)
	}
	if string(got.Hash()) != string(c.Hash()) {
		return &CorruptBlockError{Cid: c}
	}
	return nil
}

// inline returns the data of an identity CID (the block is the digest
// itself: nothing to store or fetch) and true, or false for other CIDs.
func inline(c cid.Cid) ([]byte, bool) {
	if !c.Defined() || c.Prefix().MhType != mh.IDENTITY {
		return nil, false
	}
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return d.Digest, true
}

// Has reports whether the block of c is stored; an identity CID is always
// there.
func (s *store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if _, ok := inline(c); ok {
		return true, nil
	}
	return hasIn(ctx, s.d, c)
}

// Get returns the block of c, after checking its bytes against c: a
// corrupt block is a *CorruptBlockError, never returned as data. A
// missing block is ipld.ErrNotFound (what bitswap and merkledag expect).
// The block of an identity CID is read from the CID itself.
func (s *store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if !c.Defined() {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if data, ok := inline(c); ok { // never asked of the network
		return blocks.NewBlockWithCid(data, c)
	}
	return getIn(ctx, s.d, c)
}

func (s *store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if data, ok := inline(c); ok {
		return len(data), nil
	}
	return getSizeIn(ctx, s.d, c)
}

// Put stores b after checking its bytes against its CID. It fails with
// ErrStorageFull when the block would take the store beyond StorageMax.
func (s *store) Put(ctx context.Context, b blocks.Block) error {
	c, data := b.Cid(), b.RawData()
	if err := verify(c, data); err != nil {
		return err
	}
	mu := s.stripe(c.Hash())
	mu.Lock()
	err := s.putLocked(ctx, c, data)
	mu.Unlock()
	// Outside the stripe lock: onFull takes the node's locks, and GC
	// takes the stripes while holding those.
	if errors.Is(err, ErrStorageFull) && s.onFull != nil {
		s.onFull(c, err)
	}
	return err
}

func (s *store) putLocked(ctx context.Context, c cid.Cid, data []byte) error {
	if s.closed {
		return ErrClosed
	}
	k := dshelp.MultihashToDsKey(c.Hash())
	has, err := s.d.Has(ctx, k)
	if err != nil {
		return fmt.Errorf("ipfsnode: blockstore put %s: %w", c, err)
	}
	if has {
		return nil
	}
	size := int64(len(data))
	if uint64(s.used.Load()+size) > s.max {
		return fmt.Errorf("ipfsnode: blockstore put %s (%d bytes, %d of %d used): %w", c, size, s.used.Load(), s.max, ErrStorageFull)
	}
	if err := s.d.Put(ctx, k, data); err != nil {
		return fmt.Errorf("ipfsnode: blockstore put %s: %w", c, err)
	}
	s.used.Add(size)
	s.count.Add(1)
	return nil
}

func (s *store) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBlock removes a block. It waits for a running GC to finish.
func (s *store) DeleteBlock(ctx context.Context, c cid.Cid) error {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	_, _, err := s.deleteKey(ctx, dshelp.MultihashToDsKey(c.Hash()), c.Hash())
	return err
}

// deleteKey removes one block by its datastore key and returns its size
// and whether it was there.
func (s *store) deleteKey(ctx context.Context, k ds.Key, h mh.Multihash) (int, bool, error) {
	mu := s.stripe(h)
	mu.Lock()
	defer mu.Unlock()
	if s.closed {
		return 0, false, ErrClosed
	}
	size, err := s.d.GetSize(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("ipfsnode: blockstore delete %s: %w", k, err)
	}
	if err := s.d.Delete(ctx, k); err != nil {
		return 0, false, fmt.Errorf("ipfsnode: blockstore delete %s: %w", k, err)
	}
	s.used.Add(-int64(size))
	s.count.Add(-1)
	return size, true, nil
}

// AllKeysChan lists every block as a CIDv1 with the raw codec (the store
// keeps multihashes only).
func (s *store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	res, err := s.d.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: blockstore keys: %w", err)
	}
	out := make(chan cid.Cid)
	err = s.g.Go(func(gctx context.Context) {
		defer close(out)
		defer res.Close()
		for r := range res.Next() {
			if r.Error != nil {
				return
			}
			h, err := dshelp.DsKeyToMultihash(ds.RawKey(r.Key))
			if err != nil {
				continue
			}
			select {
			case out <- cid.NewCidV1(cid.Raw, h):
			case <-ctx.Done():
				return
			case <-gctx.Done():
				return
			}
		}
	})
	if err != nil {
		res.Close()
		return nil, ErrClosed
	}
	return out, nil
}

// System blocks: blocks the node's owner stores for itself (the cluster's
// consensus). They live under their own namespace, are not counted in
// used/count (so neither charged against StorageMax nor reported by
// RepoStat), and GC never sweeps them; bitswap serves them like any block.

// getIn reads the block of c from d (a namespace of the store's), checked
// against c.
func getIn(ctx context.Context, d ds.Datastore, c cid.Cid) (blocks.Block, error) {
	data, err := d.Get(ctx, dshelp.MultihashToDsKey(c.Hash()))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: blockstore get %s: %w", c, err)
	}
	if err := verify(c, data); err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// sysPut stores a system block, after checking its bytes against its CID.
// No limit applies; storing a block already there rewrites it.
func (s *store) sysPut(ctx context.Context, b blocks.Block) error {
	c, data := b.Cid(), b.RawData()
	if err := verify(c, data); err != nil {
		return err
	}
	if _, ok := inline(c); ok {
		return nil
	}
	if err := s.sys.Put(ctx, dshelp.MultihashToDsKey(c.Hash()), data); err != nil {
		return fmt.Errorf("ipfsnode: system block put %s: %w", c, err)
	}
	return nil
}

// sysDelete removes a system block (a missing one is not an error).
func (s *store) sysDelete(ctx context.Context, c cid.Cid) error {
	if err := s.sys.Delete(ctx, dshelp.MultihashToDsKey(c.Hash())); err != nil && !errors.Is(err, ds.ErrNotFound) {
		return fmt.Errorf("ipfsnode: system block delete %s: %w", c, err)
	}
	return nil
}

// hasIn reports whether d (a namespace of the store's) holds the block of c.
func hasIn(ctx context.Context, d ds.Datastore, c cid.Cid) (bool, error) {
	ok, err := d.Has(ctx, dshelp.MultihashToDsKey(c.Hash()))
	if err != nil {
		return false, fmt.Errorf("ipfsnode: blockstore has %s: %w", c, err)
	}
	return ok, nil
}

// getSizeIn returns the size of the block of c in d (a namespace of the
// store's); ipld.ErrNotFound when missing.
func getSizeIn(ctx context.Context, d ds.Datastore, c cid.Cid) (int, error) {
	n, err := d.GetSize(ctx, dshelp.MultihashToDsKey(c.Hash()))
	if errors.Is(err, ds.ErrNotFound) {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return -1, fmt.Errorf("ipfsnode: blockstore getsize %s: %w", c, err)
	}
	return n, nil
}

// either asks first for c, then, when c is missing there, second (a
// block, its size).
func either[T any](ctx context.Context, c cid.Cid, first, second func(context.Context, cid.Cid) (T, error)) (T, error) {
	v, err := first(ctx, c)
	if !ipld.IsNotFound(err) {
		return v, err
	}
	return second(ctx, c)
}

// orElse asks first whether it holds c, then, when not, second.
func orElse(ctx context.Context, c cid.Cid, first, second func(context.Context, cid.Cid) (bool, error)) (bool, error) {
	if ok, err := first(ctx, c); ok || err != nil {
		return ok, err
	}
	return second(ctx, c)
}

func (s *store) sysGet(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if data, ok := inline(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	if !c.Defined() {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return getIn(ctx, s.sys, c)
}

func (s *store) sysHas(ctx context.Context, c cid.Cid) (bool, error) {
	if _, ok := inline(c); ok {
		return true, nil
	}
	return hasIn(ctx, s.sys, c)
}

func (s *store) sysGetSize(ctx context.Context, c cid.Cid) (int, error) {
	if data, ok := inline(c); ok {
		return len(data), nil
	}
	return getSizeIn(ctx, s.sys, c)
}

// servedStore is the blockstore bitswap serves from: the user's blocks,
// then the system blocks. Writes go to the user's blocks (counted).
type servedStore struct{ *store }

var _ blockstore.Blockstore = servedStore{}

func (s servedStore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return orElse(ctx, c, s.store.Has, s.sysHas)
}

func (s servedStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return either(ctx, c, s.store.Get, s.sysGet)
}

func (s servedStore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	return either(ctx, c, s.store.GetSize, s.sysGetSize)
}

// sysStore is the blockstore of the system blocks' block service: reads
// look in the system blocks, then in the user's (where the consensus's
// blocks were stored before system blocks existed: still found, still
// counted, until GC or compaction removes them); writes (blocks fetched
// from peers) are system blocks.
type sysStore struct{ *store }

var _ blockstore.Blockstore = sysStore{}

func (s sysStore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return orElse(ctx, c, s.sysHas, s.store.Has)
}

func (s sysStore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return either(ctx, c, s.sysGet, s.store.Get)
}

func (s sysStore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	return either(ctx, c, s.sysGetSize, s.store.GetSize)
}

func (s sysStore) Put(ctx context.Context, b blocks.Block) error { return s.sysPut(ctx, b) }

func (s sysStore) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.sysPut(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (s sysStore) DeleteBlock(ctx context.Context, c cid.Cid) error { return s.sysDelete(ctx, c) }

// AllKeysChan is not offered for system blocks.
func (s sysStore) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, errors.New("ipfsnode: system blocks are not listed")
}
