package kubo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pincluster/pincluster"
)

// Connector is a pincluster.IPFSConnector over Kubo's RPC API. It also
// implements pincluster.PinUpdater, pincluster.RepoGCer and
// pincluster.DAGSizer. Build it with New; it is safe for concurrent use and
// starts no goroutines of its own. After Shutdown every method returns an
// error wrapping pincluster.ErrClosed.
type Connector struct {
	cfg       Config
	ep        endpoint
	client    *http.Client
	transport *http.Transport // nil when the caller gave the client
	log       *slog.Logger
	sem       chan struct{}

	closing context.Context // cancelled to abort in-flight calls
	abort   context.CancelFunc

	mu      sync.Mutex
	closed  bool
	active  int
	drained chan struct{} // closed when closed && active == 0
}

// Compile-time checks.
var (
	_ pincluster.IPFSConnector = (*Connector)(nil)
	_ pincluster.PinUpdater    = (*Connector)(nil)
	_ pincluster.RepoGCer      = (*Connector)(nil)
	_ pincluster.DAGSizer      = (*Connector)(nil)
)

// New returns a Connector for the Kubo RPC API at cfg.APIAddr. It does not
// contact Kubo: a daemon that is down is reported by each call (errors
// wrapping pincluster.ErrIPFSUnavailable) until it is up. It returns an
// error for an invalid Config.
func New(cfg Config) (*Connector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ep, err := parseAPIAddr(cfg.APIAddr)
	if err != nil {
		return nil, err
	}
	c := &Connector{
		cfg:     cfg,
		ep:      ep,
		client:  cfg.HTTPClient,
		log:     cfg.Logger.With("component", "kubo", "api", cfg.APIAddr),
		sem:     make(chan struct{}, cfg.MaxConcurrentRequests),
		drained: make(chan struct{}),
	}
	if ep.unix != "" && c.client != nil {
		return nil, errors.New("kubo: config: a /unix APIAddr needs the default HTTPClient (nil)")
	}
	if c.client == nil {
		c.transport = newTransport(ep, cfg.MaxConcurrentRequests)
		c.client = &http.Client{Transport: c.transport}
	}
	c.closing, c.abort = context.WithCancel(context.Background())
	return c, nil
}

// Shutdown stops accepting calls, waits for the calls in flight to end and
// closes idle connections. If ctx ends first, the calls in flight are
// aborted (they return errors wrapping pincluster.ErrClosed) and Shutdown
// returns ctx.Err() once they have returned. A second Shutdown returns an
// error wrapping pincluster.ErrClosed. A PinLs iteration in progress counts
// as a call in flight: do not call Shutdown from inside its loop body
// without a ctx deadline.
func (c *Connector) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed("shutdown")
	}
	c.closed = true
	if c.active == 0 {
		close(c.drained)
	}
	c.mu.Unlock()

	var err error
	select {
	case <-c.drained:
	case <-ctx.Done():
		err = ctx.Err()
		c.abort()
		<-c.drained
	}
	c.abort()
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return err
}

// begin registers a call in flight; it fails after Shutdown.
func (c *Connector) begin(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed(op)
	}
	c.active++
	return nil
}

// end unregisters a call in flight.
func (c *Connector) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	if c.closed && c.active == 0 {
		close(c.drained)
	}
}

// request is one RPC call.
type request struct {
	op      string
	args    []string
	opts    url.Values
	body    io.Reader
	ctype   string
	timeout time.Duration // 0: bounded by ctx only
}

// call sends r and returns the answer once its status is 200; release must
// be called when the body has been read. Errors are typed (see Error).
func (c *Connector) call(ctx context.Context, r request) (*http.Response, func(), error) {
	if err := c.begin(r.op); err != nil {
		return nil, nil, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		c.end()
		return nil, nil, &Error{Op: r.op, Code: -1, Message: "waiting for a request slot", Err: ctx.Err()}
	case <-c.closing.Done():
		c.end()
		return nil, nil, errClosed(r.op)
	}
	var (
		cctx   context.Context
		cancel context.CancelFunc
	)
	if r.timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, r.timeout)
	} else {
		cctx, cancel = context.WithCancel(ctx)
	}
	stop := context.AfterFunc(c.closing, cancel)
	release := func() {
		stop()
		cancel()
		<-c.sem
		c.end()
	}

	q := url.Values{}
	for k, v := range r.opts {
		q[k] = v
	}
	if len(r.args) > 0 {
		q["arg"] = r.args
	}
	u := c.ep.base + "/api/v0/" + r.op
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, u, r.body)
	if err != nil {
		release()
		return nil, nil, &Error{Op: r.op, Code: -1, Message: "building request", Err: err}
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		release()
		return nil, nil, c.transportError(ctx, r.op, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		release()
		return nil, nil, statusError(r.op, resp.StatusCode, body)
	}
	return resp, func() {
		_ = resp.Body.Close()
		release()
	}, nil
}

// callJSON makes a unary call and decodes its JSON answer into out.
func (c *Connector) callJSON(ctx context.Context, r request, out any) error {
	body, err := c.callBytes(ctx, r, maxJSONResponse)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return malformed(r.op, err)
	}
	return nil
}

// callBytes makes a call and returns its whole answer, at most limit bytes.
func (c *Connector) callBytes(ctx context.Context, r request, limit int64) ([]byte, error) {
	if r.timeout == 0 {
		r.timeout = c.cfg.RequestTimeout
	}
	resp, release, err := c.call(ctx, r)
	if err != nil {
		return nil, err
	}
	defer release()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(ctx, r.op, err)
	}
	if int64(len(body)) > limit {
		return nil, unavailable(r.op, resp.StatusCode, fmt.Sprintf("answer larger than %d bytes", limit), nil)
	}
	// Reach EOF so that the trailer is read.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, c.transportError(ctx, r.op, err)
	}
	if err := streamError(r.op, resp); err != nil {
		return nil, err
	}
	return body, nil
}

// stream makes a call and hands each non-empty line of its answer to fn,
// which may stop the stream by returning errStop or fail it with an error.
func (c *Connector) stream(ctx context.Context, r request, fn func(line []byte) error) error {
	resp, release, err := c.call(ctx, r)
	if err != nil {
		return err
	}
	defer release()
	br := readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	for {
		line, rerr := readLine(br)
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := lineError(r.op, line); err != nil {
				return err
			}
			if err := fn(line); err != nil {
				if errors.Is(err, errStop) {
					return nil
				}
				return err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return streamError(r.op, resp)
		case errors.Is(rerr, errLineTooLong):
			return unavailable(r.op, resp.StatusCode, "answer line too long", rerr)
		default:
			return c.transportError(ctx, r.op, rerr)
		}
	}
}

// readers recycles the line readers of streams.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// errStop ends a stream early without an error.
var errStop = errors.New("stop")

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// readLine reads one line, at most maxLine bytes. The returned slice is
// valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return frag, err
	}
	buf := append([]byte(nil), frag...)
	for errors.Is(err, bufio.ErrBufferFull) {
		frag, err = br.ReadSlice('\n')
		if len(buf)+len(frag) > maxLine {
			return nil, errLineTooLong
		}
		buf = append(buf, frag...)
	}
	return buf, err
}

// lineError recognises an error object sent as a line of a stream.
func lineError(op string, line []byte) error {
	if !bytes.Contains(line, []byte(`"Type"`)) {
		return nil
	}
	var ke kuboError
	if json.Unmarshal(line, &ke) == nil && ke.Type == "error" && ke.Message != "" {
		return commandError(op, http.StatusOK, ke.Code, ke.Message)
	}
	return nil
}

// streamError reads the X-Stream-Error trailer (or header) of an answer
// read to its end.
func streamError(op string, resp *http.Response) error {
	msg := resp.Trailer.Get("X-Stream-Error")
	if msg == "" {
		msg = resp.Header.Get("X-Stream-Error")
	}
	if msg == "" {
		return nil
	}
	return commandError(op, resp.StatusCode, codeNormal, msg)
}

// opts builds query options from key/value pairs.
func opts(kv ...string) url.Values {
	q := make(url.Values, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return q
}

// trimIPFS strips a leading /ipfs/ from a path.
func trimIPFS(p string) string { return strings.TrimPrefix(p, "/ipfs/") }
