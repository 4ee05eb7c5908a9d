// Package clustertest is pincluster's test kit, for the tests of programs
// that embed pincluster (and for pincluster's own): clusters of real peers
// in one process, and in-memory stand-ins for the components a Cluster
// plugs in. Everything here is for tests only.
//
// Clusters:
//   - Start (and its shorthand NewCluster) starts N peers of a Setup, each a
//     full pincluster.Cluster on its own libp2p host, connects them and
//     waits until every peer sees every other; everything stops at the end
//     of the test. The hosts live on go-libp2p's mocknet by default, where
//     Cut and Heal break and restore links between two peers; Setup.TCP
//     puts them on loopback TCP instead, for a test where something outside
//     the process (a Kubo daemon) dials them.
//   - Cluster.Stop, Restart and StartPeer stop and start a peer with the
//     same identity. With Setup.Badger its datastore (state, pins, the
//     in-process node's blocks) is a Badger directory under t.TempDir()
//     that persists across its restarts; otherwise a restarted peer starts
//     from an empty in-memory state and catches up from the others. A
//     peer's MockConnector persists across its restarts too, as a daemon
//     outliving the peer would.
//   - WaitFor, WaitReady and WaitStatus wait for a condition with a
//     deadline, failing the test with what was awaited.
//   - The peers log through NewLogger to t.Log (Setup.LogLevel, Info by
//     default), each record tagged with the peer's index ("index=2");
//     nothing is logged after the test's cleanup.
//
// Stand-ins:
//   - MockConnector is an in-memory pincluster.IPFSConnector (with the
//     PinUpdater, RepoGCer and DAGSizer side interfaces) whose behaviour can
//     be scripted while a test runs: latency, failures per method or per CID,
//     pins that hang or progress slowly, DAG sizes and a storage limit, a
//     switch that takes the "daemon" down, and call counters. It stores no
//     content and pins any CID; it passes package connector/connectortest's
//     conformance suite like the real connectors. Setup.InProcessIPFS gives
//     the peers the default in-process IPFS node instead.
//   - StaticInformer is a pincluster.Informer returning metrics the test
//     sets and changes at will.
//
// Pass the stand-ins to pincluster.New with pincluster.WithConnector and
// pincluster.WithInformers, or to Start through Setup.Options.
package clustertest
