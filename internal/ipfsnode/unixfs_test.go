package ipfsnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
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

func files(kv ...string) iter.Seq2[string, io.Reader] {
	return func(yield func(string, io.Reader) bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if !yield(kv[i], strings.NewReader(kv[i+1])) {
				return
			}
		}
	}
}

// The fixed values of INTEROP.md §1.5.
func TestAddKuboFixedCIDs(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	require.Equal(t, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", add(t, n, []byte("foo"), v1raw).String())
	require.Equal(t, "bafkreih43yvs5w5fnp2aqya7w4q75g24gogrb3sct2qe7lsvcg3i7p4pxe", add(t, n, []byte("bar"), v1raw).String())

	out, err := n.AddDirectory(context.Background(), files("foo.txt", "foo", "bar.txt", "bar"), v1raw)
	require.NoError(t, err)
	require.Len(t, out, 3)
	require.Equal(t, "foo.txt", out[0].Path)
	require.Equal(t, uint64(3), out[0].Size)
	require.Equal(t, uint64(3), out[0].Bytes)
	root := out[2]
	require.Equal(t, "", root.Path)
	require.True(t, root.Dir)
	require.Equal(t, "bafybeidhbfwu4j2zckkqd42azgxm7hlvjjqj7dunvv7o7c3avyrhgtvppm", root.Cid.String())
	require.Equal(t, uint64(112), root.Size)

	got := readAll(t, n, out[1].Cid)
	require.Equal(t, "bar", string(got))
}

func TestAddReadBack(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	data := randBytes(1, 3<<20+17)
	for _, opts := range []ipfsnode.AddOptions{
		{},
		v1raw,
		{CIDVersion: 1, RawLeaves: true, Trickle: true, Chunker: "size-65536"},
		{Chunker: "rabin"},
		{CIDVersion: 1, HashFunc: "blake3", Chunker: "buzhash"},
	} {
		c := add(t, n, data, opts)
		require.True(t, bytes.Equal(data, readAll(t, n, c)), "opts %+v", opts)
		r, err := n.Cat(context.Background(), c)
		require.NoError(t, err)
		_, err = r.Seek(1<<20, io.SeekStart)
		require.NoError(t, err)
		buf := make([]byte, 100)
		_, err = io.ReadFull(r, buf)
		require.NoError(t, err)
		require.Equal(t, data[1<<20:1<<20+100], buf)
		require.NoError(t, r.Close())
	}
	_, err := n.Add(context.Background(), bytes.NewReader(data), ipfsnode.AddOptions{Chunker: "nope-1"})
	require.Error(t, err)
	_, err = n.Add(context.Background(), bytes.NewReader(data), ipfsnode.AddOptions{HashFunc: "nope"})
	require.Error(t, err)
}

// Kubo as oracle: `ipfs add --only-hash` on generated multi-chunk inputs.
func TestAddMatchesKubo(t *testing.T) {
	d := kubotest.Start(t, kubotest.Options{Offline: true})
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()

	inputs := map[string][]byte{
		"empty": {},
		"small": randBytes(2, 1000),
		"multi": randBytes(3, 2<<20+123), // 9 chunks of 256 KiB
		"many":  randBytes(4, 700_000),   // with size-1024: 684 leaves, > 174 links: 2 levels
	}
	cases := []struct {
		name string
		opts ipfsnode.AddOptions
		args []string
	}{
		{"v0", ipfsnode.AddOptions{}, []string{"--cid-version=0", "--raw-leaves=false"}},
		{"v1raw", v1raw, []string{"--cid-version=1", "--raw-leaves=true"}},
		{"v1-dagpb-leaves", ipfsnode.AddOptions{CIDVersion: 1}, []string{"--cid-version=1", "--raw-leaves=false"}},
		{"size1024", ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Chunker: "size-1024"}, []string{"--cid-version=1", "--raw-leaves=true", "--chunker=size-1024"}},
		{"trickle", ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Trickle: true, Chunker: "size-1024"}, []string{"--cid-version=1", "--raw-leaves=true", "--trickle", "--chunker=size-1024"}},
		{"rabin", ipfsnode.AddOptions{Chunker: "rabin-2048-65536-131072"}, []string{"--cid-version=0", "--raw-leaves=false", "--chunker=rabin-2048-65536-131072"}},
		{"blake3", ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, HashFunc: "blake3"}, []string{"--cid-version=1", "--raw-leaves=true", "--hash=blake3"}},
	}
	for name, data := range inputs {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, data, 0o600))
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				args := append([]string{"add", "--only-hash", "-Q", "--pin=false"}, tc.args...)
				joined := strings.Join(tc.args, " ")
				if !strings.Contains(joined, "--hash") {
					args = append(args, "--hash=sha2-256")
				}
				if !strings.Contains(joined, "--chunker") {
					args = append(args, "--chunker=size-262144")
				}
				out, err := d.Run(ctx, append(args, f)...)
				require.NoError(t, err)
				want := strings.TrimSpace(string(out))
				got := add(t, n, data, tc.opts)
				require.Equal(t, want, got.String())
			})
		}
	}

	// A nested directory, wrapped.
	tree := filepath.Join(dir, "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "a", "b"), 0o700))
	contents := map[string][]byte{
		"x.txt":     []byte("x"),
		"a/y.bin":   randBytes(5, 300_000),
		"a/b/z.txt": []byte("zzz"),
		"a/b/w.txt": {},
	}
	var kv []string
	for _, p := range []string{"x.txt", "a/y.bin", "a/b/z.txt", "a/b/w.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(tree, p), contents[p], 0o600))
		kv = append(kv, "tree/"+p, string(contents[p]))
	}
	out, err := d.Run(ctx, "add", "--only-hash", "-Q", "-r", "-w", "--pin=false", "--cid-version=1", "--raw-leaves", tree)
	require.NoError(t, err)
	added, err := n.AddDirectory(ctx, files(kv...), v1raw)
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(out)), added[len(added)-1].Cid.String())
}

func TestResolve(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	added, err := n.AddDirectory(ctx, files("a/b/c.txt", "hello", "a/d.txt", "d", "e.txt", "e"), v1raw)
	require.NoError(t, err)
	root := added[len(added)-1].Cid
	byPath := map[string]cid.Cid{}
	for _, a := range added {
		byPath[a.Path] = a.Cid
	}
	for _, p := range []string{"a/b/c.txt", "a/d.txt", "e.txt", "a", "a/b"} {
		got, err := n.Resolve(ctx, "/ipfs/"+root.String()+"/"+p)
		require.NoError(t, err, p)
		require.Equal(t, byPath[p], got, p)
	}
	got, err := n.Resolve(ctx, root.String())
	require.NoError(t, err)
	require.Equal(t, root, got)
	got, err = n.Resolve(ctx, "/ipfs/"+root.String()+"/a/")
	require.NoError(t, err)
	require.Equal(t, byPath["a"], got)

	_, err = n.Resolve(ctx, "/ipfs/"+root.String()+"/a/nope")
	require.ErrorIs(t, err, ipfsnode.ErrNotFound)
	_, err = n.Resolve(ctx, "/ipfs/"+root.String()+"/e.txt/x")
	require.ErrorIs(t, err, ipfsnode.ErrNotDirectory)
	for _, bad := range []string{"", "/ipfs/", "/ipfs/notacid/a", "/ipns/x", "/ipfs/" + root.String() + "//a"} {
		_, err = n.Resolve(ctx, bad)
		require.ErrorIs(t, err, ipfsnode.ErrBadPath, bad)
	}

	// Bad directory inputs.
	for _, kv := range [][]string{{"../x", "1"}, {"a", "1", "a/b", "2"}, {"a", "1", "a", "2"}, {"", "1"}} {
		_, err := n.AddDirectory(ctx, files(kv...), v1raw)
		require.Error(t, err, fmt.Sprint(kv))
	}
}

func TestAddPinAndGC(t *testing.T) {
	n := newNode(t, ipfsnode.Config{})
	ctx := testCtx(t, time.Minute)
	data := randBytes(9, 1<<20)
	pinned, err := n.Add(ctx, bytes.NewReader(data), ipfsnode.AddOptions{CIDVersion: 1, RawLeaves: true, Pin: true, PinName: "kept"})
	require.NoError(t, err)
	loose := add(t, n, randBytes(10, 1<<20), v1raw)

	p, err := n.GetPin(ctx, pinned.Cid)
	require.NoError(t, err)
	require.Equal(t, ipfsnode.Pin{Cid: pinned.Cid, MaxDepth: -1, Name: "kept"}, p)

	res, err := n.GC(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(5), res.Blocks, "4 leaves and the root of the loose file")
	require.Equal(t, readAll(t, n, pinned.Cid), data)
	has, err := n.HasBlock(ctx, loose)
	require.NoError(t, err)
	require.False(t, has)
	_ = errors.New
}
