package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// Wire format (version 1). Every frame is a uvarint length followed by that
// many bytes. A request is a header frame (CBOR reqHeader) and a body frame
// (opaque bytes). A response is a sequence of messages, each a header frame
// (CBOR respHeader) followed, for kinds kindResult and kindItem, by a body
// frame: a unary call answers kindResult or kindError; a streaming call
// answers any number of kindItem, then kindEnd or kindError.
const wireVersion = 1

// reqHeader is the first frame of a request.
type reqHeader struct {
	Version   uint8  `cbor:"1,keyasint"`
	Method    string `cbor:"2,keyasint"`
	TimeoutMS int64  `cbor:"3,keyasint,omitempty"` // caller's remaining time; 0 = none
	Streaming bool   `cbor:"4,keyasint,omitempty"`
}

// Response kinds.
const (
	kindResult uint8 = 1 + iota
	kindItem
	kindEnd
	kindError
)

// respHeader starts every response message.
type respHeader struct {
	Kind uint8  `cbor:"1,keyasint"`
	Code string `cbor:"2,keyasint,omitempty"`
	Msg  string `cbor:"3,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	// hdrDecMode decodes frame headers strictly.
	hdrDecMode cbor.DecMode
	// bodyDecMode decodes typed bodies: bounded, tolerant of unknown fields.
	bodyDecMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err) // static options; cannot fail
	}
	if hdrDecMode, err = (cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}).DecMode(); err != nil {
		panic(err)
	}
	if bodyDecMode, err = (cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: 32,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// directAlloc is the largest frame allocated in one piece before its bytes
// have arrived; longer frames grow as data arrives, so a peer that
// announces a large frame and sends little cannot make us allocate much.
const directAlloc = 64 << 10

// frameReader reads length-prefixed frames from a stream without reading
// ahead: nothing past the current frame is consumed.
type frameReader struct {
	r   io.Reader
	one [1]byte
}

func (f *frameReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(f.r, f.one[:]); err != nil {
		return 0, err
	}
	return f.one[0], nil
}

// readLen reads a frame's length prefix and checks it against limit.
func (f *frameReader) readLen(limit int) (int, error) {
	n, err := binary.ReadUvarint(f)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: length prefix: %v", ErrMalformed, err)
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	return int(n), nil
}

// readFrame reads one frame of at most limit bytes.
func (f *frameReader) readFrame(limit int) ([]byte, error) {
	n, err := f.readLen(limit)
	if err != nil {
		return nil, err
	}
	return f.readBody(n)
}

// readBody reads the n bytes of a frame whose length was read.
func (f *frameReader) readBody(n int) ([]byte, error) {
	if n <= directAlloc {
		b := make([]byte, n)
		if _, err := io.ReadFull(f.r, b); err != nil {
			return nil, truncated(err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	buf.Grow(directAlloc)
	m, err := io.CopyN(&buf, f.r, int64(n))
	if m < int64(n) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, truncated(err)
	}
	return buf.Bytes(), nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readHeader reads a header frame into v.
func (f *frameReader) readHeader(v any) error {
	b, err := f.readFrame(maxHeaderSize)
	if err != nil {
		return err
	}
	if err := hdrDecMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	return nil
}

// appendFrame appends the frame holding p to dst.
func appendFrame(dst, p []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	return append(dst, p...)
}

// appendHeader appends the frame of CBOR-encoded v to dst.
func appendHeader(dst []byte, v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return dst, err
	}
	if len(b) > maxHeaderSize {
		return dst, fmt.Errorf("%w: header of %d bytes", ErrFrameTooLarge, len(b))
	}
	return appendFrame(dst, b), nil
}

// writeMessage writes a header frame and, if body is not nil, a body frame,
// in one Write.
func writeMessage(w io.Writer, hdr any, body []byte, withBody bool) error {
	buf := make([]byte, 0, 64+len(body))
	buf, err := appendHeader(buf, hdr)
	if err != nil {
		return err
	}
	if withBody {
		buf = appendFrame(buf, body)
	}
	_, err = w.Write(buf)
	return err
}
