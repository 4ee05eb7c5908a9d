package kubo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pincluster/pincluster"
)

// Kubo's error codes (go-ipfs-cmds ErrorType), as found in the Code field of
// an error answer.
const (
	codeNormal         = 0
	codeClient         = 1
	codeImplementation = 2
	codeRateLimited    = 3
	codeForbidden      = 4
)

// Error is an error from one RPC call: an error answered by Kubo (an HTTP
// error status, or the X-Stream-Error trailer of a stream), or a failure to
// talk to it. It wraps the root package's sentinels where one applies, so
// callers test with errors.Is:
//   - pincluster.ErrNotPinned: Unpin or PinUpdate of a CID that is not
//     pinned ("not pinned or pinned indirectly").
//   - pincluster.ErrNotFound: a block or DAG not present locally when the
//     call is offline (DAGSize, BlockGet on an offline daemon), an unknown
//     config key, a name that does not resolve.
//   - pincluster.ErrIPFSUnavailable: Kubo could not be reached, timed out,
//     broke a stream, answered something that is not Kubo's JSON, or
//     answered an HTTP error that is not a command error (e.g. 502/503 from
//     a proxy, or an implementation error).
//   - pincluster.ErrClosed: the Connector was shut down during the call.
//   - the caller's context.Canceled or context.DeadlineExceeded when the
//     caller's ctx ended.
//
// A command error without a mapping (e.g. "invalid path") wraps none of them.
type Error struct {
	// Op is the RPC command, e.g. "pin/add".
	Op string
	// StatusCode is the HTTP status of the answer; 0 when there was none.
	StatusCode int
	// Code is Kubo's error code (0 normal, 1 client, 2 implementation,
	// ...); -1 when the error was not answered by Kubo as a command error.
	Code int
	// Message is Kubo's message, or a description of the failure.
	Message string
	// Err is what the error wraps (sentinels and cause); may be nil.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kubo: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Err != nil && e.Message == "" {
		b.WriteString(e.Err.Error())
		return b.String()
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns what the error wraps.
func (e *Error) Unwrap() error { return e.Err }

// kuboError is Kubo's JSON error body.
type kuboError struct {
	Message string
	Code    int
	Type    string
}

// errClosed is returned after Shutdown.
func errClosed(op string) error {
	return &Error{Op: op, Code: -1, Err: pincluster.ErrClosed}
}

// unavailable wraps cause with ErrIPFSUnavailable.
func unavailable(op string, status int, msg string, cause error) error {
	var err error = pincluster.ErrIPFSUnavailable
	if cause != nil {
		err = fmt.Errorf("%w: %w", pincluster.ErrIPFSUnavailable, cause)
	}
	return &Error{Op: op, StatusCode: status, Code: -1, Message: msg, Err: err}
}

// commandError maps a Kubo command error to a typed error.
func commandError(op string, status, code int, msg string) error {
	e := &Error{Op: op, StatusCode: status, Code: code, Message: msg}
	lmsg := strings.ToLower(msg)
	switch {
	case strings.Contains(lmsg, "not pinned"),
		strings.Contains(lmsg, "was not recursively pinned"):
		e.Err = pincluster.ErrNotPinned
	case strings.Contains(lmsg, "not found"),
		strings.Contains(lmsg, "ipld: could not find"),
		strings.Contains(lmsg, "key has no attribute"),
		strings.Contains(lmsg, "could not resolve name"),
		strings.Contains(lmsg, "no link named"):
		e.Err = pincluster.ErrNotFound
	case code == codeImplementation, code == codeRateLimited,
		strings.Contains(lmsg, "repo is closed"),
		strings.Contains(lmsg, "node is closed"),
		strings.Contains(lmsg, "context canceled"):
		e.Err = pincluster.ErrIPFSUnavailable
	}
	return e
}

// statusError turns a non-200 answer (its bounded body) into an error.
func statusError(op string, status int, body []byte) error {
	var ke kuboError
	if json.Unmarshal(body, &ke) == nil && ke.Type == "error" && ke.Message != "" {
		return commandError(op, status, ke.Code, ke.Message)
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	if status >= 500 {
		return unavailable(op, status, msg, nil)
	}
	return &Error{Op: op, StatusCode: status, Code: -1, Message: msg}
}

// transportError classifies an error met while sending a request or reading
// its answer: the caller's ctx, the Connector's shutdown, or Kubo being
// unreachable (including the per-call timeout).
func (c *Connector) transportError(ctx context.Context, op string, err error) error {
	var ke *Error
	if errors.As(err, &ke) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return &Error{Op: op, Code: -1, Message: err.Error(), Err: cerr}
	}
	if c.closing.Err() != nil {
		return errClosed(op)
	}
	return unavailable(op, 0, "", err)
}

// malformed reports an answer that could not be decoded.
func malformed(op string, err error) error {
	return unavailable(op, http.StatusOK, "malformed answer", err)
}
