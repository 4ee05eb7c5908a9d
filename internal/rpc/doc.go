// Package rpc is pincluster's request/response layer between peers: typed
// calls over libp2p streams, with a permission check that runs before a
// request body is read.
//
// # Quick start
//
//	srv, err := rpc.NewServer(h, rpc.Config{Name: "mycluster", Authorize: isTrusted})
//	err = srv.Register("Peers", rpc.Open, rpc.Handle(func(ctx context.Context, from peer.ID, _ struct{}) ([]string, error) { ... }))
//	cli, err := rpc.NewClient(h, rpc.Config{Name: "mycluster"}, srv)
//	peers, err := rpc.Call[struct{}, []string](ctx, cli, other, "Peers", struct{}{})
//	for item, err := range rpc.Stream[Filter, Status](ctx, cli, other, "StatusAll", f) { ... }
//	_ = cli.Close(ctx); _ = srv.Close(ctx)
//
// # Protocol
//
// One call is one stream under the protocol "/pincluster/rpc/<name>/1.0.0"
// (ProtocolID). Frames are a uvarint length and that many bytes. The
// request is a header frame (deterministic CBOR: version, method name, the
// caller's remaining time, unary or streaming) and a body frame (opaque
// bytes; the typed helpers use CBOR). The server reads the header (at most
// 4 KiB), looks the method up and checks its Permission; only then does it
// read the body, refusing one longer than Config.MaxFrameSize before
// allocating it. A refused call gets an error response without its body
// ever being read. Responses are a header frame (result, item, end or error
// with a code and a message) followed, for results and items, by a body
// frame.
//
// # Permissions
//
// Open methods serve anyone; Trusted methods serve the peers
// Config.Authorize accepts; Closed methods (the zero Permission) never
// serve remote peers. Calls to the local peer (p == host.ID()) do not use a
// stream: the Client runs the local Server's handler in the calling
// goroutine and skips the permission check.
//
// # Errors
//
// Failures reported by the remote side are *RemoteError values carrying the
// peer, the method and the remote text. A small code travels with each
// error: the built-in ones map back to ErrPermission, ErrUnknownMethod,
// ErrFrameTooLarge, ErrClosed, ErrBusy, ErrMalformed,
// context.DeadlineExceeded and context.Canceled, and Config.Errors adds the
// owner's (for example "not-found" for a state's ErrNotFound), so that
// errors.Is works across the wire.
//
// # Deadlines and limits
//
// The caller's ctx deadline sets the stream deadline and is sent to the
// server, which cancels the handler at that time or after
// Config.MaxHandlerTime, whichever comes first; cancelling ctx resets the
// stream, which cancels the handler's ctx too. A remote caller has
// Config.RequestTimeout to send its request. Concurrent inbound calls are
// bounded per peer and in total (ErrBusy beyond).
//
// # Lifecycle
//
// Server.Close removes the stream handler, refuses new calls, cancels
// running handlers and waits for them. Client.Close ends running calls and
// makes new ones fail with ErrClosed.
package rpc
