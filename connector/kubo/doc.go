// Package kubo is a pincluster.IPFSConnector that drives a Kubo (go-ipfs)
// daemon through its RPC API over HTTP. Tested against Kubo v0.42.0.
//
// # Quick start
//
//	conn, err := kubo.New(kubo.Config{APIAddr: "/ip4/127.0.0.1/tcp/5001"})
//	if err != nil { ... }
//	c, err := pincluster.New(ctx, host, dht, ps, pincluster.WithConnector(conn))
//	...
//	err = c.Shutdown(ctx) // shuts the connector down too
//
// A Connector may also be used alone: every method is one or a few RPC
// calls (the table below), safe for concurrent use.
//
// # Lifecycle
//
// New checks the Config and parses the address; it does not contact the
// daemon, so a daemon that starts later is fine. Calls made while the daemon
// is down fail with errors wrapping pincluster.ErrIPFSUnavailable and
// succeed again once it is back. Shutdown waits for the calls in flight
// (aborting them if its ctx ends first); afterwards every method fails with
// pincluster.ErrClosed. The Connector starts no goroutines.
//
// # Calls
//
//	ID             id
//	Pin            swarm/connect (each origin), pin/add progress=true (streamed; name= with Config.PinNames)
//	Unpin          pin/rm recursive=true
//	PinLsCid       pin/ls arg=<cid> type=recursive|direct (never the indirect walk by default)
//	PinLs          pin/ls type=... stream=true (streamed, one call per type)
//	ConnectSwarms  swarm/connect, one call per peer
//	SwarmPeers     swarm/peers
//	ConfigKey      config arg=<key>
//	RepoStat       repo/stat size-only=true
//	Resolve        resolve recursive=true
//	BlockPut       block/put (multipart) pin=false
//	BlockGet       block/get
//	DAGSize        dag/stat offline=true progress=false (local blocks only)
//	PinUpdate      pin/update
//	RepoGC         repo/stat, repo/gc (streamed), repo/stat
//
// # Errors
//
// Every error is an *Error naming the RPC command and carrying Kubo's
// message; it wraps pincluster.ErrNotPinned, ErrNotFound, ErrIPFSUnavailable
// or ErrClosed where one applies (see Error), so callers use errors.Is.
// Answers read into memory are bounded (8 MiB for JSON, 1 MiB per streamed
// line, Config.MaxBlockSize for blocks); a larger or malformed answer is an
// error wrapping ErrIPFSUnavailable, never a panic.
//
// # Time
//
// Unary calls are bounded by Config.RequestTimeout and the caller's ctx.
// Pins are bounded by the caller's ctx only: Kubo streams its counts every
// 500 ms, and the progress callback runs only when they grow, so a caller
// spots a pin that stopped moving by the silence of its callback.
package kubo
