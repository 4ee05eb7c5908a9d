package rest

import (
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(attackEnv); addr != "" { // the child of TestStalledUnauthenticatedUploads
		n, _ := strconv.Atoi(os.Getenv(attackNEnv))
		os.Exit(runAttacker(addr, n))
	}
	goleak.VerifyTestMain(m)
}
