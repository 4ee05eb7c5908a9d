package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// errBadRequest marks errors in the caller's request (answered 400).
var errBadRequest = errors.New("rest: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

	authed := http.NewServeMux()
	authed.HandleFunc("POST /token", a.token)
	authed.HandleFunc("GET /id", a.id)
	authed.HandleFunc("GET /version", a.version)
	authed.HandleFunc("GET /peers", a.peers)
	authed.HandleFunc("POST /peers", a.peerAdd)
	authed.HandleFunc("DELETE /peers/{peer}", a.peerRm)
	authed.HandleFunc("GET /pins", a.statusAll)
	authed.HandleFunc("POST /pins/recover", a.recoverAll)
	authed.HandleFunc("POST /pins/stream", a.pinStream)
	authed.HandleFunc("/pins/{rest...}", a.pins)
	authed.HandleFunc("GET /allocations", a.allocations)
	authed.HandleFunc("GET /allocations/{cid}", a.allocation)
	authed.HandleFunc("POST /add", a.add)
	authed.HandleFunc("GET /monitor/metrics", a.metricNames)
	authed.HandleFunc("GET /monitor/metrics/{name}", a.metrics)
	authed.HandleFunc("GET /health/alerts", a.alerts)
	authed.HandleFunc("GET /health/graph", a.graph)
	authed.HandleFunc("GET /health/bandwidth", a.bandwidth)
	authed.HandleFunc("POST /ipfs/gc", a.repoGC)
	authed.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, http.StatusNotFound, "not found: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/", a.authenticate(authed))
	return mux
}

// authenticate checks credentials and bounds the request body. Nothing
// that reserves time or memory happens before the check: a refused
// request is answered at once, its body unread, and its connection
// closed; only an authenticated /add gets AddReadTimeout.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.auth.Check(r); err != nil {
			httpx.Refuse(w)
			if te, ok := errors.AsType[*auth.ThrottledError](err); ok {
				w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
				a.writeError(w, http.StatusTooManyRequests, "too many failed authentications from this address: "+err.Error())
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="pincluster", charset="UTF-8"`)
			a.writeError(w, http.StatusUnauthorized, "unauthorized: "+err.Error())
			return
		}
		limit := a.cfg.MaxBodyBytes
		upload := r.URL.Path == "/add" || r.URL.Path == "/pins/stream"
		if upload {
			limit = a.cfg.MaxAddBytes
		}
		if r.ContentLength > limit {
			httpx.Refuse(w)
			a.writeError(w, tooLarge(r), fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
			return
		}
		if upload {
			httpx.ExtendReadDeadline(w, a.cfg.AddReadTimeout)
		}
		mw := w
		if r.URL.Path == "/pins/stream" {
			// Read by a goroutine of its own while the handler answers:
			// the limit must not touch w's headers from there.
			mw = nil
		}
		r.Body = httpx.TimeoutBody(http.MaxBytesReader(mw, r.Body, limit))
		next.ServeHTTP(w, r)
	})
}

func (a *API) writeError(w http.ResponseWriter, code int, msg string) {
	httpx.WriteJSON(w, code, errorJSON{Code: code, Message: msg})
}

// tooLarge is the status of a body over its limit: 413 for an /add
// upload, 400 (bad input) for the small JSON and query
// routes.
func tooLarge(r *http.Request) int {
	if r.URL.Path == "/add" || r.URL.Path == "/pins/stream" {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// fail answers err with the status it maps to.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code = tooLarge(r)
		err = fmt.Errorf("request body exceeds the limit of %d bytes: %w", mbe.Limit, err)
	}
	if d, ok := pincluster.RetryAfter(err); ok { // a starting peer: transient
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(d/time.Second)))
	}
	if code >= 500 {
		a.log.Warn("rest: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	a.writeError(w, code, err.Error())
}

func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errBadRequest), errors.Is(err, pincluster.ErrInvalidPin),
		errors.Is(err, pincluster.ErrInvalidCID), errors.Is(err, httpx.ErrBadCID),
		errors.Is(err, pincluster.ErrInvalidStatus):
		return http.StatusBadRequest
	case errors.Is(err, pincluster.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, pincluster.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, pincluster.ErrClosed), errors.Is(err, pincluster.ErrIPFSUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, httpx.ErrMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, httpx.ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func (a *API) token(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok {
		a.writeError(w, http.StatusUnauthorized, "unauthorized: POST /token needs basic auth")
		return
	}
	user, err := a.auth.CheckBasic(u, p)
	if err != nil {
		a.writeError(w, http.StatusUnauthorized, "unauthorized: "+err.Error())
		return
	}
	tok, _, err := a.auth.Issue(user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, tokenJSON{Token: tok})
}

func (a *API) id(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, toIDJSON(a.backend.ID(r.Context())))
}

func (a *API) version(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, versionJSON{Version: a.backend.Version()})
}

func (a *API) peers(w http.ResponseWriter, r *http.Request) {
	ids, err := a.backend.Peers(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	seq := func(yield func(pincluster.ID, error) bool) {
		for _, id := range ids {
			if !yield(id, nil) {
				return
			}
		}
	}
	httpx.StreamNDJSON(w, seq, func(id pincluster.ID) any { return toIDJSON(id) }, func(err error) { a.fail(w, r, err) })
}

func (a *API) peerAdd(w http.ResponseWriter, r *http.Request) {
	if err := httpx.CheckJSONContentType(r); err != nil {
		a.fail(w, r, fmt.Errorf("POST /peers: %w", err))
		return
	}
	var body struct {
		PeerID string `json:"peer_id"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) && !errors.Is(err, httpx.ErrBodyTimeout) {
			err = badRequest("body: %v", err)
		}
		a.fail(w, r, fmt.Errorf("POST /peers: body: %w", err))
		return
	}
	p, err := peer.Decode(body.PeerID)
	if err != nil {
		a.fail(w, r, badRequest("peer_id: %v", err))
		return
	}
	if err := a.backend.AddPeer(r.Context(), p); err != nil {
		a.fail(w, r, err)
		return
	}
	id := a.backend.ID(r.Context())
	httpx.WriteJSON(w, http.StatusOK, toIDJSON(id))
}

func (a *API) peerRm(w http.ResponseWriter, r *http.Request) {
	p, err := peer.Decode(r.PathValue("peer"))
	if err != nil {
		a.fail(w, r, badRequest("peer: %v", err))
		return
	}
	if err := a.backend.RmPeer(r.Context(), p); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseBool reads an optional boolean query value.
func parseBool(q map[string][]string, key string) (bool, error) {
	vs := q[key]
	if len(vs) == 0 || vs[0] == "" {
		return false, nil
	}
	if len(vs) > 1 {
		return false, badRequest("%s given %d times", key, len(vs))
	}
	b, err := strconv.ParseBool(vs[0])
	if err != nil {
		return false, badRequest("%s: %q is not a boolean", key, vs[0])
	}
	return b, nil
}

// onlyKeys refuses query keys outside allowed.
func onlyKeys(q map[string][]string, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			return badRequest("unknown query option %q", k)
		}
	}
	return nil
}

// parseStatusAllQuery parses GET /pins: local, filter, cids.
func parseStatusAllQuery(q map[string][]string) (pincluster.StatusFilter, error) {
	var f pincluster.StatusFilter
	if err := onlyKeys(q, "local", "filter", "cids"); err != nil {
		return f, err
	}
	var err error
	if f.Local, err = parseBool(q, "local"); err != nil {
		return f, err
	}
	if vs := q["filter"]; len(vs) > 0 && vs[0] != "" {
		if len(vs) > 1 {
			return f, badRequest("filter given %d times", len(vs))
		}
		if f.Status, err = pincluster.ParseTrackerStatus(vs[0]); err != nil {
			return f, badRequest("filter: %v", err)
		}
	}
	if vs := q["cids"]; len(vs) > 0 {
		for _, v := range vs {
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				if len(f.Cids) >= MaxListCids {
					return f, badRequest("more than %d cids", MaxListCids)
				}
				c, err := httpx.ParseCID(s)
				if err != nil {
					return f, badRequest("cids: %v", err)
				}
				f.Cids = append(f.Cids, c)
			}
		}
	}
	return f, nil
}

func (a *API) statusAll(w http.ResponseWriter, r *http.Request) {
	f, err := parseStatusAllQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.StreamNDJSON(w, a.backend.StatusAll(r.Context(), f), func(g pincluster.GlobalPinInfo) any {
		return toGlobalPinInfoJSON(g)
	}, func(err error) { a.fail(w, r, err) })
}

func (a *API) recoverAll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyKeys(q, "local"); err != nil {
		a.fail(w, r, err)
		return
	}
	local, err := parseBool(q, "local")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.StreamNDJSON(w, a.backend.RecoverAll(r.Context(), local), func(g pincluster.GlobalPinInfo) any {
		return toGlobalPinInfoJSON(g)
	}, func(err error) { a.fail(w, r, err) })
}

// pinTarget is what a /pins/{...} path names: a CID, or an IPFS path.
type pinTarget struct {
	cid     cid.Cid
	path    string // set for /pins/ipfs/..., /pins/ipns/..., /pins/ipld/...
	recover bool   // /pins/{cid}/recover
}

// parsePinTarget parses the part of a /pins/ URL after "/pins/".
func parsePinTarget(rest string) (pinTarget, error) {
	var t pinTarget
	if rest == "" {
		return t, badRequest("missing cid")
	}
	first, tail, _ := strings.Cut(rest, "/")
	switch first {
	case "ipfs", "ipns", "ipld":
		p, err := httpx.ParsePath("/" + rest)
		if err != nil {
			return t, badRequest("%v", err)
		}
		t.path = p
		// /ipfs/<cid> with nothing below names the CID itself: no
		// resolution needed (ipfs-cluster-ctl pins, unpins and updates
		// through this route).
		if first == "ipfs" && tail != "" && !strings.Contains(tail, "/") {
			if c, err := httpx.ParseCID(tail); err == nil {
				t.cid, t.path = c, ""
			}
		}
		return t, nil
	}
	c, err := httpx.ParseCID(first)
	if err != nil {
		return t, badRequest("%v", err)
	}
	t.cid = c
	switch tail {
	case "":
	case "recover":
		t.recover = true
	default:
		return t, badRequest("unknown path /pins/%s", truncate(rest))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func (a *API) pins(w http.ResponseWriter, r *http.Request) {
	t, err := parsePinTarget(r.PathValue("rest"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	ctx := r.Context()
	switch {
	case t.recover && r.Method == http.MethodPost:
		a.globalInfo(w, r, t.cid, a.backend.Recover)
	case t.recover:
		a.writeError(w, http.StatusMethodNotAllowed, "use POST")
	case r.Method == http.MethodGet && t.path == "":
		a.globalInfo(w, r, t.cid, a.backend.Status)
	case r.Method == http.MethodPost:
		opts, from, err := parsePinQuery(q)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var pin pincluster.Pin
		switch {
		case t.path != "" && from.Defined():
			err = badRequest("pin-update: the new pin must be a cid or /ipfs/<cid>, not a path below it")
		case t.path != "":
			pin, err = a.pinPath(ctx, t.path, opts)
		case from.Defined():
			pin, err = a.backend.PinUpdate(ctx, from, t.cid, opts)
		default:
			pin, err = a.backend.Pin(ctx, t.cid, opts)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, toPinJSON(pin))
	case r.Method == http.MethodDelete:
		if err := onlyKeys(q); err != nil {
			a.fail(w, r, err)
			return
		}
		var pin pincluster.Pin
		if t.path != "" {
			pin, err = a.unpinPath(ctx, t.path)
		} else {
			pin, err = a.backend.Unpin(ctx, t.cid)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, toPinJSON(pin))
	default:
		a.writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (a *API) allocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyKeys(q, "filter"); err != nil {
		a.fail(w, r, err)
		return
	}
	types, err := parsePinTypes(q.Get("filter"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pins := a.backend.Pins(r.Context(), pincluster.PinFilter{})
	seq := func(yield func(pincluster.Pin, error) bool) {
		for p, err := range pins {
			if err == nil && types&p.Type == 0 {
				continue
			}
			if !yield(p, err) {
				return
			}
		}
	}
	httpx.StreamNDJSON(w, seq, func(p pincluster.Pin) any {
		return toPinJSON(p)
	}, func(err error) { a.fail(w, r, err) })
}

// allPinTypes is the "all" filter of GET /allocations.
const allPinTypes = pincluster.DataType | pincluster.MetaType | pincluster.ClusterDAGType | pincluster.ShardType

// parsePinTypes parses the filter of GET /allocations: a comma-separated
// list of pin types (pin, meta-pin, clusterdag-pin, shard-pin) or all;
// empty is all.
func parsePinTypes(s string) (pincluster.PinType, error) {
	if s == "" {
		return allPinTypes, nil
	}
	var out pincluster.PinType
	for part := range strings.SplitSeq(s, ",") {
		switch part {
		case "all", "":
			out |= allPinTypes
		case "pin":
			out |= pincluster.DataType
		case "meta-pin":
			out |= pincluster.MetaType
		case "clusterdag-pin":
			out |= pincluster.ClusterDAGType
		case "shard-pin":
			out |= pincluster.ShardType
		default:
			return 0, badRequest("filter: %q is not a pin type (pin, meta-pin, clusterdag-pin, shard-pin, all)", truncate(part))
		}
	}
	return out, nil
}

func (a *API) allocation(w http.ResponseWriter, r *http.Request) {
	c, err := httpx.ParseCID(r.PathValue("cid"))
	if err != nil {
		a.fail(w, r, badRequest("%v", err))
		return
	}
	p, err := a.backend.PinGet(r.Context(), c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toPinJSON(p))
}

func (a *API) metricNames(w http.ResponseWriter, r *http.Request) {
	names := a.backend.MetricNames(r.Context())
	if names == nil {
		names = []string{}
	}
	httpx.WriteJSON(w, http.StatusOK, names)
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ms := a.backend.Metrics(r.Context(), r.PathValue("name"))
	out := make([]metricJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, toMetricJSON(m, now))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) alerts(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	as := a.backend.Alerts(r.Context())
	out := make([]alertJSON, 0, len(as))
	for _, al := range as {
		out = append(out, alertJSON{metricJSON: toMetricJSON(al.Metric, now), TriggeredAt: al.TriggeredAt})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// globalInfo answers a status or recover of one CID: the only query key
// is "local".
func (a *API) globalInfo(w http.ResponseWriter, r *http.Request, c cid.Cid,
	get func(context.Context, cid.Cid, bool) (pincluster.GlobalPinInfo, error)) {
	q := r.URL.Query()
	if err := onlyKeys(q, "local"); err != nil {
		a.fail(w, r, err)
		return
	}
	local, err := parseBool(q, "local")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := get(r.Context(), c, local)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toGlobalPinInfoJSON(g))
}

func (a *API) graph(w http.ResponseWriter, r *http.Request) {
	if err := onlyKeys(r.URL.Query()); err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := a.backend.ConnectGraph(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toConnectGraphJSON(g))
}

func (a *API) repoGC(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyKeys(q, "local"); err != nil {
		a.fail(w, r, err)
		return
	}
	local, err := parseBool(q, "local")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := a.backend.RepoGC(r.Context(), local)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toGlobalRepoGCJSON(g))
}

func (a *API) bandwidth(w http.ResponseWriter, r *http.Request) {
	if err := onlyKeys(r.URL.Query()); err != nil {
		a.fail(w, r, err)
		return
	}
	var out map[string]bandwidthJSON // null without a counter, as upstream
	if a.cfg.Bandwidth != nil {
		stats := a.cfg.Bandwidth.GetBandwidthByProtocol()
		out = make(map[string]bandwidthJSON, len(stats))
		for p, s := range stats {
			out[string(p)] = bandwidthJSON{TotalIn: s.TotalIn, TotalOut: s.TotalOut, RateIn: s.RateIn, RateOut: s.RateOut}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
