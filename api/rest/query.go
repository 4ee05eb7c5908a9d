package rest

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// maxReplication bounds replication-min/-max values.
const maxReplication = 1 << 16

// pinQueryKeys are the query options of POST /pins/{cid} besides meta-*.
var pinQueryKeys = []string{
	"name", "mode", "replication", "replication-min", "replication-max", "shard-size",
	"user-allocations", "expire-at", "expire-in", "pin-update", "origins",
}

// parsePinQuery reads IPFS Cluster's pin options from a query: name, mode,
// replication(-min|-max), shard-size, user-allocations (comma list),
// expire-at (RFC 3339) or expire-in (Go duration, at least 1s),
// pin-update (a CID, returned separately), origins (comma list of
// multiaddrs, each with /p2p/<peer id>, as IPFS Cluster requires) and
// meta-<key>=<value>. Unknown or repeated options, malformed values and
// options beyond pincluster's limits return an error answered 400.
func parsePinQuery(q url.Values) (pincluster.PinOptions, cid.Cid, error) {
	return parsePinQueryExtra(q, nil)
}

// parsePinQueryExtra is parsePinQuery that also lets the keys in extra
// through (the /add options), without reading them.
func parsePinQueryExtra(q url.Values, extra map[string]bool) (pincluster.PinOptions, cid.Cid, error) {
	var opts pincluster.PinOptions
	var from cid.Cid
	known := func(k string) bool {
		for _, x := range pinQueryKeys {
			if k == x {
				return true
			}
		}
		return false
	}
	nmeta := 0
	for k, vs := range q {
		if len(vs) > 1 {
			return opts, from, badRequest("query option %q given %d times", truncate(k), len(vs))
		}
		if strings.HasPrefix(k, "meta-") {
			nmeta++
			if nmeta > pincluster.MaxMetadataKeys {
				return opts, from, badRequest("more than %d metadata keys", pincluster.MaxMetadataKeys)
			}
			continue
		}
		if !known(k) && !extra[k] {
			return opts, from, badRequest("unknown query option %q", truncate(k))
		}
	}
	get := func(k string) string { return q.Get(k) }
	var err error
	opts.Name = get("name")
	if opts.Mode, err = pincluster.ParsePinMode(get("mode")); err != nil {
		return opts, from, err
	}
	atoi := func(k string) (int, error) {
		s := get(k)
		if s == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < -1 || n > maxReplication {
			return 0, badRequest("%s: %q is not an integer in -1..%d", k, truncate(s), maxReplication)
		}
		return n, nil
	}
	if r := get("replication"); r != "" {
		n, err := atoi("replication")
		if err != nil {
			return opts, from, err
		}
		opts.ReplicationMin, opts.ReplicationMax = n, n
	}
	if get("replication-min") != "" {
		if opts.ReplicationMin, err = atoi("replication-min"); err != nil {
			return opts, from, err
		}
	}
	if get("replication-max") != "" {
		if opts.ReplicationMax, err = atoi("replication-max"); err != nil {
			return opts, from, err
		}
	}
	if s := get("shard-size"); s != "" {
		if opts.ShardSize, err = strconv.ParseUint(s, 10, 64); err != nil {
			return opts, from, badRequest("shard-size: %q is not an unsigned integer", truncate(s))
		}
	}
	if s := get("user-allocations"); s != "" {
		parts := strings.Split(s, ",")
		if len(parts) > pincluster.MaxAllocations {
			return opts, from, badRequest("more than %d user allocations", pincluster.MaxAllocations)
		}
		for _, p := range parts {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			id, err := peer.Decode(p)
			if err != nil {
				return opts, from, badRequest("user-allocations: %q: %v", truncate(p), err)
			}
			opts.UserAllocations = append(opts.UserAllocations, id)
		}
	}
	expAt, expIn := get("expire-at"), get("expire-in")
	switch {
	case expAt != "" && expIn != "":
		return opts, from, badRequest("give expire-at or expire-in, not both")
	case expAt != "":
		t, err := time.Parse(time.RFC3339Nano, expAt)
		if err != nil {
			return opts, from, badRequest("expire-at: %q is not an RFC 3339 time", truncate(expAt))
		}
		opts.ExpireAt = t.UTC()
	case expIn != "":
		d, err := time.ParseDuration(expIn)
		if err != nil || d < time.Second {
			return opts, from, badRequest("expire-in: %q is not a duration of at least 1s", truncate(expIn))
		}
		opts.ExpireAt = time.Now().Add(d).UTC()
	}
	if s := get("pin-update"); s != "" {
		if from, err = httpx.ParseCID(s); err != nil {
			return opts, from, badRequest("pin-update: %v", err)
		}
	}
	if s := get("origins"); s != "" {
		parts := strings.Split(s, ",")
		if len(parts) > pincluster.MaxOrigins {
			return opts, from, badRequest("%d origins, limit %d", len(parts), pincluster.MaxOrigins)
		}
		for _, p := range parts {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			a, err := ma.NewMultiaddr(p)
			if err != nil {
				return opts, from, badRequest("origins: %q: %v", truncate(p), err)
			}
			if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
				return opts, from, badRequest("origins: %q has no /p2p/<peer id>", truncate(p))
			}
			opts.Origins = append(opts.Origins, a)
		}
	}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "meta-"); ok {
			if opts.Metadata == nil {
				opts.Metadata = make(map[string]string)
			}
			opts.Metadata[key] = vs[0]
		}
	}
	if err := opts.Validate(); err != nil {
		return opts, from, err
	}
	return opts, from, nil
}
