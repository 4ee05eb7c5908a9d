// Package pinsvc serves the IPFS Pinning Service API v1.0.0 for a
// pincluster peer, so that `ipfs pin remote` (Kubo), boxo's remote pinning
// client and other Pinning Service clients can pin into the cluster.
//
// # Quick start
//
//	api, err := pinsvc.New(cluster, pinsvc.Config{
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
// or let the cluster own it: pincluster.New(ctx, h, dht, ps,
// pincluster.WithAPI(pinsvc.NewAPI(cfg))). Handler returns the bare
// http.Handler for a server of your own. The constructor and the server
// methods (Handler, Serve, Start, Addr, Shutdown) are those of package
// api/rest.
//
// # Requests and users
//
// Every access token belongs to a user (Config.Tokens; JWTs signed with
// Config.JWTKey name the user in their subject). A pin request belongs to
// the user who made it: other users neither list nor see it (404). Each
// request gets its own random request id (a UUID), even for a CID that is
// already requested.
//
// # One pinset, two APIs
//
// The Pinning Service API and the cluster's other clients (the REST API,
// Go programs calling Cluster.Pin) share one pinset, and a pin records who
// holds it. A cluster pin held for pin requests carries, in its metadata,
// a holder mark per Pinning Service API holding it: the key
// HolderMarkPrefix + the serving peer's ID, with the CID as value. A pin
// without a mark is held by the other clients. The requests themselves,
// per user, are this API's records. The rules:
//
//   - A new request (POST /pins, or a replacement) pins its CID when it is
//     not in the cluster's pinset, even if older requests for it exist (the
//     CID may have left the pinset, unpinned through the REST API): the
//     Pinning Service's view of a CID is read from the pinset, and repaired
//     against it, on every request. A CID already pinned by the other
//     clients is left as they pinned it (name, metadata, replication);
//     one pinned by another peer's Pinning Service API gets this API's mark
//     too.
//   - Pinning a marked CID again through the REST API replaces its
//     metadata, marks included: the REST API then holds the pin.
//   - When the last request of this API for a CID is deleted or replaced,
//     this API drops its hold: the pin is unpinned only when it carries
//     this API's mark and no other; with other marks it is re-pinned
//     without this one; without this API's mark (the REST API holds it) it
//     is left alone. Removing one holder never removes a pin another still
//     needs.
//   - An unpin through the REST API removes the pin whoever holds it (it is
//     the operator's override); the requests that held it report failed
//     until a new request pins the CID again.
//
// Request meta is stored with the request and copied to a pin that the
// request creates; it may hold at most pincluster.MaxMetadataKeys -
// ReservedMetaKeys keys, none starting with HolderMarkPrefix.
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
// are shared with the REST API given the same Config.Revocations.
package pinsvc
