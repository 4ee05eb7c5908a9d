package pincluster

import (
	"testing"

	dstest "github.com/ipfs/go-datastore/test"
)

// TestMemStoreSuite runs go-datastore's conformance suite on the in-memory
// store behind NewMemoryState.
func TestMemStoreSuite(t *testing.T) {
	dstest.SubtestAll(t, newMemStore())
}
