package rest

import (
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
)

// The JSON forms of the REST API: IPFS Cluster v1.1.6's documents field by
// field (its api package, encoded with encoding/json): snake_case names,
// CIDs, peer IDs and multiaddrs as strings, pin type, pin mode and tracker
// status as names, and the same null / [] / omitted choices, so that
// ipfs-cluster-ctl, its Go client and the JS client decode them.
// golden_test.go checks them against testdata/golden.

// errorJSON is IPFS Cluster's error object (api.Error).
type errorJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type ipfsIDJSON struct {
	ID        string   `json:"id,omitempty"`
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

// addrStrings returns the multiaddrs as strings, [] when there are none.
func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a != nil {
			out = append(out, a.String())
		}
	}
	return out
}

// addrStringsOrNull is addrStrings with nil (JSON null) for no addresses.
func addrStringsOrNull(as []ma.Multiaddr) []string {
	if len(as) == 0 {
		return nil
	}
	return addrStrings(as)
}

// p2pAddrStrings returns the addresses of p as IPFS Cluster lists them:
// each with its /p2p/<p> suffix; nil (JSON null) when there are none.
func p2pAddrStrings(p peer.ID, as []ma.Multiaddr) []string {
	var out []string
	for _, a := range as {
		if a == nil {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err != nil && p != "" {
			if c, err := ma.NewComponent("p2p", p.String()); err == nil {
				a = a.Encapsulate(c)
			}
		}
		out = append(out, a.String())
	}
	return out
}

// peerStrings returns the peers as strings, [] when there are none.
func peerStrings(ps []peer.ID) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// peerStringsOrNull is peerStrings with nil (JSON null) for no peers.
func peerStringsOrNull(ps []peer.ID) []string {
	if len(ps) == 0 {
		return nil
	}
	return peerStrings(ps)
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
		Addresses:             p2pAddrStrings(id.ID, id.Addresses),
		ClusterPeers:          peerStringsOrNull(id.ClusterPeers),
		ClusterPeersAddresses: addrStringsOrNull(id.ClusterPeersAddresses),
		Version:               id.Version,
		Commit:                id.Commit,
		RPCProtocolVersion:    id.RPCProtocolVersion,
		Error:                 id.Error,
		PeerName:              id.PeerName,
		IPFS: ipfsIDJSON{
			Addresses: p2pAddrStrings(id.IPFS.ID, id.IPFS.Addresses),
			Error:     id.IPFS.Error,
		},
	}
	if id.IPFS.ID != "" {
		j.IPFS.ID = id.IPFS.ID.String()
	}
	if len(id.ClusterPeers) > 0 && j.ClusterPeersAddresses == nil {
		j.ClusterPeersAddresses = []string{} // a peer that answered: [] as upstream
	}
	return j
}

// pinJSON is api.Pin: its PinOptions first, then the pin's own fields.
type pinJSON struct {
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
	Cid             string            `json:"cid"`
	Type            string            `json:"type"`
	Allocations     []string          `json:"allocations"`
	MaxDepth        int               `json:"max_depth"`
	Reference       *string           `json:"reference"`
	Timestamp       time.Time         `json:"timestamp"`
}

func toPinJSON(p pincluster.Pin) pinJSON {
	md := p.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return pinJSON{
		Cid:             cidString(p.Cid),
		Type:            p.Type.String(),
		Allocations:     peerStrings(p.Allocations),
		MaxDepth:        p.MaxDepth,
		Reference:       cidPtr(p.Reference),
		ReplicationMin:  p.ReplicationMin,
		ReplicationMax:  p.ReplicationMax,
		Name:            p.Name,
		Mode:            p.Mode.String(),
		ShardSize:       p.ShardSize,
		UserAllocations: peerStringsOrNull(p.UserAllocations),
		ExpireAt:        p.ExpireAt,
		Metadata:        md,
		PinUpdate:       cidPtr(p.PinUpdate),
		Origins:         addrStrings(p.Origins),
		Timestamp:       p.Timestamp,
	}
}

// pinInfoShortJSON is api.PinInfoShort: the IPFS fields are omitted when
// empty.
type pinInfoShortJSON struct {
	PeerName          string    `json:"peername"`
	IPFSPeerID        string    `json:"ipfs_peer_id,omitempty"`
	IPFSPeerAddresses []string  `json:"ipfs_peer_addresses,omitempty"`
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
			IPFSPeerAddresses: p2pAddrStrings(s.IPFS, s.IPFSAddresses),
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

// addedJSON is api.AddedOutput.
type addedJSON struct {
	Name        string   `json:"name"`
	Cid         string   `json:"cid"`
	Bytes       uint64   `json:"bytes,omitempty"`
	Size        uint64   `json:"size,omitempty"`
	Allocations []string `json:"allocations,omitempty"`
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

// connectGraphJSON is api.ConnectGraph: every map is present ({} when
// empty), keyed by peer ID strings.
type connectGraphJSON struct {
	ClusterID         string              `json:"cluster_id"`
	IDtoPeername      map[string]string   `json:"id_to_peername"`
	IPFSLinks         map[string][]string `json:"ipfs_links"`
	ClusterLinks      map[string][]string `json:"cluster_links"`
	ClusterTrustLinks map[string]bool     `json:"cluster_trust_links"`
	ClustertoIPFS     map[string]string   `json:"cluster_to_ipfs"`
}

func toConnectGraphJSON(g pincluster.ConnectGraph) connectGraphJSON {
	j := connectGraphJSON{
		ClusterID:         g.ClusterID.String(),
		IDtoPeername:      make(map[string]string, len(g.IDtoPeername)),
		IPFSLinks:         make(map[string][]string, len(g.IPFSLinks)),
		ClusterLinks:      make(map[string][]string, len(g.ClusterLinks)),
		ClusterTrustLinks: make(map[string]bool, len(g.ClusterTrustLinks)),
		ClustertoIPFS:     make(map[string]string, len(g.ClustertoIPFS)),
	}
	for p, n := range g.IDtoPeername {
		j.IDtoPeername[p.String()] = n
	}
	for p, l := range g.IPFSLinks {
		j.IPFSLinks[p.String()] = peerStrings(l)
	}
	for p, l := range g.ClusterLinks {
		j.ClusterLinks[p.String()] = peerStrings(l)
	}
	for p, t := range g.ClusterTrustLinks {
		j.ClusterTrustLinks[p.String()] = t
	}
	for p, i := range g.ClustertoIPFS {
		j.ClustertoIPFS[p.String()] = i.String()
	}
	return j
}

// bandwidthJSON is api.Bandwidth: one protocol's traffic.
type bandwidthJSON struct {
	TotalIn  int64   `json:"total_in"`
	TotalOut int64   `json:"total_out"`
	RateIn   float64 `json:"rate_in"`
	RateOut  float64 `json:"rate_out"`
}

// ipfsRepoGCJSON is api.IPFSRepoGC: one removed block.
type ipfsRepoGCJSON struct {
	Key   string `json:"key"`
	Error string `json:"error,omitempty"`
}

// repoGCJSON is api.RepoGC: one peer's collection.
type repoGCJSON struct {
	Peer     string           `json:"peer"`
	PeerName string           `json:"peername"`
	Keys     []ipfsRepoGCJSON `json:"keys"`
	Error    string           `json:"error,omitempty"`
}

// globalRepoGCJSON is api.GlobalRepoGC.
type globalRepoGCJSON struct {
	PeerMap map[string]repoGCJSON `json:"peer_map"`
}

func toGlobalRepoGCJSON(g pincluster.GlobalRepoGC) globalRepoGCJSON {
	j := globalRepoGCJSON{PeerMap: make(map[string]repoGCJSON, len(g.PeerMap))}
	for p, r := range g.PeerMap {
		e := repoGCJSON{Peer: p.String(), PeerName: r.PeerName, Keys: make([]ipfsRepoGCJSON, 0, len(r.Keys)), Error: r.Error}
		for _, k := range r.Keys {
			e.Keys = append(e.Keys, ipfsRepoGCJSON{Key: cidString(k)})
		}
		j.PeerMap[p.String()] = e
	}
	return j
}
