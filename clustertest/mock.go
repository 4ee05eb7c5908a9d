package clustertest

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	crypto "github.com/libp2p/go-libp2p/core/crypto"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/pincluster/pincluster"
)

// Method names a MockConnector method, for FailCalls, FailCID, Calls and
// OnCall.
type Method string

// The methods of MockConnector that can be scripted and counted.
const (
	MethodID            Method = "ID"
	MethodPin           Method = "Pin"
	MethodUnpin         Method = "Unpin"
	MethodPinLsCid      Method = "PinLsCid"
	MethodPinLs         Method = "PinLs"
	MethodConnectSwarms Method = "ConnectSwarms"
	MethodSwarmPeers    Method = "SwarmPeers"
	MethodConfigKey     Method = "ConfigKey"
	MethodRepoStat      Method = "RepoStat"
	MethodResolve       Method = "Resolve"
	MethodBlockPut      Method = "BlockPut"
	MethodBlockGet      Method = "BlockGet"
	MethodPinUpdate     Method = "PinUpdate"
	MethodRepoGC        Method = "RepoGC"
	MethodDAGSize       Method = "DAGSize"
)

// ErrRepoFull is returned by MockConnector.Pin, PinUpdate and BlockPut when
// the pin or block would take the repository over its StorageMax.
var ErrRepoFull = errors.New("clustertest: mock repository full")

// MockConnector is an in-memory pincluster.IPFSConnector for tests (and only
// for tests: it stores everything in memory and fetches nothing). It also
// implements pincluster.PinUpdater, pincluster.RepoGCer and
// pincluster.DAGSizer. All methods are safe for concurrent use.
//
// It holds a pinset (recursive and direct pins) and a block store, and can
// be scripted while in use:
//   - latency: SetLatency (every call) and SetCIDLatency (calls about one CID);
//   - failures: FailCalls (the next n calls of a method), FailCID (calls of a
//     method about one CID), FailPin, and Available(false), which makes every
//     call fail with an error wrapping pincluster.ErrIPFSUnavailable;
//   - stuck or slow pins: Hang (calls about a CID block until released or
//     their ctx ends) and SlowPin (a Pin reports progress in steps);
//   - sizes: SetSize gives a DAG's size, which DAGSize reports and which
//     counts in RepoStat.RepoSize while the CID is pinned; with a StorageMax
//     a pin that does not fit fails with ErrRepoFull;
//   - observation: Calls counts calls per method and OnCall sees each one.
//
// A call runs these steps in order: count and OnCall; closed check;
// availability; the end of its ctx (an error wrapping ctx.Err()); latency; FailCalls; FailCID; SlowPin progress (Pin only);
// Hang; the effect. After Shutdown every method returns an error wrapping
// pincluster.ErrClosed, and hung calls are released with that error.
type MockConnector struct {
	done chan struct{}

	mu         sync.Mutex
	closed     bool
	id         peer.ID
	addrs      []ma.Multiaddr
	available  bool
	latency    time.Duration
	cidLatency map[cid.Cid]time.Duration
	failCalls  map[Method]*failScript
	failCID    map[methodCID]error
	hangs      map[cid.Cid]chan struct{}
	slow       map[cid.Cid]slowScript
	sizes      map[cid.Cid]uint64
	storageMax uint64
	pins       map[cid.Cid]mockPin
	blocks     map[cid.Cid][]byte
	swarm      map[peer.ID]peer.AddrInfo
	config     map[string]any
	calls      map[Method]int
	onCall     func(Method, cid.Cid)
}

type failScript struct {
	n   int // remaining; < 0: every call
	err error
}

type methodCID struct {
	m Method
	c cid.Cid
}

type slowScript struct {
	steps int
	every time.Duration
}

type mockPin struct {
	typ  pincluster.IPFSPinStatus
	name string
}

// Compile-time checks.
var (
	_ pincluster.IPFSConnector = (*MockConnector)(nil)
	_ pincluster.PinUpdater    = (*MockConnector)(nil)
	_ pincluster.RepoGCer      = (*MockConnector)(nil)
	_ pincluster.DAGSizer      = (*MockConnector)(nil)
)

// MockOption configures a MockConnector at construction.
type MockOption func(*MockConnector)

// MockID sets the IPFS peer ID that ID reports. Default: a random ID.
func MockID(id peer.ID) MockOption { return func(m *MockConnector) { m.id = id } }

// MockAddrs sets the addresses that ID reports. Default:
// /ip4/127.0.0.1/tcp/4001.
func MockAddrs(addrs ...ma.Multiaddr) MockOption {
	return func(m *MockConnector) { m.addrs = slices.Clone(addrs) }
}

// MockStorageMax sets RepoStat's StorageMax in bytes; pins and blocks that
// would exceed it fail with ErrRepoFull. Default: 0, no limit (RepoStat
// then reports 10 GB, Kubo's default).
func MockStorageMax(n uint64) MockOption { return func(m *MockConnector) { m.storageMax = n } }

// MockLatency sets the delay added to every call. Default: 0.
func MockLatency(d time.Duration) MockOption { return func(m *MockConnector) { m.latency = d } }

// NewMockConnector returns an available, empty MockConnector.
func NewMockConnector(opts ...MockOption) *MockConnector {
	m := &MockConnector{
		done:       make(chan struct{}),
		available:  true,
		cidLatency: map[cid.Cid]time.Duration{},
		failCalls:  map[Method]*failScript{},
		failCID:    map[methodCID]error{},
		hangs:      map[cid.Cid]chan struct{}{},
		slow:       map[cid.Cid]slowScript{},
		sizes:      map[cid.Cid]uint64{},
		pins:       map[cid.Cid]mockPin{},
		blocks:     map[cid.Cid][]byte{},
		swarm:      map[peer.ID]peer.AddrInfo{},
		config:     map[string]any{},
		calls:      map[Method]int{},
	}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	if m.id == "" {
		m.id = randomPeerID()
	}
	if m.addrs == nil {
		m.addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}
	}
	return m
}

func randomPeerID() peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err == nil {
		if id, err := peer.IDFromPublicKey(pub); err == nil {
			return id
		}
	}
	// crypto/rand does not fail; fall back to an identity-hash ID anyway.
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	d, _ := mh.Sum(buf, mh.IDENTITY, -1)
	return peer.ID(d)
}

// --- scripting -------------------------------------------------------------

// Available switches the simulated daemon up (true, the default) or down
// (false): while down every call fails with an error wrapping
// pincluster.ErrIPFSUnavailable, and the pinset is kept.
func (m *MockConnector) Available(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.available = up
}

// SetLatency sets the delay added to every call (0: none).
func (m *MockConnector) SetLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latency = d
}

// SetCIDLatency sets a delay added to calls about c, on top of SetLatency
// (0 removes it).
func (m *MockConnector) SetCIDLatency(c cid.Cid, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d <= 0 {
		delete(m.cidLatency, c)
		return
	}
	m.cidLatency[c] = d
}

// FailCalls makes the next n calls of method fail with err (n < 0: every
// call until FailCalls(method, 0, nil) clears it).
func (m *MockConnector) FailCalls(method Method, n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == 0 || err == nil {
		delete(m.failCalls, method)
		return
	}
	m.failCalls[method] = &failScript{n: n, err: err}
}

// FailCID makes every call of method about c fail with err, until cleared
// with a nil err.
func (m *MockConnector) FailCID(method Method, c cid.Cid, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := methodCID{method, c}
	if err == nil {
		delete(m.failCID, k)
		return
	}
	m.failCID[k] = err
}

// FailPin makes every Pin of c fail with err (nil clears it).
func (m *MockConnector) FailPin(c cid.Cid, err error) { m.FailCID(MethodPin, c, err) }

// Hang makes calls about c (Pin, Unpin, PinLsCid, BlockGet, DAGSize,
// PinUpdate of either CID) block until release is called, their ctx ends,
// or the mock shuts down. release is idempotent; calls that arrive after it
// go through.
func (m *MockConnector) Hang(c cid.Cid) (release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.hangs[c]
	if !ok {
		ch = make(chan struct{})
		m.hangs[c] = ch
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.hangs[c] == ch {
				delete(m.hangs, c)
			}
			close(ch)
		})
	}
}

// SlowPin makes a Pin of c report progress steps times, one report every
// every (after the latency, before a Hang), with Blocks counting up to steps
// and Bytes up to c's size; steps <= 0 clears it.
func (m *MockConnector) SlowPin(c cid.Cid, steps int, every time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if steps <= 0 {
		delete(m.slow, c)
		return
	}
	m.slow[c] = slowScript{steps: steps, every: every}
}

// SetSize sets the DAG size of c in bytes: DAGSize reports it and RepoStat
// counts it while c is pinned.
func (m *MockConnector) SetSize(c cid.Cid, size uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sizes[c] = size
}

// SetStorageMax changes StorageMax (see MockStorageMax).
func (m *MockConnector) SetStorageMax(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.storageMax = n
}

// SetConfig sets a value that ConfigKey returns for key.
func (m *MockConnector) SetConfig(key string, value any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.config[key] = value
}

// OnCall sets a function called synchronously at the start of every call
// with the method and the first CID it is about (cid.Undef for calls
// without one), before any scripted behaviour. It runs outside the mock's
// lock, so it may call the mock's methods (e.g. script a failure for the
// call it observes). nil removes it.
func (m *MockConnector) OnCall(fn func(method Method, c cid.Cid)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onCall = fn
}

// Calls returns how many times method has been called (failed calls
// included).
func (m *MockConnector) Calls(method Method) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// ResetCalls sets every call count to zero.
func (m *MockConnector) ResetCalls() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.calls)
}

// PinStatus returns how c is pinned (IPFSPinStatusUnpinned when it is
// not), bypassing scripts and counters.
func (m *MockConnector) PinStatus(c cid.Cid) pincluster.IPFSPinStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pins[c]; ok {
		return p.typ
	}
	return pincluster.IPFSPinStatusUnpinned
}

// PinCount returns the number of pins, bypassing scripts and counters.
func (m *MockConnector) PinCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pins)
}

// PinnedCIDs returns the pinned CIDs, sorted, bypassing scripts and
// counters.
func (m *MockConnector) PinnedCIDs() []cid.Cid {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedCIDs(maps.Keys(m.pins))
}

func sortedCIDs(seq iter.Seq[cid.Cid]) []cid.Cid {
	out := slices.Collect(seq)
	slices.SortFunc(out, func(a, b cid.Cid) int { return cmp.Compare(a.KeyString(), b.KeyString()) })
	return out
}

// --- call machinery --------------------------------------------------------

// enter runs the common steps of a call about cs (may be empty): count,
// hook, closed, availability, latency, failures, hang.
func (m *MockConnector) enter(ctx context.Context, method Method, cs ...cid.Cid) error {
	if err := m.pre(ctx, method, cs...); err != nil {
		return err
	}
	return m.hang(ctx, method, cs...)
}

// pre runs the steps before SlowPin progress.
func (m *MockConnector) pre(ctx context.Context, method Method, cs ...cid.Cid) error {
	first := cid.Undef
	if len(cs) > 0 {
		first = cs[0]
	}
	m.mu.Lock()
	m.calls[method]++
	hook := m.onCall
	m.mu.Unlock()
	if hook != nil {
		hook(method, first)
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("clustertest: mock %s: %w", method, pincluster.ErrClosed)
	}
	if !m.available {
		m.mu.Unlock()
		return fmt.Errorf("clustertest: mock %s: %w", method, pincluster.ErrIPFSUnavailable)
	}
	if err := ctx.Err(); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("clustertest: mock %s: %w", method, err)
	}
	delay := m.latency
	for _, c := range cs {
		delay += m.cidLatency[c]
	}
	m.mu.Unlock()

	if err := m.sleep(ctx, method, delay); err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.failCalls[method]; f != nil {
		err := f.err
		if f.n > 0 {
			f.n--
			if f.n == 0 {
				delete(m.failCalls, method)
			}
		}
		return fmt.Errorf("clustertest: mock %s: %w", method, err)
	}
	for _, c := range cs {
		if err := m.failCID[methodCID{method, c}]; err != nil {
			return fmt.Errorf("clustertest: mock %s %s: %w", method, c, err)
		}
	}
	return nil
}

// hang blocks while one of cs is hung.
func (m *MockConnector) hang(ctx context.Context, method Method, cs ...cid.Cid) error {
	for _, c := range cs {
		m.mu.Lock()
		ch := m.hangs[c]
		m.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("clustertest: mock %s %s: %w", method, c, ctx.Err())
		case <-m.done:
			return fmt.Errorf("clustertest: mock %s %s: %w", method, c, pincluster.ErrClosed)
		}
	}
	return nil
}

// sleep waits d, or fails when ctx ends or the mock shuts down.
func (m *MockConnector) sleep(ctx context.Context, method Method, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("clustertest: mock %s: %w", method, ctx.Err())
	case <-m.done:
		return fmt.Errorf("clustertest: mock %s: %w", method, pincluster.ErrClosed)
	}
}

// gone reports the error of a call whose effect would land after Shutdown.
func (m *MockConnector) goneLocked(method Method) error {
	if m.closed {
		return fmt.Errorf("clustertest: mock %s: %w", method, pincluster.ErrClosed)
	}
	return nil
}

// repoSizeLocked is the bytes used: stored blocks plus the sizes of pinned
// DAGs.
func (m *MockConnector) repoSizeLocked() uint64 {
	var n uint64
	for _, b := range m.blocks {
		n += uint64(len(b))
	}
	for c := range m.pins {
		n += m.sizes[c]
	}
	return n
}

func (m *MockConnector) fitsLocked(extra uint64) bool {
	return m.storageMax == 0 || m.repoSizeLocked()+extra <= m.storageMax
}

// --- IPFSConnector ---------------------------------------------------------

// ID returns the configured peer ID and addresses.
func (m *MockConnector) ID(ctx context.Context) (pincluster.IPFSID, error) {
	if err := m.enter(ctx, MethodID); err != nil {
		return pincluster.IPFSID{Error: err.Error()}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return pincluster.IPFSID{ID: m.id, Addresses: slices.Clone(m.addrs)}, nil
}

// Pin pins pin.Cid: directly when MaxDepth is 0 (a recursive pin stays
// recursive), recursively otherwise. It records the origins as swarm peers,
// reports SlowPin progress, and fails with ErrRepoFull when the DAG's size
// does not fit under StorageMax.
func (m *MockConnector) Pin(ctx context.Context, pin pincluster.Pin, progress func(pincluster.PinProgress)) error {
	if !pin.Cid.Defined() {
		return fmt.Errorf("clustertest: mock Pin: %w", pincluster.ErrInvalidCID)
	}
	if err := m.pre(ctx, MethodPin, pin.Cid); err != nil {
		return err
	}
	m.mu.Lock()
	script, slow := m.slow[pin.Cid]
	size := m.sizes[pin.Cid]
	m.mu.Unlock()
	if slow {
		for i := 1; i <= script.steps; i++ {
			if err := m.sleep(ctx, MethodPin, script.every); err != nil {
				return err
			}
			p := pincluster.PinProgress{Blocks: uint64(i), Bytes: size * uint64(i) / uint64(script.steps)}
			if progress != nil {
				progress(p)
			}
		}
	}
	if err := m.hang(ctx, MethodPin, pin.Cid); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.goneLocked(MethodPin); err != nil {
		return err
	}
	typ := pincluster.IPFSPinStatusRecursive
	if pin.MaxDepth == 0 {
		typ = pincluster.IPFSPinStatusDirect
	}
	old, had := m.pins[pin.Cid]
	if !had && !m.fitsLocked(size) {
		return fmt.Errorf("clustertest: mock Pin %s: %w", pin.Cid, ErrRepoFull)
	}
	if had && old.typ == pincluster.IPFSPinStatusRecursive {
		typ = old.typ
	}
	m.pins[pin.Cid] = mockPin{typ: typ, name: pin.Name}
	if infos, err := peer.AddrInfosFromP2pAddrs(pin.Origins...); err == nil {
		for _, pi := range infos {
			m.swarm[pi.ID] = pi
		}
	}
	if progress != nil && !slow {
		progress(pincluster.PinProgress{Blocks: 1, Bytes: size})
	}
	return nil
}

// Unpin removes c's pin; pincluster.ErrNotPinned when there is none.
func (m *MockConnector) Unpin(ctx context.Context, c cid.Cid) error {
	if err := m.enter(ctx, MethodUnpin, c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.goneLocked(MethodUnpin); err != nil {
		return err
	}
	if _, ok := m.pins[c]; !ok {
		return fmt.Errorf("clustertest: mock Unpin %s: %w", c, pincluster.ErrNotPinned)
	}
	delete(m.pins, c)
	return nil
}

// PinLsCid reports how pin.Cid is pinned (never Indirect: the mock knows no
// DAG structure).
func (m *MockConnector) PinLsCid(ctx context.Context, pin pincluster.Pin) (pincluster.IPFSPinStatus, error) {
	if err := m.enter(ctx, MethodPinLsCid, pin.Cid); err != nil {
		return pincluster.IPFSPinStatusError, err
	}
	return m.PinStatus(pin.Cid), nil
}

// PinLs streams a snapshot of the pins whose type is in types (none: direct
// and recursive), sorted by CID bytes. The call's steps (latency, failures)
// run when iteration starts; a failure is yielded as the only element.
func (m *MockConnector) PinLs(ctx context.Context, types ...pincluster.IPFSPinStatus) iter.Seq2[pincluster.IPFSPinInfo, error] {
	return func(yield func(pincluster.IPFSPinInfo, error) bool) {
		if err := m.enter(ctx, MethodPinLs); err != nil {
			yield(pincluster.IPFSPinInfo{}, err)
			return
		}
		want := types
		if len(want) == 0 {
			want = []pincluster.IPFSPinStatus{pincluster.IPFSPinStatusDirect, pincluster.IPFSPinStatusRecursive}
		}
		m.mu.Lock()
		var out []pincluster.IPFSPinInfo
		for c, p := range m.pins {
			if slices.Contains(want, p.typ) {
				out = append(out, pincluster.IPFSPinInfo{Cid: c, Type: p.typ, Name: p.name})
			}
		}
		m.mu.Unlock()
		slices.SortFunc(out, func(a, b pincluster.IPFSPinInfo) int { return cmp.Compare(a.Cid.KeyString(), b.Cid.KeyString()) })
		for _, info := range out {
			if err := ctx.Err(); err != nil {
				yield(pincluster.IPFSPinInfo{}, fmt.Errorf("clustertest: mock PinLs: %w", err))
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// ConnectSwarms records the peers; SwarmPeers lists them.
func (m *MockConnector) ConnectSwarms(ctx context.Context, peers []peer.AddrInfo) error {
	if err := m.enter(ctx, MethodConnectSwarms); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pi := range peers {
		m.swarm[pi.ID] = pi
	}
	return nil
}

// SwarmPeers lists the peers recorded by ConnectSwarms and Pin origins,
// sorted.
func (m *MockConnector) SwarmPeers(ctx context.Context) ([]peer.ID, error) {
	if err := m.enter(ctx, MethodSwarmPeers); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.swarm)), nil
}

// ConfigKey returns a value set with SetConfig; "Datastore.StorageMax"
// defaults to the StorageMax in bytes as a decimal string. Other keys give
// an error wrapping pincluster.ErrNotFound.
func (m *MockConnector) ConfigKey(ctx context.Context, key string) (any, error) {
	if err := m.enter(ctx, MethodConfigKey); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.config[key]; ok {
		return v, nil
	}
	if key == "Datastore.StorageMax" {
		return fmt.Sprintf("%d", m.storageMaxLocked()), nil
	}
	return nil, fmt.Errorf("clustertest: mock ConfigKey %q: %w", key, pincluster.ErrNotFound)
}

func (m *MockConnector) storageMaxLocked() uint64 {
	if m.storageMax == 0 {
		return 10_000_000_000
	}
	return m.storageMax
}

// RepoStat reports the stored blocks' bytes plus the SetSize sizes of
// pinned CIDs, the StorageMax, and the number of pins and blocks.
func (m *MockConnector) RepoStat(ctx context.Context) (pincluster.RepoStat, error) {
	if err := m.enter(ctx, MethodRepoStat); err != nil {
		return pincluster.RepoStat{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return pincluster.RepoStat{
		RepoSize:   m.repoSizeLocked(),
		StorageMax: m.storageMaxLocked(),
		NumObjects: uint64(len(m.blocks) + len(m.pins)),
	}, nil
}

// Resolve accepts a bare CID or /ipfs/<cid> and returns the CID; paths
// below a CID give an error wrapping pincluster.ErrNotFound.
func (m *MockConnector) Resolve(ctx context.Context, path string) (cid.Cid, error) {
	if err := m.enter(ctx, MethodResolve); err != nil {
		return cid.Undef, err
	}
	s := strings.TrimPrefix(path, "/ipfs/")
	first, rest, _ := strings.Cut(s, "/")
	c, err := cid.Decode(first)
	if err != nil {
		return cid.Undef, fmt.Errorf("clustertest: mock Resolve %q: %w", path, pincluster.ErrInvalidCID)
	}
	if rest != "" {
		return cid.Undef, fmt.Errorf("clustertest: mock Resolve %q: paths are not supported: %w", path, pincluster.ErrNotFound)
	}
	return c, nil
}

// BlockPut stores data under the CID built with prefix (CIDv1 raw
// sha2-256 when prefix.Version is 0).
func (m *MockConnector) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	if err := m.enter(ctx, MethodBlockPut); err != nil {
		return cid.Undef, err
	}
	if prefix.Version == 0 {
		prefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}
	}
	c, err := prefix.Sum(data)
	if err != nil {
		return cid.Undef, fmt.Errorf("clustertest: mock BlockPut: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.goneLocked(MethodBlockPut); err != nil {
		return cid.Undef, err
	}
	if _, ok := m.blocks[c]; !ok {
		if !m.fitsLocked(uint64(len(data))) {
			return cid.Undef, fmt.Errorf("clustertest: mock BlockPut %s: %w", c, ErrRepoFull)
		}
		m.blocks[c] = slices.Clone(data)
	}
	return c, nil
}

// BlockGet returns a block stored with BlockPut; pincluster.ErrNotFound
// otherwise.
func (m *MockConnector) BlockGet(ctx context.Context, c cid.Cid) ([]byte, error) {
	if err := m.enter(ctx, MethodBlockGet, c); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[c]
	if !ok {
		return nil, fmt.Errorf("clustertest: mock BlockGet %s: %w", c, pincluster.ErrNotFound)
	}
	return slices.Clone(b), nil
}

// DAGSize returns the size set with SetSize, else the length of a block
// stored under c, else an error wrapping pincluster.ErrNotFound.
func (m *MockConnector) DAGSize(ctx context.Context, c cid.Cid) (uint64, error) {
	if err := m.enter(ctx, MethodDAGSize, c); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.sizes[c]; ok {
		return n, nil
	}
	if b, ok := m.blocks[c]; ok {
		return uint64(len(b)), nil
	}
	return 0, fmt.Errorf("clustertest: mock DAGSize %s: %w", c, pincluster.ErrNotFound)
}

// PinUpdate pins to recursively and, with unpin, removes from's pin. from
// must be pinned recursively, else the error wraps pincluster.ErrNotPinned.
func (m *MockConnector) PinUpdate(ctx context.Context, from, to cid.Cid, unpin bool) error {
	if err := m.enter(ctx, MethodPinUpdate, from, to); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.goneLocked(MethodPinUpdate); err != nil {
		return err
	}
	if p, ok := m.pins[from]; !ok || p.typ != pincluster.IPFSPinStatusRecursive {
		return fmt.Errorf("clustertest: mock PinUpdate %s: %w", from, pincluster.ErrNotPinned)
	}
	if _, had := m.pins[to]; !had && !m.fitsLocked(m.sizes[to]) {
		return fmt.Errorf("clustertest: mock PinUpdate %s: %w", to, ErrRepoFull)
	}
	name := m.pins[from].name
	m.pins[to] = mockPin{typ: pincluster.IPFSPinStatusRecursive, name: name}
	if unpin && !from.Equals(to) {
		delete(m.pins, from)
	}
	return nil
}

// RepoGC removes the stored blocks that are not pinned and reports them.
func (m *MockConnector) RepoGC(ctx context.Context) (pincluster.RepoGC, error) {
	if err := m.enter(ctx, MethodRepoGC); err != nil {
		return pincluster.RepoGC{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var res pincluster.RepoGC
	for _, c := range sortedCIDs(maps.Keys(m.blocks)) {
		if _, pinned := m.pins[c]; pinned {
			continue
		}
		res.Removed = append(res.Removed, c)
		res.RemovedCount++
		res.FreedBytes += uint64(len(m.blocks[c]))
		delete(m.blocks, c)
	}
	return res, nil
}

// Shutdown releases hung and sleeping calls (they fail with
// pincluster.ErrClosed) and makes every later call fail the same way. A
// second Shutdown returns an error wrapping pincluster.ErrClosed.
func (m *MockConnector) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("clustertest: mock Shutdown: %w", pincluster.ErrClosed)
	}
	m.closed = true
	close(m.done)
	return nil
}

// reopen makes a shut-down mock usable again, keeping its pins: a daemon
// that outlives the cluster peer that was using it (clustertest's Restart).
func (m *MockConnector) reopen() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.closed = false
		m.done = make(chan struct{})
	}
}
