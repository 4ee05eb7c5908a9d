package pincluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

func TestPinBinaryRoundTrip(t *testing.T) {
	for _, p := range []Pin{fullPin(t), NewPin(testCid(t, "min"), PinOptions{}),
		NewPin(testCid(t, "d"), PinOptions{Mode: PinModeDirect, ReplicationMin: -1, ReplicationMax: -1})} {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var q Pin
		if err := q.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if !p.Equal(q) {
			t.Fatalf("round trip changed the pin:\n%+v\n%+v", p, q)
		}
		b2, _ := q.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("encoding is not deterministic")
		}
	}
}

// TestPinSizeBinaryOnly: Pin.Size travels in pincluster's binary encoding
// (key 17, left out when 0, so records without it keep their bytes) and
// counts in Equal, but IPFS Cluster's JSON neither writes nor reads it.
func TestPinSizeBinaryOnly(t *testing.T) {
	p := fullPin(t)
	unsized, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	p.Size = 5 << 30
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var q Pin
	if err := q.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if q.Size != p.Size || !p.Equal(q) {
		t.Fatalf("binary round trip: size %d, want %d", q.Size, p.Size)
	}
	if err := q.UnmarshalBinary(unsized); err != nil || q.Size != 0 {
		t.Fatalf("a record without a size: size %d, err %v", q.Size, err)
	}
	if p.Equal(q) {
		t.Fatal("pins of different sizes are Equal")
	}
	var w map[int]any
	if err := cbor.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if w[17] != uint64(5<<30) {
		t.Fatalf("key 17 = %v", w[17])
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Pin
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(fullPin(t))
	if !bytes.Equal(j, plain) || fromJSON.Size != 0 {
		t.Fatalf("the size reached the JSON form: %s", j)
	}
}

func TestPinBinaryDeterministicMetadataOrder(t *testing.T) {
	p := fullPin(t)
	first, _ := p.MarshalBinary()
	for range 20 {
		q := p.Clone() // a fresh map: Go randomises iteration order
		b, _ := q.MarshalBinary()
		if !bytes.Equal(first, b) {
			t.Fatal("equal pins encoded differently")
		}
	}
}

func TestPinDecodeRejects(t *testing.T) {
	good, _ := fullPin(t).MarshalBinary()
	newer, _ := cborEnc.Marshal(map[int]any{0: EncodingVersion + 1, 1: testCid(t, "x").Bytes()})
	hugeMeta := map[string]string{}
	for i := range 100 {
		hugeMeta[string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	tooMuchMeta, _ := cborEnc.Marshal(map[int]any{0: 1, 1: testCid(t, "x").Bytes(), 2: 2, 4: -1, 13: hugeMeta})
	badCid, _ := cborEnc.Marshal(map[int]any{0: 1, 1: []byte{1, 2, 3}, 2: 2, 4: -1})
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"garbage", []byte{0xff, 0x00, 0x13}, ErrCorrupt},
		{"newer version", newer, ErrUnsupportedVersion},
		{"too much metadata", tooMuchMeta, ErrMetadataTooLarge},
		{"bad cid", badCid, ErrInvalidCID},
		{"oversized", make([]byte, MaxEncodedPinSize+1), ErrCorrupt},
		{"no cid", func() []byte { b, _ := cborEnc.Marshal(map[int]any{0: 1}); return b }(), ErrInvalidCID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Pin
			p.Name = "untouched"
			err := p.UnmarshalBinary(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tc.want)
			}
			if p.Name != "untouched" {
				t.Fatal("failed decode modified the pin")
			}
		})
	}
}

func TestPinJSONRoundTrip(t *testing.T) {
	p := fullPin(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cid", "type", "allocations", "max_depth", "reference", "replication_factor_min",
		"replication_factor_max", "name", "mode", "shard_size", "user_allocations", "expire_at", "metadata",
		"pin_update", "origins", "timestamp"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("JSON lacks IPFS Cluster field %q: %s", f, b)
		}
	}
	if string(fields["cid"]) != `{"/":"`+p.Cid.String()+`"}` || string(fields["mode"]) != `"recursive"` {
		t.Errorf("cid/mode JSON = %s %s", fields["cid"], fields["mode"])
	}
	var q Pin
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !p.Equal(q) {
		t.Fatalf("JSON round trip changed the pin:\n%+v\n%+v", p, q)
	}
	if err := json.Unmarshal([]byte(`{"cid":{"/":"notacid"}}`), &q); !errors.Is(err, ErrInvalidCID) {
		t.Fatalf("bad cid JSON = %v", err)
	}
}

func TestMetricRoundTrip(t *testing.T) {
	m := Metric{Name: "freespace", Peer: testPeer(t, "p"), Value: "1000", Weight: 1000,
		ValidUntil: time.Unix(1900000000, 0).UTC()}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var n Metric
	if err := n.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if n != m {
		t.Fatalf("round trip: %+v != %+v", n, m)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-2], {0xa1, 0x00, 0x00}, make([]byte, MaxEncodedMetricSize+1)} {
		if err := n.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalBinary(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
	noPeer, _ := cborEnc.Marshal(map[int]any{0: 1, 1: "x"})
	if err := n.UnmarshalBinary(noPeer); !errors.Is(err, ErrCorrupt) {
		t.Errorf("metric without peer = %v", err)
	}
}

// allocBound is the fuzz targets' allocation budget for n bytes of input.
func allocBound(n int) uint64 { return uint64(64*n + 1<<20) }

func measureAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzPinDecode checks that the pin decoder never panics, stays within its
// allocation budget, and that whatever it accepts re-encodes to a fixed
// point that decodes to the same pin.
func FuzzPinDecode(f *testing.F) {
	full, _ := fullPin(f).MarshalBinary()
	minimal, _ := NewPin(testCid(f, "m"), PinOptions{}).MarshalBinary()
	f.Add(full)
	f.Add(minimal)
	f.Add([]byte{0xa0})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Pin
		var err error
		if alloc := measureAlloc(func() { err = p.UnmarshalBinary(data) }); alloc > allocBound(len(data)) {
			t.Fatalf("decoding %d bytes allocated %d", len(data), alloc)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalidPin) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		b1, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var q Pin
		if err := q.UnmarshalBinary(b1); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !p.Equal(q) {
			t.Fatalf("re-encoding changed the pin")
		}
		b2, _ := q.MarshalBinary()
		if !bytes.Equal(b1, b2) {
			t.Fatal("encoding not a fixed point")
		}
		if cbor.Wellformed(b1) != nil {
			t.Fatal("encoder wrote malformed CBOR")
		}
	})
}

// FuzzMetricDecode checks the metric decoder against panics and its
// allocation budget.
func FuzzMetricDecode(f *testing.F) {
	m, _ := Metric{Name: "ping", Peer: testPeer(f, "p"), Value: "1", ValidUntil: time.Unix(1, 0)}.MarshalBinary()
	f.Add(m)
	f.Add([]byte{0xa1, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out Metric
		var err error
		if alloc := measureAlloc(func() { err = out.UnmarshalBinary(data) }); alloc > allocBound(len(data)) {
			t.Fatalf("decoding %d bytes allocated %d", len(data), alloc)
		}
		if err == nil {
			b, err := out.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var again Metric
			if err := again.UnmarshalBinary(b); err != nil || again != out {
				t.Fatalf("metric re-encoding: %v", err)
			}
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("untyped error: %v", err)
		}
	})
}

// A pinDecoder reusing peer IDs decodes every record as decodePin does,
// keeps at most pinDecoderPeers of them, and still rejects a record whose
// allocation is not a multihash after seeing valid ones.
func TestPinDecoderMatchesDecodePin(t *testing.T) {
	var dec pinDecoder
	for i := range 2 * pinDecoderPeers {
		p := fullPin(t)
		p.Allocations = []peer.ID{testPeer(t, "a"), testPeer(t, fmt.Sprint("p", i)), testPeer(t, "b")}
		p.UserAllocations = []peer.ID{testPeer(t, fmt.Sprint("u", i%3))}
		b, err := p.MarshalBinary()
		require.NoError(t, err)
		want, err := decodePin(b)
		require.NoError(t, err)
		got, err := dec.decode(b)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	require.Len(t, dec.peers, pinDecoderPeers)
	bad, err := cborEnc.Marshal(map[int]any{0: 1, 1: testCid(t, "x").Bytes(), 2: 2, 4: -1, 3: [][]byte{[]byte("not a multihash")}})
	require.NoError(t, err)
	_, want := decodePin(bad)
	require.ErrorIs(t, want, ErrInvalidPin)
	_, got := dec.decode(bad)
	require.Equal(t, want, got)
}
