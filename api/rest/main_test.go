package rest

import (
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/leaktest"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(attackEnv); addr != "" { // the child of TestStalledUnauthenticatedUploads
		n, _ := strconv.Atoi(os.Getenv(attackNEnv))
		os.Exit(runAttacker(addr, n))
	}
	// clustertest runs on mocknet, which can orphan a stream at shutdown.
	goleak.VerifyTestMain(m, leaktest.MocknetOrphans()...)
}
