package rest

import (
	"encoding/json"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The documents of IPFS Cluster v1.1.6's REST API as its Go client (and
// so ipfs-cluster-ctl) decodes them: the field names, JSON kinds and Go
// types of its api package (api/types.go, api/add.go), written here from
// those definitions so that a drift in ours fails without upstream's
// code. The scalar types decode as upstream's do, but strictly: where
// upstream silently maps an unknown name to a zero value (pin type, mode,
// tracker status), these refuse it.

// upCid is api.Cid: a CID string, or null for an undefined CID.
type upCid struct{ cid.Cid }

func (c *upCid) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		c.Cid = cid.Undef
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := cid.Decode(s)
	if err != nil {
		return err
	}
	c.Cid = d
	return nil
}

// upMultiaddr is api.Multiaddr: a multiaddr string (null or "" fail).
type upMultiaddr struct{ ma.Multiaddr }

func (m *upMultiaddr) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return err
	}
	m.Multiaddr = a
	return nil
}

// upPinType is api.PinType: its name.
type upPinType string

func (t *upPinType) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch s {
	case "pin", "meta-pin", "clusterdag-pin", "shard-pin":
		*t = upPinType(s)
		return nil
	}
	return fmt.Errorf("pin type %q unknown to IPFS Cluster", s)
}

// upPinMode is api.PinMode: its name.
type upPinMode string

func (m *upPinMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != "recursive" && s != "direct" {
		return fmt.Errorf("pin mode %q unknown to IPFS Cluster", s)
	}
	*m = upPinMode(s)
	return nil
}

// upTrackerStatus is api.TrackerStatus: one of its names.
type upTrackerStatus string

func (st *upTrackerStatus) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch s {
	case "undefined", "cluster_error", "pin_error", "unpin_error", "error", "pinned", "pinning",
		"unpinning", "unpinned", "remote", "pin_queued", "unpin_queued", "queued", "sharded",
		"unexpectedly_unpinned":
		*st = upTrackerStatus(s)
		return nil
	}
	return fmt.Errorf("tracker status %q unknown to IPFS Cluster", s)
}

// upID is api.ID.
type upID struct {
	ID                    peer.ID       `json:"id"`
	Addresses             []upMultiaddr `json:"addresses"`
	ClusterPeers          []peer.ID     `json:"cluster_peers"`
	ClusterPeersAddresses []upMultiaddr `json:"cluster_peers_addresses"`
	Version               string        `json:"version"`
	Commit                string        `json:"commit"`
	RPCProtocolVersion    string        `json:"rpc_protocol_version"`
	Error                 string        `json:"error"`
	IPFS                  upIPFSID      `json:"ipfs,omitempty"`
	Peername              string        `json:"peername"`
}

// upIPFSID is api.IPFSID.
type upIPFSID struct {
	ID        peer.ID       `json:"id,omitempty"`
	Addresses []upMultiaddr `json:"addresses"`
	Error     string        `json:"error"`
}

// upVersion is api.Version.
type upVersion struct {
	Version string `json:"version"`
}

// upPinOptions is api.PinOptions.
type upPinOptions struct {
	ReplicationFactorMin int               `json:"replication_factor_min"`
	ReplicationFactorMax int               `json:"replication_factor_max"`
	Name                 string            `json:"name"`
	Mode                 upPinMode         `json:"mode"`
	ShardSize            uint64            `json:"shard_size"`
	UserAllocations      []peer.ID         `json:"user_allocations"`
	ExpireAt             time.Time         `json:"expire_at"`
	Metadata             map[string]string `json:"metadata"`
	PinUpdate            upCid             `json:"pin_update,omitempty"`
	Origins              []upMultiaddr     `json:"origins"`
}

// upPin is api.Pin.
type upPin struct {
	upPinOptions
	Cid         upCid     `json:"cid"`
	Type        upPinType `json:"type"`
	Allocations []peer.ID `json:"allocations"`
	MaxDepth    int       `json:"max_depth"`
	Reference   *upCid    `json:"reference"`
	Timestamp   time.Time `json:"timestamp"`
}

// upPinInfoShort is api.PinInfoShort.
type upPinInfoShort struct {
	PeerName      string          `json:"peername"`
	IPFS          peer.ID         `json:"ipfs_peer_id,omitempty"`
	IPFSAddresses []upMultiaddr   `json:"ipfs_peer_addresses,omitempty"`
	Status        upTrackerStatus `json:"status"`
	TS            time.Time       `json:"timestamp"`
	Error         string          `json:"error"`
	AttemptCount  int             `json:"attempt_count"`
	PriorityPin   bool            `json:"priority_pin"`
}

// upGlobalPinInfo is api.GlobalPinInfo.
type upGlobalPinInfo struct {
	Cid         upCid                     `json:"cid"`
	Name        string                    `json:"name"`
	Allocations []peer.ID                 `json:"allocations"`
	Origins     []upMultiaddr             `json:"origins"`
	Created     time.Time                 `json:"created"`
	Metadata    map[string]string         `json:"metadata"`
	PeerMap     map[string]upPinInfoShort `json:"peer_map"`
}

// upAddedOutput is api.AddedOutput.
type upAddedOutput struct {
	Name        string    `json:"name"`
	Cid         upCid     `json:"cid"`
	Bytes       uint64    `json:"bytes,omitempty"`
	Size        uint64    `json:"size,omitempty"`
	Allocations []peer.ID `json:"allocations,omitempty"`
}

// upMetric is api.Metric.
type upMetric struct {
	Name          string  `json:"name"`
	Peer          peer.ID `json:"peer"`
	Value         string  `json:"value"`
	Expire        int64   `json:"expire"`
	Valid         bool    `json:"valid"`
	Weight        int64   `json:"weight"`
	Partitionable bool    `json:"partitionable"`
	ReceivedAt    int64   `json:"received_at"`
}

// upAlert is api.Alert.
type upAlert struct {
	upMetric
	TriggeredAt time.Time `json:"triggered_at"`
}

// upConnectGraph is api.ConnectGraph.
type upConnectGraph struct {
	ClusterID         peer.ID              `json:"cluster_id"`
	IDtoPeername      map[string]string    `json:"id_to_peername"`
	IPFSLinks         map[string][]peer.ID `json:"ipfs_links"`
	ClusterLinks      map[string][]peer.ID `json:"cluster_links"`
	ClusterTrustLinks map[string]bool      `json:"cluster_trust_links"`
	ClustertoIPFS     map[string]peer.ID   `json:"cluster_to_ipfs"`
}

// upBandwidth is api.Bandwidth (GET /health/bandwidth answers
// api.BandwidthByProtocol, a map of them by protocol).
type upBandwidth struct {
	TotalIn  int64   `json:"total_in"`
	TotalOut int64   `json:"total_out"`
	RateIn   float64 `json:"rate_in"`
	RateOut  float64 `json:"rate_out"`
}

// upIPFSRepoGC is api.IPFSRepoGC.
type upIPFSRepoGC struct {
	Key   upCid  `json:"key,omitempty"`
	Error string `json:"error,omitempty"`
}

// upRepoGC is api.RepoGC.
type upRepoGC struct {
	Peer     peer.ID        `json:"peer"`
	Peername string         `json:"peername"`
	Keys     []upIPFSRepoGC `json:"keys"`
	Error    string         `json:"error,omitempty"`
}

// upGlobalRepoGC is api.GlobalRepoGC.
type upGlobalRepoGC struct {
	PeerMap map[string]upRepoGC `json:"peer_map"`
}

// upError is api.Error, the body of every 4xx and 5xx answer.
type upError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// upToken is the answer of POST /token (api/common).
type upToken struct {
	Token string `json:"token"`
}
