package car

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/multiformats/go-multihash"
)

// digestBomb is a CAR whose only section holds a CIDv1 declaring a digest
// of declared bytes, followed by a few bytes: issue 15's 226-byte upload
// that made the server allocate 32 MiB.
func digestBomb(t testing.TB, declared uint64) []byte {
	a := []byte("alpha")
	data := build(t, rawCID(t, a))
	sec := []byte{0x01, 0x55} // CIDv1, raw
	sec = binary.AppendUvarint(sec, multihash.SHA2_256)
	sec = binary.AppendUvarint(sec, declared)
	sec = append(sec, bytes.Repeat([]byte{'0'}, 40)...)
	data = binary.AppendUvarint(data, uint64(len(sec)))
	return append(data, sec...)
}

// allocPerRead returns the bytes allocated by reading data to its end,
// averaged over runs.
func allocPerRead(t *testing.T, data []byte, runs int) (uint64, error) {
	var lastErr error
	read := func() {
		r, err := NewReader(bytes.NewReader(data), Limits{})
		if err != nil {
			lastErr = err
			return
		}
		for {
			if _, _, err := r.Next(); err != nil {
				lastErr = err
				return
			}
		}
	}
	read() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		read()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs), lastErr
}

// TestDigestLengthBomb (issue 15, defect 2): a block CID that declares a
// 32 MiB digest (or 2 GiB) in a section of a few bytes is refused as
// malformed, and reading the stream allocates within the documented
// bound, MaxAllocBase + 8·len(input). Before, each such stream allocated
// the declared digest length (32 MiB).
func TestDigestLengthBomb(t *testing.T) {
	for _, declared := range []uint64{32<<20 - 1, 1 << 20, 1<<31 - 1} {
		data := digestBomb(t, declared)
		got, err := allocPerRead(t, data, 20)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("digest of %d declared: %v, want ErrMalformed", declared, err)
		}
		limit := uint64(MaxAllocBase + 8*len(data))
		t.Logf("digest of %d bytes declared in %d bytes of input: %d bytes allocated per read (limit %d)", declared, len(data), got, limit)
		if got > limit {
			t.Fatalf("digest of %d declared in %d bytes: %d bytes allocated per read, limit %d", declared, len(data), got, limit)
		}
	}
	// A well-formed stream stays within the bound too.
	a, b := bytes.Repeat([]byte("a"), 100<<10), bytes.Repeat([]byte("b"), 300<<10)
	data := build(t, rawCID(t, a), a, b)
	got, err := allocPerRead(t, data, 5)
	if err == nil || err.Error() != "EOF" {
		t.Fatalf("good stream: %v", err)
	}
	if limit := uint64(MaxAllocBase + 8*len(data)); got > limit {
		t.Fatalf("good stream of %d bytes: %d bytes allocated, limit %d", len(data), got, limit)
	}
}
