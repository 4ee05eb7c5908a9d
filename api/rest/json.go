package rest

import (
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
)

// The JSON forms of the REST API: IPFS Cluster's field names (snake_case),
// CIDs as plain strings as IPFS Cluster ≥ 1.0 and its JS client expect.

// errorJSON is IPFS Cluster's error object.
type errorJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type ipfsIDJSON struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
	Error     string   `json:"error"`
}

type idJSON struct {
	ID                    string     `json:"id"`
	Addresses             []string   `json:"addresses"`
	ClusterPeers          []string   `json:"cluster_peers"`
	ClusterPeersAddresses []string   `json:"cluster_peers_addresses"`
	Version               string     `json:"version"`
	Commit                string     `json:"commit"`
	RPCProtocolVersion    string     `json:"rpc_protocol_version"`
	Error                 string     `json:"error"`
	IPFS                  ipfsIDJSON `json:"ipfs"`
	PeerName              string     `json:"peername"`
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a != nil {
			out = append(out, a.String())
		}
	}
	return out
}

func peerStrings(ps []peer.ID) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func cidString(c cid.Cid) string {
	if !c.Defined() {
		return ""
	}
	return c.String()
}

func cidPtr(c cid.Cid) *string {
	if !c.Defined() {
		return nil
	}
	s := c.String()
	return &s
}

func toIDJSON(id pincluster.ID) idJSON {
	j := idJSON{
		ID:                    id.ID.String(),
		Addresses:             addrStrings(id.Addresses),
		ClusterPeers:          peerStrings(id.ClusterPeers),
		ClusterPeersAddresses: []string{},
		Version:               id.Version,
		Commit:                id.Commit,
		RPCProtocolVersion:    id.RPCProtocolVersion,
		Error:                 id.Error,
		PeerName:              id.PeerName,
		IPFS: ipfsIDJSON{
			Addresses: addrStrings(id.IPFS.Addresses),
			Error:     id.IPFS.Error,
		},
	}
	if id.IPFS.ID != "" {
		j.IPFS.ID = id.IPFS.ID.String()
	}
	return j
}

type pinJSON struct {
	Cid             string            `json:"cid"`
	Type            uint64            `json:"type"`
	Allocations     []string          `json:"allocations"`
	MaxDepth        int               `json:"max_depth"`
	Reference       *string           `json:"reference"`
	ReplicationMin  int               `json:"replication_factor_min"`
	ReplicationMax  int               `json:"replication_factor_max"`
	Name            string            `json:"name"`
	Mode            string            `json:"mode"`
	ShardSize       uint64            `json:"shard_size"`
	UserAllocations []string          `json:"user_allocations"`
	ExpireAt        time.Time         `json:"expire_at"`
	Metadata        map[string]string `json:"metadata"`
	PinUpdate       *string           `json:"pin_update"`
	Origins         []string          `json:"origins"`
	Timestamp       time.Time         `json:"timestamp"`
}

func toPinJSON(p pincluster.Pin) pinJSON {
	md := p.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return pinJSON{
		Cid:             cidString(p.Cid),
		Type:            uint64(p.Type),
		Allocations:     peerStrings(p.Allocations),
		MaxDepth:        p.MaxDepth,
		Reference:       cidPtr(p.Reference),
		ReplicationMin:  p.ReplicationMin,
		ReplicationMax:  p.ReplicationMax,
		Name:            p.Name,
		Mode:            p.Mode.String(),
		ShardSize:       p.ShardSize,
		UserAllocations: peerStrings(p.UserAllocations),
		ExpireAt:        p.ExpireAt,
		Metadata:        md,
		PinUpdate:       cidPtr(p.PinUpdate),
		Origins:         addrStrings(p.Origins),
		Timestamp:       p.Timestamp,
	}
}

type pinInfoShortJSON struct {
	PeerName          string    `json:"peername"`
	IPFSPeerID        string    `json:"ipfs_peer_id"`
	IPFSPeerAddresses []string  `json:"ipfs_peer_addresses"`
	Status            string    `json:"status"`
	Timestamp         time.Time `json:"timestamp"`
	Error             string    `json:"error"`
	AttemptCount      int       `json:"attempt_count"`
	PriorityPin       bool      `json:"priority_pin"`
}

type globalPinInfoJSON struct {
	Cid         string                      `json:"cid"`
	Name        string                      `json:"name"`
	Allocations []string                    `json:"allocations"`
	Origins     []string                    `json:"origins"`
	Created     time.Time                   `json:"created"`
	Metadata    map[string]string           `json:"metadata"`
	PeerMap     map[string]pinInfoShortJSON `json:"peer_map"`
}

func toGlobalPinInfoJSON(g pincluster.GlobalPinInfo) globalPinInfoJSON {
	j := globalPinInfoJSON{
		Cid:         cidString(g.Cid),
		Name:        g.Name,
		Allocations: peerStrings(g.Allocations),
		Origins:     addrStrings(g.Origins),
		Created:     g.Created,
		Metadata:    g.Metadata,
		PeerMap:     make(map[string]pinInfoShortJSON, len(g.PeerMap)),
	}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
	}
	for p, s := range g.PeerMap {
		e := pinInfoShortJSON{
			PeerName:          s.PeerName,
			IPFSPeerAddresses: addrStrings(s.IPFSAddresses),
			Status:            s.Status.String(),
			Timestamp:         s.TS,
			Error:             s.Error,
			AttemptCount:      s.AttemptCount,
			PriorityPin:       s.PriorityPin,
		}
		if s.IPFS != "" {
			e.IPFSPeerID = s.IPFS.String()
		}
		j.PeerMap[p.String()] = e
	}
	return j
}

type addedJSON struct {
	Name        string   `json:"name"`
	Cid         string   `json:"cid"`
	Bytes       uint64   `json:"bytes"`
	Size        uint64   `json:"size"`
	Allocations []string `json:"allocations"`
}

type metricJSON struct {
	Name          string `json:"name"`
	Peer          string `json:"peer"`
	Value         string `json:"value"`
	Expire        int64  `json:"expire"`
	Valid         bool   `json:"valid"`
	Weight        int64  `json:"weight"`
	Partitionable bool   `json:"partitionable"`
	ReceivedAt    int64  `json:"received_at"`
}

func toMetricJSON(m pincluster.Metric, now time.Time) metricJSON {
	j := metricJSON{
		Name: m.Name, Peer: m.Peer.String(), Value: m.Value, Valid: m.Valid(now),
		Weight: m.Weight, Partitionable: m.Partitionable,
	}
	if !m.ValidUntil.IsZero() {
		j.Expire = m.ValidUntil.UnixNano()
	}
	if !m.ReceivedAt.IsZero() {
		j.ReceivedAt = m.ReceivedAt.UnixNano()
	}
	return j
}

type alertJSON struct {
	metricJSON
	TriggeredAt time.Time `json:"triggered_at"`
}

type versionJSON struct {
	Version string `json:"version"`
}

type tokenJSON struct {
	Token string `json:"token"`
}
