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
	var cluster *pincluster.Cluster // from pincluster.New
	api, err := pinsvc.New(cluster, pinsvc.Config{
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
	defer api.Shutdown(context.Background())
}

// Let the cluster start the API and shut it down first.
func ExampleNewAPI() {
	opt := pincluster.WithAPI(pinsvc.NewAPI(pinsvc.Config{Tokens: map[string]string{"token-of-alice": "alice"}}))
	_ = opt // pincluster.New(ctx, host, dht, pubsub, opt)
}
