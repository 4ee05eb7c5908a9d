// Package car reads CAR v1 streams (the IPLD content archive format behind
// /add?format=car) with hard bounds: a bounded header, a bounded size and
// number of blocks, and every block verified against its CID before it is
// returned. Malformed input yields an error wrapping ErrMalformed, never a
// panic or an unbounded allocation.
//
// Allocation: nothing is sized by a length the input declares. A Reader
// allocates its 64 KiB read buffer, the header as received (at most
// Limits.MaxHeaderSize), and one section buffer that grows with the bytes
// actually received, up to Limits.MaxBlockSize plus 256 bytes of CID; CIDs
// are parsed in place. Reading a stream of n bytes thus allocates at most
// MaxAllocBase plus a small multiple of n (the tests hold it to
// MaxAllocBase + 8·n per stream).
package car

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
	cid "github.com/ipfs/go-cid"
)

// Errors of the reader.
var (
	// ErrMalformed: the stream is not a valid CAR v1.
	ErrMalformed = errors.New("car: malformed")
	// ErrTooLarge: a limit was exceeded.
	ErrTooLarge = errors.New("car: too large")
)

// Limits bound what a Reader accepts. Zero fields take the defaults.
type Limits struct {
	// MaxHeaderSize bounds the header, in bytes. Default: 64 KiB.
	MaxHeaderSize int
	// MaxRoots bounds the number of roots. Default: 16.
	MaxRoots int
	// MaxBlockSize bounds one block's data, in bytes. Default: 2 MiB (the
	// largest block bitswap moves).
	MaxBlockSize int
	// MaxBlocks bounds the number of blocks. Default: 1,000,000.
	MaxBlocks int
}

func (l *Limits) defaults() {
	if l.MaxHeaderSize <= 0 {
		l.MaxHeaderSize = 64 << 10
	}
	if l.MaxRoots <= 0 {
		l.MaxRoots = 16
	}
	if l.MaxBlockSize <= 0 {
		l.MaxBlockSize = 2 << 20
	}
	if l.MaxBlocks <= 0 {
		l.MaxBlocks = 1_000_000
	}
}

// maxCIDLen bounds the CID at the start of a section.
const maxCIDLen = 256

// MaxAllocBase is the allocation of a Reader that does not depend on its
// input's size: the read buffer and small bookkeeping (see the package
// doc).
const MaxAllocBase = 128 << 10

// Reader reads blocks from a CAR v1 stream.
type Reader struct {
	r      *bufio.Reader
	lim    Limits
	roots  []cid.Cid
	blocks int
	bytes  uint64
	buf    bytes.Buffer
}

var decMode cbor.DecMode

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 1024,
		MaxMapPairs:      16,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
}

type header struct {
	Roots   []cbor.Tag `cbor:"roots"`
	Version uint64     `cbor:"version"`
}

// NewReader reads and checks the header of a CAR v1 stream.
func NewReader(r io.Reader, lim Limits) (*Reader, error) {
	lim.defaults()
	cr := &Reader{r: bufio.NewReaderSize(r, 64<<10), lim: lim}
	n, err := cr.uvarint()
	if err != nil {
		return nil, fmt.Errorf("%w: header length: %w", ErrMalformed, noEOF(err))
	}
	if n == 0 || n > uint64(lim.MaxHeaderSize) {
		return nil, fmt.Errorf("%w: header of %d bytes, limit 1..%d", ErrTooLarge, n, lim.MaxHeaderSize)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(cr.r, hb); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	var h header
	if err := decMode.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if h.Version != 1 {
		return nil, fmt.Errorf("%w: version %d (only CAR v1 is read)", ErrMalformed, h.Version)
	}
	if len(h.Roots) == 0 || len(h.Roots) > lim.MaxRoots {
		return nil, fmt.Errorf("%w: %d roots, need 1..%d", ErrMalformed, len(h.Roots), lim.MaxRoots)
	}
	for i, t := range h.Roots {
		b, ok := t.Content.([]byte)
		if t.Number != 42 || !ok || len(b) < 2 || b[0] != 0 {
			return nil, fmt.Errorf("%w: root %d is not a CID link", ErrMalformed, i)
		}
		nr, c, err := cid.CidFromBytes(b[1:])
		if err != nil || nr != len(b)-1 {
			return nil, fmt.Errorf("%w: root %d: bad cid", ErrMalformed, i)
		}
		cr.roots = append(cr.roots, c)
	}
	return cr, nil
}

// Roots returns the roots named in the header.
func (r *Reader) Roots() []cid.Cid { return r.roots }

// Blocks returns how many blocks have been read.
func (r *Reader) Blocks() int { return r.blocks }

// Bytes returns the total size of the block data read so far.
func (r *Reader) Bytes() uint64 { return r.bytes }

func (r *Reader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(r.r)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// Next returns the next block, verified against its CID. The data slice is
// valid until the next call. It returns io.EOF after the last block.
func (r *Reader) Next() (cid.Cid, []byte, error) {
	if _, err := r.r.Peek(1); err == io.EOF {
		return cid.Undef, nil, io.EOF
	}
	n, err := r.uvarint()
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: section length: %w", ErrMalformed, noEOF(err))
	}
	if n == 0 {
		return cid.Undef, nil, fmt.Errorf("%w: empty section", ErrMalformed)
	}
	if n > uint64(r.lim.MaxBlockSize+maxCIDLen) {
		return cid.Undef, nil, fmt.Errorf("%w: section of %d bytes, block limit %d", ErrTooLarge, n, r.lim.MaxBlockSize)
	}
	if r.blocks >= r.lim.MaxBlocks {
		return cid.Undef, nil, fmt.Errorf("%w: more than %d blocks", ErrTooLarge, r.lim.MaxBlocks)
	}
	// Grow the buffer with the data actually received, not with the
	// declared length, so a lying length costs nothing.
	r.buf.Reset()
	if got, err := io.CopyN(&r.buf, r.r, int64(n)); err != nil {
		if err == io.EOF && got < int64(n) {
			err = io.ErrUnexpectedEOF
		}
		return cid.Undef, nil, fmt.Errorf("%w: section: %w", ErrMalformed, err)
	}
	b := r.buf.Bytes()
	// Parse the CID in place, within the section: cid.CidFromReader would
	// allocate the digest length the input declares (up to 32 MiB) before
	// finding that the bytes are not there.
	cl, c, err := cid.CidFromBytes(b[:min(len(b), maxCIDLen)])
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: block cid: %v", ErrMalformed, err)
	}
	data := b[cl:]
	if len(data) > r.lim.MaxBlockSize {
		return cid.Undef, nil, fmt.Errorf("%w: block of %d bytes, limit %d", ErrTooLarge, len(data), r.lim.MaxBlockSize)
	}
	want, err := c.Prefix().Sum(data)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: block %s: %v", ErrMalformed, c, err)
	}
	if !bytes.Equal(want.Hash(), c.Hash()) {
		return cid.Undef, nil, fmt.Errorf("%w: block %s does not match its data", ErrMalformed, c)
	}
	r.blocks++
	r.bytes += uint64(len(data))
	return c, data, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
