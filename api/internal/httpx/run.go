package httpx

import (
	"context"

	"github.com/pincluster/pincluster"
)

// Runnable is what the APIs' NewAPI constructors start: an API built on a
// Cluster that listens with Start and stops with Shutdown.
type Runnable interface {
	Start() error
	Shutdown(ctx context.Context) error
}

// Started turns newAPI into the constructor pincluster.WithAPI takes: it
// builds the API on the Cluster and starts it; the Cluster shuts it down.
func Started[A Runnable](newAPI func(*pincluster.Cluster) (A, error)) func(*pincluster.Cluster) (pincluster.Component, error) {
	return func(c *pincluster.Cluster) (pincluster.Component, error) {
		a, err := newAPI(c)
		if err != nil {
			return nil, err
		}
		if err := a.Start(); err != nil {
			return nil, err
		}
		return a, nil
	}
}
