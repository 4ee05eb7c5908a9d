package rest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/verifcid"
	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/car"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

// addKeys are the /add query options besides the pin options: the whole
// set ipfs-cluster-ctl and IPFS Cluster's Go client send (api.AddParams).
// Options pincluster cannot honour (shard, nocopy, progress: no progress
// entries are streamed) are accepted only with their neutral value; recursive, hidden, quiet and quieter shape what the
// client reads from its disk or prints, so the server has nothing to do
// with them.
var addKeys = map[string]bool{
	"chunker": true, "raw-leaves": true, "cid-version": true, "wrap-with-directory": true,
	"wrap": true, "local": true, "format": true, "stream-channels": true, "hash": true,
	"trickle": true, "layout": true, "progress": true, "hidden": true, "recursive": true,
	"shard": true, "no-copy": true, "nocopy": true, "quieter": true, "quiet": true,
	"no-pin": true,
}

// addQuery is a parsed /add query.
type addQuery struct {
	params         pincluster.AddParams
	car            bool
	streamChannels bool
}

// maxAddNames bounds the file names remembered to refuse duplicates.
const maxAddNames = 1 << 16

// maxChunkerLen bounds the chunker option.
const maxChunkerLen = 64

func parseAddQuery(q url.Values) (addQuery, error) {
	var aq addQuery
	opts, from, err := parsePinQueryExtra(q, addKeys)
	if err != nil {
		return aq, err
	}
	if from.Defined() {
		return aq, badRequest("pin-update is not supported by /add")
	}
	p := pincluster.AddParams{PinOptions: opts}
	boolOpt := func(k string, def bool) (bool, error) {
		if q.Get(k) == "" {
			return def, nil
		}
		return parseBool(q, k)
	}
	if p.Chunker, err = parseChunker(q.Get("chunker")); err != nil {
		return aq, err
	}
	if s := q.Get("cid-version"); s != "" {
		if s != "0" && s != "1" {
			return aq, badRequest("cid-version: %q is not 0 or 1", truncate(s))
		}
		p.CIDVersion, _ = strconv.Atoi(s)
	}
	if p.HashFun, err = parseHash(q.Get("hash")); err != nil {
		return aq, err
	}
	if p.RawLeaves, err = boolOpt("raw-leaves", p.CIDVersion == 1); err != nil {
		return aq, err
	}
	wrap1, err := boolOpt("wrap-with-directory", false)
	if err != nil {
		return aq, err
	}
	wrap2, err := boolOpt("wrap", false)
	if err != nil {
		return aq, err
	}
	p.Wrap = wrap1 || wrap2
	if p.Local, err = boolOpt("local", false); err != nil {
		return aq, err
	}
	if p.NoPin, err = boolOpt("no-pin", false); err != nil {
		return aq, err
	}
	if p.Trickle, err = boolOpt("trickle", false); err != nil {
		return aq, err
	}
	switch l := q.Get("layout"); l {
	case "", "balanced":
	case "trickle":
		p.Trickle = true
	default:
		return aq, badRequest("layout: %q is not balanced or trickle", truncate(l))
	}
	switch f := q.Get("format"); f {
	case "", "unixfs":
	case "car":
		aq.car = true
	default:
		return aq, badRequest("format: %q is not unixfs or car", truncate(f))
	}
	if aq.streamChannels, err = boolOpt("stream-channels", true); err != nil {
		return aq, err
	}
	for _, k := range []string{"shard", "no-copy", "nocopy", "progress"} {
		if on, err := boolOpt(k, false); err != nil {
			return aq, err
		} else if on {
			return aq, badRequest("%s=true is not supported", k)
		}
	}
	for _, k := range []string{"hidden", "quiet", "quieter", "recursive"} {
		if _, err := boolOpt(k, false); err != nil {
			return aq, err
		}
	}
	aq.params = p
	return aq, nil
}

// parseChunker checks a chunker option as the importer reads it
// ("size-N", "rabin[-min-avg-max]", "buzhash"); "" is the default.
func parseChunker(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > maxChunkerLen {
		return "", badRequest("chunker: longer than %d bytes", maxChunkerLen)
	}
	if _, err := chunker.FromString(bytes.NewReader(nil), s); err != nil {
		return "", badRequest("chunker: %q: %v", truncate(s), err)
	}
	if size, ok := strings.CutPrefix(s, "size-"); ok {
		if n, err := strconv.ParseUint(size, 10, 64); err != nil || n == 0 {
			return "", badRequest("chunker: %q: the size must be a positive integer", truncate(s))
		}
	}
	return s, nil
}

// parseHash checks a hash option: a multihash function IPFS allows
// (boxo's verifcid: no md5, no sha1) and this process can compute, not
// identity (which would put whole chunks in CIDs); "" is the
// default (sha2-256).
func parseHash(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	code, ok := mh.Names[s]
	if !ok {
		return "", badRequest("hash: unknown function %q", truncate(s))
	}
	if code == mh.IDENTITY {
		return "", badRequest("hash: identity cannot be used to add files")
	}
	if !verifcid.DefaultAllowlist.IsAllowed(code) {
		return "", badRequest("hash: %q is not allowed in IPFS (insecure or unknown)", s)
	}
	if _, err := mh.Sum(nil, code, -1); err != nil {
		return "", badRequest("hash: %q is not supported: %v", s, err)
	}
	return s, nil
}

// partName returns the file name of a multipart part, with its directory
// (multipart.Part.FileName drops it), unescaped as go-ipfs-files writes
// it, and checked: relative, no "." or ".." segments.
func partName(p *multipart.Part) (string, error) {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return "", badRequest("part without a valid Content-Disposition: %v", err)
	}
	name := params["filename"]
	if name == "" {
		name = params["name"]
	}
	if u, err := url.QueryUnescape(name); err == nil {
		name = u
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" || len(name) > httpx.MaxPathLen {
		return "", badRequest("part with an empty or too long file name")
	}
	for s := range strings.SplitSeq(name, "/") {
		if s == "" || s == "." || s == ".." {
			return "", badRequest("file name %q has an empty or relative segment", truncate(name))
		}
	}
	return path.Clean(name), nil
}

func isDirPart(p *multipart.Part) bool {
	ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
	return ct == "application/x-directory"
}

// errReader fails every read: it makes the importer fail (and so pin
// nothing) when the multipart stream breaks between two files.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (a *API) add(w http.ResponseWriter, r *http.Request) {
	aq, err := parseAddQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		a.fail(w, r, badRequest("/add needs a multipart/form-data body: %v", err))
		return
	}
	var added []pincluster.AddedFile
	if aq.car {
		added, err = a.addCAR(r, mr, aq.params)
	} else {
		added, err = a.addFiles(r, mr, aq.params)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var allocs []string
	if len(added) > 0 {
		if p, err := a.backend.PinGet(r.Context(), added[len(added)-1].Cid); err == nil {
			allocs = peerStrings(p.Allocations)
		}
	}
	out := make([]addedJSON, 0, len(added))
	for i, f := range added {
		j := addedJSON{Name: f.Name, Cid: cidString(f.Cid), Bytes: f.Bytes, Size: f.Size, Allocations: []string{}}
		if i == len(added)-1 && allocs != nil {
			j.Allocations = allocs
		}
		out = append(out, j)
	}
	if !aq.streamChannels {
		httpx.WriteJSON(w, http.StatusOK, out)
		return
	}
	seq := func(yield func(addedJSON, error) bool) {
		for _, j := range out {
			if !yield(j, nil) {
				return
			}
		}
	}
	httpx.StreamNDJSON(w, seq, func(j addedJSON) any { return j }, func(err error) { a.fail(w, r, err) })
}

// addFiles streams the multipart files to Backend.Add. A request whose
// first part is a directory (ipfs-cluster-ctl add -r <dir>) without
// wrapping is imported as that directory: every file, then each directory
// after its contents, the top directory last and pinned, as IPFS Cluster
// does.
func (a *API) addFiles(r *http.Request, mr *multipart.Reader, p pincluster.AddParams) ([]pincluster.AddedFile, error) {
	first, err := mr.NextPart()
	if err == io.EOF {
		return nil, badRequest("no file in the request")
	}
	if err != nil {
		return nil, bodyError("multipart", err)
	}
	top := ""
	if isDirPart(first) && !p.Wrap {
		if top, err = partName(first); err != nil {
			return nil, err
		}
		if strings.Contains(top, "/") {
			return nil, badRequest("directory %q comes before its parent", truncate(top))
		}
	}
	wantPin := !p.NoPin
	if top != "" {
		p.Wrap, p.NoPin = true, true // pinned below: the top directory, not the wrapper
	}
	var partErr error
	count := 0
	seen := make(map[string]bool)
	files := func(yield func(string, io.Reader) bool) {
		part := first
		for {
			if part == nil {
				var err error
				part, err = mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					partErr = bodyError("multipart", err)
					yield("", errReader{partErr}) // fail the import: nothing is pinned
					return
				}
			}
			cur := part
			part = nil
			if isDirPart(cur) {
				continue
			}
			name, err := partName(cur)
			if err == nil && top != "" && !strings.HasPrefix(name, top+"/") {
				err = badRequest("file %q is outside the directory %q", truncate(name), truncate(top))
			}
			if err == nil && p.Wrap && seen[name] {
				err = badRequest("two files named %q in one request", truncate(name))
			}
			if err != nil {
				partErr = err
				yield("", errReader{err})
				return
			}
			if len(seen) < maxAddNames {
				seen[name] = true
			}
			count++
			if !yield(name, cur) {
				return
			}
		}
	}
	added, err := a.backend.Add(r.Context(), files, p)
	if partErr != nil {
		return nil, partErr
	}
	if count == 0 {
		return nil, badRequest("no file in the request")
	}
	if err != nil {
		return nil, err
	}
	if top == "" {
		return added, nil
	}
	// Drop the wrapper: the top directory is the root.
	if n := len(added); n > 0 && added[n-1].Name == "" {
		added = added[:n-1]
	}
	if len(added) == 0 || added[len(added)-1].Name != top {
		return nil, fmt.Errorf("rest: add: the import did not end with the directory %q", top)
	}
	if wantPin {
		opts := p.PinOptions
		if p.Local && len(opts.UserAllocations) == 0 {
			opts.UserAllocations = []peer.ID{a.backend.ID(r.Context()).ID}
		}
		if _, err := a.backend.Pin(r.Context(), added[len(added)-1].Cid, opts); err != nil {
			return nil, err
		}
	}
	return added, nil
}

// addCAR imports the blocks of the first file part, a CAR v1 with one
// root, then pins the root.
func (a *API) addCAR(r *http.Request, mr *multipart.Reader, p pincluster.AddParams) ([]pincluster.AddedFile, error) {
	part, err := mr.NextPart()
	if err != nil {
		return nil, bodyError("multipart", err)
	}
	name, _ := partName(part)
	cr, err := car.NewReader(part, car.Limits{MaxBlocks: a.cfg.MaxCARBlocks})
	if err != nil {
		return nil, carError(err)
	}
	if len(cr.Roots()) != 1 {
		return nil, badRequest("car: %d roots, exactly 1 is needed", len(cr.Roots()))
	}
	root := cr.Roots()[0]
	ctx := r.Context()
	for {
		c, data, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, carError(err)
		}
		prefix := c.Prefix()
		if prefix.Version == 0 {
			prefix = cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}
		}
		got, err := a.backend.BlockPut(ctx, data, prefix)
		if err != nil {
			return nil, fmt.Errorf("rest: add car: block %s: %w", c, err)
		}
		if !bytes.Equal(got.Hash(), c.Hash()) {
			return nil, fmt.Errorf("rest: add car: block %s stored as %s", c, got)
		}
	}
	if cr.Blocks() == 0 {
		return nil, badRequest("car: no blocks")
	}
	opts := p.PinOptions
	if p.Local && len(opts.UserAllocations) == 0 {
		opts.UserAllocations = []peer.ID{a.backend.ID(ctx).ID}
	}
	if _, err := a.backend.Pin(ctx, root, opts); err != nil {
		return nil, err
	}
	return []pincluster.AddedFile{{Name: name, Cid: root, Size: cr.Bytes(), Bytes: cr.Bytes()}}, nil
}

func carError(err error) error { return bodyError("car", err) }

// bodyError classifies an error reading the request body: over the limit
// (kept, so that fail answers 413) and too slow (httpx.ErrBodyTimeout,
// 408) keep their cause; anything else is the caller's bad input.
func bodyError(what string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, httpx.ErrBodyTimeout) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return badRequest("%s: %v", what, err)
}
