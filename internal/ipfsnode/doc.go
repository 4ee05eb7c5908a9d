// Package ipfsnode is pincluster's in-process IPFS node: a block exchange
// node that runs on the caller's libp2p host and datastore.
//
// It holds:
//   - a blockstore in the caller's datastore (namespace /ipfsnode/blocks,
//     keyed by multihash like Kubo's), where every block read or written is
//     checked against its CID (a mismatch is a *CorruptBlockError and is
//     never served, stored or pinned) and whose size is bounded by
//     Config.StorageMax (ErrStorageFull);
//   - system blocks (namespace /ipfsnode/sysblocks): the owner's own blocks
//     (the cluster's consensus keeps its deltas and snapshots there), kept
//     apart like IPFS Cluster keeps its consensus data out of the IPFS
//     repository: not charged against StorageMax, not in RepoStat, never
//     removed by GC, served to peers by bitswap like any block;
//   - bitswap (boxo) on the host, finding providers through Config.Routing
//     when given, else among connected peers;
//   - a pinset persisted in the datastore (namespace /ipfsnode/pins):
//     recursive, direct and depth-limited pins, recorded only once every
//     block they cover is local, with progress callbacks while fetching;
//   - a mark-and-sweep garbage collector whose roots are the pins and
//     Config.ExtraRoots (for the CRDT's older delta blocks, stored among
//     the user's blocks by earlier versions), safe against pins and
//     imports running at the same time;
//   - a provider announcing pinned roots through Config.Routing, rate
//     bounded;
//   - UnixFS import (Kubo-identical CIDs for the same settings), reading
//     and path resolution.
//
// Lifecycle: New(ctx, Config) → use → Close(ctx). Close stops bitswap, the
// provider and every goroutine the node started (all through
// internal/gorun); it closes neither the host nor the datastore, which
// belong to the caller. Methods called after Close return ErrClosed.
//
// Concurrency with GC: a pin or import holds each block it touches (before
// fetching or storing it) until it has recorded its pin; GC deletes only
// blocks that are neither marked nor held, under the same lock that takes
// holds, so a running pin never loses a block. Blocks put with BlockPut or
// through Blockstore() are not held: they survive GC only when reachable
// from a pin or from ExtraRoots.
//
// The package does not import the root pincluster package; the root's
// connector.go adapts Node to pincluster.IPFSConnector.
package ipfsnode
