package ipfsnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"sort"
	"strings"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// AddOptions controls a UnixFS import. The zero value is Kubo's `ipfs add`
// with CIDv0: 256 KiB fixed chunks, dag-pb leaves, balanced layout,
// sha2-256. Kubo's `--cid-version=1` also implies raw leaves: set both.
type AddOptions struct {
	// Chunker is "size-<bytes>", "rabin", "rabin-<min>-<avg>-<max>" or
	// "buzhash", as in Kubo. Default: "size-262144".
	Chunker string
	// RawLeaves stores file data in raw blocks instead of dag-pb leaves.
	RawLeaves bool
	// CIDVersion is 0 or 1. A hash other than sha2-256 forces 1 (as
	// Kubo does).
	CIDVersion int
	// HashFunc is the multihash name, e.g. "sha2-256" (default),
	// "blake3", "sha2-512".
	HashFunc string
	// Trickle selects the trickle layout instead of balanced.
	Trickle bool
	// MaxLinks is the maximum links per file node. Default: 174, Kubo's.
	MaxLinks int
	// Pin pins the result recursively, named PinName, before returning;
	// without it the imported blocks may be removed by the next GC.
	Pin bool
	// PinName is the name of that pin.
	PinName string
}

// Added is one entry produced by an import.
type Added struct {
	// Path is the entry's path inside the import; "" for a single file
	// imported by Add and for the root of AddDirectory.
	Path string
	// Cid is the entry's root.
	Cid cid.Cid
	// Size is the cumulative size of the entry's DAG (what Kubo's add
	// reports as Size).
	Size uint64
	// Bytes is the number of file bytes read for it (0 for directories).
	Bytes uint64
	// Dir reports a directory.
	Dir bool
}

func (o AddOptions) cidBuilder() (cid.Builder, error) {
	hash := uint64(mh.SHA2_256)
	if o.HashFunc != "" {
		code, ok := mh.Names[strings.ToLower(o.HashFunc)]
		if !ok {
			return nil, fmt.Errorf("ipfsnode: add: unknown hash function %q", o.HashFunc)
		}
		hash = code
	}
	version := o.CIDVersion
	if hash != mh.SHA2_256 && version == 0 {
		version = 1
	}
	prefix, err := merkledag.PrefixForCidVersion(version)
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: add: %w", err)
	}
	prefix.MhType = hash
	prefix.MhLength = -1
	return prefix, nil
}

// holdingDAG holds every node it adds for the duration of an import.
type holdingDAG struct {
	ipld.DAGService
	h *hold
}

func (d holdingDAG) Add(ctx context.Context, nd ipld.Node) error {
	d.h.add(nd.Cid())
	return d.DAGService.Add(ctx, nd)
}

func (d holdingDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		d.h.add(nd.Cid())
	}
	return d.DAGService.AddMany(ctx, nds)
}

type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += uint64(k)
	return k, err
}

// Add imports one file as UnixFS and returns its entry. The CID is the
// one Kubo's `ipfs add` gives for the same bytes and settings.
func (n *Node) Add(ctx context.Context, r io.Reader, opts AddOptions) (Added, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return Added{}, err
	}
	defer cancel()
	h := n.newHold()
	defer h.release()
	a, _, err := importFile(ctx, r, opts, holdingDAG{n.dag, h})
	if err != nil {
		return Added{}, n.ctxErr(err)
	}
	if opts.Pin {
		if err := n.pin(ctx, a.Cid, PinOptions{MaxDepth: -1, Name: opts.PinName}, h); err != nil {
			return a, n.ctxErr(fmt.Errorf("ipfsnode: add: %w", err))
		}
	}
	return a, nil
}

// importFile imports one file into dag and returns its entry and its root
// node.
func importFile(ctx context.Context, r io.Reader, opts AddOptions, dag ipld.DAGService) (Added, ipld.Node, error) {
	cb, err := opts.cidBuilder()
	if err != nil {
		return Added{}, nil, err
	}
	cr := &countingReader{r: r}
	spl, err := chunker.FromString(cr, opts.Chunker)
	if err != nil {
		return Added{}, nil, fmt.Errorf("ipfsnode: add: chunker %q: %w", opts.Chunker, err)
	}
	maxLinks := opts.MaxLinks
	if maxLinks <= 0 {
		maxLinks = ihelper.DefaultLinksPerBlock
	}
	// A buffered DAG pipelines the block writes, as Kubo's adder does.
	batch := ipld.NewBufferedDAG(ctx, dag)
	params := ihelper.DagBuilderParams{
		Dagserv:    batch,
		Maxlinks:   maxLinks,
		RawLeaves:  opts.RawLeaves,
		CidBuilder: cb,
	}
	db, err := params.New(spl)
	if err != nil {
		return Added{}, nil, fmt.Errorf("ipfsnode: add: %w", err)
	}
	var nd ipld.Node
	if opts.Trickle {
		nd, err = trickle.Layout(db)
	} else {
		nd, err = balanced.Layout(db)
	}
	if err == nil {
		err = batch.Commit()
	}
	if err != nil {
		return Added{}, nil, fmt.Errorf("ipfsnode: add: %w", err)
	}
	size, err := nd.Size()
	if err != nil {
		return Added{}, nil, fmt.Errorf("ipfsnode: add: %w", err)
	}
	return Added{Cid: nd.Cid(), Size: size, Bytes: cr.n}, nd, nil
}

type dirTree struct {
	files map[string]ipld.Node
	dirs  map[string]*dirTree
}

func newDirTree() *dirTree {
	return &dirTree{files: map[string]ipld.Node{}, dirs: map[string]*dirTree{}}
}

// AddDirectory imports files (path -> content; paths like "a/b.txt",
// relative, without "." or ".." parts) into a UnixFS directory tree, like
// `ipfs add -w`. It returns one entry per file in input order, then one per
// directory, deepest first, the root (Path "") last.
func (n *Node) AddDirectory(ctx context.Context, files iter.Seq2[string, io.Reader], opts AddOptions) ([]Added, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	h := n.newHold()
	defer h.release()
	out, rootNode, err := importDirectory(ctx, files, opts, holdingDAG{n.dag, h})
	if err != nil {
		return nil, n.ctxErr(err)
	}
	if opts.Pin {
		if err := n.pin(ctx, rootNode.Cid(), PinOptions{MaxDepth: -1, Name: opts.PinName}, h); err != nil {
			return out, n.ctxErr(fmt.Errorf("ipfsnode: add: %w", err))
		}
	}
	return out, nil
}

// importDirectory imports files into a directory tree in dag (see
// AddDirectory) and returns the entries and the root node.
func importDirectory(ctx context.Context, files iter.Seq2[string, io.Reader], opts AddOptions, dag ipld.DAGService) ([]Added, ipld.Node, error) {
	cb, err := opts.cidBuilder()
	if err != nil {
		return nil, nil, err
	}
	root := newDirTree()
	var out []Added
	for name, r := range files {
		clean := path.Clean(strings.TrimPrefix(name, "/"))
		if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || name == "" {
			return nil, nil, fmt.Errorf("ipfsnode: add: bad file path %q", name)
		}
		dir, base := path.Split(clean)
		t := root
		if dir != "" {
			for _, part := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
				if _, clash := t.files[part]; clash {
					return nil, nil, fmt.Errorf("ipfsnode: add: %q is both a file and a directory", part)
				}
				sub, ok := t.dirs[part]
				if !ok {
					sub = newDirTree()
					t.dirs[part] = sub
				}
				t = sub
			}
		}
		if _, dup := t.files[base]; dup {
			return nil, nil, fmt.Errorf("ipfsnode: add: duplicate file path %q", name)
		}
		if _, clash := t.dirs[base]; clash {
			return nil, nil, fmt.Errorf("ipfsnode: add: %q is both a file and a directory", name)
		}
		a, nd, err := importFile(ctx, r, opts, dag)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (file %q)", err, name)
		}
		t.files[base] = nd
		a.Path = clean
		out = append(out, a)
	}
	rootNode, err := buildDir(ctx, dag, cb, root, "", &out)
	if err != nil {
		return nil, nil, err
	}
	return out, rootNode, nil
}

func buildDir(ctx context.Context, dag ipld.DAGService, cb cid.Builder, t *dirTree, p string, out *[]Added) (ipld.Node, error) {
	dir, err := uio.NewDirectory(dag, uio.WithCidBuilder(cb))
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
	}
	names := make([]string, 0, len(t.dirs))
	for name := range t.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sub, err := buildDir(ctx, dag, cb, t.dirs[name], path.Join(p, name), out)
		if err != nil {
			return nil, err
		}
		if err := dir.AddChild(ctx, name, sub); err != nil {
			return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
		}
	}
	names = names[:0]
	for name := range t.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := dir.AddChild(ctx, name, t.files[name]); err != nil {
			return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
	}
	if err := dag.Add(ctx, nd); err != nil {
		return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
	}
	size, err := nd.Size()
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: add: directory %q: %w", p, err)
	}
	*out = append(*out, Added{Path: p, Cid: nd.Cid(), Size: size, Dir: true})
	return nd, nil
}

// Cat returns a reader of the UnixFS file (or raw block) c, fetching its
// blocks through one bitswap session as they are read. ctx bounds the
// reads too: cancel it, or Close the reader, when done.
func (n *Node) Cat(ctx context.Context, c cid.Cid) (io.ReadSeekCloser, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	ng := merkledag.NewSession(ctx, n.dag)
	nd, err := ng.Get(ctx, c)
	if err != nil {
		return nil, n.getErr(ctx, c, err)
	}
	rd, err := uio.NewDagReader(ctx, nd, ng)
	if err != nil {
		return nil, fmt.Errorf("ipfsnode: cat %s: %w", c, err)
	}
	return rd, nil
}

// Resolve resolves "/ipfs/<cid>/a/b" (or "<cid>/a/b", or a bare CID)
// through UnixFS directories (plain or HAMT-sharded), fetching missing
// nodes, and returns the CID it names. A missing entry wraps ErrNotFound; a
// path through a file wraps ErrNotDirectory; a malformed path wraps
// ErrBadPath.
func (n *Node) Resolve(ctx context.Context, p string) (cid.Cid, error) {
	ctx, cancel, err := n.opCtx(ctx)
	if err != nil {
		return cid.Undef, err
	}
	defer cancel()
	rest := strings.TrimPrefix(p, "/ipfs/")
	if strings.HasPrefix(rest, "/") {
		return cid.Undef, fmt.Errorf("ipfsnode: resolve %q: %w", p, ErrBadPath)
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	cur, err := cid.Decode(parts[0])
	if err != nil {
		return cid.Undef, fmt.Errorf("ipfsnode: resolve %q: %w: %w", p, ErrBadPath, err)
	}
	ng := merkledag.NewSession(ctx, n.dag)
	for i, seg := range parts[1:] {
		if seg == "" {
			return cid.Undef, fmt.Errorf("ipfsnode: resolve %q: empty segment: %w", p, ErrBadPath)
		}
		nd, err := ng.Get(ctx, cur)
		if err != nil {
			return cid.Undef, n.ctxErr(fmt.Errorf("ipfsnode: resolve %q: %w", p, n.getErr(ctx, cur, err)))
		}
		dir, err := uio.NewDirectoryFromNode(sessionDAG{n.dag, ng}, nd)
		if err != nil {
			return cid.Undef, fmt.Errorf("ipfsnode: resolve %q: %s: %w", p, strings.Join(parts[:i+1], "/"), ErrNotDirectory)
		}
		child, err := dir.Find(ctx, seg)
		if errors.Is(err, os.ErrNotExist) {
			return cid.Undef, fmt.Errorf("ipfsnode: resolve %q: no %q in %s: %w", p, seg, cur, ErrNotFound)
		}
		if err != nil {
			return cid.Undef, n.ctxErr(fmt.Errorf("ipfsnode: resolve %q: %w", p, err))
		}
		cur = child.Cid()
	}
	return cur, nil
}

// sessionDAG reads through a session, writes to the node's DAG service.
type sessionDAG struct {
	ipld.DAGService
	ng ipld.NodeGetter
}

func (s sessionDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	return s.ng.Get(ctx, c)
}

func (s sessionDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	return s.ng.GetMany(ctx, cs)
}
