package kubo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mc "github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
	"github.com/pincluster/pincluster"
)

// ID calls "id". On error the returned IPFSID carries the error's text too.
func (c *Connector) ID(ctx context.Context) (pincluster.IPFSID, error) {
	const op = "id"
	var out struct {
		ID        string
		Addresses []string
	}
	if err := c.callJSON(ctx, request{op: op}, &out); err != nil {
		return pincluster.IPFSID{Error: err.Error()}, err
	}
	pid, err := peer.Decode(out.ID)
	if err != nil {
		err = malformed(op, err)
		return pincluster.IPFSID{Error: err.Error()}, err
	}
	id := pincluster.IPFSID{ID: pid}
	for _, s := range out.Addresses {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			c.log.Debug("id: skipping unparsable address", "addr", s, "err", err)
			continue
		}
		id.Addresses = append(id.Addresses, a)
	}
	return id, nil
}

// Pin calls "pin/add" with progress, after connecting to pin.Origins
// (failures there are logged, not returned); it is the only call per pin
// (no pin/ls before it, no dag/stat). The name goes to Kubo only with
// Config.PinNames. MaxDepth 0 pins directly;
// any other MaxDepth pins recursively (Kubo has no depth-limited pins).
// progress, when not nil, is called as blocks arrive: Kubo streams its
// counts every 500 ms, and each report whose counts differ from the last one
// is passed on (at most one per Config.PinProgressInterval; the last counts
// are always delivered before Pin returns). Unchanged counts are not passed
// on, so a caller that resets an idle timer on each call (the tracker's pin
// timeout) sees a stuck pin as silence. The call is bounded only by ctx.
func (c *Connector) Pin(ctx context.Context, pin pincluster.Pin, progress func(pincluster.PinProgress)) error {
	const op = "pin/add"
	if !pin.Cid.Defined() {
		return &Error{Op: op, Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	c.connectOrigins(ctx, pin.Origins)
	q := opts("recursive", strconv.FormatBool(pin.MaxDepth != 0), "progress", "true")
	if c.cfg.PinNames && pin.Name != "" {
		q.Set("name", pin.Name)
	}
	var (
		pinned   bool
		last     pincluster.PinProgress
		lastCall time.Time
		pending  bool
	)
	err := c.stream(ctx, request{op: op, args: []string{pin.Cid.String()}, opts: q}, func(line []byte) error {
		var out struct {
			Pins     []string
			Progress uint64
			Bytes    uint64
		}
		if err := json.Unmarshal(line, &out); err != nil {
			return malformed(op, err)
		}
		if len(out.Pins) > 0 {
			pinned = true
			return nil
		}
		p := pincluster.PinProgress{Blocks: out.Progress, Bytes: out.Bytes}
		if p == last {
			// Kubo's heartbeat: nothing arrived since the last report.
			return nil
		}
		last = p
		pending = true
		if progress != nil && (c.cfg.PinProgressInterval == 0 || time.Since(lastCall) >= c.cfg.PinProgressInterval) {
			progress(last)
			lastCall = time.Now()
			pending = false
		}
		return nil
	})
	if err != nil && pin.MaxDepth == 0 && alreadyRecursive(err) {
		// A direct pin over a recursive one keeps the recursive pin, as
		// the other connectors do (Kubo refuses it).
		return nil
	}
	if err != nil {
		return err
	}
	if !pinned {
		return unavailable(op, http.StatusOK, "answer ended without a result", nil)
	}
	if progress != nil && pending {
		progress(last)
	}
	return nil
}

// alreadyRecursive reports Kubo's refusal of a direct pin of a CID it pins
// recursively.
func alreadyRecursive(err error) bool {
	var ke *Error
	return errors.As(err, &ke) && strings.Contains(ke.Message, "already pinned recursively")
}

// connectOrigins connects the node to a pin's origins, logging failures.
func (c *Connector) connectOrigins(ctx context.Context, origins []ma.Multiaddr) {
	if len(origins) == 0 {
		return
	}
	infos, err := peer.AddrInfosFromP2pAddrs(origins...)
	if err != nil {
		c.log.Warn("pin origins: unusable multiaddrs (need /p2p/)", "err", err)
		return
	}
	for _, pi := range infos {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.OriginConnectTimeout)
		err := c.connect(cctx, pi)
		cancel()
		if err != nil {
			c.log.Info("pin origins: connect failed", "peer", pi.ID, "err", err)
		}
	}
}

// connect calls "swarm/connect" for one peer and all its addresses.
func (c *Connector) connect(ctx context.Context, pi peer.AddrInfo) error {
	const op = "swarm/connect"
	if err := pi.ID.Validate(); err != nil {
		return &Error{Op: op, Code: -1, Message: "peer " + pi.ID.String(), Err: err}
	}
	suffix := "/p2p/" + pi.ID.String()
	args := make([]string, 0, len(pi.Addrs)+1)
	for _, a := range pi.Addrs {
		// Addresses may already end with the peer's /p2p/ part (as Kubo's
		// id reports them).
		if transport, id := peer.SplitAddr(a); id == pi.ID && transport != nil {
			a = transport
		} else if id != "" {
			continue // another peer's address
		}
		args = append(args, a.String()+suffix)
	}
	if len(args) == 0 {
		args = append(args, "/p2p/"+pi.ID.String())
	}
	var out struct{ Strings []string }
	return c.callJSON(ctx, request{op: op, args: args}, &out)
}

// Unpin calls "pin/rm" (recursive or direct pins alike). A CID that is not
// pinned (or only indirectly) gives an error wrapping
// pincluster.ErrNotPinned.
func (c *Connector) Unpin(ctx context.Context, ci cid.Cid) error {
	const op = "pin/rm"
	if !ci.Defined() {
		return &Error{Op: op, Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	var out struct{ Pins []string }
	return c.callJSON(ctx, request{op: op, args: []string{ci.String()}, opts: opts("recursive", "true")}, &out)
}

// PinLsCid calls "pin/ls" for one CID. To stay cheap it asks only for the
// pin types that can satisfy pin.MaxDepth (recursive, then direct; for a
// direct pin: direct, then recursive), and never asks Kubo to search
// indirect pins, which walks every recursive DAG. So it reports
// IPFSPinStatusRecursive, IPFSPinStatusDirect or IPFSPinStatusUnpinned (also
// for a CID held only indirectly); with Config.CheckIndirect it asks for
// type "all" and may report IPFSPinStatusIndirect. A CID that is not pinned
// is not an error.
func (c *Connector) PinLsCid(ctx context.Context, pin pincluster.Pin) (pincluster.IPFSPinStatus, error) {
	if !pin.Cid.Defined() {
		return pincluster.IPFSPinStatusError, &Error{Op: "pin/ls", Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	types := []string{"recursive", "direct"}
	if pin.MaxDepth == 0 {
		types = []string{"direct", "recursive"}
	}
	if c.cfg.CheckIndirect {
		types = []string{"all"}
	}
	for _, t := range types {
		st, err := c.pinLsOne(ctx, pin.Cid, t)
		if err != nil {
			return pincluster.IPFSPinStatusError, err
		}
		if st != pincluster.IPFSPinStatusUnpinned {
			return st, nil
		}
	}
	return pincluster.IPFSPinStatusUnpinned, nil
}

func (c *Connector) pinLsOne(ctx context.Context, ci cid.Cid, typ string) (pincluster.IPFSPinStatus, error) {
	const op = "pin/ls"
	var out struct {
		Keys map[string]struct{ Type string }
	}
	err := c.callJSON(ctx, request{op: op, args: []string{ci.String()}, opts: opts("type", typ)}, &out)
	if errors.Is(err, pincluster.ErrNotPinned) {
		return pincluster.IPFSPinStatusUnpinned, nil
	}
	if err != nil {
		return pincluster.IPFSPinStatusError, err
	}
	for k, v := range out.Keys {
		if kc, err := cid.Decode(k); len(out.Keys) == 1 || err == nil && kc.Equals(ci) {
			return parseType(op, v.Type)
		}
	}
	return pincluster.IPFSPinStatusUnpinned, nil
}

// parseType parses Kubo's pin type ("recursive", "direct", "indirect
// through <cid>").
func parseType(op, s string) (pincluster.IPFSPinStatus, error) {
	if strings.HasPrefix(s, "indirect") {
		return pincluster.IPFSPinStatusIndirect, nil
	}
	st := pincluster.ParseIPFSPinStatus(s)
	switch st {
	case pincluster.IPFSPinStatusRecursive, pincluster.IPFSPinStatusDirect:
		return st, nil
	}
	return pincluster.IPFSPinStatusError, malformed(op, fmt.Errorf("unknown pin type %q", s))
}

// PinLs streams "pin/ls" (stream=true) for each requested type: no types
// means recursive then direct; IPFSPinStatusIndirect may be asked for
// explicitly (costly: Kubo walks every recursive DAG). Pin names are not
// fetched (Kubo says that is slower), so Name is empty. Errors end the
// sequence; the call is bounded by ctx only.
func (c *Connector) PinLs(ctx context.Context, types ...pincluster.IPFSPinStatus) iter.Seq2[pincluster.IPFSPinInfo, error] {
	return func(yield func(pincluster.IPFSPinInfo, error) bool) {
		const op = "pin/ls"
		var kinds []string
		if len(types) == 0 {
			kinds = []string{"recursive", "direct"}
		}
		for _, t := range types {
			switch t {
			case pincluster.IPFSPinStatusRecursive, pincluster.IPFSPinStatusDirect, pincluster.IPFSPinStatusIndirect:
				if s := t.String(); !containsString(kinds, s) {
					kinds = append(kinds, s)
				}
			default:
				yield(pincluster.IPFSPinInfo{}, &Error{Op: op, Code: -1, Message: "cannot list pins of type " + t.String()})
				return
			}
		}
		stopped := false
		for _, kind := range kinds {
			err := c.stream(ctx, request{op: op, opts: opts("type", kind, "stream", "true")}, func(line []byte) error {
				var out struct{ Cid, Type, Name string }
				if err := json.Unmarshal(line, &out); err != nil {
					return malformed(op, err)
				}
				ci, err := cid.Decode(out.Cid)
				if err != nil {
					return malformed(op, err)
				}
				st, err := parseType(op, out.Type)
				if err != nil {
					return err
				}
				if !yield(pincluster.IPFSPinInfo{Cid: ci, Type: st, Name: out.Name}, nil) {
					stopped = true
					return errStop
				}
				return nil
			})
			if stopped {
				return
			}
			if err != nil {
				yield(pincluster.IPFSPinInfo{}, err)
				return
			}
		}
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ConnectSwarms calls "swarm/connect" once per peer (with all its
// addresses; a peer without addresses is dialled by ID, which needs
// routing). It returns the failures joined, nil when every peer connected.
func (c *Connector) ConnectSwarms(ctx context.Context, peers []peer.AddrInfo) error {
	var errs []error
	for _, pi := range peers {
		if err := c.connect(ctx, pi); err != nil {
			if errors.Is(err, pincluster.ErrClosed) || ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SwarmPeers calls "swarm/peers".
func (c *Connector) SwarmPeers(ctx context.Context) ([]peer.ID, error) {
	const op = "swarm/peers"
	var out struct {
		Peers []struct{ Peer string }
	}
	if err := c.callJSON(ctx, request{op: op}, &out); err != nil {
		return nil, err
	}
	ids := make([]peer.ID, 0, len(out.Peers))
	for _, p := range out.Peers {
		id, err := peer.Decode(p.Peer)
		if err != nil {
			return nil, malformed(op, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ConfigKey calls "config" with key, any key of Kubo's configuration
// (e.g. "Datastore.StorageMax" gives "10GB"). The value is JSON-decoded
// (string, float64, bool, []any, map[string]any or nil). An unknown key
// gives an error wrapping pincluster.ErrNotFound. Kubo refuses keys that
// hold secrets (e.g. Identity.PrivKey).
func (c *Connector) ConfigKey(ctx context.Context, key string) (any, error) {
	const op = "config"
	if key == "" {
		return nil, &Error{Op: op, Code: -1, Message: "empty key"}
	}
	var out struct {
		Key   string
		Value any
	}
	if err := c.callJSON(ctx, request{op: op, args: []string{key}}, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// RepoStat calls "repo/stat" with size-only (NumObjects is then 0).
func (c *Connector) RepoStat(ctx context.Context) (pincluster.RepoStat, error) {
	var out struct {
		RepoSize, StorageMax, NumObjects uint64
	}
	if err := c.callJSON(ctx, request{op: "repo/stat", opts: opts("size-only", "true")}, &out); err != nil {
		return pincluster.RepoStat{}, err
	}
	return pincluster.RepoStat{RepoSize: out.RepoSize, StorageMax: out.StorageMax, NumObjects: out.NumObjects}, nil
}

// Resolve calls "resolve" (recursive) on an /ipfs/ or /ipns/ path, or a
// bare CID (returned as is without a call). A path that ends inside a
// block resolves to that block's CID.
func (c *Connector) Resolve(ctx context.Context, path string) (cid.Cid, error) {
	const op = "resolve"
	if !strings.HasPrefix(path, "/") {
		ci, err := cid.Decode(path)
		if err != nil {
			return cid.Undef, &Error{Op: op, Code: -1, Message: "not a path or cid: " + path, Err: pincluster.ErrInvalidCID}
		}
		return ci, nil
	}
	var out struct{ Path string }
	if err := c.callJSON(ctx, request{op: op, args: []string{path}, opts: opts("recursive", "true")}, &out); err != nil {
		return cid.Undef, err
	}
	if !strings.HasPrefix(out.Path, "/ipfs/") {
		return cid.Undef, malformed(op, fmt.Errorf("resolved path %q", out.Path))
	}
	first, _, _ := strings.Cut(trimIPFS(out.Path), "/")
	ci, err := cid.Decode(first)
	if err != nil {
		return cid.Undef, malformed(op, err)
	}
	return ci, nil
}

// BlockPut calls "block/put" (without pinning the block) and checks that
// Kubo's CID is the one computed locally from data and prefix (CIDv1 raw
// sha2-256 when prefix.Version is 0).
func (c *Connector) BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error) {
	const op = "block/put"
	if prefix.Version == 0 {
		prefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}
	}
	want, err := prefix.Sum(data)
	if err != nil {
		return cid.Undef, &Error{Op: op, Code: -1, Message: "invalid prefix", Err: err}
	}
	hname, ok := mh.Codes[prefix.MhType]
	if !ok {
		return cid.Undef, &Error{Op: op, Code: -1, Message: fmt.Sprintf("unknown multihash 0x%x", prefix.MhType)}
	}
	q := opts("cid-codec", mc.Code(prefix.Codec).String(), "mhtype", hname, "pin", "false")
	if prefix.MhLength > 0 {
		q.Set("mhlen", strconv.Itoa(prefix.MhLength))
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="block"`)
	h.Set("Content-Type", "application/octet-stream")
	part, err := mw.CreatePart(h)
	if err == nil {
		_, err = part.Write(data)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return cid.Undef, &Error{Op: op, Code: -1, Message: "building body", Err: err}
	}
	var out struct {
		Key  string
		Size int
	}
	if err := c.callJSON(ctx, request{op: op, opts: q, body: &body, ctype: mw.FormDataContentType()}, &out); err != nil {
		return cid.Undef, err
	}
	got, err := cid.Decode(out.Key)
	if err != nil {
		return cid.Undef, malformed(op, err)
	}
	if !got.Equals(want) {
		return cid.Undef, malformed(op, fmt.Errorf("kubo stored %s, expected %s", got, want))
	}
	return got, nil
}

// BlockGet calls "block/get" and checks the bytes against c's hash. On an
// online daemon a block that is not local is fetched from the network
// (bounded by Config.RequestTimeout and ctx); an offline daemon answers an
// error wrapping pincluster.ErrNotFound. Blocks over Config.MaxBlockSize
// are refused.
func (c *Connector) BlockGet(ctx context.Context, ci cid.Cid) ([]byte, error) {
	const op = "block/get"
	if !ci.Defined() {
		return nil, &Error{Op: op, Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	data, err := c.callBytes(ctx, request{op: op, args: []string{ci.String()}}, c.cfg.MaxBlockSize)
	if err != nil {
		return nil, err
	}
	sum, err := ci.Prefix().Sum(data)
	if err != nil || !sum.Equals(ci) {
		return nil, malformed(op, errors.New("block does not match its cid"))
	}
	return data, nil
}

// DAGSize calls "dag/stat" offline: it walks only the blocks already in the
// node's repository, never the network, and gives up after
// Config.DAGSizeTimeout. A DAG that is not complete locally, or too large to
// walk in time, gives an error wrapping pincluster.ErrNotFound.
func (c *Connector) DAGSize(ctx context.Context, ci cid.Cid) (uint64, error) {
	const op = "dag/stat"
	if !ci.Defined() {
		return 0, &Error{Op: op, Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	tctx, cancel := context.WithTimeout(ctx, c.cfg.DAGSizeTimeout)
	defer cancel()
	var out struct{ TotalSize uint64 }
	err := c.callJSON(tctx, request{op: op, args: []string{ci.String()}, opts: opts("progress", "false", "offline", "true"), timeout: -1}, &out)
	if err != nil {
		if ctx.Err() == nil && tctx.Err() != nil {
			return 0, &Error{Op: op, Code: -1, Message: "size not known within " + c.cfg.DAGSizeTimeout.String(),
				Err: fmt.Errorf("%w: %w", pincluster.ErrNotFound, context.DeadlineExceeded)}
		}
		return 0, err
	}
	return out.TotalSize, nil
}

// PinUpdate calls "pin/update": it pins to (recursively), fetching only
// what differs from the recursive pin of from, and unpins from when unpin is
// set. A from that is not recursively pinned gives an error wrapping
// pincluster.ErrNotPinned. If to is already pinned, from is unpinned (when
// asked) and the call succeeds. Bounded by ctx only.
func (c *Connector) PinUpdate(ctx context.Context, from, to cid.Cid, unpin bool) error {
	const op = "pin/update"
	if !from.Defined() || !to.Defined() {
		return &Error{Op: op, Code: -1, Message: "undefined cid", Err: pincluster.ErrInvalidCID}
	}
	var out struct{ Pins []string }
	err := c.callJSON(ctx, request{op: op, args: []string{from.String(), to.String()}, opts: opts("unpin", strconv.FormatBool(unpin)), timeout: -1}, &out)
	var ke *Error
	if errors.As(err, &ke) && strings.Contains(ke.Message, "already recursively pinned") {
		if !unpin || from.Equals(to) {
			return nil
		}
		if err := c.Unpin(ctx, from); err != nil && !errors.Is(err, pincluster.ErrNotPinned) {
			return err
		}
		return nil
	}
	return err
}

// RepoGC calls "repo/gc" and reports the removed blocks (the list is cut at
// 10,000 entries; RemovedCount counts all). FreedBytes is the drop in
// repository size measured around the run, 0 when unknown. Bounded by ctx
// only.
func (c *Connector) RepoGC(ctx context.Context) (pincluster.RepoGC, error) {
	const op = "repo/gc"
	before, berr := c.RepoStat(ctx)
	var res pincluster.RepoGC
	var gcErrs []string
	err := c.stream(ctx, request{op: op}, func(line []byte) error {
		var out struct {
			Key   map[string]string
			Error string
		}
		if err := json.Unmarshal(line, &out); err != nil {
			return malformed(op, err)
		}
		if out.Error != "" {
			gcErrs = append(gcErrs, out.Error)
			return nil
		}
		s, ok := out.Key["/"]
		if !ok {
			return nil
		}
		ci, err := cid.Decode(s)
		if err != nil {
			return malformed(op, err)
		}
		res.RemovedCount++
		if len(res.Removed) < maxGCRemoved {
			res.Removed = append(res.Removed, ci)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if len(gcErrs) > 0 {
		return res, commandError(op, http.StatusOK, codeNormal, strings.Join(gcErrs, "; "))
	}
	if berr == nil {
		if after, err := c.RepoStat(ctx); err == nil && after.RepoSize < before.RepoSize {
			res.FreedBytes = before.RepoSize - after.RepoSize
		}
	}
	return res, nil
}
