package rpc

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/gorun"
)

// inlineWrite is the largest request written by the calling goroutine; a
// larger one is written by a helper goroutine while the response is read,
// so that a server refusing the call without reading the body (permission,
// size) is heard instead of blocking the writer on flow control.
const inlineWrite = 64 << 10

// Client calls methods on peers. Calls to the host's own peer ID run the
// local Server's handler directly, in the calling goroutine, without a
// stream and without permission checks (local code is trusted, Closed
// methods included). Create it with NewClient; Close it when done.
type Client struct {
	h     host.Host
	cfg   *config
	local *Server
	group *gorun.Group // request writers; its context ends calls on Close
}

// NewClient validates cfg and returns a client on h. local, if not nil, is
// the Server that serves calls to h.ID(); with nil such calls fail with
// ErrUnknownMethod.
func NewClient(h host.Host, cfg Config, local *Server) (*Client, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Client{h: h, cfg: c, local: local, group: gorun.New()}, nil
}

// Close makes new calls fail with ErrClosed, ends running calls (they
// return ErrClosed) and waits for the client's goroutines, or until ctx is
// done.
func (c *Client) Close(ctx context.Context) error {
	if err := c.group.Close(ctx); err != nil {
		return fmt.Errorf("rpc: client close: %w", err)
	}
	return nil
}

// Call calls the unary method on peer p with body and returns the
// response body. ctx bounds the whole call; its deadline is sent to the
// server, which cancels the handler then. Errors: ErrClosed,
// ErrFrameTooLarge, ErrMalformed, ctx's error, a network error, or a
// *RemoteError (see its doc for errors.Is on remote errors).
func (c *Client) Call(ctx context.Context, p peer.ID, method string, body []byte) ([]byte, error) {
	if err := c.check(method, body); err != nil {
		return nil, err
	}
	if p == c.h.ID() {
		if c.local == nil {
			return nil, fmt.Errorf("rpc: %s: no local server: %w", method, ErrUnknownMethod)
		}
		return c.local.callLocal(ctx, method, body)
	}
	cl, err := c.open(ctx, p, method, false, body)
	if err != nil {
		return nil, err
	}
	defer cl.done()
	var rh respHeader
	if err := cl.fr.readHeader(&rh); err != nil {
		return nil, cl.fail(err)
	}
	switch rh.Kind {
	case kindResult:
		resp, err := cl.fr.readFrame(c.cfg.MaxFrameSize)
		if err != nil {
			return nil, cl.fail(err)
		}
		_ = cl.st.Close()
		return resp, nil
	case kindError:
		_ = cl.st.Close()
		return nil, c.remoteError(p, method, rh)
	}
	return nil, cl.fail(fmt.Errorf("%w: response kind %d", ErrMalformed, rh.Kind))
}

// Stream calls the streaming method on peer p and returns its items in
// order. The call starts when iteration starts; stopping the iteration
// early cancels the call (the handler's ctx is cancelled). An error ends
// the sequence: it is yielded once, with a nil item. Errors are those of
// Call.
func (c *Client) Stream(ctx context.Context, p peer.ID, method string, body []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if err := c.check(method, body); err != nil {
			yield(nil, err)
			return
		}
		if p == c.h.ID() {
			if c.local == nil {
				yield(nil, fmt.Errorf("rpc: %s: no local server: %w", method, ErrUnknownMethod))
				return
			}
			if err := c.local.streamLocal(ctx, method, body, func(b []byte) bool { return yield(b, nil) }); err != nil {
				yield(nil, err)
			}
			return
		}
		cl, err := c.open(ctx, p, method, true, body)
		if err != nil {
			yield(nil, err)
			return
		}
		defer cl.done()
		for {
			var rh respHeader
			if err := cl.fr.readHeader(&rh); err != nil {
				yield(nil, cl.fail(err))
				return
			}
			switch rh.Kind {
			case kindItem:
				item, err := cl.fr.readFrame(c.cfg.MaxFrameSize)
				if err != nil {
					yield(nil, cl.fail(err))
					return
				}
				if !yield(item, nil) {
					// Stopped early: the reset tells the server.
					_ = cl.st.Reset()
					return
				}
			case kindEnd:
				_ = cl.st.Close()
				return
			case kindError:
				_ = cl.st.Close()
				yield(nil, c.remoteError(p, method, rh))
				return
			default:
				yield(nil, cl.fail(fmt.Errorf("%w: response kind %d", ErrMalformed, rh.Kind)))
				return
			}
		}
	}
}

func (c *Client) check(method string, body []byte) error {
	if c.group.Closed() {
		return fmt.Errorf("rpc: %s: %w", method, ErrClosed)
	}
	if len(body) > c.cfg.MaxFrameSize {
		return fmt.Errorf("rpc: %s: request of %d bytes: %w", method, len(body), ErrFrameTooLarge)
	}
	return validMethod(method)
}

// call is one open remote call.
type call struct {
	c       *Client
	method  string
	ctx     context.Context // the caller's
	st      network.Stream
	fr      *frameReader
	stops   []func() bool
	cancel  context.CancelFunc
	writeCh chan error // result of the request write
}

// open opens a stream to p and sends the request.
func (c *Client) open(ctx context.Context, p peer.ID, method string, streaming bool, body []byte) (*call, error) {
	callCtx, cancel := context.WithCancel(ctx)
	cl := &call{c: c, method: method, ctx: ctx, cancel: cancel}
	cl.stops = append(cl.stops, context.AfterFunc(c.group.Context(), cancel))

	st, err := c.h.NewStream(callCtx, p, c.cfg.proto)
	if err != nil {
		cl.done()
		return nil, cl.wrap(fmt.Errorf("open stream to %s: %w", p, err))
	}
	cl.st = st
	cl.fr = &frameReader{r: st}
	// Ending the call's context (caller's ctx, or Close) aborts the
	// stream and with it any blocked read or write.
	cl.stops = append(cl.stops, context.AfterFunc(callCtx, func() { _ = st.Reset() }))

	hdr := reqHeader{Version: wireVersion, Method: method, Streaming: streaming}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
		hdr.TimeoutMS = max(1, time.Until(dl).Milliseconds())
	}
	buf, err := appendHeader(make([]byte, 0, 64), hdr)
	if err != nil {
		cl.done()
		return nil, cl.wrap(err)
	}
	if len(body) <= inlineWrite {
		buf = appendFrame(buf, body)
		if _, err := st.Write(buf); err != nil {
			// The server may have refused the call and closed its
			// side; its answer is still worth reading.
			cl.c.cfg.Logger.Debug("rpc: write request", "peer", p, "method", method, "err", err)
		}
		return cl, nil
	}
	cl.writeCh = make(chan error, 1)
	err = c.group.Go(func(context.Context) {
		_, err := st.Write(buf)
		if err == nil {
			_, err = st.Write(appendFrame(nil, body))
		}
		cl.writeCh <- err
	})
	if err != nil {
		_ = st.Reset()
		cl.done()
		return nil, cl.wrap(ErrClosed)
	}
	return cl, nil
}

// done releases the call's resources; the stream must be closed or reset
// by then (fail and the success paths do it).
func (cl *call) done() {
	if cl.writeCh != nil {
		// Reset first so a writer blocked on flow control returns.
		_ = cl.st.Reset()
		<-cl.writeCh
	}
	for _, stop := range cl.stops {
		stop()
	}
	cl.cancel()
}

// fail resets the stream and turns err into the call's error: the
// caller's ctx error, ErrClosed, or err.
func (cl *call) fail(err error) error {
	_ = cl.st.Reset()
	dl, hasDL := cl.ctx.Deadline()
	switch {
	case cl.ctx.Err() != nil:
		err = context.Cause(cl.ctx)
	case hasDL && !time.Now().Before(dl):
		// The stream deadline fired just before the context's timer.
		err = context.DeadlineExceeded
	case cl.c.group.Closed():
		err = ErrClosed
	}
	return cl.wrap(err)
}

func (cl *call) wrap(err error) error {
	if errors.Is(err, ErrClosed) && cl.c.group.Closed() {
		return fmt.Errorf("rpc: %s: %w", cl.method, ErrClosed)
	}
	if cl.ctx.Err() != nil && !errors.Is(err, cl.ctx.Err()) {
		return fmt.Errorf("rpc: %s: %w (%v)", cl.method, context.Cause(cl.ctx), err)
	}
	return fmt.Errorf("rpc: %s: %w", cl.method, err)
}

func (c *Client) remoteError(p peer.ID, method string, rh respHeader) error {
	return &RemoteError{Peer: p, Method: method, Code: rh.Code, Msg: rh.Msg, err: c.cfg.byCod[rh.Code]}
}
