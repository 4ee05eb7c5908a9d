package pincluster

import (
	"math"
	"unicode/utf8"
)

// A fast path for decoding pin records, for listings that decode every pin
// of the state (StatusAll, Pins, the start-up sync): the general CBOR
// decoder spends about a microsecond per record on reflection and copies,
// more than the rest of a status.
//
// decodeFast reads exactly the form MarshalBinary writes — a definite map
// of pinWire's integer keys in ascending order, every head in its shortest
// form, each value of its field's CBOR type, nothing after the map — and
// gives up (returns false) on anything else, which then goes through the
// general decoder with its limits and errors. So it never accepts what the
// general decoder refuses nor decodes anything differently
// (TestPinDecodeFastMatchesCBOR and FuzzPinDecodeFast check this); it only
// decides sooner. Byte strings in w point into data: the caller copies
// what it keeps (pinFromWire does: CIDs, peer IDs and multiaddrs are
// strings).

// cborReader reads CBOR item heads from b.
type cborReader struct {
	b []byte
	i int
}

// head reads the head of the next item: its major type and argument. ok is
// false at the end of b, for indefinite lengths and reserved values, and
// for an argument not in its shortest form.
func (r *cborReader) head() (major byte, arg uint64, ok bool) {
	if r.i >= len(r.b) {
		return 0, 0, false
	}
	c := r.b[r.i]
	r.i++
	major, ai := c>>5, c&0x1f
	if ai < 24 {
		return major, uint64(ai), true
	}
	if ai > 27 {
		return 0, 0, false
	}
	n := 1 << (ai - 24) // 1, 2, 4 or 8 bytes
	if len(r.b)-r.i < n {
		return 0, 0, false
	}
	for _, x := range r.b[r.i : r.i+n] {
		arg = arg<<8 | uint64(x)
	}
	r.i += n
	// Shortest form: the argument did not fit the next smaller size.
	if arg < 24 || (n > 1 && arg>>(4*n) == 0) {
		return 0, 0, false
	}
	return major, arg, true
}

// bytes reads a byte string (major type 2).
func (r *cborReader) bytes() ([]byte, bool) { return r.str(2) }

// text reads a valid UTF-8 text string (major type 3).
func (r *cborReader) text() (string, bool) {
	b, ok := r.str(3)
	if !ok || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func (r *cborReader) str(major byte) ([]byte, bool) {
	m, n, ok := r.head()
	if !ok || m != major || n > uint64(len(r.b)-r.i) {
		return nil, false
	}
	b := r.b[r.i : r.i+int(n) : r.i+int(n)]
	r.i += int(n)
	return b, true
}

// uint reads an unsigned integer (major type 0).
func (r *cborReader) uint() (uint64, bool) {
	m, v, ok := r.head()
	return v, ok && m == 0
}

// int64 reads an integer (major type 0 or 1) that fits an int64.
func (r *cborReader) int64() (int64, bool) {
	m, v, ok := r.head()
	if !ok || v > math.MaxInt64 {
		return 0, false
	}
	switch m {
	case 0:
		return int64(v), true
	case 1:
		return -1 - int64(v), true
	}
	return 0, false
}

// int reads an integer that fits an int.
func (r *cborReader) int() (int, bool) {
	v, ok := r.int64()
	if !ok || v < math.MinInt || v > math.MaxInt {
		return 0, false
	}
	return int(v), true
}

// byteStrings reads an array (major type 4) of byte strings, of at most
// the general decoder's MaxArrayElements.
func (r *cborReader) byteStrings() ([][]byte, bool) {
	m, n, ok := r.head()
	if !ok || m != 4 || n > 2*MaxAllocations || n > uint64(len(r.b)-r.i) {
		return nil, false
	}
	out := make([][]byte, n)
	for i := range out {
		if out[i], ok = r.bytes(); !ok {
			return nil, false
		}
	}
	return out, true
}

// textMap reads a map (major type 5) of text strings to text strings
// without duplicate keys, of at most the general decoder's MaxMapPairs.
func (r *cborReader) textMap() (map[string]string, bool) {
	m, n, ok := r.head()
	if !ok || m != 5 || n > 4*MaxMetadataKeys || n > uint64(len(r.b)-r.i)/2 {
		return nil, false
	}
	out := make(map[string]string, n)
	for range n {
		k, ok := r.text()
		if !ok {
			return nil, false
		}
		v, ok := r.text()
		if !ok {
			return nil, false
		}
		if _, dup := out[k]; dup {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// pinWireKeys is the number of keys pinWire has (0 to 17).
const pinWireKeys = 18

// decodeFast fills w from data if data is in MarshalBinary's form (see
// above) and reports whether it was; w is zero on entry.
func (w *pinWire) decodeFast(data []byte) bool {
	r := cborReader{b: data}
	m, n, ok := r.head()
	if !ok || m != 5 || n > pinWireKeys {
		return false
	}
	last := -1
	for range n {
		m, k, ok := r.head()
		if !ok || m != 0 || k >= pinWireKeys || int(k) <= last {
			return false
		}
		last = int(k)
		switch k {
		case 0:
			w.V, ok = r.int()
		case 1:
			w.Cid, ok = r.bytes()
		case 2:
			w.Type, ok = r.uint()
		case 3:
			w.Alloc, ok = r.byteStrings()
		case 4:
			w.MaxDepth, ok = r.int()
		case 5:
			w.Ref, ok = r.bytes()
		case 6:
			w.RMin, ok = r.int()
		case 7:
			w.RMax, ok = r.int()
		case 8:
			w.Name, ok = r.text()
		case 9:
			w.Mode, ok = r.int()
		case 10:
			w.ShardSize, ok = r.uint()
		case 11:
			w.UserAlloc, ok = r.byteStrings()
		case 12:
			w.ExpireAt, ok = r.int64()
		case 13:
			w.Metadata, ok = r.textMap()
		case 14:
			w.PinUpdate, ok = r.bytes()
		case 15:
			w.Origins, ok = r.byteStrings()
		case 16:
			w.Timestamp, ok = r.int64()
		case 17:
			w.Size, ok = r.uint()
		}
		if !ok {
			return false
		}
	}
	return r.i == len(data)
}
