package pinsvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// errBadRequest marks errors answered 400 BAD_REQUEST.
var errBadRequest = errors.New("pinsvc: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// Limits of the spec (and pincluster's own, tighter, for metadata).
const (
	// MaxCidFilter is the most CIDs in the cid filter.
	MaxCidFilter = 10
	// MaxLimit is the largest page.
	MaxLimit = 1000
	// DefaultLimit is the page size without limit.
	DefaultLimit = 10
)

// pinRequest is a parsed Pin object (POST /pins body).
type pinRequest struct {
	cid     cid.Cid
	name    string
	origins []ma.Multiaddr
	meta    map[string]string
}

type pinBody struct {
	Cid     string            `json:"cid"`
	Name    *string           `json:"name"`
	Origins []string          `json:"origins"`
	Meta    map[string]string `json:"meta"`
}

// parsePinBody parses and checks a Pin object: a valid CID, a name of at
// most 255 bytes, at most 20 origins that are multiaddrs, metadata within
// pincluster's limits (64 keys, 128-byte keys, 1 KiB values).
func parsePinBody(data []byte) (pinRequest, error) {
	var pr pinRequest
	var b pinBody
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&b); err != nil {
		return pr, badRequest("body is not a Pin object: %v", err)
	}
	if dec.More() {
		return pr, badRequest("body holds more than one JSON value")
	}
	if b.Cid == "" {
		return pr, badRequest("cid is required")
	}
	c, err := httpx.ParseCID(b.Cid)
	if err != nil {
		return pr, badRequest("%v", err)
	}
	pr.cid = c
	if b.Name != nil {
		pr.name = *b.Name
	}
	if len(pr.name) > pincluster.MaxNameLen || !utf8.ValidString(pr.name) {
		return pr, badRequest("name: %d bytes, limit %d bytes of UTF-8", len(pr.name), pincluster.MaxNameLen)
	}
	if len(b.Origins) > pincluster.MaxOrigins {
		return pr, badRequest("%d origins, limit %d", len(b.Origins), pincluster.MaxOrigins)
	}
	seen := make(map[string]bool, len(b.Origins))
	for i, o := range b.Origins {
		a, err := ma.NewMultiaddr(o)
		if err != nil {
			return pr, badRequest("origin %d: %v", i, err)
		}
		if seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		pr.origins = append(pr.origins, a)
	}
	pr.meta = b.Meta
	if len(pr.meta) == 0 {
		pr.meta = nil
	}
	if err := (pincluster.PinOptions{Metadata: pr.meta}).Validate(); err != nil {
		return pr, badRequest("meta: %v", err)
	}
	if n := pincluster.MaxMetadataKeys - ReservedMetaKeys; len(pr.meta) > n {
		return pr, badRequest("meta: %d keys, limit %d (%d of pincluster's %d are kept for holder marks)", len(pr.meta), n, ReservedMetaKeys, pincluster.MaxMetadataKeys)
	}
	for k := range pr.meta {
		if strings.HasPrefix(k, HolderMarkPrefix) {
			return pr, badRequest("meta: key %q: the prefix %q is reserved for holder marks", k, HolderMarkPrefix)
		}
	}
	return pr, nil
}

// listKeys are the query options of GET /pins in the spec.
var listKeys = map[string]bool{
	"cid": true, "name": true, "match": true, "status": true,
	"before": true, "after": true, "limit": true, "meta": true,
}

// listQuery is a parsed GET /pins query.
type listQuery struct {
	cids     []cid.Cid
	name     string
	match    pincluster.NameMatch
	statuses map[Status]bool // nil: all
	before   time.Time
	after    time.Time
	limit    int
	meta     map[string]string
}

func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func parseTime(k, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s: %q is not an RFC 3339 time", k, truncate(s))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// parseListQuery parses the filters of GET /pins. cid and status take
// comma lists (or repeated parameters); an absent status means every
// status; limit is 1..1000, default 10; meta is a JSON object of strings.
// An unknown parameter is refused, naming it, as the REST API does: a
// misspelt filter would otherwise list every pin. Kubo's client (boxo),
// the JS client and the compliance suite send only the spec's keys.
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{limit: DefaultLimit}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !listKeys[k] {
			return lq, badRequest("unknown query option %q (known: cid, name, match, status, before, after, limit, meta)", truncate(k))
		}
	}
	if cs := splitList(q["cid"]); len(cs) > 0 {
		if len(cs) > MaxCidFilter {
			return lq, badRequest("cid: %d cids, limit %d", len(cs), MaxCidFilter)
		}
		for _, s := range cs {
			c, err := httpx.ParseCID(s)
			if err != nil {
				return lq, badRequest("cid: %v", err)
			}
			lq.cids = append(lq.cids, c)
		}
	}
	lq.name = q.Get("name")
	if len(lq.name) > pincluster.MaxNameLen {
		return lq, badRequest("name: %d bytes, limit %d", len(lq.name), pincluster.MaxNameLen)
	}
	switch m := q.Get("match"); m {
	case "", "exact":
		lq.match = pincluster.MatchExact
	case "iexact":
		lq.match = pincluster.MatchIExact
	case "partial":
		lq.match = pincluster.MatchPartial
	case "ipartial":
		lq.match = pincluster.MatchIPartial
	default:
		return lq, badRequest("match: %q is not exact, iexact, partial or ipartial", truncate(m))
	}
	if ss := splitList(q["status"]); len(ss) > 0 {
		lq.statuses = make(map[Status]bool)
		for _, s := range ss {
			st := Status(s)
			switch st {
			case StatusQueued, StatusPinning, StatusPinned, StatusFailed:
				lq.statuses[st] = true
			default:
				return lq, badRequest("status: %q is not queued, pinning, pinned or failed", truncate(s))
			}
		}
		if len(lq.statuses) == len(allStatuses) {
			lq.statuses = nil
		}
	}
	var err error
	if s := q.Get("before"); s != "" {
		if lq.before, err = parseTime("before", s); err != nil {
			return lq, err
		}
	}
	if s := q.Get("after"); s != "" {
		if lq.after, err = parseTime("after", s); err != nil {
			return lq, err
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return lq, badRequest("limit: %q is not an integer in 1..%d", truncate(s), MaxLimit)
		}
		lq.limit = n
	}
	if s := q.Get("meta"); s != "" {
		if len(s) > 64<<10 {
			return lq, badRequest("meta: longer than 64 KiB")
		}
		if err := json.Unmarshal([]byte(s), &lq.meta); err != nil {
			return lq, badRequest("meta: not a JSON object of strings: %v", err)
		}
		if err := (pincluster.PinOptions{Metadata: lq.meta}).Validate(); err != nil {
			return lq, badRequest("meta: %v", err)
		}
	}
	return lq, nil
}

// matchRecord applies the filters that need no status.
func (lq *listQuery) matchRecord(r *record) bool {
	if len(lq.cids) > 0 {
		ok := false
		for _, c := range lq.cids {
			if c.Equals(r.cid) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if lq.name != "" {
		f := pincluster.PinFilter{Name: lq.name, Match: lq.match}
		if !f.MatchPin(pincluster.Pin{PinOptions: pincluster.PinOptions{Name: r.Name}}) {
			return false
		}
	}
	for k, v := range lq.meta {
		if w, ok := r.Meta[k]; !ok || w != v {
			return false
		}
	}
	return true
}
