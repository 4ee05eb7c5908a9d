package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
	"unicode"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster/internal/gorun"
)

// Permission says who may call a method.
type Permission uint8

const (
	// Closed methods are never served to remote peers; only calls to the
	// local peer through a Client built with this Server reach them. It
	// is the zero value, so a forgotten permission fails safe.
	Closed Permission = iota
	// Trusted methods are served to remote peers that Config.Authorize
	// accepts (and locally).
	Trusted
	// Open methods are served to any peer.
	Open
)

// String returns "closed", "trusted" or "open".
func (p Permission) String() string {
	switch p {
	case Closed:
		return "closed"
	case Trusted:
		return "trusted"
	case Open:
		return "open"
	}
	return fmt.Sprintf("permission(%d)", uint8(p))
}

// Request is one call as a handler sees it. Body belongs to the handler
// for remote calls; for calls to the local peer it is the caller's slice,
// so handlers must not modify it.
type Request struct {
	Peer   peer.ID // the caller; the local peer for local calls
	Method string
	Body   []byte
}

// Handler serves a unary method. Its ctx is cancelled when the caller goes
// away, at the caller's deadline, after Config.MaxHandlerTime, and when the
// Server closes. The returned error's text and code (see Config.Errors)
// reach the caller.
type Handler func(ctx context.Context, req Request) ([]byte, error)

// StreamHandler serves a streaming method: it calls send for each item, in
// order, and returns when done. send blocks while the caller is not
// reading (flow control) and fails once the caller has stopped reading or
// gone away; the handler should then return.
type StreamHandler func(ctx context.Context, req Request, send func([]byte) error) error

type method struct {
	perm   Permission
	unary  Handler
	stream StreamHandler
}

// Server serves registered methods on a host under the protocol
// ProtocolID(Config.Name). Create it with NewServer; Close it when done.
type Server struct {
	h     host.Host
	cfg   *config
	group *gorun.Group // handler contexts and watcher goroutines

	mu      sync.RWMutex
	methods map[string]*method

	admit    sync.Mutex
	closed   bool
	total    int
	perPeer  map[peer.ID]int
	inflight int           // calls being served, local ones included
	drained  chan struct{} // closed when closed and inflight == 0
}

// NewServer validates cfg and starts serving on h. Register methods before
// peers call them; calls to unregistered methods fail with ErrUnknownMethod.
func NewServer(h host.Host, cfg Config) (*Server, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{
		h:       h,
		cfg:     c,
		group:   gorun.New(),
		methods: make(map[string]*method),
		perPeer: make(map[peer.ID]int),
		drained: make(chan struct{}),
	}
	h.SetStreamHandler(c.proto, s.handleStream)
	return s, nil
}

// Register serves h as the unary method name with permission perm. It
// fails for an invalid name (1 to 128 printable ASCII characters), a name
// already registered, or after Close (ErrClosed).
func (s *Server) Register(name string, perm Permission, h Handler) error {
	if h == nil {
		return fmt.Errorf("rpc: register %q: nil handler", name)
	}
	return s.register(name, &method{perm: perm, unary: h})
}

// RegisterStream serves h as the streaming method name; see Register.
func (s *Server) RegisterStream(name string, perm Permission, h StreamHandler) error {
	if h == nil {
		return fmt.Errorf("rpc: register %q: nil handler", name)
	}
	return s.register(name, &method{perm: perm, stream: h})
}

func (s *Server) register(name string, m *method) error {
	if err := validMethod(name); err != nil {
		return fmt.Errorf("rpc: register: %w", err)
	}
	if m.perm > Open {
		return fmt.Errorf("rpc: register %q: invalid permission %d", name, m.perm)
	}
	if s.group.Closed() {
		return fmt.Errorf("rpc: register %q: %w", name, ErrClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[name]; dup {
		return fmt.Errorf("rpc: register %q: already registered", name)
	}
	s.methods[name] = m
	return nil
}

func validMethod(name string) error {
	if name == "" || len(name) > maxMethodLen {
		return fmt.Errorf("method name of %d bytes: must be 1 to %d bytes", len(name), maxMethodLen)
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return fmt.Errorf("method name %q: only printable ASCII without spaces", name)
		}
	}
	return nil
}

func (s *Server) lookup(name string) *method {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.methods[name]
}

// enter admits one call; remote calls also count against the stream
// limits. It returns a wire code ("" = admitted).
func (s *Server) enter(p peer.ID, remote bool) string {
	s.admit.Lock()
	defer s.admit.Unlock()
	if s.closed {
		return codeClosed
	}
	if remote {
		if s.total >= s.cfg.MaxStreams || s.perPeer[p] >= s.cfg.MaxStreamsPerPeer {
			return codeBusy
		}
		s.total++
		s.perPeer[p]++
	}
	s.inflight++
	return ""
}

func (s *Server) leave(p peer.ID, remote bool) {
	s.admit.Lock()
	defer s.admit.Unlock()
	if remote {
		s.total--
		if s.perPeer[p]--; s.perPeer[p] <= 0 {
			delete(s.perPeer, p)
		}
	}
	s.inflight--
	if s.closed && s.inflight == 0 {
		close(s.drained)
	}
}

// Close stops serving: it removes the stream handler, refuses new calls
// (ErrClosed), cancels the contexts of running handlers and waits for them
// to return, or until ctx is done (then it returns an error wrapping
// ctx.Err(); calling Close again waits again). Once everything has
// returned, a further Close returns ErrClosed.
func (s *Server) Close(ctx context.Context) error {
	s.admit.Lock()
	first := !s.closed
	if first {
		s.closed = true
		if s.inflight == 0 {
			close(s.drained)
		}
	}
	s.admit.Unlock()
	if first {
		s.h.RemoveStreamHandler(s.cfg.proto)
	}
	if !first && s.group.Running() == 0 && isClosed(s.drained) {
		return fmt.Errorf("rpc: server close: %w", ErrClosed)
	}
	s.group.Stop()
	select {
	case <-s.drained:
	case <-ctx.Done():
		return fmt.Errorf("rpc: server close: handlers still running: %w", ctx.Err())
	}
	if err := s.group.Wait(ctx); err != nil {
		return fmt.Errorf("rpc: server close: %w", err)
	}
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// handleStream serves one inbound stream.
func (s *Server) handleStream(st network.Stream) {
	remote := st.Conn().RemotePeer()
	if code := s.enter(remote, true); code != "" {
		s.refuse(st, remote, "", code, "refused: "+code)
		return
	}
	defer s.leave(remote, true)

	_ = st.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	fr := &frameReader{r: st}
	var hdr reqHeader
	if err := fr.readHeader(&hdr); err != nil {
		s.refuseErr(st, remote, "", err)
		return
	}
	if hdr.Version != wireVersion {
		s.refuse(st, remote, hdr.Method, codeMalformed, fmt.Sprintf("unsupported version %d", hdr.Version))
		return
	}
	if err := validMethod(hdr.Method); err != nil {
		s.refuse(st, remote, "", codeMalformed, err.Error())
		return
	}
	m := s.lookup(hdr.Method)
	if m == nil || (m.stream != nil) != hdr.Streaming {
		s.refuse(st, remote, hdr.Method, codeUnknown, fmt.Sprintf("%s: method %q", ErrUnknownMethod, hdr.Method))
		return
	}
	// The permission check needs only the header: the body is not read
	// for a caller that may not call this method.
	if !s.allowed(m.perm, remote) {
		s.refuse(st, remote, hdr.Method, codePermission, fmt.Sprintf("%s: method %q is %s", ErrPermission, hdr.Method, m.perm))
		return
	}
	body, err := fr.readFrame(s.cfg.MaxFrameSize)
	if err != nil {
		s.refuseErr(st, remote, hdr.Method, err)
		return
	}
	_ = st.SetReadDeadline(time.Time{})

	ctx, cancel := s.handlerContext(context.Background(), hdr.TimeoutMS)
	defer cancel()
	// Watch the stream: the caller closing or resetting it (or sending
	// anything more) cancels the handler.
	if err := s.group.Go(func(context.Context) {
		var b [1]byte
		_, _ = st.Read(b[:])
		cancel()
	}); err != nil {
		s.refuse(st, remote, hdr.Method, codeClosed, ErrClosed.Error())
		return
	}
	if dl, ok := ctx.Deadline(); ok {
		// A caller that stops reading cannot hold us past the deadline.
		_ = st.SetWriteDeadline(dl.Add(time.Second))
	}
	req := Request{Peer: remote, Method: hdr.Method, Body: body}
	if m.unary != nil {
		resp, err := s.runUnary(ctx, m.unary, req)
		if err == nil && len(resp) > s.cfg.MaxFrameSize {
			err = fmt.Errorf("%w: response of %d bytes", ErrFrameTooLarge, len(resp))
		}
		if err != nil {
			s.writeError(st, err)
		} else if err := writeMessage(st, respHeader{Kind: kindResult}, resp, true); err != nil {
			s.cfg.Logger.Debug("rpc: write response", "peer", remote, "method", hdr.Method, "err", err)
			_ = st.Reset()
			return
		}
		_ = st.Close()
		return
	}
	send := func(item []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(item) > s.cfg.MaxFrameSize {
			return fmt.Errorf("%w: item of %d bytes", ErrFrameTooLarge, len(item))
		}
		if err := writeMessage(st, respHeader{Kind: kindItem}, item, true); err != nil {
			cancel()
			return fmt.Errorf("rpc: send: %w", err)
		}
		return nil
	}
	if err := s.runStream(ctx, m.stream, req, send); err != nil {
		s.writeError(st, err)
	} else if err := writeMessage(st, respHeader{Kind: kindEnd}, nil, false); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Server) allowed(perm Permission, p peer.ID) bool {
	switch perm {
	case Open:
		return true
	case Trusted:
		return s.cfg.Authorize != nil && s.cfg.Authorize(p)
	}
	return false
}

// handlerContext bounds a handler by the caller's timeout, MaxHandlerTime
// and the server's life.
func (s *Server) handlerContext(parent context.Context, timeoutMS int64) (context.Context, context.CancelFunc) {
	limit := s.cfg.MaxHandlerTime
	if timeoutMS > 0 && time.Duration(timeoutMS) < limit/time.Millisecond {
		limit = time.Duration(timeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(parent, limit)
	stop := context.AfterFunc(s.group.Context(), cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

func (s *Server) runUnary(ctx context.Context, h Handler, req Request) (resp []byte, err error) {
	defer s.recoverHandler(req, &err)
	return h(ctx, req)
}

func (s *Server) runStream(ctx context.Context, h StreamHandler, req Request, send func([]byte) error) (err error) {
	defer s.recoverHandler(req, &err)
	return h(ctx, req, send)
}

var errHandlerPanic = errors.New("rpc: handler panicked")

func (s *Server) recoverHandler(req Request, err *error) {
	if r := recover(); r != nil {
		s.cfg.Logger.Error("rpc: handler panicked", "method", req.Method, "peer", req.Peer,
			"panic", r, "stack", string(debug.Stack()))
		*err = fmt.Errorf("%w: %s", errHandlerPanic, req.Method)
	}
}

// refuseErr answers a request that could not be read: a malformed or
// oversized frame gets an error response, a broken stream a reset.
func (s *Server) refuseErr(st network.Stream, p peer.ID, method string, err error) {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		s.refuse(st, p, method, codeTooLarge, err.Error())
	case errors.Is(err, ErrMalformed):
		s.refuse(st, p, method, codeMalformed, err.Error())
	default:
		s.cfg.Logger.Debug("rpc: read request", "peer", p, "method", method, "err", err)
		_ = st.Reset()
	}
}

// refuse answers with an error without reading more of the request.
func (s *Server) refuse(st network.Stream, p peer.ID, method, code, msg string) {
	s.cfg.Logger.Debug("rpc: refused", "peer", p, "method", method, "code", code)
	_ = st.CloseRead()
	_ = st.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if err := writeMessage(st, respHeader{Kind: kindError, Code: code, Msg: msg}, nil, false); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// writeError sends a handler's error.
func (s *Server) writeError(st network.Stream, err error) {
	msg := err.Error()
	if len(msg) > maxHeaderSize/2 {
		msg = msg[:maxHeaderSize/2] + "…"
	}
	if werr := writeMessage(st, respHeader{Kind: kindError, Code: s.cfg.codeOf(err), Msg: msg}, nil, false); werr != nil {
		_ = st.Reset()
	}
}

// callLocal serves a unary call from the local peer.
func (s *Server) callLocal(ctx context.Context, method string, body []byte) ([]byte, error) {
	self := s.h.ID()
	m, err := s.enterLocal(method, false)
	if err != nil {
		return nil, err
	}
	defer s.leave(self, false)
	hctx, cancel := s.handlerContext(ctx, 0)
	defer cancel()
	resp, err := s.runUnary(hctx, m.unary, Request{Peer: self, Method: method, Body: body})
	if err != nil {
		return nil, s.localError(method, err)
	}
	return resp, nil
}

// streamLocal serves a streaming call from the local peer; yield is called
// in the handler's goroutine.
func (s *Server) streamLocal(ctx context.Context, method string, body []byte, yield func([]byte) bool) error {
	self := s.h.ID()
	m, err := s.enterLocal(method, true)
	if err != nil {
		return err
	}
	defer s.leave(self, false)
	hctx, cancel := s.handlerContext(ctx, 0)
	defer cancel()
	stopped := false
	send := func(item []byte) error {
		if stopped {
			return errStopped
		}
		if err := hctx.Err(); err != nil {
			return err
		}
		if !yield(item) {
			stopped = true
			cancel()
			return errStopped
		}
		return nil
	}
	err = s.runStream(hctx, m.stream, Request{Peer: self, Method: method, Body: body}, send)
	if stopped {
		return nil
	}
	if err != nil {
		return s.localError(method, err)
	}
	return nil
}

var errStopped = errors.New("rpc: caller stopped reading")

func (s *Server) enterLocal(method string, streaming bool) (*method, error) {
	m := s.lookup(method)
	if m == nil || (m.stream != nil) != streaming {
		return nil, fmt.Errorf("rpc: %s: %w", method, ErrUnknownMethod)
	}
	if code := s.enter(s.h.ID(), false); code != "" {
		return nil, fmt.Errorf("rpc: %s: %w", method, ErrClosed)
	}
	return m, nil
}

func (s *Server) localError(method string, err error) error {
	return &RemoteError{Peer: s.h.ID(), Method: method, Code: s.cfg.codeOf(err), Msg: err.Error(), err: err}
}
