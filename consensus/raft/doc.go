// Package raft provides a pincluster.Consensus on hashicorp/raft: strong
// consistency with a leader, for a small, fixed set of peers that must all
// agree on every pin before it is acknowledged.
//
// Choose it over the default Merkle-CRDT when a pin must be committed by a
// majority before Pin returns and every peer must see the same order of
// changes. Its price: a minority partition cannot pin (calls fail with an
// error wrapping pincluster.ErrNoLeader once their context ends), every
// write goes through one leader, and membership changes are explicit
// (AddPeer/RmPeer). The CRDT accepts writes anywhere, at any time, and
// converges later.
//
// Transport: raft's connections are libp2p streams of the protocol
// "/pincluster/raft/<cluster>/1.0.0" on the cluster's host; server IDs and
// addresses are peer IDs. Followers forward LogPin, LogUnpin, AddPeer and
// RmPeer to the leader over the protocol
// "/pincluster/raft/<cluster>/forward/1.0.0" (one CBOR frame each way,
// bounded in size and time), which the leader serves only to the current
// voters, refusing anyone else before reading the request.
//
// Storage: the raft log and stable store live in Config.Datastore (or in
// a Badger datastore the consensus opens at Config.BadgerPath) under /raft
// (log entries keyed by index, CBOR), the state under /state (the same
// layout as pincluster.DatastoreState), snapshots (a state export) in
// Config.SnapshotDir or in memory. A persistent log needs a SnapshotDir:
// after a compaction the log alone cannot rebuild the state.
//
// Usage:
//
//	cons, err := raft.New(ctx, h, raft.Config{Peers: []peer.ID{a, b, c}, Datastore: d})
//	c, err := pincluster.New(ctx, h, dht, ps, pincluster.WithConsensus(cons))
package raft
