package crdt_test

import (
	"bytes"
	"testing"

	cid "github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/crdt"
)

// Delta blocks and broadcast messages are canonical dag-cbor: go-ipld-prime
// decodes them and re-encodes the same bytes, links as real CIDs.
func TestDeltaIsCanonicalDagCBOR(t *testing.T) {
	l1, l2 := rawCid(t, []byte("a")), rawCid(t, []byte("b"))
	d := &crdt.Delta{
		Priority: 7,
		Links:    []cid.Cid{l2, l1},
		Puts:     []crdt.KV{{Key: "/z", Value: []byte("1")}, {Key: "/a", Value: nil}},
		Removes:  []crdt.Remove{{Key: "/z", IDs: []cid.Cid{l1}}},
	}
	id, raw, err := crdt.EncodeDelta(d)
	require.NoError(t, err)
	require.EqualValues(t, crdt.CodecDagCBOR, id.Prefix().Codec)
	msg, err := crdt.EncodeMessage([]cid.Cid{id})
	require.NoError(t, err)
	for _, b := range [][]byte{raw, msg} {
		nb := basicnode.Prototype.Any.NewBuilder()
		require.NoError(t, dagcbor.Decode(nb, bytes.NewReader(b)))
		var out bytes.Buffer
		require.NoError(t, dagcbor.Encode(nb.Build(), &out))
		require.Equal(t, b, out.Bytes())
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	require.NoError(t, dagcbor.Decode(nb, bytes.NewReader(raw)))
	links, err := nb.Build().LookupByString("l")
	require.NoError(t, err)
	first, err := links.LookupByIndex(0)
	require.NoError(t, err)
	lnk, err := first.AsLink()
	require.NoError(t, err)
	require.Contains(t, []string{l1.String(), l2.String()}, lnk.String())
}
