package pincluster

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

// fastPins are pins whose encodings the fast path must take: every field
// set, the minimal pin, negative and large integers, many allocations.
func fastPins(t testing.TB) []Pin {
	everywhere := NewPin(testCid(t, "e"), PinOptions{ReplicationMin: -1, ReplicationMax: -1})
	everywhere.MaxDepth = -1
	many := NewPin(testCid(t, "m"), PinOptions{Name: "ünïcödé", Metadata: map[string]string{"e": "", "a": "b"}})
	for i := range 7 {
		many.Allocations = append(many.Allocations, testPeer(t, fmt.Sprint("p", i)))
	}
	many.Timestamp = time.Unix(0, 1).UTC()
	old := NewPin(testCid(t, "o"), PinOptions{ExpireAt: time.Unix(-1e9, 0).UTC()}) // negative nanoseconds
	old.Timestamp = time.Unix(4e9, 0).UTC()
	sized := fullPin(t)
	sized.Size = 1 << 40
	return []Pin{fullPin(t), NewPin(testCid(t, "min"), PinOptions{}), everywhere, many, old, sized}
}

// checkFastAgrees fails t if the fast path takes data and the general
// decoder refuses it or decodes it differently.
func checkFastAgrees(t testing.TB, data []byte) (taken bool) {
	t.Helper()
	var wf pinWire
	if !wf.decodeFast(data) {
		return false
	}
	var ws pinWire
	if err := cborDec.Unmarshal(data, &ws); err != nil {
		t.Fatalf("fast path took %x, the general decoder refuses it: %v", data, err)
	}
	pf, errf := pinFromWire(&wf)
	ps, errs := pinFromWire(&ws)
	if fmt.Sprint(errf) != fmt.Sprint(errs) || !reflect.DeepEqual(pf, ps) {
		t.Fatalf("fast path and general decoder differ on %x:\nfast:    %+v, %v\ngeneral: %+v, %v", data, pf, errf, ps, errs)
	}
	return true
}

// The fast path takes every record MarshalBinary writes and decodes it as
// the general decoder does; on records changed a byte at a time, cut
// short or grown, and on hand-made non-canonical ones, it either gives up
// or agrees with the general decoder (never accepts what that refuses).
func TestPinDecodeFastMatchesCBOR(t *testing.T) {
	var inputs [][]byte
	for _, p := range fastPins(t) {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !checkFastAgrees(t, b) {
			t.Fatalf("fast path refused MarshalBinary's encoding of %+v: %x", p, b)
		}
		q, err := decodePin(b)
		if err != nil || !p.Equal(q) {
			t.Fatalf("decodePin: %+v, %v; want %+v", q, err, p)
		}
		for i := range b {
			inputs = append(inputs, b[:i])
			for _, x := range []byte{0x00, 0x01, 0x17, 0x18, 0x1f, 0x20, 0x40, 0x60, 0x80, 0xa0, 0xc0, 0xe0, 0xf6, 0xff} {
				c := append([]byte{}, b...)
				c[i] = x
				inputs = append(inputs, c)
				c = append([]byte{}, b...)
				c[i] ^= x
				inputs = append(inputs, c)
			}
			inputs = append(inputs, append(append([]byte{}, b[:i]...), b[i+1:]...))
			inputs = append(inputs, append(append(append([]byte{}, b[:i]...), 0x00), b[i:]...))
		}
		inputs = append(inputs, append(append([]byte{}, b...), 0x00)) // trailing data
	}
	c := testCid(t, "x").Bytes()
	p := []byte(testPeer(t, "p"))
	hand := []any{
		map[int]any{0: 1, 1: c, 2: 2, 4: -1},
		map[int]any{0: 1, 1: c, 18: 5},                                  // unknown key
		map[int]any{0: 1, 1: c, 17: -5},                                 // negative size
		map[int]any{0: 1, 1: c, 2: -2},                                  // negative uint
		map[int]any{0: 1, 1: string(c)},                                 // text for bytes
		map[int]any{0: 1, 1: c, 8: []byte("n")},                         // bytes for text
		map[int]any{0: 1, 1: c, 8: "\xff"},                              // invalid UTF-8
		map[int]any{0: 1, 1: c, 3: [][]byte{p, p}},                      // duplicate allocation
		map[int]any{0: 1, 1: c, 3: []any{p, 1}},                         // not a byte string
		map[int]any{0: 1, 1: c, 13: map[string]any{"k": 1}},             // not text
		map[int]any{0: 1, 1: c, 13: map[int]string{1: "v"}},             // not text keys
		map[int]any{0: 1, 1: c, 16: uint64(1) << 63},                    // int64 overflow
		map[int]any{0: 1, 1: c, 4: nil},                                 // null
		map[int]any{0: uint64(1) << 63, 1: c},                           // int overflow
		map[string]any{"V": 1, "Cid": c},                                // text keys
		map[int]any{0: 1, 1: c, 3: [][]byte{}, 13: map[string]string{}}, // empty containers
	}
	for _, h := range hand {
		b, err := cborEnc.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	min, _ := NewPin(testCid(t, "min"), PinOptions{}).MarshalBinary()
	inputs = append(inputs,
		append([]byte{0xb8, byte(len(cborMap(t, min)))}, min[1:]...), // non-shortest map head
		append([]byte{0xbf}, append(min[1:], 0xff)...),               // indefinite map
		append([]byte{0xc0}, min...),                                 // tagged
		[]byte{0xa2, 0x00, 0x01, 0x00, 0x01},                         // duplicate key
		[]byte{0xa2, 0x01, 0x40, 0x00, 0x01},                         // keys out of order
		[]byte{0xa1, 0x00, 0x18, 0x01},                               // non-shortest integer
		[]byte{0xa1, 0x18, 0x00, 0x01},                               // non-shortest key
		[]byte{0xa1, 0x00, 0x1b, 0, 0, 0, 0, 0, 0, 0, 1},             // non-shortest 8-byte
		[]byte{0xa0},
	)
	taken := 0
	for _, in := range inputs {
		if checkFastAgrees(t, in) {
			taken++
		}
	}
	t.Logf("%d inputs, %d taken by the fast path", len(inputs), taken)
}

// cborMap decodes the CBOR map b.
func cborMap(t testing.TB, b []byte) map[any]any {
	var m map[any]any
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzPinDecodeFast: whatever the fast path takes, the general decoder
// takes and decodes the same.
func FuzzPinDecodeFast(f *testing.F) {
	for _, p := range fastPins(f) {
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgrees(t, data)
	})
}

// BenchmarkPinDecode decodes a pin as bench/scale writes them (one
// allocation, a timestamp, default replication).
func BenchmarkPinDecode(b *testing.B) {
	p := NewPin(testCid(b, "x"), PinOptions{ReplicationMin: 1, ReplicationMax: 1})
	p.Allocations = []peer.ID{testPeer(b, "a")}
	p.Timestamp = time.Now()
	data, err := p.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePin(data); err != nil {
			b.Fatal(err)
		}
	}
}
