package ipfsnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// BlockSink receives the blocks of an import made without a Node
// (ImportFile, ImportDirectory), e.g. to send them to another IPFS node.
// PutBlock may be called from several goroutines at once; a block may be
// given more than once.
type BlockSink interface {
	PutBlock(ctx context.Context, b blocks.Block) error
}

// ImportFile imports one file as UnixFS like Node.Add, with the same
// options and CIDs, but gives every block to sink instead of storing it.
// opts.Pin and opts.PinName are ignored. When it returns, sink is no
// longer called.
func ImportFile(ctx context.Context, r io.Reader, opts AddOptions, sink BlockSink) (Added, error) {
	dag := newSinkDAG(sink)
	defer dag.close()
	a, _, err := importFile(ctx, r, opts, dag)
	if err != nil {
		return Added{}, err
	}
	return a, nil
}

// ImportDirectory imports files into a UnixFS directory tree like
// Node.AddDirectory, with the same options, CIDs and entries, but gives
// every block to sink instead of storing it. opts.Pin and opts.PinName are
// ignored. When it returns, sink is no longer called.
func ImportDirectory(ctx context.Context, files iter.Seq2[string, io.Reader], opts AddOptions, sink BlockSink) ([]Added, error) {
	dag := newSinkDAG(sink)
	defer dag.close()
	out, _, err := importDirectory(ctx, files, opts, dag)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errSinkClosed stops the writes that the importer's buffered DAG
// started after the import failed.
var errSinkClosed = errors.New("ipfsnode: import: finished")

// sinkDAG is a write-only ipld.DAGService over a BlockSink. The importer
// never reads back what it built (importFile returns the root node), so
// Get finds nothing. close waits for the writes in flight and refuses
// later ones: the buffered DAG may still be writing when an import fails.
type sinkDAG struct {
	sink   BlockSink
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ ipld.DAGService = (*sinkDAG)(nil)

func newSinkDAG(s BlockSink) *sinkDAG { return &sinkDAG{sink: s} }

func (d *sinkDAG) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *sinkDAG) Add(ctx context.Context, nd ipld.Node) error {
	return d.AddMany(ctx, []ipld.Node{nd})
}

func (d *sinkDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errSinkClosed
	}
	d.wg.Add(1)
	d.mu.Unlock()
	defer d.wg.Done()
	for _, nd := range nds {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.sink.PutBlock(ctx, nd); err != nil {
			return fmt.Errorf("ipfsnode: import: block %s: %w", nd.Cid(), err)
		}
	}
	return nil
}

func (d *sinkDAG) Get(_ context.Context, c cid.Cid) (ipld.Node, error) {
	return nil, ipld.ErrNotFound{Cid: c}
}

func (d *sinkDAG) GetMany(_ context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	ch := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		ch <- &ipld.NodeOption{Err: ipld.ErrNotFound{Cid: c}}
	}
	close(ch)
	return ch
}

func (d *sinkDAG) Remove(context.Context, cid.Cid) error { return nil }

func (d *sinkDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }
