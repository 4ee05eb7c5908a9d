package ipfsnode_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// Bitswap both ways between our node and a real Kubo (online, Routing.Type
// none, connected directly).
func TestKuboInterop(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{})
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, 2*time.Minute)
	require.NoError(t, n.Connect(ctx, d.AddrInfo()))
	require.Contains(t, n.Peers(), d.PeerID)

	// Kubo adds, we pin through bitswap.
	fromKubo := randBytes(30, 3<<20+5)
	f := filepath.Join(t.TempDir(), "in")
	require.NoError(t, os.WriteFile(f, fromKubo, 0o600))
	out, err := d.Run(ctx, "add", "-Q", "--cid-version=1", "--raw-leaves", f)
	require.NoError(t, err)
	kc := cid.MustParse(strings.TrimSpace(string(out)))
	var prog ipfsnode.Progress
	require.NoError(t, n.Pin(ctx, kc, ipfsnode.PinOptions{MaxDepth: -1, Progress: func(p ipfsnode.Progress) { prog = p }}))
	require.Equal(t, uint64(14), prog.Blocks, "13 leaves + root")
	require.Equal(t, fromKubo, readAll(t, n, kc))

	// We add (CIDv0, dag-pb leaves, 2 levels), Kubo pins and cats.
	fromUs := randBytes(31, 700_000)
	uc := add(t, n, fromUs, ipfsnode.AddOptions{Chunker: "size-1024"})
	body, err := d.RPC(ctx, "pin/add", url.Values{"arg": {uc.String()}, "recursive": {"true"}})
	require.NoError(t, err)
	var pins struct{ Pins []string }
	require.NoError(t, json.Unmarshal(body, &pins))
	require.Equal(t, []string{uc.String()}, pins.Pins)
	got, err := d.RPC(ctx, "cat", url.Values{"arg": {uc.String()}})
	require.NoError(t, err)
	require.Equal(t, fromUs, got)

	// A directory resolved by Kubo to the same CID as ours.
	added, err := n.AddDirectory(ctx, files("a/b.txt", "bee"), v1raw)
	require.NoError(t, err)
	root := added[len(added)-1].Cid
	body, err = d.RPC(ctx, "resolve", url.Values{"arg": {"/ipfs/" + root.String() + "/a/b.txt"}})
	require.NoError(t, err)
	var res struct{ Path string }
	require.NoError(t, json.Unmarshal(body, &res))
	want, err := n.Resolve(ctx, "/ipfs/"+root.String()+"/a/b.txt")
	require.NoError(t, err)
	require.Equal(t, "/ipfs/"+want.String(), res.Path)
}
