// Package alloccheck helps fuzz targets assert that decoding an input of n
// bytes allocates less than 64·n + 1 MiB (used by the fuzz targets).
package alloccheck

import (
	"runtime"
	"testing"
)

// Bound runs fn and fails t if it allocated more than 64·n + 1 MiB bytes.
// Call it from a single goroutine (fuzz targets run inputs one at a time).
func Bound(t testing.TB, n int, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	limit := uint64(64*n + 1<<20)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("decoding %d bytes allocated %d bytes, limit %d", n, got, limit)
	}
}
