// Package kubotest runs a real Kubo (go-ipfs) v0.42.0 daemon on loopback for
// tests, following INTEROP.md §1.
//
// The binary is named by the environment variable PINCLUSTER_KUBO. When it
// is unset or not executable, Binary (and so Start) fails the test if
// CI=true and skips it otherwise, with a message saying what to set.
//
// Each daemon gets its own repository in t.TempDir(), initialised with
// `ipfs init --profile=test` (API, gateway and swarm on 127.0.0.1 port 0, no
// bootstrap, no mDNS), telemetry off (IPFS_TELEMETRY=off and the telemetry
// plugin disabled) and, unless Options say otherwise, Routing.Type "none".
// Start waits for "Daemon is ready" and reads the real RPC address from
// $IPFS_PATH/api and the peer ID and swarm addresses from the `id` call.
//
//	d := kubotest.Start(t, kubotest.Options{})
//	out, err := d.RPC(ctx, "pin/add", url.Values{"arg": {c.String()}})
//	cid, err := d.Run(ctx, "add", "-Q", "--cid-version=1", file)
//
// t.Cleanup stops the daemon gracefully (SIGKILL after a grace period) and,
// when the test failed, writes the daemon's output into the test log.
// Kill, Stop and Restart drive restarts on the same repository and RPC API
// address (IPFS node restarts under load). The package imports "testing" and is for tests only.
package kubotest
