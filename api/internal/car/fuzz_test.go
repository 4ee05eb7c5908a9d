package car

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster/api/internal/alloccheck"
)

func rawCID(t testing.TB, b []byte) cid.Cid {
	h, err := mh.Sum(b, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func build(t testing.TB, root cid.Cid, blocks ...[]byte) []byte {
	hb, err := cbor.Marshal(map[string]any{
		"roots":   []cbor.Tag{{Number: 42, Content: append([]byte{0}, root.Bytes()...)}},
		"version": 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, uint64(len(hb))))
	buf.Write(hb)
	for _, b := range blocks {
		sec := append(rawCID(t, b).Bytes(), b...)
		buf.Write(binary.AppendUvarint(nil, uint64(len(sec))))
		buf.Write(sec)
	}
	return buf.Bytes()
}

func TestReader(t *testing.T) {
	a, b := []byte("alpha"), []byte("beta")
	data := build(t, rawCID(t, a), a, b)
	r, err := NewReader(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Roots()) != 1 || !r.Roots()[0].Equals(rawCID(t, a)) {
		t.Fatalf("roots %v", r.Roots())
	}
	n := 0
	for {
		c, d, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !c.Equals(rawCID(t, d)) {
			t.Fatal("block mismatch")
		}
		n++
	}
	if n != 2 || r.Bytes() != 9 {
		t.Fatalf("%d blocks, %d bytes", n, r.Bytes())
	}
	// Truncated: an error, not EOF.
	r, _ = NewReader(bytes.NewReader(data[:len(data)-2]), Limits{})
	r.Next()
	if _, _, err := r.Next(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
	// Limits.
	r, _ = NewReader(bytes.NewReader(data), Limits{MaxBlocks: 1})
	r.Next()
	if _, _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("block cap: %v", err)
	}
	r, _ = NewReader(bytes.NewReader(data), Limits{MaxBlockSize: 4})
	if _, _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("size cap: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(data), Limits{MaxHeaderSize: 8}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("header cap: %v", err)
	}
	// A huge declared section length is refused before allocating.
	huge := append(build(t, rawCID(t, a)), binary.AppendUvarint(nil, 1<<40)...)
	r, _ = NewReader(bytes.NewReader(huge), Limits{})
	if _, _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge section: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	a := []byte("alpha")
	f.Add(build(f, rawCID(f, a), a, []byte("beta")))
	f.Add(build(f, rawCID(f, a)))
	f.Add([]byte{0x0a, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x80, 0x67})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Bound(t, len(data), func() {
			r, err := NewReader(bytes.NewReader(data), Limits{MaxBlocks: 1000})
			if err != nil {
				return
			}
			for range 2000 {
				c, d, err := r.Next()
				if err != nil {
					return
				}
				want, _ := c.Prefix().Sum(d)
				if !bytes.Equal(want.Hash(), c.Hash()) {
					t.Fatal("unverified block returned")
				}
			}
			t.Fatal("block cap not enforced")
		})
	})
}
