// Package rest serves IPFS Cluster's REST API for a pincluster peer, so
// that existing IPFS Cluster clients (ipfs-cluster-ctl, IPFS Cluster's Go
// client, the JS client @nftstorage/ipfs-cluster) work unchanged.
//
// # Quick start
//
//	api, err := rest.New(cluster, rest.Config{
//		ListenAddr: "127.0.0.1:9094",
//		BasicAuth:  map[string]string{"admin": password},
//	})
//	if err != nil { ... }
//	if err := api.Start(); err != nil { ... }
//	defer api.Shutdown(ctx)
//
// or let the cluster own it: pincluster.New(ctx, h, dht, ps,
// pincluster.WithAPI(rest.NewAPI(cfg))). Handler returns the bare
// http.Handler for a server of your own. The constructor and the server
// methods (Handler, Serve, Start, Addr, Shutdown) are those of package
// api/pinsvc.
//
// # Endpoints
//
// The paths, verbs, query options and JSON documents are IPFS Cluster
// v1.1.6's; ipfs-cluster-ctl and IPFS Cluster's Go client
// (api/rest/client) work against them unchanged:
//
//	GET    /health                       204, the only route without authentication
//	POST   /token                        basic auth -> {"token": JWT}
//	GET    /id, /version
//	GET    /peers                        NDJSON stream of peer IDs
//	POST   /peers                        {"peer_id": "..."}: trust a peer
//	DELETE /peers/{id}
//	GET    /pins?local=&filter=a,b&cids=x,y   NDJSON stream of statuses
//	GET    /pins/{cid}?local=            status
//	POST   /pins/{cid}, /pins/ipfs/{path...}  pin (query options below)
//	DELETE /pins/{cid}, /pins/ipfs/{path...}  unpin
//	POST   /pins/{cid}/recover?local=, /pins/recover?local=
//	POST   /pins/stream                  NDJSON pins in, NDJSON answers out (pincluster's bulk path)
//	GET    /allocations?filter=pin,meta-pin,...|all, /allocations/{cid}
//	POST   /add                          multipart files, or format=car
//	GET    /monitor/metrics, /monitor/metrics/{name}
//	GET    /health/alerts, /health/graph, /health/bandwidth
//	POST   /ipfs/gc?local=               garbage collection, one entry per peer
//
// Pin query options: name, mode (recursive|direct), replication,
// replication-min, replication-max, shard-size, user-allocations (comma
// list), expire-at (RFC 3339) or expire-in (Go duration, at least 1s),
// pin-update (a CID: ctl's "pin update" posts
// /pins/ipfs/<to>?pin-update=<from>; <to> must be a CID, not a path below
// one), origins (comma list of multiaddrs with /p2p/) and
// meta-<key>=<value>. A path of exactly /ipfs/<cid> names the CID itself
// (no resolution). Unknown or repeated options, and values beyond
// pincluster's limits (pincluster.MaxNameLen, MaxMetadataKeys,
// MaxOrigins, ...), are answered 400 before anything reaches the cluster.
//
// /add takes, besides the pin options, the whole set the Go client sends:
// chunker, raw-leaves, cid-version, hash, layout (balanced|trickle),
// wrap-with-directory, local, no-pin, format (unixfs|car),
// stream-channels, and recursive, hidden, quiet and quieter (the
// client's concern; accepted). shard, nocopy and progress, which
// pincluster cannot honour, are refused with a 400 naming them when true. A bad
// chunker or hash (identity, or one IPFS refuses such as md5), an empty
// body and two files of one name in a wrapped add are 400s. A request
// whose first part is a directory (add -r <dir>) imports that directory
// and pins it; entries are listed as ipfs add lists them, each directory
// after its contents.
//
// The JSON documents are IPFS Cluster's field by field (its api package):
// snake_case names; CIDs, peer IDs and multiaddrs as strings (addresses
// with their /p2p/ suffix); pin type ("pin"), pin mode and tracker status
// as names; and the same null, [] or omitted for empty values.
// testdata/golden holds a request and answer for every endpoint, checked
// by structs that mirror upstream's types. Streams are NDJSON, exactly one
// JSON object per line; an error after the first line is reported in the
// X-Stream-Error trailer. Errors are api.Error, {"code": N, "message":
// "..."}. /add answers a JSON array when stream-channels=false and NDJSON
// otherwise.
//
// POST /pins/stream is pincluster's own bulk path (IPFS Cluster has
// none), for importing many pins in one request: the body is NDJSON, one
// pin per line, {"cid": "bafy...", "name": "...", "mode": "direct",
// "replication_factor_min": 2, "replication_factor_max": 3,
// "user_allocations": [...], "expire_at": "...", "metadata": {...}} (only
// "cid" is required; {"/": "bafy..."} is accepted too). The lines received
// so far are pinned together as one durable batch (Cluster.PinMany), and
// answered in order, once durable, one NDJSON line each: {"line": n,
// "cid": "..."} or, for a pin the cluster refused, {"line": n, "error":
// {"code": 400, "message": "..."}}; the answers start while the body is
// still being sent. A line that is not a pin (bad JSON, a bad CID, over
// 64 KiB) is answered with an error line and ends the stream: every line
// answered without error before it is pinned, no line after it is read.
// A bad first line is answered as a plain error (400, or 413 for a long
// line). The body is bounded like /add's (Config.MaxAddBytes,
// AddReadTimeout); past it the stream ends with a 413 line.
//
// /add?format=car reads the first file part as a CAR v1 with exactly one
// root: every block is checked against its CID, bounded in size (2 MiB)
// and number (Config.MaxCARBlocks), stored with BlockPut, and the root is
// then pinned. A broken upload pins nothing. Nothing is allocated by a
// length the CAR declares: a request allocates its read buffers and the
// bytes it actually sends (under 1 MiB for a small malformed CAR, as a
// test measures).
//
// # Security
//
// Credentials are HTTP basic auth (Config.BasicAuth), static bearer tokens
// (Config.BearerTokens) and JWTs issued by POST /token, signed with
// Config.JWTKey (HS256 only; never the user's password), expiring after
// Config.JWTTTL and revocable with API.RevokeToken (a Pinning Service API
// given the same Config.Revocations honours the revocation). Secrets
// are compared in constant time. Request bodies, header sizes (431),
// header read time (slow-loris), body read time (Config.ReadTimeout,
// Config.AddReadTimeout; 408) and each write to a client that stops
// reading (Config.WriteTimeout) are bounded; see Config. A body over its
// limit is answered 400 (413 for /add uploads), after authentication. A
// POST /peers body declared as anything but application/json is answered
// 415. With no credential configured the API is open: keep it on
// loopback.
//
// Hostile clients: credentials are checked before anything reserves time
// or memory for a request. A refused request (401, 429, a declared body
// over its limit) is answered at once, its body unread, and its
// connection closed; only an authenticated /add gets
// Config.AddReadTimeout, every other request Config.ReadTimeout from its
// first byte. Each listener holds at most Config.MaxConns connections
// (default 1024); one more is answered 503 with Retry-After and closed.
// A client address that presents Config.AuthFailureBurst wrong
// credentials in a row (default 10) is answered 429 with Retry-After,
// unchecked, until it earns another attempt (one per
// Config.AuthFailureInterval, default 1s). Pinning or unpinning an
// /ipfs/ path is bounded by Config.ResolveTimeout (default 1m; 504).
package rest
