// Package fake is an in-memory stand-in for *pincluster.Cluster used by the
// tests of api/rest and api/pinsvc: a pinset, a real UnixFS importer over
// an in-memory blockstore (so added CIDs equal Kubo's), and statuses
// derived from which blocks it holds: a pin whose root block is stored is
// "pinned", otherwise "pinning" (the data would have to be fetched).
// Failures can be scripted per method.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	offline "github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/crypto"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
)

// Backend is the fake cluster peer. Safe for concurrent use.
type Backend struct {
	self  peer.ID
	ipfs  peer.ID
	addrs []ma.Multiaddr
	bs    blockstore.Blockstore
	dag   ipld.DAGService

	mu      sync.Mutex
	pins    map[cid.Cid]pincluster.Pin
	status  map[cid.Cid]pincluster.TrackerStatus // scripted statuses
	fail    map[string]error                     // method -> error
	calls   map[string]int
	metrics []pincluster.Metric
	alerts  []pincluster.Alert
}

// New returns an empty fake.
func New() *Backend {
	bs := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	b := &Backend{
		self:   randomPeer(),
		ipfs:   randomPeer(),
		addrs:  []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/9096")},
		bs:     bs,
		dag:    merkledag.NewDAGService(blockservice.New(bs, offline.Exchange(bs))),
		pins:   make(map[cid.Cid]pincluster.Pin),
		status: make(map[cid.Cid]pincluster.TrackerStatus),
		fail:   make(map[string]error),
		calls:  make(map[string]int),
	}
	b.metrics = []pincluster.Metric{{Name: "ping", Peer: b.self, Value: "1", ValidUntil: time.Now().Add(time.Hour)},
		{Name: "freespace", Peer: b.self, Value: "1000000", Weight: 1000000, ValidUntil: time.Now().Add(time.Hour)}}
	return b
}

func randomPeer() peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		panic(err) // crypto/rand failure
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return id
}

// Self returns the fake peer's ID.
func (b *Backend) Self() peer.ID { return b.self }

// IPFSID returns the fake IPFS node's ID.
func (b *Backend) IPFSID() peer.ID { return b.ipfs }

// Fail makes method return err (nil: stop failing).
func (b *Backend) Fail(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.fail, method)
		return
	}
	b.fail[method] = err
}

// SetStatus scripts the status of c (0: derive it from the blocks).
func (b *Backend) SetStatus(c cid.Cid, s pincluster.TrackerStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status[c] = s
}

// Calls returns how many times method was called.
func (b *Backend) Calls(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

// PinCount returns the size of the pinset.
func (b *Backend) PinCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pins)
}

// Has reports whether c is pinned.
func (b *Backend) Has(c cid.Cid) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.pins[c]
	return ok
}

// Blocks returns the number of blocks stored.
func (b *Backend) Blocks(ctx context.Context) int {
	ch, err := b.bs.AllKeysChan(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for range ch {
		n++
	}
	return n
}

func (b *Backend) enter(method string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[method]++
	return b.fail[method]
}

type fakeHost struct {
	host.Host
	id    peer.ID
	addrs []ma.Multiaddr
}

func (h fakeHost) ID() peer.ID           { return h.id }
func (h fakeHost) Addrs() []ma.Multiaddr { return h.addrs }

// Host returns a host.Host that only answers ID and Addrs.
func (b *Backend) Host() host.Host { return fakeHost{id: b.self, addrs: b.addrs} }

// ID describes the fake peer.
func (b *Backend) ID(ctx context.Context) pincluster.ID {
	return pincluster.ID{
		ID: b.self, Addresses: b.addrs, ClusterPeers: []peer.ID{b.self}, Version: pincluster.Version,
		RPCProtocolVersion: "/pincluster/rpc/0.1", PeerName: "fake",
		IPFS: pincluster.IPFSID{ID: b.ipfs, Addresses: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}},
	}
}

// Version returns pincluster.Version.
func (b *Backend) Version() string { return pincluster.Version }

// Peers returns the fake peer only.
func (b *Backend) Peers(ctx context.Context) ([]pincluster.ID, error) {
	if err := b.enter("Peers"); err != nil {
		return nil, err
	}
	return []pincluster.ID{b.ID(ctx)}, nil
}

// AddPeer records the call.
func (b *Backend) AddPeer(ctx context.Context, p peer.ID) error { return b.enter("AddPeer") }

// RmPeer records the call.
func (b *Backend) RmPeer(ctx context.Context, p peer.ID) error { return b.enter("RmPeer") }

// Pin validates and stores a pin allocated to the fake peer.
func (b *Backend) Pin(ctx context.Context, ci cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error) {
	if err := b.enter("Pin"); err != nil {
		return pincluster.Pin{}, err
	}
	if !ci.Defined() {
		return pincluster.Pin{}, &pincluster.ValidationError{Field: "cid", Err: pincluster.ErrInvalidCID}
	}
	if err := opts.Validate(); err != nil {
		return pincluster.Pin{}, err
	}
	p := pincluster.NewPin(ci, opts)
	p.Allocations = []peer.ID{b.self}
	p.Timestamp = time.Now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.pins[ci]; ok {
		p.Timestamp = old.Timestamp
	}
	b.pins[ci] = p
	return p.Clone(), nil
}

func (b *Backend) resolve(ctx context.Context, path string) (cid.Cid, error) {
	// /ipfs/<cid>: the fake resolves bare roots only.
	rest, ok := strings.CutPrefix(path, "/ipfs/")
	if !ok || strings.Contains(rest, "/") {
		return cid.Undef, fmt.Errorf("fake: resolve %s: %w", path, pincluster.ErrNotFound)
	}
	return cid.Decode(rest)
}

// PinPath pins the root of an /ipfs/<cid> path.
func (b *Backend) PinPath(ctx context.Context, path string, opts pincluster.PinOptions) (pincluster.Pin, error) {
	c, err := b.resolve(ctx, path)
	if err != nil {
		return pincluster.Pin{}, err
	}
	return b.Pin(ctx, c, opts)
}

// PinUpdate pins to with the options of from.
func (b *Backend) PinUpdate(ctx context.Context, from, to cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error) {
	old, err := b.PinGet(ctx, from)
	if err != nil {
		return pincluster.Pin{}, err
	}
	o := old.PinOptions
	o.PinUpdate = from
	if opts.Name != "" {
		o.Name = opts.Name
	}
	return b.Pin(ctx, to, o)
}

// Unpin removes a pin; ErrNotFound when absent.
func (b *Backend) Unpin(ctx context.Context, ci cid.Cid) (pincluster.Pin, error) {
	if err := b.enter("Unpin"); err != nil {
		return pincluster.Pin{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pins[ci]
	if !ok {
		return pincluster.Pin{}, fmt.Errorf("fake: unpin %s: %w", ci, pincluster.ErrNotFound)
	}
	delete(b.pins, ci)
	return p, nil
}

// UnpinPath unpins the root of an /ipfs/<cid> path.
func (b *Backend) UnpinPath(ctx context.Context, path string) (pincluster.Pin, error) {
	c, err := b.resolve(ctx, path)
	if err != nil {
		return pincluster.Pin{}, err
	}
	return b.Unpin(ctx, c)
}

// PinGet returns a pin; ErrNotFound when absent.
func (b *Backend) PinGet(ctx context.Context, ci cid.Cid) (pincluster.Pin, error) {
	if err := b.enter("PinGet"); err != nil {
		return pincluster.Pin{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pins[ci]
	if !ok {
		return pincluster.Pin{}, fmt.Errorf("fake: pin get %s: %w", ci, pincluster.ErrNotFound)
	}
	return p.Clone(), nil
}

func (b *Backend) sorted() []pincluster.Pin {
	b.mu.Lock()
	defer b.mu.Unlock()
	ps := slices.Collect(maps.Values(b.pins))
	slices.SortFunc(ps, func(x, y pincluster.Pin) int { return strings.Compare(x.Cid.KeyString(), y.Cid.KeyString()) })
	return ps
}

// Pins streams the pins passing f, in CID order.
func (b *Backend) Pins(ctx context.Context, f pincluster.PinFilter) iter.Seq2[pincluster.Pin, error] {
	return func(yield func(pincluster.Pin, error) bool) {
		if err := b.enter("Pins"); err != nil {
			yield(pincluster.Pin{}, err)
			return
		}
		for _, p := range b.sorted() {
			if f.MatchPin(p) && !yield(p, nil) {
				return
			}
		}
	}
}

func (b *Backend) info(ctx context.Context, p pincluster.Pin) pincluster.GlobalPinInfo {
	b.mu.Lock()
	st := b.status[p.Cid]
	b.mu.Unlock()
	errText := ""
	if st == 0 {
		st = pincluster.TrackerStatusPinning
		if ok, _ := b.bs.Has(ctx, p.Cid); ok {
			st = pincluster.TrackerStatusPinned
		}
	}
	if st.IsError() {
		errText = "fake: scripted error"
	}
	g := pincluster.GlobalPinInfo{}
	g.Add(pincluster.PinInfo{
		Cid: p.Cid, Name: p.Name, Peer: b.self, Allocations: p.Allocations, Origins: p.Origins,
		Created: p.Timestamp, Metadata: p.Metadata,
		PinInfoShort: pincluster.PinInfoShort{PeerName: "fake", IPFS: b.ipfs, Status: st, TS: time.Now().UTC(), Error: errText},
	})
	return g
}

// Status returns the pin's status on the fake peer; ErrNotFound when
// absent.
func (b *Backend) Status(ctx context.Context, ci cid.Cid, local bool) (pincluster.GlobalPinInfo, error) {
	if err := b.enter("Status"); err != nil {
		return pincluster.GlobalPinInfo{}, err
	}
	b.mu.Lock()
	p, ok := b.pins[ci]
	b.mu.Unlock()
	if !ok {
		return pincluster.GlobalPinInfo{}, fmt.Errorf("fake: status %s: %w", ci, pincluster.ErrNotFound)
	}
	return b.info(ctx, p), nil
}

// StatusAll streams statuses passing f.
func (b *Backend) StatusAll(ctx context.Context, f pincluster.StatusFilter) iter.Seq2[pincluster.GlobalPinInfo, error] {
	return func(yield func(pincluster.GlobalPinInfo, error) bool) {
		if err := b.enter("StatusAll"); err != nil {
			yield(pincluster.GlobalPinInfo{}, err)
			return
		}
		for _, p := range b.sorted() {
			if len(f.Cids) > 0 && !slices.ContainsFunc(f.Cids, p.Cid.Equals) {
				continue
			}
			g := b.info(ctx, p)
			if g.Match(f.Status) && !yield(g, nil) {
				return
			}
		}
	}
}

// Recover returns the status.
func (b *Backend) Recover(ctx context.Context, ci cid.Cid, local bool) (pincluster.GlobalPinInfo, error) {
	b.enter("Recover")
	return b.Status(ctx, ci, local)
}

// RecoverAll streams every status.
func (b *Backend) RecoverAll(ctx context.Context, local bool) iter.Seq2[pincluster.GlobalPinInfo, error] {
	return b.StatusAll(ctx, pincluster.StatusFilter{Local: local})
}

// Add imports files as UnixFS (balanced or trickle layout, the given
// chunker, CID version and raw leaves; flat directories only) and pins
// the root.
func (b *Backend) Add(ctx context.Context, files iter.Seq2[string, io.Reader], p pincluster.AddParams) ([]pincluster.AddedFile, error) {
	if err := b.enter("Add"); err != nil {
		return nil, err
	}
	prefix, err := merkledag.PrefixForCidVersion(p.CIDVersion)
	if err != nil {
		return nil, err
	}
	if p.HashFun != "" {
		code, ok := mh.Names[p.HashFun]
		if !ok {
			return nil, fmt.Errorf("fake: unknown hash %q", p.HashFun)
		}
		prefix.MhType = code
		prefix.MhLength = -1
	}
	chunk := p.Chunker
	if chunk == "" {
		chunk = "size-262144"
	}
	var out []pincluster.AddedFile
	var nodes []ipld.Node
	for name, r := range files {
		cr := &countReader{r: r}
		spl, err := chunker.FromString(cr, chunk)
		if err != nil {
			return nil, err
		}
		params := ihelper.DagBuilderParams{Dagserv: b.dag, Maxlinks: ihelper.DefaultLinksPerBlock, RawLeaves: p.RawLeaves, CidBuilder: &prefix}
		db, err := params.New(spl)
		if err != nil {
			return nil, err
		}
		var nd ipld.Node
		if p.Trickle {
			nd, err = trickle.Layout(db)
		} else {
			nd, err = balanced.Layout(db)
		}
		if err != nil {
			return nil, err
		}
		size, _ := nd.Size()
		out = append(out, pincluster.AddedFile{Name: name, Cid: nd.Cid(), Size: size, Bytes: cr.n})
		nodes = append(nodes, nd)
	}
	if len(out) == 0 {
		return nil, errors.New("fake: nothing to add")
	}
	if p.Wrap {
		dir, err := uio.NewDirectory(b.dag)
		if err != nil {
			return nil, err
		}
		dir.SetCidBuilder(&prefix)
		for i, nd := range nodes {
			if err := dir.AddChild(ctx, out[i].Name, nd); err != nil {
				return nil, err
			}
		}
		dn, err := dir.GetNode()
		if err != nil {
			return nil, err
		}
		if err := b.dag.Add(ctx, dn); err != nil {
			return nil, err
		}
		size, _ := dn.Size()
		out = append(out, pincluster.AddedFile{Name: "", Cid: dn.Cid(), Size: size})
	}
	if p.NoPin {
		return out, nil
	}
	opts := p.PinOptions
	if _, err := b.Pin(ctx, out[len(out)-1].Cid, opts); err != nil {
		return out, err
	}
	return out, nil
}

type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// BlockPut stores a block.
func (b *Backend) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	if err := b.enter("BlockPut"); err != nil {
		return cid.Undef, err
	}
	if prefix.Version == 0 {
		prefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}
	}
	c, err := prefix.Sum(data)
	if err != nil {
		return cid.Undef, err
	}
	blk, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return cid.Undef, err
	}
	return c, b.bs.Put(ctx, blk)
}

// Metrics returns the fake's metrics of that name.
func (b *Backend) Metrics(ctx context.Context, name string) []pincluster.Metric {
	var out []pincluster.Metric
	for _, m := range b.metrics {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// MetricNames returns the fake's metric names.
func (b *Backend) MetricNames(ctx context.Context) []string {
	var out []string
	for _, m := range b.metrics {
		out = append(out, m.Name)
	}
	return out
}

// Alerts returns the alerts set by SetAlerts (none by default).
func (b *Backend) Alerts(ctx context.Context) []pincluster.Alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.alerts
}
