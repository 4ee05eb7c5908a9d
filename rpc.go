package pincluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster/internal/rpc"
)

// Peer-to-peer RPC methods. ID is open to anyone; everything that reveals
// or changes the pinset needs trust (Consensus.IsTrustedPeer).
const (
	rpcID         = "Cluster.ID"
	rpcStatusMany = "Tracker.StatusMany"
	rpcRecover    = "Tracker.Recover"
	rpcRecoverAll = "Tracker.RecoverAll"
	rpcLinks      = "Cluster.Links"
	rpcRepoGC     = "IPFS.RepoGC"
)

// maxStatusBatch bounds the CIDs of one StatusMany call.
const maxStatusBatch = 4 * statusChunk

// rpcErrors are the sentinels that keep their identity across the wire.
var rpcErrors = map[string]error{
	"pincluster/not-found":   ErrNotFound,
	"pincluster/closed":      ErrClosed,
	"pincluster/invalid-pin": ErrInvalidPin,
	"pincluster/queue-full":  ErrQueueFull,
	"pincluster/no-leader":   ErrNoLeader,
	"pincluster/permission":  ErrPermission,
}

var clusterNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type pinInfoWire struct {
	Cid      []byte            `cbor:"1,keyasint"`
	Name     string            `cbor:"2,keyasint,omitempty"`
	Peer     []byte            `cbor:"3,keyasint,omitempty"`
	Allocs   [][]byte          `cbor:"4,keyasint,omitempty"`
	Origins  [][]byte          `cbor:"5,keyasint,omitempty"`
	Created  int64             `cbor:"6,keyasint,omitempty"`
	Metadata map[string]string `cbor:"7,keyasint,omitempty"`
	PeerName string            `cbor:"8,keyasint,omitempty"`
	IPFS     []byte            `cbor:"9,keyasint,omitempty"`
	IPFSAddr [][]byte          `cbor:"10,keyasint,omitempty"`
	Status   int               `cbor:"11,keyasint"`
	TS       int64             `cbor:"12,keyasint,omitempty"`
	Error    string            `cbor:"13,keyasint,omitempty"`
	Attempts int               `cbor:"14,keyasint,omitempty"`
	Priority bool              `cbor:"15,keyasint,omitempty"`
}

func addrsToBytes(as []ma.Multiaddr) [][]byte {
	out := make([][]byte, 0, len(as))
	for _, a := range as {
		out = append(out, a.Bytes())
	}
	return out
}

func bytesToAddrs(bs [][]byte) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, b := range bs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func toPinInfoWire(pi PinInfo) pinInfoWire {
	return pinInfoWire{
		Cid: cidBytes(pi.Cid), Name: pi.Name, Peer: []byte(pi.Peer), Allocs: peersToBytes(pi.Allocations),
		Origins: addrsToBytes(pi.Origins), Created: timeToNanos(pi.Created), Metadata: pi.Metadata,
		PeerName: pi.PeerName, IPFS: []byte(pi.IPFS), IPFSAddr: addrsToBytes(pi.IPFSAddresses),
		Status: int(pi.Status), TS: timeToNanos(pi.TS), Error: pi.Error, Attempts: pi.AttemptCount, Priority: pi.PriorityPin,
	}
}

func fromPinInfoWire(w pinInfoWire) (PinInfo, error) {
	c, err := bytesToCid("cid", w.Cid)
	if err != nil {
		return PinInfo{}, err
	}
	allocs, err := bytesToPeers("allocations", w.Allocs)
	if err != nil {
		return PinInfo{}, err
	}
	pi := PinInfo{Cid: c, Name: w.Name, Peer: peer.ID(w.Peer), Allocations: allocs, Origins: bytesToAddrs(w.Origins),
		Created: nanosToTime(w.Created), Metadata: w.Metadata}
	pi.PeerName, pi.IPFS, pi.IPFSAddresses = w.PeerName, peer.ID(w.IPFS), bytesToAddrs(w.IPFSAddr)
	pi.Status, pi.TS, pi.Error = TrackerStatus(w.Status), nanosToTime(w.TS), w.Error
	pi.AttemptCount, pi.PriorityPin = w.Attempts, w.Priority
	return pi, nil
}

type idWire struct {
	ID        []byte   `cbor:"1,keyasint"`
	Addrs     [][]byte `cbor:"2,keyasint,omitempty"`
	Peers     [][]byte `cbor:"3,keyasint,omitempty"`
	Version   string   `cbor:"4,keyasint,omitempty"`
	Commit    string   `cbor:"5,keyasint,omitempty"`
	RPC       string   `cbor:"6,keyasint,omitempty"`
	Error     string   `cbor:"7,keyasint,omitempty"`
	IPFS      []byte   `cbor:"8,keyasint,omitempty"`
	IPFSAddrs [][]byte `cbor:"9,keyasint,omitempty"`
	IPFSError string   `cbor:"10,keyasint,omitempty"`
	PeerName  string   `cbor:"11,keyasint,omitempty"`
	PeerAddrs [][]byte `cbor:"12,keyasint,omitempty"`
}

func toIDWire(id ID) idWire {
	return idWire{ID: []byte(id.ID), Addrs: addrsToBytes(id.Addresses), Peers: peersToBytes(id.ClusterPeers),
		Version: id.Version, Commit: id.Commit, RPC: id.RPCProtocolVersion, Error: id.Error,
		IPFS: []byte(id.IPFS.ID), IPFSAddrs: addrsToBytes(id.IPFS.Addresses), IPFSError: id.IPFS.Error, PeerName: id.PeerName,
		PeerAddrs: addrsToBytes(id.ClusterPeersAddresses)}
}

func fromIDWire(w idWire) (ID, error) {
	p, err := peer.IDFromBytes(w.ID)
	if err != nil {
		return ID{}, fmt.Errorf("%w: id: %v", ErrCorrupt, err)
	}
	peers, err := bytesToPeers("cluster_peers", w.Peers)
	if err != nil {
		return ID{}, err
	}
	return ID{ID: p, Addresses: bytesToAddrs(w.Addrs), ClusterPeers: peers, ClusterPeersAddresses: bytesToAddrs(w.PeerAddrs),
		Version: w.Version, Commit: w.Commit,
		RPCProtocolVersion: w.RPC, Error: w.Error, PeerName: w.PeerName,
		IPFS: IPFSID{ID: peer.ID(w.IPFS), Addresses: bytesToAddrs(w.IPFSAddrs), Error: w.IPFSError}}, nil
}

func (c *Cluster) rpcConfig() rpc.Config {
	return rpc.Config{
		Name: c.cfg.clusterName,
		Authorize: func(p peer.ID) bool {
			return c.consensus.IsTrustedPeer(context.Background(), p)
		},
		Errors: rpcErrors,
		Logger: c.log.With("component", "rpc"),
	}
}

// rpcProtocol returns the protocol ID of the cluster's RPC.
func (c *Cluster) rpcProtocol() protocol.ID { return rpc.ProtocolID(c.cfg.clusterName) }

// startRPC serves this peer's methods and prepares the client for others'.
func (c *Cluster) startRPC() error {
	srv, err := rpc.NewServer(c.host, c.rpcConfig())
	if err != nil {
		return fmt.Errorf("rpc server: %w", err)
	}
	c.rpcServer = srv
	cli, err := rpc.NewClient(c.host, c.rpcConfig(), srv)
	if err != nil {
		return fmt.Errorf("rpc client: %w", err)
	}
	c.rpcClient = cli
	c.remote = rpcPeers{cli}

	regs := []rpcReg{
		{rpcID, rpc.Open, rpc.Handle(func(ctx context.Context, _ peer.ID, _ struct{}) (idWire, error) {
			return toIDWire(c.ID(ctx)), nil
		})},
		{rpcStatusMany, rpc.Trusted, rpc.Handle(func(ctx context.Context, _ peer.ID, req [][]byte) ([]pinInfoWire, error) {
			if len(req) > maxStatusBatch {
				return nil, fmt.Errorf("%w: %d cids in one status call, limit %d", ErrInvalidPin, len(req), maxStatusBatch)
			}
			cids := make([]cid.Cid, len(req))
			for i, b := range req {
				ci, err := bytesToCid("cid", b)
				if err != nil || !ci.Defined() {
					return nil, &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: fmt.Sprintf("entry %d", i)}
				}
				cids[i] = ci
			}
			infos, err := c.localStatusMany(ctx, cids)
			if err != nil {
				return nil, err
			}
			out := make([]pinInfoWire, len(infos))
			for i, pi := range infos {
				out[i] = toPinInfoWire(pi)
			}
			return out, nil
		})},
		{rpcRecover, rpc.Trusted, rpc.Handle(func(ctx context.Context, _ peer.ID, req []byte) (pinInfoWire, error) {
			ci, err := bytesToCid("cid", req)
			if err != nil || !ci.Defined() {
				return pinInfoWire{}, &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "recover"}
			}
			pi, err := c.tracker.Recover(ctx, ci)
			if err != nil {
				return pinInfoWire{}, err
			}
			return toPinInfoWire(pi), nil
		})},
		{rpcRecoverAll, rpc.Trusted, rpc.Handle(func(ctx context.Context, _ peer.ID, _ struct{}) (int, error) {
			n := 0
			for _, err := range c.tracker.RecoverAll(ctx) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		})},
		{rpcRepoStat, rpc.Trusted, c.repoStatHandler()},
	}
	regs = append(regs, c.graphGCHandlers()...)
	for _, r := range regs {
		if err := srv.Register(r.name, r.perm, r.h); err != nil {
			return fmt.Errorf("rpc register %s: %w", r.name, err)
		}
	}
	return nil
}

// stopRPC stops serving and calling.
func (c *Cluster) stopRPC(ctx context.Context) error {
	var errs []error
	if c.rpcClient != nil {
		errs = append(errs, c.rpcClient.Close(ctx))
	}
	if c.rpcServer != nil {
		errs = append(errs, c.rpcServer.Close(ctx))
	}
	for i, err := range errs {
		if errors.Is(err, rpc.ErrClosed) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// rpcPeers implements remotePeers over internal/rpc.
type rpcPeers struct{ cli *rpc.Client }

// wrapRPC maps the RPC layer's permission error to the root sentinel.
func wrapRPC(p peer.ID, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, rpc.ErrPermission) && !errors.Is(err, ErrPermission) {
		err = fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return &PeerError{Peer: p, Err: err}
}

func (r rpcPeers) statusMany(ctx context.Context, p peer.ID, cids []cid.Cid) ([]PinInfo, error) {
	req := make([][]byte, len(cids))
	for i, ci := range cids {
		req[i] = ci.Bytes()
	}
	ws, err := rpc.Call[[][]byte, []pinInfoWire](ctx, r.cli, p, rpcStatusMany, req)
	if err != nil {
		return nil, wrapRPC(p, err)
	}
	out := make([]PinInfo, len(ws))
	for i, w := range ws {
		if out[i], err = fromPinInfoWire(w); err != nil {
			return nil, wrapRPC(p, err)
		}
	}
	return out, nil
}

func (r rpcPeers) recover(ctx context.Context, p peer.ID, ci cid.Cid) (PinInfo, error) {
	w, err := rpc.Call[[]byte, pinInfoWire](ctx, r.cli, p, rpcRecover, ci.Bytes())
	if err != nil {
		return PinInfo{}, wrapRPC(p, err)
	}
	pi, err := fromPinInfoWire(w)
	return pi, wrapRPC(p, err)
}

func (r rpcPeers) recoverAll(ctx context.Context, p peer.ID) (int, error) {
	n, err := rpc.Call[struct{}, int](ctx, r.cli, p, rpcRecoverAll, struct{}{})
	return n, wrapRPC(p, err)
}

func (r rpcPeers) id(ctx context.Context, p peer.ID) (ID, error) {
	w, err := rpc.Call[struct{}, idWire](ctx, r.cli, p, rpcID, struct{}{})
	if err != nil {
		return ID{}, wrapRPC(p, err)
	}
	id, err := fromIDWire(w)
	return id, wrapRPC(p, err)
}
