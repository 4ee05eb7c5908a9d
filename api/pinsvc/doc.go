// Package pinsvc serves the IPFS Pinning Service API v1.0.0 for a
// pincluster peer, so that `ipfs pin remote` (Kubo), boxo's remote pinning
// client and other Pinning Service clients can pin into the cluster.
//
// # Quick start
//
//	api, err := pinsvc.New(ctx, cluster, pinsvc.Config{
//		ListenAddr: "127.0.0.1:9097",
//		Tokens:     map[string]string{secretToken: "alice"},
//	})
//	if err != nil { ... }
//	if err := api.Start(); err != nil { ... }
//	defer api.Shutdown(ctx)
//
//	ipfs pin remote service add pincluster http://127.0.0.1:9097 $secretToken
//	ipfs pin remote add --service=pincluster <cid>
//
// or pincluster.WithAPI(pinsvc.NewAPI(cfg)).
//
// # Requests, users and reference counting
//
// Every access token belongs to a user (Config.Tokens; JWTs signed with
// Config.JWTKey name the user in their subject). A pin request belongs to
// the user who made it: other users neither list nor see it (404). Each
// request gets its own random request id (a UUID), even for a CID that is
// already requested. The CID is pinned in the cluster by the first request
// for it and unpinned when the last request for it, of any user, is
// deleted or replaced; a CID that was already in the cluster's pinset
// before any request (pinned through the REST API, say) is never unpinned
// by this service.
//
// Requests are records in Config.Datastore (default: in memory), on the
// peer that serves the API, not in the cluster's shared state: another
// peer's Pinning Service API does not see them. Give a persistent
// datastore (a namespace of the peer's Badger, for example) to keep them
// across restarts.
//
// # Statuses
//
// The status of a request is computed from the cluster's status of its CID
// by MapStatus: pinned when at least max(1, replication min) allocated
// peers report pinned (all of them for replication -1), pinning while some
// pin, failed when every allocated peer reports an error or the CID left
// the pinset, queued otherwise. PinStatus.info.status_details explains it.
//
// # Listing and paging
//
// GET /pins returns the newest requests first. count is the number of
// requests matching the whole query (before and after included), so that
// clients paging with before = the oldest created of a page (boxo, Kubo)
// see every request once. created is unique: requests made in the same
// nanosecond are pushed 1 ns apart. An absent status filter means every
// status.
//
// # Origins and delegates
//
// Pin.origins are passed to the cluster pin (pincluster.PinOptions.Origins)
// so the IPFS nodes connect to the data's holders; delegates are the
// cluster host's listen addresses with /p2p/<peer id> (1 to 20), which
// clients such as Kubo dial so that bitswap can move the data.
//
// # Errors and limits
//
// GET /health answers 204 without authentication (liveness only; it is not
// part of the spec). Every other route needs a token.
//
// Every error is a Failure {"error": {"reason", "details"}}: 401
// UNAUTHORIZED for a missing or wrong token, 404 NOT_FOUND, 400
// BAD_REQUEST for malformed input and for pincluster's limits (name over
// 255 bytes, more than 20 origins, metadata over pincluster.MaxMetadataKeys
// keys or pincluster.MaxMetadataValueLen bytes, bodies over
// Config.MaxBodyBytes) and for an unknown GET /pins query option, 415
// UNSUPPORTED_MEDIA_TYPE for a pin body declared as anything but
// application/json (a body without Content-Type is read as JSON), 408
// REQUEST_TIMEOUT for a body not received within Config.ReadTimeout.
// Nothing is recorded or pinned for a refused request.
//
// Hostile clients: the token is checked before anything reserves time or
// memory for a request; a refused request is answered at once, its body
// unread, and its connection closed. Each listener holds at most
// Config.MaxConns connections (default 1024); one more is answered 503
// with Retry-After and closed. A client address that presents
// Config.AuthFailureBurst wrong tokens in a row (default 10) gets 429
// TOO_MANY_REQUESTS with Retry-After, unchecked, until it earns another
// attempt (one per Config.AuthFailureInterval, default 1s).
//
// JWTs (Config.JWTKey) can be revoked with API.RevokeToken; revocations
// are shared with the REST API of the same process and key.
package pinsvc
