package pincluster_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// addFiles yields a 1 MiB file (in a sub-directory) and a small one; each
// call gives fresh readers.
func addFiles(big []byte) iter.Seq2[string, io.Reader] {
	return func(yield func(string, io.Reader) bool) {
		if !yield("dir/big.bin", bytes.NewReader(big)) {
			return
		}
		yield("small.txt", bytes.NewReader([]byte("hello, cluster\n")))
	}
}

// walkBlocks checks that every block of the DAG under root is in mock,
// with bytes matching its CID, and returns how many there are.
// CIDv0 blocks are looked up under their CIDv1 (same codec and multihash).
func walkBlocks(ctx context.Context, t *testing.T, mock *clustertest.MockConnector, root cid.Cid) int {
	t.Helper()
	seen := map[cid.Cid]bool{}
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		key := cid.NewCidV1(c.Type(), c.Hash())
		if seen[key] {
			return
		}
		seen[key] = true
		data, err := mock.BlockGet(ctx, key)
		require.NoError(t, err, "block %s not in the mock", c)
		sum, err := key.Prefix().Sum(data)
		require.NoError(t, err)
		require.True(t, sum.Equals(key), "block %s: bytes do not match", c)
		if c.Type() != cid.DagProtobuf {
			return
		}
		nd, err := merkledag.DecodeProtobuf(data)
		require.NoError(t, err)
		for _, l := range nd.Links() {
			walk(l.Cid)
		}
	}
	walk(root)
	return len(seen)
}

func TestAddThroughBlockPut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(big)

	mc := clustertest.NewCluster(t, 1)
	mp := mc.Peer(0)
	_, isAdder := any(mp.Mock).(pincluster.Adder)
	require.False(t, isAdder, "the mock must not be an Adder for this test")
	ref := clustertest.Start(t, clustertest.Setup{N: 1, InProcessIPFS: true}).Peer(0)

	for _, tc := range []struct {
		name string
		p    pincluster.AddParams
	}{
		{"cidv1-raw-wrap", pincluster.AddParams{CIDVersion: 1, RawLeaves: true, Wrap: true, Chunker: "size-65536"}},
		{"cidv0-wrap", pincluster.AddParams{Wrap: true}},
		{"cidv1-trickle-nowrap", pincluster.AddParams{CIDVersion: 1, Trickle: true, HashFun: "sha2-512"}},
		{"cidv1-local-rabin", pincluster.AddParams{CIDVersion: 1, RawLeaves: true, Wrap: true, Chunker: "rabin", Local: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.PinOptions = pincluster.PinOptions{
				Name: "add-" + tc.name, ReplicationMin: 1, ReplicationMax: 1,
				Metadata: map[string]string{"case": tc.name},
			}
			want, err := ref.Add(ctx, addFiles(big), p)
			require.NoError(t, err)
			mp.Mock.ResetCalls()
			got, err := mp.Add(ctx, addFiles(big), p)
			require.NoError(t, err)
			require.Equal(t, want, got, "same CIDs, sizes and entries as the in-process node")
			if p.Wrap {
				// the files, the inner directory after its contents (as
				// ipfs add lists it), the wrapper last
				require.Len(t, got, 4)
				require.Equal(t, "dir", got[2].Name)
				require.Equal(t, "", got[3].Name)
			} else {
				require.Len(t, got, 2)
			}
			root := got[len(got)-1].Cid

			n := 0
			for _, a := range got {
				n = walkBlocks(ctx, t, mp.Mock, a.Cid)
			}
			require.Greater(t, n, 1)
			require.GreaterOrEqual(t, mp.Mock.Calls(clustertest.MethodBlockPut), n)

			pin, err := mp.PinGet(ctx, root)
			require.NoError(t, err)
			require.Equal(t, p.Name, pin.Name)
			require.Equal(t, 1, pin.ReplicationMin)
			require.Equal(t, 1, pin.ReplicationMax)
			require.Equal(t, p.Metadata, pin.Metadata)
			if p.Local {
				require.Equal(t, []peer.ID{mp.ID()}, pin.UserAllocations)
			}
			mc.WaitFor("the mock pins the root", 20*time.Second, func() bool {
				return mp.Mock.PinStatus(root) == pincluster.IPFSPinStatusRecursive
			})
		})
	}
}

func TestAddBlockPutFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(big)
	mc := clustertest.NewCluster(t, 1)
	mp := mc.Peer(0)
	boom := errors.New("disk on fire")

	for _, p := range []pincluster.AddParams{
		{CIDVersion: 1, RawLeaves: true, Wrap: true, PinOptions: pincluster.PinOptions{Name: "bad"}},
		{PinOptions: pincluster.PinOptions{Name: "bad"}},
	} {
		mp.Mock.FailCalls(clustertest.MethodBlockPut, 3, boom)
		added, err := mp.Add(ctx, addFiles(big), p)
		require.ErrorIs(t, err, boom)
		require.ErrorContains(t, err, "pincluster: add")
		require.ErrorContains(t, err, "block put")
		require.Nil(t, added)
		mp.Mock.FailCalls(clustertest.MethodBlockPut, 0, nil)
	}
	require.Zero(t, mp.Mock.Calls(clustertest.MethodPin))
	require.Zero(t, mp.Mock.PinCount())
	for pin, err := range mp.Pins(ctx, pincluster.PinFilter{}) {
		require.NoError(t, err)
		t.Fatalf("unexpected pin %s", pin.Cid)
	}
}
