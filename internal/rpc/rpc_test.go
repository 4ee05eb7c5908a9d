package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a server on hosts[0] and a client on hosts[1] of a mocknet.
type pair struct {
	srvHost, cliHost host.Host
	srv              *Server
	cli              *Client
}

func newPair(t *testing.T, scfg, ccfg Config) *pair {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	if err != nil {
		t.Fatal(err)
	}
	hs := mn.Hosts()
	p := &pair{srvHost: hs[0], cliHost: hs[1]}
	if p.srv, err = NewServer(hs[0], scfg); err != nil {
		t.Fatal(err)
	}
	if p.cli, err = NewClient(hs[1], ccfg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.cli.Close(ctx); err != nil {
			t.Errorf("client close: %v", err)
		}
		if err := p.srv.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("server close: %v", err)
		}
		if err := mn.Close(); err != nil {
			t.Errorf("mocknet close: %v", err)
		}
	})
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type echoReq struct {
	Text  string `cbor:"1,keyasint"`
	Count int    `cbor:"2,keyasint,omitempty"`
}

type echoResp struct {
	Text string  `cbor:"1,keyasint"`
	From peer.ID `cbor:"2,keyasint"`
}

func echo(_ context.Context, from peer.ID, r echoReq) (echoResp, error) {
	return echoResp{Text: strings.ToUpper(r.Text), From: from}, nil
}

func TestUnaryRoundTrip(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	if err := p.srv.Register("Echo", Open, Handle(echo)); err != nil {
		t.Fatal(err)
	}
	resp, err := Call[echoReq, echoResp](ctxT(t), p.cli, p.srvHost.ID(), "Echo", echoReq{Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "HELLO" || resp.From != p.cliHost.ID() {
		t.Fatalf("resp = %+v", resp)
	}
	// Raw bytes, empty body and empty response.
	if err := p.srv.Register("Raw", Open, func(_ context.Context, r Request) ([]byte, error) {
		return bytes.Repeat(r.Body, 2), nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{nil, {0}, bytes.Repeat([]byte("x"), 100_000)} {
		out, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Raw", in)
		if err != nil || !bytes.Equal(out, bytes.Repeat(in, 2)) {
			t.Fatalf("Raw(%d bytes) = %d bytes, %v", len(in), len(out), err)
		}
	}
}

func countTo(ctx context.Context, _ peer.ID, r echoReq, send func(int) error) error {
	for i := range r.Count {
		if err := send(i); err != nil {
			return err
		}
	}
	return nil
}

func TestStreamRoundTrip(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	if err := p.srv.RegisterStream("Count", Open, HandleStream(countTo)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 1000} {
		got := 0
		for v, err := range Stream[echoReq, int](ctxT(t), p.cli, p.srvHost.ID(), "Count", echoReq{Count: n}) {
			if err != nil {
				t.Fatal(err)
			}
			if v != got {
				t.Fatalf("item %d = %d", got, v)
			}
			got++
		}
		if got != n {
			t.Fatalf("got %d items, want %d", got, n)
		}
	}
	// An error after some items ends the sequence with a RemoteError.
	errBoom := errors.New("boom")
	_ = p.srv.RegisterStream("Fail", Open, func(_ context.Context, _ Request, send func([]byte) error) error {
		_ = send([]byte{1})
		return errBoom
	})
	var items int
	var last error
	for _, err := range p.cli.Stream(ctxT(t), p.srvHost.ID(), "Fail", nil) {
		if err != nil {
			last = err
		} else {
			items++
		}
	}
	var re *RemoteError
	if items != 1 || !errors.As(last, &re) || !strings.Contains(re.Msg, "boom") {
		t.Fatalf("items = %d, err = %v", items, last)
	}
}

func TestStreamEarlyCancel(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	handlerDone := make(chan error, 1)
	_ = p.srv.RegisterStream("Endless", Open, func(ctx context.Context, _ Request, send func([]byte) error) error {
		for i := 0; ; i++ {
			if err := send([]byte{byte(i)}); err != nil {
				<-ctx.Done() // the caller is gone: ctx must end too
				handlerDone <- ctx.Err()
				return err
			}
		}
	})
	n := 0
	for _, err := range p.cli.Stream(ctxT(t), p.srvHost.ID(), "Endless", nil) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	select {
	case err := <-handlerDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx err = %v, want Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not cancelled after the client stopped reading")
	}

	// Cancelling the caller's ctx while the handler waits cancels it too.
	waiting := make(chan struct{})
	cancelled := make(chan struct{})
	_ = p.srv.RegisterStream("Wait", Open, func(ctx context.Context, _ Request, send func([]byte) error) error {
		close(waiting)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		<-waiting
		cancel()
	}()
	for _, err := range p.cli.Stream(ctx, p.srvHost.ID(), "Wait", nil) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("handler ctx not cancelled after the caller's ctx was")
	}
}

// TestPermissions is T14: untrusted callers of Trusted and Closed methods
// get ErrPermission, the handler never runs, and the body is never read or
// decoded.
func TestPermissions(t *testing.T) {
	var trusted atomic.Bool
	p := newPair(t, Config{MaxFrameSize: 1024, Authorize: func(peer.ID) bool { return trusted.Load() }}, Config{MaxFrameSize: 1 << 20})
	var calls atomic.Int32
	h := Handle(func(ctx context.Context, from peer.ID, r echoReq) (echoResp, error) {
		calls.Add(1)
		return echoResp{Text: r.Text}, nil
	})
	for name, perm := range map[string]Permission{"Open": Open, "Trusted": Trusted, "Closed": Closed} {
		if err := p.srv.Register(name, perm, h); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := Marshal(echoReq{Text: "x"})
	garbage := []byte{0xff, 0xfe, 0x00, 0x9f}   // not CBOR: decoding it would fail with ErrMalformed
	huge := bytes.Repeat([]byte{0xaa}, 512<<10) // above the server's 1 KiB limit
	ctx := ctxT(t)
	srv := p.srvHost.ID()

	for _, body := range [][]byte{good, garbage, huge} {
		for _, m := range []string{"Trusted", "Closed"} {
			_, err := p.cli.Call(ctx, srv, m, body)
			var re *RemoteError
			if !errors.Is(err, ErrPermission) || !errors.As(err, &re) || re.Code != codePermission {
				t.Fatalf("untrusted %s with %d-byte body: err = %v, want ErrPermission", m, len(body), err)
			}
		}
	}
	if _, err := p.cli.Call(ctx, srv, "Open", good); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handlers ran %d times, want 1 (the Open call)", n)
	}

	// The same bodies from a trusted caller reach the decoder and the
	// size check: the permission error above came before both.
	trusted.Store(true)
	if _, err := p.cli.Call(ctx, srv, "Trusted", good); err != nil {
		t.Fatalf("trusted call: %v", err)
	}
	if _, err := p.cli.Call(ctx, srv, "Trusted", garbage); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trusted garbage body: %v, want ErrMalformed", err)
	}
	if _, err := p.cli.Call(ctx, srv, "Trusted", huge); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("trusted huge body: %v, want ErrFrameTooLarge", err)
	}
	if _, err := p.cli.Call(ctx, srv, "Closed", good); !errors.Is(err, ErrPermission) {
		t.Fatalf("Closed from a trusted peer: %v, want ErrPermission", err)
	}
	trusted.Store(false)

	// Raw proof: the server answers a header alone. The body is never
	// sent, so it cannot have been read.
	st := rawStream(t, p)
	writeRawHeader(t, st, reqHeader{Version: wireVersion, Method: "Trusted"})
	rh := readRawResponse(t, st)
	if rh.Kind != kindError || rh.Code != codePermission {
		t.Fatalf("raw header-only call: %+v, want a permission error", rh)
	}
	_ = st.Reset()
	if n := calls.Load(); n != 2 {
		t.Fatalf("handlers ran %d times, want 2", n)
	}
}

func rawStream(t *testing.T, p *pair) interface {
	io.ReadWriter
	CloseWrite() error
	Reset() error
} {
	t.Helper()
	st, err := p.cliHost.NewStream(ctxT(t), p.srvHost.ID(), p.srv.cfg.proto)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeRawHeader(t *testing.T, w io.Writer, h reqHeader) {
	t.Helper()
	b, err := appendHeader(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readRawResponse(t *testing.T, r io.Reader) respHeader {
	t.Helper()
	var rh respHeader
	if err := (&frameReader{r: r}).readHeader(&rh); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return rh
}

func TestFrameTooLarge(t *testing.T) {
	p := newPair(t, Config{MaxFrameSize: 1000}, Config{MaxFrameSize: 2000})
	ran := atomic.Bool{}
	_ = p.srv.Register("Big", Open, func(_ context.Context, r Request) ([]byte, error) {
		ran.Store(true)
		return make([]byte, 1500), nil // above the server's own limit
	})
	ctx := ctxT(t)
	var re *RemoteError
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Big", make([]byte, 1001)); !errors.Is(err, ErrFrameTooLarge) || !errors.As(err, &re) {
		t.Fatalf("request above the server limit: %v, want remote ErrFrameTooLarge", err)
	}
	if ran.Load() {
		t.Fatal("handler ran for an oversized request")
	}
	// Above the client's own limit: refused locally.
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Big", make([]byte, 2001)); !errors.Is(err, ErrFrameTooLarge) || errors.As(err, &re) {
		t.Fatalf("request above the client limit: %v, want local ErrFrameTooLarge", err)
	}
	// A response above the server's limit is an error, not sent.
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Big", nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized response: %v, want ErrFrameTooLarge", err)
	}
}

func TestResponseAboveClientLimit(t *testing.T) {
	p := newPair(t, Config{}, Config{MaxFrameSize: 100})
	_ = p.srv.Register("Big", Open, func(context.Context, Request) ([]byte, error) { return make([]byte, 101), nil })
	_, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Big", nil)
	var re *RemoteError
	if !errors.Is(err, ErrFrameTooLarge) || errors.As(err, &re) {
		t.Fatalf("err = %v, want a local ErrFrameTooLarge", err)
	}
}

func TestDeadlines(t *testing.T) {
	p := newPair(t, Config{MaxHandlerTime: 200 * time.Millisecond}, Config{})
	seen := make(chan error, 4)
	_ = p.srv.Register("Block", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		<-ctx.Done()
		seen <- ctx.Err()
		return nil, ctx.Err()
	})
	// The caller's deadline.
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	_, err := p.cli.Call(ctx, p.srvHost.ID(), "Block", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if err := <-seen; err == nil {
		t.Fatal("handler ctx not done")
	}
	// The server's MaxHandlerTime, with no caller deadline.
	_, err = p.cli.Call(context.Background(), p.srvHost.ID(), "Block", nil)
	var re *RemoteError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) || re.Code != codeDeadline {
		t.Fatalf("err = %v, want remote DeadlineExceeded", err)
	}
	if err := <-seen; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler ctx err = %v", err)
	}
	// The caller's timeout travels in the header.
	got := make(chan time.Duration, 1)
	_ = p.srv.Register("Deadline", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		dl, _ := ctx.Deadline()
		got <- time.Until(dl)
		return nil, nil
	})
	ctx, cancel = context.WithTimeout(ctxT(t), 150*time.Millisecond)
	defer cancel()
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "Deadline", nil); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d > 150*time.Millisecond || d <= 0 {
		t.Fatalf("handler deadline in %v, want within the caller's 150ms", d)
	}
}

func TestUnknownMethod(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	_ = p.srv.RegisterStream("S", Open, func(context.Context, Request, func([]byte) error) error { return nil })
	_ = p.srv.Register("U", Open, func(context.Context, Request) ([]byte, error) { return nil, nil })
	ctx := ctxT(t)
	for _, m := range []string{"Nope", "S"} {
		if _, err := p.cli.Call(ctx, p.srvHost.ID(), m, nil); !errors.Is(err, ErrUnknownMethod) {
			t.Fatalf("Call %s: %v, want ErrUnknownMethod", m, err)
		}
	}
	for _, err := range p.cli.Stream(ctx, p.srvHost.ID(), "U", nil) {
		if !errors.Is(err, ErrUnknownMethod) {
			t.Fatalf("Stream U: %v, want ErrUnknownMethod", err)
		}
	}
	if _, err := p.cli.Call(ctx, p.srvHost.ID(), "bad name", nil); err == nil {
		t.Fatal("invalid method name accepted")
	}
}

var errNotFound = errors.New("state: not found")

func TestErrorCodes(t *testing.T) {
	codes := map[string]error{"not-found": errNotFound}
	p := newPair(t, Config{Errors: codes}, Config{Errors: codes})
	_ = p.srv.Register("Get", Open, func(_ context.Context, r Request) ([]byte, error) {
		if string(r.Body) == "other" {
			return nil, errors.New("disk on fire")
		}
		return nil, fmt.Errorf("pin %s: %w", r.Body, errNotFound)
	})
	_, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Get", []byte("bafy"))
	var re *RemoteError
	if !errors.Is(err, errNotFound) || !errors.As(err, &re) {
		t.Fatalf("err = %v, want errNotFound through RemoteError", err)
	}
	if re.Code != "not-found" || !strings.Contains(re.Msg, "pin bafy") || re.Peer != p.srvHost.ID() || re.Method != "Get" {
		t.Fatalf("RemoteError = %+v", re)
	}
	_, err = p.cli.Call(ctxT(t), p.srvHost.ID(), "Get", []byte("other"))
	if !errors.As(err, &re) || re.Code != "" || re.Unwrap() != nil || errors.Is(err, errNotFound) {
		t.Fatalf("uncoded error: %v (%+v)", err, re)
	}
}

// TestHostileFrames sends malformed requests on raw streams: each gets an
// error or a reset, no handler runs, nothing panics and the server keeps
// serving.
func TestHostileFrames(t *testing.T) {
	p := newPair(t, Config{MaxFrameSize: 1 << 10}, Config{})
	var calls atomic.Int32
	_ = p.srv.Register("M", Open, func(context.Context, Request) ([]byte, error) {
		calls.Add(1)
		return []byte("ok"), nil
	})
	hdrM, _ := appendHeader(nil, reqHeader{Version: wireVersion, Method: "M"})
	hdrV2, _ := appendHeader(nil, reqHeader{Version: 2, Method: "M"})
	hdrLong, _ := appendHeader(nil, reqHeader{Version: wireVersion, Method: strings.Repeat("m", 4000)})
	unknownField, _ := encMode.Marshal(map[int]any{1: 1, 2: "M", 9: "x"})
	cases := []struct {
		name  string
		input []byte
		code  string // "" = reset or closed without a response
	}{
		{"empty", nil, ""},
		{"truncated prefix", []byte{0x80}, ""},
		{"truncated header", append(binary.AppendUvarint(nil, 10), 1, 2, 3), ""},
		{"garbage header", appendFrame(nil, []byte("this is not cbor at all")), codeMalformed},
		{"header not a map", appendFrame(nil, []byte{0x01}), codeMalformed},
		{"unknown header field", appendFrame(nil, unknownField), codeMalformed},
		{"huge header length", binary.AppendUvarint(nil, 1<<62), codeTooLarge},
		{"overlong uvarint", bytes.Repeat([]byte{0xff}, 11), codeMalformed},
		{"bad version", append(hdrV2, 0), codeMalformed},
		{"long method name", append(bytes.Clone(hdrLong), 0), codeMalformed},
		{"huge body length", append(bytes.Clone(hdrM), binary.AppendUvarint(nil, 1<<40)...), codeTooLarge},
		{"truncated body", append(bytes.Clone(hdrM), append(binary.AppendUvarint(nil, 100), 1, 2)...), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := rawStream(t, p)
			defer st.Reset()
			if _, err := st.Write(c.input); err != nil {
				t.Fatal(err)
			}
			_ = st.CloseWrite()
			var rh respHeader
			err := (&frameReader{r: st}).readHeader(&rh)
			if c.code == "" {
				if err == nil {
					t.Fatalf("got response %+v, want reset or EOF", rh)
				}
				return
			}
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if rh.Kind != kindError || rh.Code != c.code {
				t.Fatalf("response %+v, want error code %q", rh, c.code)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler ran %d times for hostile input", n)
	}
	if out, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "M", nil); err != nil || string(out) != "ok" {
		t.Fatalf("server not serving after hostile input: %q, %v", out, err)
	}
}

func TestSelfCall(t *testing.T) {
	p := newPair(t, Config{Errors: map[string]error{"nf": errNotFound}}, Config{})
	cli, err := NewClient(p.srvHost, Config{}, p.srv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close(context.Background())
	self := p.srvHost.ID()
	_ = p.srv.Register("Closed", Closed, Handle(echo))
	_ = p.srv.Register("NF", Closed, func(context.Context, Request) ([]byte, error) { return nil, errNotFound })
	_ = p.srv.RegisterStream("Count", Closed, HandleStream(countTo))
	resp, err := Call[echoReq, echoResp](ctxT(t), cli, self, "Closed", echoReq{Text: "me"})
	if err != nil || resp.Text != "ME" || resp.From != self {
		t.Fatalf("local call = %+v, %v", resp, err)
	}
	_, err = cli.Call(ctxT(t), self, "NF", nil)
	var re *RemoteError
	if !errors.Is(err, errNotFound) || !errors.As(err, &re) || re.Code != "nf" {
		t.Fatalf("local error = %v", err)
	}
	if _, err := cli.Call(ctxT(t), self, "Nope", nil); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("local unknown = %v", err)
	}
	n := 0
	for v, err := range Stream[echoReq, int](ctxT(t), cli, self, "Count", echoReq{Count: 100}) {
		if err != nil || v != n {
			t.Fatalf("item %d = %d, %v", n, v, err)
		}
		if n++; n == 10 {
			break
		}
	}
	// A client without a local server cannot call itself.
	if _, err := p.cli.Call(ctxT(t), p.cliHost.ID(), "Closed", nil); !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("self call without a local server = %v", err)
	}
}

func TestBusy(t *testing.T) {
	p := newPair(t, Config{MaxStreamsPerPeer: 1}, Config{})
	entered := make(chan struct{})
	release := make(chan struct{})
	_ = p.srv.Register("Hold", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		close(entered)
		<-release
		return nil, nil
	})
	_ = p.srv.Register("Quick", Open, func(context.Context, Request) ([]byte, error) { return nil, nil })
	done := make(chan error, 1)
	go func() {
		_, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Hold", nil)
		done <- err
	}()
	<-entered
	if _, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Quick", nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("second concurrent call: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The server frees the stream's slot once it has closed the stream,
	// which may be just after the caller has read the answer.
	wctx, cancel := context.WithTimeout(ctxT(t), 10*time.Second)
	defer cancel()
	if err := poll.Until(wctx, "stream slot", time.Millisecond, func() (bool, error) {
		return p.srv.streamsOf(p.cliHost.ID()) == 0, nil
	}); err != nil {
		t.Fatalf("the finished call's stream slot was not freed within 10 s: %v", err)
	}
	if _, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Quick", nil); err != nil {
		t.Fatalf("call after the first finished: %v", err)
	}
}

func TestServerClose(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	entered := make(chan struct{})
	_ = p.srv.Register("Block", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Block", nil)
		done <- err
	}()
	<-entered
	if err := p.srv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("in-flight call: %v, want the handler's Canceled", err)
	}
	if _, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Block", nil); err == nil {
		t.Fatal("call after server Close succeeded")
	}
	if err := p.srv.Register("X", Open, func(context.Context, Request) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
	if err := p.srv.Close(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

func TestClientClose(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	entered := make(chan struct{})
	_ = p.srv.Register("Block", Open, func(ctx context.Context, _ Request) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Block", make([]byte, 100<<10)) // written by a helper goroutine
		done <- err
	}()
	<-entered
	if err := p.cli.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("in-flight call: %v, want ErrClosed", err)
	}
	if _, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Block", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
}

func TestHandlerPanic(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	_ = p.srv.Register("Panic", Open, func(context.Context, Request) ([]byte, error) { panic("bad") })
	if _, err := p.cli.Call(ctxT(t), p.srvHost.ID(), "Panic", nil); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Name: "has/slash"},
		{Name: strings.Repeat("x", 65)},
		{MaxFrameSize: -1},
		{MaxHandlerTime: -time.Second},
		{MaxStreams: -1},
		{Errors: map[string]error{"rpc/x": errNotFound}},
		{Errors: map[string]error{"": errNotFound}},
		{Errors: map[string]error{"x": nil}},
	}
	for i, c := range bad {
		if _, err := c.validate(); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
	c, err := Config{}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.proto != "/pincluster/rpc/default/1.0.0" || c.MaxFrameSize != DefaultMaxFrameSize ||
		c.MaxHandlerTime != DefaultMaxHandlerTime || c.MaxStreams != DefaultMaxStreams {
		t.Fatalf("defaults: %+v", c)
	}
	if ProtocolID("a") != "/pincluster/rpc/a/1.0.0" {
		t.Fatal(ProtocolID("a"))
	}
}
