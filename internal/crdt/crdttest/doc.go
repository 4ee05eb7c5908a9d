// Package crdttest has in-memory, fault-injecting stand-ins for the two
// network dependencies of internal/crdt, for tests only:
//
//   - Network: per-peer in-memory blockstores and a DAG per peer that reads
//     locally, else fetches from the peers it is currently connected to
//     (Network.SetConnected lets a test follow a mocknet partition).
//   - FaultDAG: wraps any crdt.DAG to fail, hang, delay or corrupt fetches
//     of chosen CIDs or of every k-th fetch, and counts fetch attempts per
//     CID (fetch failures).
//   - Bus: a broadcast medium whose Endpoints implement crdt.Broadcaster,
//     with drop %, duplicate %, random delay (which reorders), a
//     "drop everything from peer X" switch and link cuts, all driven by a
//     seeded random source (lossy, reordering networks).
//
// Nothing here starts goroutines.
package crdttest
