package ipfsnode

import (
	"bytes"
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	cid "github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// hasLinks reports whether blocks of codec c may link to others without
// reading them: raw (and identity-inlined raw) blocks never do.
func hasLinks(c cid.Cid) bool {
	return c.Type() != cid.Raw
}

// links returns the CIDs a block links to. It reads dag-pb, raw, dag-cbor
// and dag-json; any other codec is ErrUnsupportedCodec.
func links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	switch c.Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nd, err := merkledag.DecodeProtobuf(data)
		if err != nil {
			return nil, fmt.Errorf("ipfsnode: decoding dag-pb block %s: %w", c, err)
		}
		ls := nd.Links()
		out := make([]cid.Cid, len(ls))
		for i, l := range ls {
			out[i] = l.Cid
		}
		return out, nil
	case cid.DagCBOR, cid.DagJSON:
		nb := basicnode.Prototype.Any.NewBuilder()
		var err error
		if c.Type() == cid.DagCBOR {
			err = dagcbor.Decode(nb, bytes.NewReader(data))
		} else {
			err = dagjson.Decode(nb, bytes.NewReader(data))
		}
		if err != nil {
			return nil, fmt.Errorf("ipfsnode: decoding block %s: %w", c, err)
		}
		var out []cid.Cid
		collectLinks(nb.Build(), &out)
		return out, nil
	default:
		return nil, fmt.Errorf("ipfsnode: block %s has codec 0x%x: %w", c, c.Type(), ErrUnsupportedCodec)
	}
}

func collectLinks(n datamodel.Node, out *[]cid.Cid) {
	switch n.Kind() {
	case datamodel.Kind_Link:
		if l, err := n.AsLink(); err == nil {
			if cl, ok := l.(cidlink.Link); ok {
				*out = append(*out, cl.Cid)
			}
		}
	case datamodel.Kind_Map:
		it := n.MapIterator()
		for !it.Done() {
			_, v, err := it.Next()
			if err != nil {
				return
			}
			collectLinks(v, out)
		}
	case datamodel.Kind_List:
		it := n.ListIterator()
		for !it.Done() {
			_, v, err := it.Next()
			if err != nil {
				return
			}
			collectLinks(v, out)
		}
	}
}
