package rpc

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Defaults of Config.
const (
	// DefaultName is the cluster name used when Config.Name is empty.
	DefaultName = "default"
	// DefaultMaxFrameSize is the largest frame (request or response body,
	// or one streamed item) accepted, in bytes.
	DefaultMaxFrameSize = 4 << 20
	// DefaultMaxHandlerTime bounds how long the server lets one handler
	// run, streaming handlers included.
	DefaultMaxHandlerTime = 2 * time.Minute
	// DefaultRequestTimeout bounds how long a caller may take to send its
	// request after opening a stream.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxStreamsPerPeer bounds concurrent inbound calls per peer.
	DefaultMaxStreamsPerPeer = 32
	// DefaultMaxStreams bounds concurrent inbound calls in total.
	DefaultMaxStreams = 512
)

// maxHeaderSize bounds a frame header (method name, timeout, error text).
const maxHeaderSize = 4096

// maxMethodLen bounds method names.
const maxMethodLen = 128

// Config configures a Server and a Client. Both sides of a cluster must use
// the same Name; the other fields are per peer. New* copy the Config.
type Config struct {
	// Name is the cluster name; it makes the protocol ID
	// "/pincluster/rpc/<Name>/1.0.0", so clusters sharing hosts do not
	// talk to each other. Letters, digits, '-', '_' and '.', at most 64
	// bytes. Default: "default".
	Name string

	// Authorize reports whether a remote peer may call Trusted methods.
	// It is called for every call of a Trusted method, after the method
	// name is read and before the body is. Nil means no remote peer is
	// trusted. Default: nil.
	Authorize func(peer.ID) bool

	// MaxFrameSize is the largest body, response or streamed item, in
	// bytes, that this side reads or sends. Larger frames are refused
	// with ErrFrameTooLarge before anything is allocated for them.
	// Default: DefaultMaxFrameSize (4 MiB).
	MaxFrameSize int

	// MaxHandlerTime bounds each handler's run on the server: its ctx is
	// cancelled at the caller's deadline or after MaxHandlerTime,
	// whichever comes first. Default: DefaultMaxHandlerTime (2 min).
	MaxHandlerTime time.Duration

	// RequestTimeout bounds how long a remote caller may take to send its
	// request after opening a stream. Default: DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration

	// MaxStreamsPerPeer bounds concurrent inbound calls from one peer;
	// extra calls fail with ErrBusy. Default: DefaultMaxStreamsPerPeer (32).
	MaxStreamsPerPeer int

	// MaxStreams bounds concurrent inbound calls in total; extra calls
	// fail with ErrBusy. Default: DefaultMaxStreams (512).
	MaxStreams int

	// Errors registers error codes that cross the wire: when a handler's
	// error matches a sentinel (errors.Is), the server sends its code;
	// when a response carries a code, the client's *RemoteError unwraps
	// to the sentinel registered under that code. Both sides must
	// register the same codes. Codes are matched in sorted order; they
	// must be non-empty, at most 64 bytes, and not start with "rpc/" or
	// "ctx/" (the built-in codes). Default: none.
	Errors map[string]error

	// Logger receives debug lines about refused streams and failures.
	// Nil discards. Default: nil.
	Logger *slog.Logger
}

// config is a validated Config.
type config struct {
	Config
	proto protocol.ID
	codes []codedErr // builtins then user codes, sorted
	byCod map[string]error
}

func (c Config) validate() (*config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.Name) > 64 || strings.IndexFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return nil, fmt.Errorf("rpc: config: Name %q: only letters, digits, '-', '_', '.', at most 64 bytes", c.Name)
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxFrameSize < 0 || c.MaxFrameSize > 1<<30 {
		return nil, fmt.Errorf("rpc: config: MaxFrameSize %d must be in (0, 1 GiB]", c.MaxFrameSize)
	}
	if c.MaxHandlerTime == 0 {
		c.MaxHandlerTime = DefaultMaxHandlerTime
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxHandlerTime < 0 || c.RequestTimeout < 0 {
		return nil, errors.New("rpc: config: MaxHandlerTime and RequestTimeout must not be negative")
	}
	if c.MaxStreamsPerPeer == 0 {
		c.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxStreamsPerPeer < 0 || c.MaxStreams < 0 {
		return nil, errors.New("rpc: config: MaxStreamsPerPeer and MaxStreams must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := &config{
		proto: ProtocolID(c.Name),
		codes: slices.Clone(builtinCodes),
		byCod: make(map[string]error, len(builtinCodes)+len(c.Errors)),
	}
	for _, b := range builtinCodes {
		cfg.byCod[b.code] = b.err
	}
	user := make([]string, 0, len(c.Errors))
	for code, err := range c.Errors {
		switch {
		case code == "" || len(code) > 64:
			return nil, fmt.Errorf("rpc: config: error code %q: must be 1 to 64 bytes", code)
		case strings.HasPrefix(code, "rpc/") || strings.HasPrefix(code, "ctx/"):
			return nil, fmt.Errorf("rpc: config: error code %q uses a reserved prefix", code)
		case err == nil:
			return nil, fmt.Errorf("rpc: config: error code %q has a nil error", code)
		}
		user = append(user, code)
	}
	slices.Sort(user)
	for _, code := range user {
		cfg.codes = append(cfg.codes, codedErr{code, c.Errors[code]})
		cfg.byCod[code] = c.Errors[code]
	}
	c.Errors = nil // the copy above is what is used
	cfg.Config = c
	return cfg, nil
}

// ProtocolID returns the libp2p protocol ID for a cluster name ("" means
// DefaultName).
func ProtocolID(name string) protocol.ID {
	if name == "" {
		name = DefaultName
	}
	return protocol.ID("/pincluster/rpc/" + name + "/1.0.0")
}

// codeOf returns the wire code of err ("" if none matches).
func (c *config) codeOf(err error) string {
	for _, ce := range c.codes {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return ""
}
