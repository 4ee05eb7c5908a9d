package rest_test

import (
	"context"
	"log"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/rest"
)

// Serve the REST API of a peer on loopback with basic auth.
func ExampleNew() {
	var cluster *pincluster.Cluster // from pincluster.New
	api, err := rest.New(cluster, rest.Config{
		ListenAddr: "127.0.0.1:9094",
		BasicAuth:  map[string]string{"admin": "a long password"},
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
	opt := pincluster.WithAPI(rest.NewAPI(rest.Config{BasicAuth: map[string]string{"admin": "a long password"}}))
	_ = opt // pincluster.New(ctx, host, dht, pubsub, opt)
}
