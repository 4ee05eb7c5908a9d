// Package clustertest is pincluster's test kit: in-memory stand-ins for
// the components a Cluster plugs in, for the unit tests of programs that
// embed pincluster (and for pincluster's own). Everything here is for tests
// only: nothing persists, nothing talks to a real IPFS node.
//
//   - MockConnector is an in-memory pincluster.IPFSConnector (with the
//     PinUpdater, RepoGCer and DAGSizer side interfaces) whose behaviour can
//     be scripted while a test runs: latency, failures per method or per CID,
//     pins that hang or progress slowly, DAG sizes and a storage limit, a
//     switch that takes the "daemon" down, and call counters.
//   - StaticInformer is a pincluster.Informer returning metrics the test
//     sets and changes at will.
//
// Pass them to pincluster.New with pincluster.WithConnector and
// pincluster.WithInformers.
//
// Helpers that start several peers in one process are planned beside
// these.
package clustertest
