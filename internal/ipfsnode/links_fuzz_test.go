package ipfsnode

import (
	"testing"

	cid "github.com/ipfs/go-cid"
)

// FuzzLinks: decoding the links of any bytes under any codec returns links
// or an error, never panics; pin records likewise.
func FuzzLinks(f *testing.F) {
	f.Add(uint64(cid.DagProtobuf), []byte{0x0a, 0x02, 0x08, 0x01})
	f.Add(uint64(cid.DagCBOR), []byte{0xa1, 0x61, 0x61, 0xd8, 0x2a, 0x45, 0x00, 0x01, 0x55, 0x00, 0x00})
	f.Add(uint64(cid.DagJSON), []byte(`{"a":{"/":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"}}`))
	f.Add(uint64(cid.Raw), []byte("foo"))
	f.Add(uint64(0x99), []byte{})
	f.Fuzz(func(t *testing.T, codec uint64, data []byte) {
		c, err := cid.Prefix{Version: 1, Codec: codec, MhType: 0x12, MhLength: -1}.Sum(data)
		if err != nil {
			return
		}
		_, _ = links(c, data)
		_, _ = decodePin(c, data)
		if verify(c, data) != nil {
			t.Fatal("a block built from its data must verify")
		}
	})
}
