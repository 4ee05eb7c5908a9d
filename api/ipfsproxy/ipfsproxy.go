// Package ipfsproxy is IPFS Cluster's IPFS proxy for pincluster: an HTTP
// endpoint that speaks Kubo's RPC API (/api/v0/...). It forwards every
// request to the configured Kubo daemon, except the commands that act on
// what the cluster stores, which it answers itself, in Kubo's own JSON:
//
//	pin/add     pins the paths in the cluster (Cluster.PinPath)
//	pin/rm      unpins them from the cluster (Cluster.UnpinPath)
//	pin/update  pins the new CID with the old pin's options and
//	            allocations, then unpins the old one unless unpin=false
//	pin/ls      lists the cluster's pinset (types recursive and direct)
//	add         imports the files and pins the result in the cluster
//	repo/stat   adds up the repositories of every cluster peer
//	repo/gc     runs Config.RepoGC (garbage collection)
//
// So existing tooling, the `ipfs` command line with --api pointing at the
// proxy included, pins through the cluster without change.
//
// The proxy is as powerful as Kubo's RPC API, which is an administrative
// interface: listen on loopback (the default) or behind an authenticating
// reverse proxy.
package ipfsproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/time/rate"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/server"
	"github.com/pincluster/pincluster/internal/defaults"
)

// Defaults of Config.
const (
	// DefaultListenAddr is IPFS Cluster's proxy address.
	DefaultListenAddr = "127.0.0.1:9095"
	// DefaultMaxAddBytes bounds the body of one add (1 GiB).
	DefaultMaxAddBytes = 1 << 30
	// maxArgs bounds the arguments of one pin command.
	maxArgs = 1000
	// maxPathLen bounds one path argument or file name.
	maxPathLen = 4096
)

// Backend is what the proxy needs of the cluster; *pincluster.Cluster
// implements it.
type Backend interface {
	// PinPath resolves an /ipfs/ path (or CID) and pins it (pin/add).
	PinPath(ctx context.Context, path string, opts pincluster.PinOptions) (pincluster.Pin, error)
	// UnpinPath resolves a path and unpins it (pin/rm).
	UnpinPath(ctx context.Context, path string) (pincluster.Pin, error)
	// PinUpdate pins to with the options of from's pin (pin/update).
	PinUpdate(ctx context.Context, from, to cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error)
	// Unpin unpins a CID (pin/update's unpin of the old one).
	Unpin(ctx context.Context, c cid.Cid) (pincluster.Pin, error)
	// PinGet returns the pin of a CID (pin/ls with arguments).
	PinGet(ctx context.Context, c cid.Cid) (pincluster.Pin, error)
	// Pins lists the pinset (pin/ls).
	Pins(ctx context.Context, f pincluster.PinFilter) iter.Seq2[pincluster.Pin, error]
	// Add imports files and pins the result (add).
	Add(ctx context.Context, files iter.Seq2[string, io.Reader], p pincluster.AddParams) ([]pincluster.AddedFile, error)
	// RepoStatAll reports every peer's repository, this peer first
	// (repo/stat).
	RepoStatAll(ctx context.Context) ([]pincluster.PeerRepoStat, error)
}

var _ Backend = (*pincluster.Cluster)(nil)

// RepoGCResult is what one peer's garbage collection removed.
type RepoGCResult struct {
	// Removed are the CIDs of the removed blocks.
	Removed []cid.Cid
	// Err is set when the peer's collection failed.
	Err error
}

// Config configures the proxy.
type Config struct {
	// ListenAddr is the TCP address Start listens on. Default:
	// DefaultListenAddr.
	ListenAddr string
	// NodeURL is the base URL of Kubo's RPC API (http://127.0.0.1:5001),
	// where every command the proxy does not intercept is forwarded.
	// Required.
	NodeURL string
	// RepoGC runs garbage collection for repo/gc. Default: forward
	// repo/gc to Kubo (this peer's node only).
	RepoGC func(ctx context.Context) ([]RepoGCResult, error)
	// MaxAddBytes bounds the body of an add. Default: DefaultMaxAddBytes.
	MaxAddBytes int64
	// ReadHeaderTimeout bounds reading request headers. Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (an add
	// is read within it). Default: 30m.
	ReadTimeout time.Duration
	// IdleTimeout bounds idle keep-alive connections. Default: 2m.
	IdleTimeout time.Duration
	// MaxConns bounds the connections open at once; one beyond it is
	// answered 503 and closed unread. Negative: no limit. Default: 1024
	// (the REST and Pinning Service APIs' default).
	MaxConns int
	// Middleware, when set, wraps the proxy's handler in its own server
	// (Start): the caller's metrics or logging.
	Middleware func(http.Handler) http.Handler
	// Logger receives errors. Default: discard.
	Logger *slog.Logger
}

// Routes are the request paths the proxy answers itself, plus "/" for the
// forwarded ones: route labels for metrics.
var Routes = []string{"/api/v0/pin/add", "/api/v0/pin/rm", "/api/v0/pin/update", "/api/v0/pin/ls",
	"/api/v0/add", "/api/v0/repo/stat", "/api/v0/repo/gc", "/"}

// Proxy is the IPFS proxy: an http.Handler, and a server that runs it
// (Serve or Start) until Shutdown, with the same server methods as the
// REST and Pinning Service APIs. It is a pincluster.Component, for
// pincluster.WithAPI.
type Proxy struct {
	// Server runs the proxy: Handler, Serve, Start, Addr and Shutdown are
	// its methods, the same on every HTTP API of the module.
	*server.Server

	backend Backend
	cfg     Config
	log     *slog.Logger
	node    *url.URL
	fwd     *httputil.ReverseProxy

	// logLimit bounds the logs that clients can cause (a Kubo that is
	// down, a peer that does not answer).
	logLimit rate.Sometimes
}

var _ pincluster.Component = (*Proxy)(nil)

// ErrConfig is wrapped by the errors New returns for an impossible Config.
var ErrConfig = errors.New("ipfsproxy: invalid config")

// New returns the proxy of backend. It does not listen: use Handler or
// Start.
func New(backend Backend, cfg Config) (*Proxy, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrConfig)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	if err := errors.Join(
		defaults.Set("MaxAddBytes", &cfg.MaxAddBytes, DefaultMaxAddBytes),
		defaults.Set("ReadTimeout", &cfg.ReadTimeout, 30*time.Minute),
	); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg.Logger = defaults.Logger(cfg.Logger)
	u, err := url.Parse(cfg.NodeURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: NodeURL %q is not an http(s) URL", ErrConfig, cfg.NodeURL)
	}
	p := &Proxy{backend: backend, cfg: cfg, log: cfg.Logger, node: u,
		logLimit: rate.Sometimes{First: 3, Interval: 10 * time.Second}}
	p.fwd = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
		},
		FlushInterval: -1, // stream answers (logs, pubsub, progress) as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.logLimit.Do(func() { p.log.Warn("ipfsproxy: forwarding failed", "path", r.URL.Path, "err", err) })
			writeError(w, http.StatusBadGateway, "ipfs proxy: IPFS daemon unreachable: "+err.Error())
		},
	}
	// The other server limits take api/server's defaults, as in both APIs.
	if p.Server, err = server.New(p.routes(), server.Config{
		ListenAddr:        cfg.ListenAddr,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxConns:          cfg.MaxConns,
		Middleware:        cfg.Middleware,
		Name:              "ipfsproxy",
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return p, nil
}

func (p *Proxy) routes() http.Handler {
	intercepted := map[string]http.HandlerFunc{
		"pin/add":    p.pinAdd,
		"pin/rm":     p.pinRm,
		"pin/update": p.pinUpdate,
		"pin/ls":     p.pinLs,
		"add":        p.add,
		"repo/stat":  p.repoStat,
		"repo/gc":    p.repoGC,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cmd, ok := strings.CutPrefix(path.Clean(r.URL.Path), "/api/v0/")
		if !ok {
			p.fwd.ServeHTTP(w, r)
			return
		}
		h := intercepted[cmd]
		if h == nil {
			// The undocumented form /api/v0/pin/add/<arg>.
			for name, hh := range intercepted {
				if arg, ok := strings.CutPrefix(cmd, name+"/"); ok && name != "add" && arg != "" {
					q := r.URL.Query()
					q.Set("arg", arg)
					r.URL.RawQuery = q.Encode()
					h = hh
					break
				}
			}
		}
		if h == nil {
			p.fwd.ServeHTTP(w, r)
			return
		}
		// Kubo's RPC API takes POST only; browsers' CSRF protections
		// rely on that.
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
			return
		}
		h(w, r)
	})
}

// cmdsError is Kubo's error answer.
type cmdsError struct {
	Message string
	Code    int
	Type    string
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	code := 0 // cmds.ErrNormal
	if status < 500 {
		code = 1 // cmds.ErrClient
	}
	_ = json.NewEncoder(w).Encode(cmdsError{Message: msg, Code: code, Type: "error"})
}

// fail answers an error of the cluster as Kubo does (500, or 400 for bad
// input).
func (p *Proxy) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var ve *pincluster.ValidationError
	if errors.As(err, &ve) || errors.Is(err, errBadRequest) {
		status = http.StatusBadRequest
	}
	writeError(w, status, err.Error())
}

var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// args returns the arg values of a command, bounded.
func args(r *http.Request) ([]string, error) {
	a := r.URL.Query()["arg"]
	if len(a) > maxArgs {
		return nil, badRequest("%d arguments, at most %d", len(a), maxArgs)
	}
	for _, s := range a {
		if len(s) > maxPathLen {
			return nil, badRequest("argument longer than %d bytes", maxPathLen)
		}
	}
	return a, nil
}

// boolOpt reads a boolean option ("" gives def).
func boolOpt(q url.Values, k string, def bool) (bool, error) {
	s := q.Get(k)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("option %q: %q is not a boolean", k, s)
	}
	return b, nil
}

type pinsOut struct {
	Pins []string
}

func (p *Proxy) pinAdd(w http.ResponseWriter, r *http.Request) {
	paths, err := args(r)
	if err != nil {
		p.fail(w, err)
		return
	}
	if len(paths) == 0 {
		p.fail(w, badRequest("argument \"ipfs-path\" is required"))
		return
	}
	q := r.URL.Query()
	recursive, err := boolOpt(q, "recursive", true)
	if err != nil {
		p.fail(w, err)
		return
	}
	opts := pincluster.PinOptions{Name: q.Get("name")}
	if !recursive {
		opts.Mode = pincluster.PinModeDirect
	}
	out := pinsOut{Pins: []string{}}
	for _, a := range paths {
		pin, err := p.backend.PinPath(r.Context(), a, opts)
		if err != nil {
			p.fail(w, fmt.Errorf("pin %s: %w", a, err))
			return
		}
		out.Pins = append(out.Pins, pin.Cid.String())
	}
	writeJSON(w, out)
}

func (p *Proxy) pinRm(w http.ResponseWriter, r *http.Request) {
	paths, err := args(r)
	if err != nil {
		p.fail(w, err)
		return
	}
	if len(paths) == 0 {
		p.fail(w, badRequest("argument \"ipfs-path\" is required"))
		return
	}
	out := pinsOut{Pins: []string{}}
	for _, a := range paths {
		pin, err := p.backend.UnpinPath(r.Context(), a)
		if err != nil {
			if errors.Is(err, pincluster.ErrNotFound) {
				p.fail(w, fmt.Errorf("%s: not pinned or pinned indirectly", a))
				return
			}
			p.fail(w, fmt.Errorf("unpin %s: %w", a, err))
			return
		}
		out.Pins = append(out.Pins, pin.Cid.String())
	}
	writeJSON(w, out)
}

// pathCid reads the CID of a bare CID or an /ipfs/<cid> path without
// sub-path (pin/update does not resolve sub-paths).
func pathCid(field, s string) (cid.Cid, error) {
	s = strings.TrimPrefix(s, "/ipfs/")
	c, err := cid.Decode(strings.TrimSuffix(s, "/"))
	if err != nil {
		return cid.Undef, badRequest("%s: %q is not a CID or /ipfs/<cid> path: %v", field, s, err)
	}
	return c, nil
}

func (p *Proxy) pinUpdate(w http.ResponseWriter, r *http.Request) {
	a, err := args(r)
	if err != nil {
		p.fail(w, err)
		return
	}
	switch len(a) {
	case 0:
		p.fail(w, badRequest("argument \"from-path\" is required"))
		return
	case 1:
		p.fail(w, badRequest("argument \"to-path\" is required"))
		return
	}
	unpin, err := boolOpt(r.URL.Query(), "unpin", true)
	if err != nil {
		p.fail(w, err)
		return
	}
	from, err := pathCid("from-path", a[0])
	if err != nil {
		p.fail(w, err)
		return
	}
	to, err := pathCid("to-path", a[1])
	if err != nil {
		p.fail(w, err)
		return
	}
	if _, err := p.backend.PinUpdate(r.Context(), from, to, pincluster.PinOptions{}); err != nil {
		if errors.Is(err, pincluster.ErrNotFound) {
			p.fail(w, fmt.Errorf("'from' cid was not recursively pinned already"))
			return
		}
		p.fail(w, err)
		return
	}
	if unpin && !from.Equals(to) {
		if _, err := p.backend.Unpin(r.Context(), from); err != nil {
			p.fail(w, fmt.Errorf("unpin %s: %w", from, err))
			return
		}
	}
	writeJSON(w, pinsOut{Pins: []string{from.String(), to.String()}})
}

// pinType is Kubo's name of a pin's type.
func pinType(p pincluster.Pin) string {
	if p.MaxDepth == 0 || p.Mode == pincluster.PinModeDirect {
		return "direct"
	}
	return "recursive"
}

type pinLsEntry struct {
	Type string
	Name string `json:",omitempty"`
}

type pinLsStreamEntry struct {
	Cid  string
	Type string
	Name string `json:",omitempty"`
}

func (p *Proxy) pinLs(w http.ResponseWriter, r *http.Request) {
	a, err := args(r)
	if err != nil {
		p.fail(w, err)
		return
	}
	q := r.URL.Query()
	typ := q.Get("type")
	switch typ {
	case "":
		typ = "all"
	case "all", "recursive", "direct", "indirect":
	default:
		p.fail(w, badRequest("invalid type '%s', must be one of {direct, indirect, recursive, all}", typ))
		return
	}
	stream, err := boolOpt(q, "stream", false)
	if err != nil {
		p.fail(w, err)
		return
	}
	names, err := boolOpt(q, "names", false)
	if err != nil {
		p.fail(w, err)
		return
	}
	want := func(pin pincluster.Pin) bool {
		return typ == "all" || typ == pinType(pin)
	}
	var pins []pincluster.Pin
	if len(a) > 0 {
		for _, s := range a {
			c, err := pathCid("ipfs-path", s)
			if err != nil {
				p.fail(w, err)
				return
			}
			pin, err := p.backend.PinGet(r.Context(), c)
			if err != nil {
				if errors.Is(err, pincluster.ErrNotFound) {
					p.fail(w, fmt.Errorf("path '%s' is not pinned", s))
					return
				}
				p.fail(w, err)
				return
			}
			if !want(pin) {
				p.fail(w, fmt.Errorf("path '%s' is not pinned as %s", s, typ))
				return
			}
			pins = append(pins, pin)
		}
	}
	name := func(pin pincluster.Pin) string {
		if names {
			return pin.Name
		}
		return ""
	}
	if stream {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Chunked-Output", "1")
		w.Header().Set("Trailer", "X-Stream-Error")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		emit := func(pin pincluster.Pin) bool {
			return enc.Encode(pinLsStreamEntry{Cid: pin.Cid.String(), Type: pinType(pin), Name: name(pin)}) == nil
		}
		if len(a) > 0 {
			for _, pin := range pins {
				emit(pin)
			}
			return
		}
		for pin, err := range p.backend.Pins(r.Context(), pincluster.PinFilter{}) {
			if err != nil {
				w.Header().Set("X-Stream-Error", err.Error())
				return
			}
			if want(pin) && !emit(pin) {
				return
			}
		}
		return
	}
	keys := map[string]pinLsEntry{}
	if len(a) > 0 {
		for _, pin := range pins {
			keys[pin.Cid.String()] = pinLsEntry{Type: pinType(pin), Name: name(pin)}
		}
	} else {
		for pin, err := range p.backend.Pins(r.Context(), pincluster.PinFilter{}) {
			if err != nil {
				p.fail(w, err)
				return
			}
			if want(pin) {
				keys[pin.Cid.String()] = pinLsEntry{Type: pinType(pin), Name: name(pin)}
			}
		}
	}
	writeJSON(w, map[string]any{"Keys": keys})
}

// repoStatOut is Kubo's repo/stat answer.
type repoStatOut struct {
	RepoSize   uint64
	StorageMax uint64
	NumObjects uint64
	RepoPath   string `json:",omitempty"`
	Version    string `json:",omitempty"`
}

func (p *Proxy) repoStat(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sizeOnly, err := boolOpt(q, "size-only", false)
	if err != nil {
		p.fail(w, err)
		return
	}
	stats, err := p.backend.RepoStatAll(r.Context())
	if err != nil {
		p.fail(w, err)
		return
	}
	var out repoStatOut
	answered := 0
	for _, s := range stats {
		if s.Err != nil {
			p.logLimit.Do(func() { p.log.Warn("ipfsproxy: repo/stat: a peer did not answer", "peer", s.Peer, "err", s.Err) })
			continue
		}
		answered++
		out.RepoSize += s.RepoSize
		out.StorageMax += s.StorageMax
		out.NumObjects += s.NumObjects
	}
	if answered == 0 && len(stats) > 0 {
		p.fail(w, fmt.Errorf("repo/stat: no peer answered: %w", stats[0].Err))
		return
	}
	if sizeOnly {
		out.NumObjects = 0
	} else if local, err := p.nodeRepoStat(r.Context()); err == nil {
		// Peers report sizes only; this peer's node (first in stats)
		// gives its object count, repository path and version.
		if len(stats) > 0 && stats[0].Err == nil {
			out.NumObjects -= stats[0].NumObjects
		}
		out.NumObjects += local.NumObjects
		out.RepoPath, out.Version = local.RepoPath, local.Version
	}
	writeJSON(w, out)
}

// nodeRepoStat asks Kubo for its full repo/stat (object count, path and
// version).
func (p *Proxy) nodeRepoStat(ctx context.Context) (repoStatOut, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	u := p.node.JoinPath("/api/v0/repo/stat")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return repoStatOut{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return repoStatOut{}, err
	}
	defer res.Body.Close()
	var out repoStatOut
	if res.StatusCode != http.StatusOK {
		return out, fmt.Errorf("repo/stat: %s", res.Status)
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out)
	return out, err
}

func (p *Proxy) repoGC(w http.ResponseWriter, r *http.Request) {
	if p.cfg.RepoGC == nil {
		p.fwd.ServeHTTP(w, r)
		return
	}
	res, err := p.cfg.RepoGC(r.Context())
	if err != nil {
		p.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Chunked-Output", "1")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, pr := range res {
		if pr.Err != nil {
			_ = enc.Encode(map[string]string{"Error": pr.Err.Error()})
			continue
		}
		for _, c := range pr.Removed {
			_ = enc.Encode(map[string]any{"Key": map[string]string{"/": c.String()}})
		}
	}
}

// addOut is one line of Kubo's add answer.
type addOut struct {
	Name  string
	Hash  string `json:",omitempty"`
	Bytes int64  `json:",omitempty"`
	Size  string `json:",omitempty"`
}

func addParams(q url.Values) (pincluster.AddParams, error) {
	var p pincluster.AddParams
	if on, err := boolOpt(q, "only-hash", false); err != nil {
		return p, err
	} else if on {
		return p, badRequest("only-hash is not supported when adding to the cluster")
	}
	if pin, err := boolOpt(q, "pin", true); err != nil {
		return p, err
	} else if !pin {
		return p, badRequest("pin=false is not supported when adding to the cluster")
	}
	for _, k := range []string{"nocopy", "fscache", "inline"} {
		if on, err := boolOpt(q, k, false); err != nil {
			return p, err
		} else if on {
			return p, badRequest("%s is not supported when adding to the cluster", k)
		}
	}
	if s := q.Get("cid-version"); s != "" {
		if s != "0" && s != "1" {
			return p, badRequest("cid-version: %q is not 0 or 1", s)
		}
		p.CIDVersion, _ = strconv.Atoi(s)
	}
	var err error
	if p.RawLeaves, err = boolOpt(q, "raw-leaves", p.CIDVersion == 1); err != nil {
		return p, err
	}
	if p.Trickle, err = boolOpt(q, "trickle", false); err != nil {
		return p, err
	}
	if p.Wrap, err = boolOpt(q, "wrap-with-directory", false); err != nil {
		return p, err
	}
	if p.Chunker = q.Get("chunker"); len(p.Chunker) > 64 {
		return p, badRequest("chunker: longer than 64 bytes")
	}
	if h := q.Get("hash"); h != "" {
		if _, ok := mh.Names[h]; !ok {
			return p, badRequest("hash: unknown function %q", h)
		}
		p.HashFun = h
	}
	p.Name = q.Get("pin-name")
	return p, nil
}

// partName returns a part's file name (with its directories, unescaped as
// the ipfs command line writes it), checked: relative, no "." or "..".
func partName(part *multipart.Part) (string, error) {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return "", badRequest("part without a valid Content-Disposition: %v", err)
	}
	name := params["filename"]
	if u, err := url.QueryUnescape(name); err == nil {
		name = u
	}
	name = strings.Trim(name, "/")
	if name == "" || len(name) > maxPathLen {
		return "", badRequest("part with an empty or too long file name")
	}
	for s := range strings.SplitSeq(name, "/") {
		if s == "" || s == "." || s == ".." {
			return "", badRequest("file name %q has an empty or relative segment", name)
		}
	}
	return name, nil
}

func isDir(part *multipart.Part) bool {
	ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
	return ct == "application/x-directory"
}

// errReader fails every read: it makes an import fail (and pin nothing)
// when the multipart stream breaks.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// add imports the request's files as Kubo does and pins the result in the
// cluster. Each top-level file is added and pinned on its own; a
// top-level directory (ipfs add -r) is added as a directory whose root is
// pinned; with wrap-with-directory, everything goes into one directory.
// Inner directories are not listed in the answer.
func (p *Proxy) add(w http.ResponseWriter, r *http.Request) {
	params, err := addParams(r.URL.Query())
	if err != nil {
		p.fail(w, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxAddBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		p.fail(w, badRequest("add needs a multipart/form-data body: %v", err))
		return
	}
	var out []addOut
	emit := func(prefix string, added []pincluster.AddedFile, rootName string) {
		for i, f := range added {
			name := f.Name
			if prefix != "" {
				name = path.Join(prefix, name)
			}
			if i == len(added)-1 && rootName != "" {
				name = rootName
			}
			out = append(out, addOut{Name: name, Hash: f.Cid.String(), Size: strconv.FormatUint(f.Size, 10)})
		}
	}
	ctx := r.Context()
	var pending *multipart.Part // read ahead, not yet imported
	eof := false                // NextPart must not be called again after io.EOF
	next := func() (*multipart.Part, error) {
		if pending != nil {
			pt := pending
			pending = nil
			return pt, nil
		}
		if eof {
			return nil, io.EOF
		}
		pt, err := mr.NextPart()
		if err == io.EOF {
			eof = true
		}
		return pt, err
	}
	if params.Wrap {
		added, err := p.backend.Add(ctx, p.files(next, "", &pending), params)
		if err != nil {
			p.fail(w, err)
			return
		}
		emit("", added, "")
	} else {
		for {
			part, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				p.fail(w, badRequest("multipart: %v", err))
				return
			}
			name, err := partName(part)
			if err != nil {
				p.fail(w, err)
				return
			}
			if !isDir(part) {
				one := func(yield func(string, io.Reader) bool) { yield(name, part) }
				added, err := p.backend.Add(ctx, one, params)
				if err != nil {
					p.fail(w, err)
					return
				}
				emit("", added, name)
				continue
			}
			// A directory: its files follow, named <name>/...; import
			// them wrapped, so that the wrapping directory is <name>.
			dp := params
			dp.Wrap = true
			added, err := p.backend.Add(ctx, p.files(next, name+"/", &pending), dp)
			if err != nil {
				p.fail(w, err)
				return
			}
			emit(name, added, name)
		}
	}
	if len(out) == 0 {
		p.fail(w, badRequest("no file in the request"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Chunked-Output", "1")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, o := range out {
		_ = enc.Encode(o)
	}
}

// files yields the file parts whose names start with prefix (the prefix
// removed); the first part that does not is left in *pending. Directory
// parts are skipped (empty directories are not kept). A broken stream or
// a bad name fails the import through an errReader.
func (p *Proxy) files(next func() (*multipart.Part, error), prefix string, pending **multipart.Part) iter.Seq2[string, io.Reader] {
	return func(yield func(string, io.Reader) bool) {
		for {
			part, err := next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield("", errReader{badRequest("multipart: %v", err)})
				return
			}
			name, err := partName(part)
			if err != nil {
				yield("", errReader{err})
				return
			}
			rel, ok := strings.CutPrefix(name, prefix)
			if !ok {
				*pending = part
				return
			}
			if isDir(part) {
				continue
			}
			if !yield(rel, part) {
				return
			}
		}
	}
}
