package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// BulkPinner is the optional ability of a Backend behind POST
// /pins/stream: pin many requests as one durable batch (*pincluster.Cluster
// has it). Without it the endpoint answers 501.
type BulkPinner interface {
	PinMany(ctx context.Context, reqs []pincluster.PinRequest) ([]pincluster.PinResult, error)
}

// maxStreamLine bounds one line of a /pins/stream body, in bytes.
const maxStreamLine = 64 << 10

// streamLine is one parsed line of a /pins/stream body: a request, or the
// error that ends the stream.
type streamLine struct {
	n   int // 1-based line number
	req pincluster.PinRequest
	err error
}

// streamAck is one line of a /pins/stream answer.
type streamAck struct {
	Line  int        `json:"line"`
	Cid   string     `json:"cid,omitempty"`
	Error *errorJSON `json:"error,omitempty"`
}

// pinStream is POST /pins/stream, pincluster's bulk path (IPFS Cluster
// has none): the body is NDJSON, one pin per line with IPFS Cluster's
// pin JSON field names: "cid" (required: the CID as a string, or
// {"/": "<cid>"}), and optionally "name", "mode", "replication_factor_min",
// "replication_factor_max", "user_allocations", "expire_at" and
// "metadata"; other fields are ignored. Blank lines are skipped. The lines already received are
// pinned together (Cluster.PinMany: one durable batch), and answered in
// order, one NDJSON line each, once durable: {"line": n, "cid": c}, or
// {"line": n, "error": {"code", "message"}} for a pin refused (the stream
// goes on). A line that is not a pin (bad JSON, bad CID, over 64 KiB) is
// answered {"line": n, "error": {"code": 400 or 413, ...}} and ends the
// stream: the lines after it are not read, and every line answered
// without error before it is pinned. When the very first line is bad,
// or the first batch fails, the whole answer is that error (400, 413,
// 503, ...), as for POST /pins/{cid}. A failure of a later batch is
// answered with an error line for its first line and ends the stream.
// The body is bounded like /add's (Config.MaxAddBytes, AddReadTimeout).
func (a *API) pinStream(w http.ResponseWriter, r *http.Request) {
	bp, ok := a.backend.(BulkPinner)
	if !ok {
		a.writeError(w, http.StatusNotImplemented, "this peer has no bulk pinning")
		return
	}
	if err := onlyKeys(r.URL.Query()); err != nil {
		a.fail(w, r, err)
		return
	}
	// Answer lines while the body is still being read.
	_ = http.NewResponseController(w).EnableFullDuplex()
	ctx, cancel := context.WithCancel(r.Context())
	lines := make(chan streamLine, 4096)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { readStream(ctx, r.Body, lines) })

	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
	}
	flush := func() bool {
		if bw.Flush() != nil {
			return false
		}
		return http.NewResponseController(w).Flush() == nil
	}
	var reqs []pincluster.PinRequest
	var nums []int
	for {
		reqs, nums = reqs[:0], nums[:0]
		var bad *streamLine
		first, ok := <-lines
		if !ok {
			if !started {
				start()
			}
			flush()
			return
		}
		take := func(l streamLine) {
			if l.err != nil {
				bad = &l
				return
			}
			reqs = append(reqs, l.req)
			nums = append(nums, l.n)
		}
		take(first)
	gather:
		for bad == nil && len(reqs) < pincluster.MaxPinBatch {
			select {
			case l, ok := <-lines:
				if !ok {
					break gather
				}
				take(l)
			default:
				break gather
			}
		}
		if len(reqs) > 0 {
			res, err := bp.PinMany(ctx, reqs)
			if err != nil {
				if !started {
					a.fail(w, r, err)
					return
				}
				code := statusOf(err)
				_ = enc.Encode(streamAck{Line: nums[0], Error: &errorJSON{Code: code, Message: err.Error()}})
				flush()
				return
			}
			start()
			for i, pr := range res {
				ack := streamAck{Line: nums[i], Cid: reqs[i].Cid.String()}
				if pr.Err != nil {
					ack.Cid = ""
					ack.Error = &errorJSON{Code: statusOf(pr.Err), Message: pr.Err.Error()}
				}
				if enc.Encode(ack) != nil {
					return
				}
			}
		}
		if bad != nil {
			code := statusOf(bad.err)
			if !started {
				a.writeError(w, code, fmt.Sprintf("line %d: %v", bad.n, bad.err))
				return
			}
			_ = enc.Encode(streamAck{Line: bad.n, Error: &errorJSON{Code: code, Message: bad.err.Error()}})
			flush()
			return
		}
		if len(lines) == 0 && !flush() {
			return // the client went away
		}
	}
}

// errLineTooLong is the error of a /pins/stream line over maxStreamLine.
var errLineTooLong = fmt.Errorf("line over %d bytes", maxStreamLine)

// readStream parses body into lines until it ends, a line is bad (sent
// last, with its error) or ctx ends; it closes lines.
func readStream(ctx context.Context, body io.Reader, lines chan<- streamLine) {
	defer close(lines)
	br := bufio.NewReaderSize(body, 64<<10)
	send := func(l streamLine) bool {
		select {
		case lines <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for n := 1; ; n++ {
		line, err := readLine(br)
		if len(bytes.TrimSpace(line)) > 0 && (err == nil || errors.Is(err, io.EOF)) {
			req, perr := parseStreamPin(line)
			if perr != nil {
				send(streamLine{n: n, err: fmt.Errorf("%w: %v", errBadRequest, perr)})
				return
			}
			if !send(streamLine{n: n, req: req}) {
				return
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return
		case errors.Is(err, errLineTooLong):
			send(streamLine{n: n, err: &http.MaxBytesError{Limit: maxStreamLine}})
			return
		case err != nil:
			send(streamLine{n: n, err: err})
			return
		}
	}
}

// readLine returns the next line of br without its newline, or
// errLineTooLong past maxStreamLine bytes, or io.EOF with the last line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxStreamLine+1 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// streamPinJSON is one /pins/stream line: IPFS Cluster's pin JSON field
// names for a CID and its options.
type streamPinJSON struct {
	Cid             json.RawMessage   `json:"cid"`
	Name            string            `json:"name"`
	Mode            string            `json:"mode"`
	ReplicationMin  int               `json:"replication_factor_min"`
	ReplicationMax  int               `json:"replication_factor_max"`
	UserAllocations []peer.ID         `json:"user_allocations"`
	ExpireAt        time.Time         `json:"expire_at"`
	Metadata        map[string]string `json:"metadata"`
}

// parseStreamPin parses one /pins/stream line. The options are checked
// by the Cluster (a refused pin does not end the stream); the line's
// syntax, its CID and its mode here.
func parseStreamPin(line []byte) (pincluster.PinRequest, error) {
	var j streamPinJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return pincluster.PinRequest{}, err
	}
	if len(j.Cid) == 0 || string(j.Cid) == "null" {
		return pincluster.PinRequest{}, errors.New("no cid")
	}
	var s string
	if err := json.Unmarshal(j.Cid, &s); err != nil {
		var link struct {
			Slash string `json:"/"`
		}
		if err := json.Unmarshal(j.Cid, &link); err != nil {
			return pincluster.PinRequest{}, fmt.Errorf("cid: want a string or {\"/\": string}: %w", err)
		}
		s = link.Slash
	}
	ci, err := cid.Decode(s)
	if err != nil {
		return pincluster.PinRequest{}, fmt.Errorf("cid %q: %w", s, err)
	}
	mode, err := pincluster.ParsePinMode(j.Mode)
	if err != nil {
		return pincluster.PinRequest{}, err
	}
	return pincluster.PinRequest{Cid: ci, Opts: pincluster.PinOptions{
		Name: j.Name, Mode: mode, ReplicationMin: j.ReplicationMin, ReplicationMax: j.ReplicationMax,
		UserAllocations: j.UserAllocations, ExpireAt: j.ExpireAt, Metadata: j.Metadata,
	}}, nil
}
