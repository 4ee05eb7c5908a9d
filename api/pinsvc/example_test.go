package pinsvc_test

import (
	"context"
	"log"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/pinsvc"
)

// Serve the Pinning Service API of a peer for two users. Then:
//
//	ipfs pin remote service add pincluster http://127.0.0.1:9097 <alice's token>
//	ipfs pin remote add --service=pincluster <cid>
func ExampleNew() {
	ctx := context.Background()
	var cluster *pincluster.Cluster // from pincluster.New
	api, err := pinsvc.New(ctx, cluster, pinsvc.Config{
		ListenAddr: "127.0.0.1:9097",
		Tokens:     map[string]string{"token-of-alice": "alice", "token-of-bob": "bob"},
		// Datastore: a persistent go-datastore keeps the requests across restarts.
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := api.Start(); err != nil {
		log.Fatal(err)
	}
	defer api.Shutdown(ctx)
}
