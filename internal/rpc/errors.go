package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	// ErrPermission is returned (inside a *RemoteError) by Client calls of
	// a Trusted method from a peer the server's Config.Authorize does not
	// accept, and of a Closed method from any remote peer.
	ErrPermission = errors.New("rpc: permission denied")

	// ErrUnknownMethod is returned (inside a *RemoteError) by Client calls
	// of a method the server has not registered, or registered with the
	// other kind (unary vs streaming). Client calls to the local peer
	// without a local Server return it directly.
	ErrUnknownMethod = errors.New("rpc: unknown method")

	// ErrFrameTooLarge is returned when a frame is longer than the
	// reader's MaxFrameSize: by Client calls whose request is too large
	// for this client (directly) or for the server (inside a
	// *RemoteError), and when a response frame is too large.
	ErrFrameTooLarge = errors.New("rpc: frame too large")

	// ErrClosed is returned by Client calls after Client.Close, by
	// Server.Register after Server.Close, and (inside a *RemoteError) by
	// calls that reach a server while it is closing.
	ErrClosed = errors.New("rpc: closed")

	// ErrBusy is returned (inside a *RemoteError) by Client calls that the
	// server refused because too many of its inbound streams were in
	// use, in total or from the calling peer.
	ErrBusy = errors.New("rpc: server busy")

	// ErrMalformed is returned when a frame cannot be decoded: by Client
	// calls receiving a bad response (directly) or whose request the
	// server could not decode (inside a *RemoteError), and by typed
	// handlers (Handle, HandleStream) given a body that does not decode.
	ErrMalformed = errors.New("rpc: malformed frame")
)

// RemoteError is a failure reported by the called peer: the handler's
// error, or the server refusing the call. Msg is the remote error's text.
// If the remote error carried a code known to this side (the built-in
// codes, or Config.Errors), Unwrap returns the matching sentinel, so
// errors.Is(err, ErrPermission) or errors.Is(err, yourErrNotFound) work.
// For calls to the local peer, Unwrap returns the handler's own error.
type RemoteError struct {
	Peer   peer.ID
	Method string
	Code   string // "" when the error carried no code
	Msg    string
	err    error
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("rpc: %s on peer %s: %s", e.Method, e.Peer, e.Msg)
}

// Unwrap returns the sentinel matched by Code (or the local handler's
// error), or nil.
func (e *RemoteError) Unwrap() error { return e.err }

// Built-in error codes. Codes in Config.Errors must not use the "rpc/" or
// "ctx/" prefixes.
const (
	codePermission = "rpc/permission"
	codeUnknown    = "rpc/unknown-method"
	codeTooLarge   = "rpc/frame-too-large"
	codeClosed     = "rpc/closed"
	codeBusy       = "rpc/busy"
	codeMalformed  = "rpc/malformed"
	codeDeadline   = "ctx/deadline"
	codeCanceled   = "ctx/canceled"
)

type codedErr struct {
	code string
	err  error
}

// builtinCodes is checked before the user's codes, in this order.
var builtinCodes = []codedErr{
	{codePermission, ErrPermission},
	{codeUnknown, ErrUnknownMethod},
	{codeTooLarge, ErrFrameTooLarge},
	{codeClosed, ErrClosed},
	{codeBusy, ErrBusy},
	{codeMalformed, ErrMalformed},
	{codeDeadline, context.DeadlineExceeded},
	{codeCanceled, context.Canceled},
}
