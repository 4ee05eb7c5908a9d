package pinsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	cid "github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/auth"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// JSON forms of the spec.

type failureJSON struct {
	Error failureBody `json:"error"`
}

type failureBody struct {
	Reason  string `json:"reason"`
	Details string `json:"details,omitempty"`
}

type pinJSON struct {
	Cid     string            `json:"cid"`
	Name    string            `json:"name,omitempty"`
	Origins []string          `json:"origins"`
	Meta    map[string]string `json:"meta"`
}

type pinStatusJSON struct {
	RequestID string            `json:"requestid"`
	Status    Status            `json:"status"`
	Created   time.Time         `json:"created"`
	Pin       pinJSON           `json:"pin"`
	Delegates []string          `json:"delegates"`
	Info      map[string]string `json:"info"`
}

type pinResultsJSON struct {
	Count   int             `json:"count"`
	Results []pinStatusJSON `json:"results"`
}

type ctxUser struct{}

func userOf(r *http.Request) string {
	u, _ := r.Context().Value(ctxUser{}).(string)
	return u
}

func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pins", a.list)
	mux.HandleFunc("POST /pins", a.add)
	mux.HandleFunc("GET /pins/{requestid}", a.get)
	mux.HandleFunc("POST /pins/{requestid}", a.replace)
	mux.HandleFunc("DELETE /pins/{requestid}", a.remove)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeFailure(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// The only route without authentication: liveness for load
			// balancers and supervisors. It says nothing about the cluster.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		user, err := a.auth.Load().Check(r)
		if err != nil {
			// Answer at once, body unread, and close: nothing that
			// reserves time or memory happens before authentication.
			httpx.Refuse(w)
			if te, ok := errors.AsType[*auth.ThrottledError](err); ok {
				w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
				writeFailure(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "too many failed authentications from this address: "+err.Error())
				return
			}
			details := "access token is invalid"
			if errors.Is(err, auth.ErrMissing) {
				details = "access token is missing"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="pincluster"`)
			writeFailure(w, http.StatusUnauthorized, "UNAUTHORIZED", details)
			return
		}
		if r.ContentLength > a.cfg.MaxBodyBytes {
			httpx.Refuse(w)
			writeFailure(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, a.cfg.MaxBodyBytes))
			return
		}
		r.Body = httpx.TimeoutBody(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxUser{}, user)))
	})
}

func writeFailure(w http.ResponseWriter, code int, reason, details string) {
	httpx.WriteJSON(w, code, failureJSON{Error: failureBody{Reason: reason, Details: details}})
}

// fail answers err as a Failure.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, pincluster.ErrInvalidPin), errors.Is(err, pincluster.ErrInvalidCID):
		writeFailure(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
	case errors.Is(err, httpx.ErrMediaType):
		writeFailure(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", err.Error())
	case errors.Is(err, httpx.ErrBodyTimeout):
		writeFailure(w, http.StatusRequestTimeout, "REQUEST_TIMEOUT", err.Error())
	case errors.Is(err, errNoRequest):
		writeFailure(w, http.StatusNotFound, "NOT_FOUND", "the specified resource was not found")
	case errors.Is(err, pincluster.ErrClosed):
		writeFailure(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", err.Error())
	case errors.Is(err, pincluster.ErrNotReady): // a starting peer: transient
		d, _ := pincluster.RetryAfter(err)
		w.Header().Set("Retry-After", strconv.Itoa(int(d/time.Second)))
		writeFailure(w, http.StatusServiceUnavailable, "NOT_READY", err.Error())
	case errors.Is(err, pincluster.ErrNotEnoughPeers):
		writeFailure(w, http.StatusServiceUnavailable, "NOT_ENOUGH_PEERS", err.Error())
	default:
		a.log.Warn("pinsvc: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeFailure(w, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", err.Error())
	}
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, badRequest("body exceeds the limit of %d bytes", mbe.Limit)
		}
		if errors.Is(err, httpx.ErrBodyTimeout) {
			return nil, fmt.Errorf("pinsvc: reading body: %w", err)
		}
		return nil, badRequest("reading body: %v", err)
	}
	return b, nil
}

// delegates returns the host's addresses with /p2p/<id>: 1 to 20.
func (a *API) delegates() []string {
	h := a.backend.Host()
	id := h.ID()
	p2p, err := ma.NewComponent("p2p", id.String())
	if err != nil {
		return []string{"/p2p/" + id.String()}
	}
	var out []string
	for _, addr := range h.Addrs() {
		if len(out) == MaxDelegates {
			break
		}
		if _, err := addr.ValueForProtocol(ma.P_P2P); err == nil {
			out = append(out, addr.String())
			continue
		}
		out = append(out, addr.Encapsulate(p2p.Multiaddr()).String())
	}
	if len(out) == 0 {
		out = append(out, p2p.String())
	}
	return out
}

// statusCache computes each CID's status once per request.
type statusCache struct {
	a    *API
	ctx  context.Context
	seen map[cid.Cid]statusEntry
}

type statusEntry struct {
	st      Status
	details string
}

func (a *API) newStatusCache(ctx context.Context) *statusCache {
	return &statusCache{a: a, ctx: ctx, seen: make(map[cid.Cid]statusEntry)}
}

func (s *statusCache) of(c cid.Cid) statusEntry {
	if e, ok := s.seen[c]; ok {
		return e
	}
	e := s.a.compute(s.ctx, c)
	s.seen[c] = e
	return e
}

func (a *API) compute(ctx context.Context, c cid.Cid) statusEntry {
	pin, err := a.backend.PinGet(ctx, c)
	if errors.Is(err, pincluster.ErrNotFound) {
		return statusEntry{StatusFailed, "the cid is no longer in the cluster's pinset"}
	}
	if err != nil {
		return statusEntry{StatusQueued, "status unknown: " + err.Error()}
	}
	g, err := a.backend.Status(ctx, c, a.cfg.LocalStatus)
	if errors.Is(err, pincluster.ErrNotFound) {
		return statusEntry{StatusFailed, "the cid is no longer in the cluster's pinset"}
	}
	if err != nil {
		return statusEntry{StatusQueued, "status unknown: " + err.Error()}
	}
	st, details := MapStatus(g, pin.ReplicationMin)
	return statusEntry{st, details}
}

func (a *API) toJSON(r *record, e statusEntry, delegates []string) pinStatusJSON {
	meta := r.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	origins := r.Origins
	if origins == nil {
		origins = []string{}
	}
	return pinStatusJSON{
		RequestID: r.RequestID,
		Status:    e.st,
		Created:   r.created(),
		Pin:       pinJSON{Cid: r.Cid, Name: r.Name, Origins: origins, Meta: meta},
		Delegates: delegates,
		Info:      map[string]string{"status_details": e.details},
	}
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	recs := a.store.snapshot(userOf(r), lq.before, lq.after)
	cache := a.newStatusCache(r.Context())
	delegates := a.delegates()
	res := pinResultsJSON{Results: []pinStatusJSON{}}
	for _, rec := range recs {
		if !lq.matchRecord(rec) {
			continue
		}
		var e statusEntry
		computed := false
		if lq.statuses != nil {
			e, computed = cache.of(rec.cid), true
			if !lq.statuses[e.st] {
				continue
			}
		}
		res.Count++
		if len(res.Results) < lq.limit {
			if !computed {
				e = cache.of(rec.cid)
			}
			res.Results = append(res.Results, a.toJSON(rec, e, delegates))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	rec, err := a.store.get(userOf(r), r.PathValue("requestid"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	e := a.newStatusCache(r.Context()).of(rec.cid)
	httpx.WriteJSON(w, http.StatusOK, a.toJSON(rec, e, a.delegates()))
}

func (a *API) add(w http.ResponseWriter, r *http.Request) { a.createFrom(w, r, false) }

func (a *API) replace(w http.ResponseWriter, r *http.Request) { a.createFrom(w, r, true) }

// createFrom serves add (replacing false) and replace: it reads the pin
// body, creates the request (replacing the one named by the path) and
// answers 202 with it.
func (a *API) createFrom(w http.ResponseWriter, r *http.Request, replacing bool) {
	if err := httpx.CheckJSONContentType(r); err != nil {
		a.fail(w, r, fmt.Errorf("pinsvc: pin body: %w", err))
		return
	}
	body, err := readBody(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var old *record
	if replacing {
		if old, err = a.store.get(userOf(r), r.PathValue("requestid")); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	pr, err := parsePinBody(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rec, err := a.create(r.Context(), userOf(r), pr, old)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	e := a.newStatusCache(r.Context()).of(rec.cid)
	httpx.WriteJSON(w, http.StatusAccepted, a.toJSON(rec, e, a.delegates()))
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	if err := a.delete(r.Context(), userOf(r), r.PathValue("requestid")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// create records a new request of user for pr and makes sure the cluster
// pins its CID (acquire: pinned again if it left the pinset); with old
// set, it replaces old, whose CID is released afterwards when no request
// of this API holds it any more. Nothing is recorded if the cluster
// refuses the pin.
func (a *API) create(ctx context.Context, user string, pr pinRequest, old *record) (*record, error) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	s := a.store
	if old != nil { // still there? (a concurrent delete)
		s.mu.RLock()
		cur, ok := s.byID[old.RequestID]
		s.mu.RUnlock()
		if !ok || cur.User != user {
			return nil, errNoRequest
		}
	}
	id, err := newRequestID()
	if err != nil {
		return nil, err
	}
	rec := &record{RequestID: id, User: user, Cid: pr.cid.String(), Name: pr.name, Meta: pr.meta, cid: pr.cid}
	for _, o := range pr.origins {
		rec.Origins = append(rec.Origins, o.String())
	}
	opts := pincluster.PinOptions{Name: pr.name, Origins: pr.origins, Metadata: pr.meta}
	if old != nil && !old.cid.Equals(pr.cid) {
		opts.PinUpdate = old.cid
	}
	acquired, err := a.acquire(ctx, pr.cid, opts)
	if err != nil {
		return nil, err
	}
	// Release the old CID when this was its last request.
	if old != nil && !old.cid.Equals(pr.cid) {
		s.mu.RLock()
		last := s.refs[old.cid] == 1
		s.mu.RUnlock()
		if last {
			if err := a.release(ctx, old.cid); err != nil {
				a.rollback(ctx, pr.cid, acquired)
				return nil, err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Created = s.nextCreated(a.cfg.Now())
	if err := s.put(ctx, rec, old); err != nil {
		a.rollback(ctx, pr.cid, acquired)
		return nil, fmt.Errorf("pinsvc: store request: %w", err)
	}
	if old != nil {
		s.unindex(s.byID[old.RequestID])
	}
	s.index(rec)
	return rec, nil
}

// rollback undoes an acquire that changed the pinset for a request that
// was then not recorded.
func (a *API) rollback(ctx context.Context, c cid.Cid, acquired bool) {
	if !acquired {
		return
	}
	if err := a.release(ctx, c); err != nil {
		a.log.Warn("pinsvc: rollback of a pin failed", "cid", c, "err", err)
	}
}

// delete removes a request of user; when no other request of this API
// holds its CID, the CID is released (unpinned only if no other holder,
// the REST API included, needs it).
func (a *API) delete(ctx context.Context, user, id string) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	s := a.store
	s.mu.RLock()
	rec, ok := s.byID[id]
	last := ok && s.refs[rec.cid] == 1
	s.mu.RUnlock()
	if !ok || rec.User != user {
		return errNoRequest
	}
	if last {
		if err := a.release(ctx, rec.cid); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.put(ctx, nil, rec); err != nil {
		return fmt.Errorf("pinsvc: store: %w", err)
	}
	s.unindex(rec)
	return nil
}
