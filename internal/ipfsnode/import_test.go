package ipfsnode_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// mapSink is a BlockSink that keeps the blocks, or fails after limit puts.
type mapSink struct {
	mu     sync.Mutex
	blocks map[cid.Cid][]byte
	limit  int // < 0: no limit
	puts   int
}

var errSinkFull = errors.New("sink full")

func (s *mapSink) PutBlock(_ context.Context, b blocks.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit >= 0 && s.puts >= s.limit {
		return errSinkFull
	}
	s.puts++
	s.blocks[b.Cid()] = bytes.Clone(b.RawData())
	return nil
}

func TestImportMatchesAdd(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	n := newNode(t, ipfsnode.Config{})
	big := randBytes(7, 1<<20+5)
	for _, opts := range []ipfsnode.AddOptions{
		{},
		v1raw,
		{CIDVersion: 1, Trickle: true, Chunker: "size-65536"},
		{CIDVersion: 1, RawLeaves: true, HashFunc: "blake3", Chunker: "rabin"},
	} {
		want, err := n.Add(ctx, bytes.NewReader(big), opts)
		require.NoError(t, err)
		sink := &mapSink{blocks: map[cid.Cid][]byte{}, limit: -1}
		got, err := ipfsnode.ImportFile(ctx, bytes.NewReader(big), opts, sink)
		require.NoError(t, err)
		require.Equal(t, want, got, "%+v", opts)
		require.Contains(t, sink.blocks, got.Cid)
		for c, data := range sink.blocks {
			local, err := n.BlockGet(ctx, c)
			require.NoError(t, err)
			require.Equal(t, local, data)
		}

		wantDir, err := n.AddDirectory(ctx, files("a/b.txt", string(big), "c.txt", "small"), opts)
		require.NoError(t, err)
		sink = &mapSink{blocks: map[cid.Cid][]byte{}, limit: -1}
		gotDir, err := ipfsnode.ImportDirectory(ctx, files("a/b.txt", string(big), "c.txt", "small"), opts, sink)
		require.NoError(t, err)
		require.Equal(t, wantDir, gotDir, "%+v", opts)
		require.Contains(t, sink.blocks, gotDir[len(gotDir)-1].Cid)
	}
}

func TestImportSinkFails(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	sink := &mapSink{blocks: map[cid.Cid][]byte{}, limit: 2}
	_, err := ipfsnode.ImportFile(ctx, bytes.NewReader(randBytes(3, 4<<20)), v1raw, sink)
	require.ErrorIs(t, err, errSinkFull)
	_, err = ipfsnode.ImportDirectory(ctx, files("x", "y"), v1raw, &mapSink{blocks: map[cid.Cid][]byte{}, limit: 0})
	require.ErrorIs(t, err, errSinkFull)
	_, err = ipfsnode.ImportDirectory(ctx, files("../x", "y"), v1raw, &mapSink{blocks: map[cid.Cid][]byte{}, limit: -1})
	require.Error(t, err)
}
