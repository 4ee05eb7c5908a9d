package pincluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"

	blocks "github.com/ipfs/go-block-format"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// addOptions turns AddParams into the importer's options.
func addOptions(p AddParams) ipfsnode.AddOptions {
	return ipfsnode.AddOptions{
		Chunker: p.Chunker, RawLeaves: p.RawLeaves, CIDVersion: p.CIDVersion,
		HashFunc: p.HashFun, Trickle: p.Trickle,
	}
}

// addThroughBlockPut imports files as UnixFS in this process and sends
// every block to conn.BlockPut. It returns the same entries, with the same
// CIDs, as the in-process node's Adder for the same params.
func addThroughBlockPut(ctx context.Context, conn IPFSConnector, files iter.Seq2[string, io.Reader], p AddParams) ([]AddedFile, error) {
	opts := addOptions(p)
	sink := blockPutSink{conn: conn}
	var out []AddedFile
	if p.Wrap {
		added, err := ipfsnode.ImportDirectory(ctx, files, opts, sink)
		if err != nil {
			return nil, err
		}
		for _, a := range added {
			if a.Dir && a.Path != "" {
				continue
			}
			out = append(out, AddedFile{Name: a.Path, Cid: a.Cid, Size: a.Size, Bytes: a.Bytes})
		}
		return out, nil
	}
	for name, r := range files {
		a, err := ipfsnode.ImportFile(ctx, r, opts, sink)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, AddedFile{Name: name, Cid: a.Cid, Size: a.Size, Bytes: a.Bytes})
	}
	return out, nil
}

// blockPutSink is an ipfsnode.BlockSink over IPFSConnector.BlockPut.
type blockPutSink struct{ conn IPFSConnector }

var _ ipfsnode.BlockSink = blockPutSink{}

// PutBlock stores b with its CID's prefix. A CIDv0 block is sent with the
// CIDv1 prefix of the same codec and hash (BlockPut reads Version 0 as
// "raw"): IPFS nodes store blocks by multihash, so the v0 CID finds it.
// The CID the connector reports must match b's.
func (s blockPutSink) PutBlock(ctx context.Context, b blocks.Block) error {
	want := b.Cid()
	prefix := want.Prefix()
	if prefix.Version == 0 {
		prefix.Version = 1
	}
	got, err := s.conn.BlockPut(ctx, b.RawData(), prefix)
	if err != nil {
		return fmt.Errorf("block put: %w", err)
	}
	if got.Prefix().Codec != prefix.Codec || !bytes.Equal(got.Hash(), want.Hash()) {
		return fmt.Errorf("block put: the IPFS node stored %s as %s", want, got)
	}
	return nil
}
