// Package httpx holds the HTTP plumbing shared by api/rest, api/pinsvc
// and api/ipfsproxy: the write deadlines and connection cap that
// api/server's Server applies, NDJSON streaming with the X-Stream-Error
// trailer, CORS, and CID/path parameter parsing.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExtendReadDeadline gives the request of w d from now to send the rest
// of its body, in place of the server's ReadTimeout: for an upload route.
// Call it only once the request is authenticated, so that an anonymous
// client never holds a connection longer than ReadTimeout.
func ExtendReadDeadline(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}

// Refuse prepares w for an answer that refuses a request without reading
// its body (401, 413, 429...): the connection is closed after the answer
// (Connection: close), and the read deadline is moved to now so that
// net/http does not wait, after the answer, for a body the client
// declared and never sends. Without it such a request holds its
// connection, and a file descriptor, until the read deadline.
func Refuse(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// WriteDeadlines wraps h so that each request gets a write deadline of
// d, refreshed at every write (see api/server's Config.WriteTimeout).
func WriteDeadlines(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w = &deadlineWriter{ResponseWriter: w, rc: rc, d: d}
		h.ServeHTTP(w, r)
	})
}

// deadlineWriter pushes the connection's write deadline to now + d before
// a write when the last push is more than d/8 old.
type deadlineWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	d    time.Duration
	last time.Time
}

func (w *deadlineWriter) refresh() {
	now := time.Now()
	if !w.last.IsZero() && now.Sub(w.last) < w.d/8 {
		return
	}
	w.last = now
	_ = w.rc.SetWriteDeadline(now.Add(w.d))
}

// WriteHeader refreshes the write deadline and writes the status line.
func (w *deadlineWriter) WriteHeader(code int) {
	w.refresh()
	w.ResponseWriter.WriteHeader(code)
}

// Write refreshes the write deadline and writes p.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.refresh()
	return w.ResponseWriter.Write(p)
}

// FlushError refreshes the write deadline and flushes (used by
// http.ResponseController.Flush).
func (w *deadlineWriter) FlushError() error {
	w.refresh()
	return w.rc.Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ErrBodyTimeout is wrapped by the read errors of a TimeoutBody when the
// server's read deadline passed before the body was received (a slow or
// stalled client); the APIs answer 408.
var ErrBodyTimeout = errors.New("request body not received in time")

// TimeoutBody wraps a request body so that a read failing on the
// connection's read deadline returns an error wrapping both
// ErrBodyTimeout and the original error. Other errors are unchanged.
func TimeoutBody(b io.ReadCloser) io.ReadCloser { return timeoutBody{b} }

type timeoutBody struct{ io.ReadCloser }

func (b timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %w", ErrBodyTimeout, err)
	}
	return n, err
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"code":500,"message":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// StreamErrorTrailer is the trailer that carries an error that happened
// after a stream started.
const StreamErrorTrailer = "X-Stream-Error"

// StreamNDJSON writes seq as newline-delimited JSON: exactly one JSON
// object per line. An error before the first item is handed to onErr (the
// caller writes a normal error answer); an error after it goes into the
// X-Stream-Error trailer. conv turns each item into its JSON form.
func StreamNDJSON[T any](w http.ResponseWriter, seq iter.Seq2[T, error], conv func(T) any, onErr func(error)) {
	started := false
	start := func() {
		w.Header().Set("Trailer", StreamErrorTrailer)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		started = true
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w) // Encode writes one line, no inner newlines
	n := 0
	for v, err := range seq {
		if err != nil {
			if !started {
				onErr(err)
				return
			}
			w.Header().Set(StreamErrorTrailer, oneLine(err.Error()))
			return
		}
		if !started {
			start()
		}
		if err := enc.Encode(conv(v)); err != nil {
			return // client gone
		}
		n++
		if n%64 == 0 {
			_ = rc.Flush()
		}
	}
	if !started {
		start()
	}
	w.Header().Set(StreamErrorTrailer, "")
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// CORSConfig configures cross-origin requests. No allowed origin: CORS
// headers are never sent.
type CORSConfig struct {
	// AllowedOrigins lists origins, or "*" for any.
	AllowedOrigins []string
	// AllowedMethods. Default: GET, POST, DELETE, OPTIONS.
	AllowedMethods []string
	// AllowedHeaders. Default: Authorization, Content-Type.
	AllowedHeaders []string
	// ExposedHeaders. Default: X-Stream-Error.
	ExposedHeaders []string
	// AllowCredentials sets Access-Control-Allow-Credentials.
	AllowCredentials bool
	// MaxAge is how long browsers may cache a preflight answer.
	MaxAge time.Duration
}

// CORS wraps next: preflight OPTIONS requests from an allowed origin are
// answered (204) before authentication; other requests from an allowed
// origin get the Allow-Origin headers.
func CORS(cfg CORSConfig, next http.Handler) http.Handler {
	if len(cfg.AllowedOrigins) == 0 {
		return next
	}
	methods := cfg.AllowedMethods
	if len(methods) == 0 {
		methods = []string{"GET", "POST", "DELETE", "OPTIONS"}
	}
	headers := cfg.AllowedHeaders
	if len(headers) == 0 {
		headers = []string{"Authorization", "Content-Type"}
	}
	exposed := cfg.ExposedHeaders
	if len(exposed) == 0 {
		exposed = []string{StreamErrorTrailer}
	}
	any := slices.Contains(cfg.AllowedOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || (!any && !slices.Contains(cfg.AllowedOrigins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if any && !cfg.AllowCredentials {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if cfg.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
			h.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
			if cfg.MaxAge > 0 {
				h.Set("Access-Control-Max-Age", strconv.Itoa(int(cfg.MaxAge/time.Second)))
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", strings.Join(exposed, ", "))
		next.ServeHTTP(w, r)
	})
}
