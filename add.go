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
	sink := blockPutSink{conn: conn}
	return importFiles(ctx, files, p, importer{
		dir: func(ctx context.Context, files iter.Seq2[string, io.Reader], opts ipfsnode.AddOptions) ([]ipfsnode.Added, error) {
			return ipfsnode.ImportDirectory(ctx, files, opts, sink)
		},
		file: func(ctx context.Context, r io.Reader, opts ipfsnode.AddOptions) (ipfsnode.Added, error) {
			return ipfsnode.ImportFile(ctx, r, opts, sink)
		},
		wrap: func(op string, err error) error { return fmt.Errorf("%s: %w", op, err) },
	})
}

// importer is where importFiles puts the files: a whole directory, one
// file, and how its errors are wrapped (op names the failed step).
type importer struct {
	dir  func(context.Context, iter.Seq2[string, io.Reader], ipfsnode.AddOptions) ([]ipfsnode.Added, error)
	file func(context.Context, io.Reader, ipfsnode.AddOptions) (ipfsnode.Added, error)
	wrap func(op string, err error) error
}

// importFiles is the Add logic shared by the in-process node and the
// BlockPut fallback. Without p.Wrap each file is imported on its own;
// with it, into one directory whose root comes last, each inner directory
// listed after its contents (as ipfs add lists them).
func importFiles(ctx context.Context, files iter.Seq2[string, io.Reader], p AddParams, im importer) ([]AddedFile, error) {
	opts := addOptions(p)
	var out []AddedFile
	if p.Wrap {
		added, err := im.dir(ctx, files, opts)
		if err != nil {
			return nil, im.wrap("add", err)
		}
		for _, a := range added {
			out = append(out, AddedFile{Name: a.Path, Cid: a.Cid, Size: a.Size, Bytes: a.Bytes})
		}
		return out, nil
	}
	for name, r := range files {
		a, err := im.file(ctx, r, opts)
		if err != nil {
			return nil, im.wrap("add "+name, err)
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
