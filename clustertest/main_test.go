package clustertest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pincluster/pincluster/internal/leaktest"
)

func TestMain(m *testing.M) {
	// clustertest runs on mocknet, which can orphan a stream at shutdown.
	goleak.VerifyTestMain(m, leaktest.MocknetOrphans()...)
}
