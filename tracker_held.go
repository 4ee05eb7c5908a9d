package pincluster

import (
	"hash/maphash"
	"math/bits"
	"slices"

	cid "github.com/ipfs/go-cid"
)

// heldSet is the tracker's view of the CIDs the IPFS node pins and how
// (direct or recursive), in about 8 bytes per CID, so that a peer holding
// ten million pins does not keep ten million CIDs in memory (a map of CIDs
// costs about 100 bytes each).
//
// A CID is known by a 63-bit fingerprint (maphash with the set's random
// seed); the low bit of an entry is 1 for a recursive pin. Entries live in
// a sorted slice (base) plus a map of the changes made since it was built
// (over), folded into base when it grows past an eighth of it; a small
// directory of base's buckets (setBase) keeps lookups to a few cache
// lines. Two CIDs
// with the same fingerprint are taken for one: with n CIDs held, a CID not
// held is taken for held with probability n/2^63 (about 1e-12 at ten
// million), and the set's seed differs between processes, so such a
// collision lasts until the peer restarts at most.
//
// A heldSet is not safe for concurrent use; the tracker guards it with its
// mutex.
type heldSet struct {
	seed  maphash.Seed
	base  []uint64                 // sorted entries: fingerprint | 1 if recursive
	dir   []uint32                 // base's directory (see setBase)
	shift uint                     // an entry e's directory bucket is e >> shift
	over  map[uint64]IPFSPinStatus // fingerprint → mode; IPFSPinStatusUnpinned: removed from base
	n     int                      // CIDs held
}

// heldFoldMin is the smallest size of over that is folded into base.
const heldFoldMin = 4096

func newHeldSet(seed maphash.Seed) *heldSet {
	return &heldSet{seed: seed, over: map[uint64]IPFSPinStatus{}}
}

func (s *heldSet) fingerprint(c cid.Cid) uint64 {
	return maphash.String(s.seed, c.KeyString()) &^ 1
}

// heldDirPer is the mean number of base entries per bucket of the
// directory (0.125 bytes per CID).
const heldDirPer = 32

// setBase makes b (sorted) the base and builds its directory: dir[k] is
// the index of the first entry whose top bits (f >> shift) are k or more,
// for 2^(64-shift) buckets of about heldDirPer entries (fingerprints are
// even hashes). A lookup reads its bucket's bounds from the directory,
// small enough to stay in the cache, then searches the bucket, a few
// adjacent cache lines: a status listing looks up every pin, and a binary
// search over the whole base (80 MB at ten million CIDs) missed the cache
// at nearly every step (3-5 times slower at 1M and 10M entries).
func (s *heldSet) setBase(b []uint64) {
	nb := 1
	for nb*heldDirPer < len(b) {
		nb <<= 1
	}
	shift := uint(64 - bits.TrailingZeros(uint(nb))) // 64 for one bucket: f>>64 is 0
	dir := make([]uint32, nb+1)
	j := 0
	for k := range nb {
		for j < len(b) && b[j]>>shift < uint64(k) {
			j++
		}
		dir[k] = uint32(j)
	}
	dir[nb] = uint32(len(b))
	s.base, s.dir, s.shift = b, dir, shift
}

// search returns the index of the first entry of base not below f
// (len(base) if none), as slices.BinarySearch(s.base, f).
func (s *heldSet) search(f uint64) int {
	if len(s.dir) == 0 {
		return 0 // no base yet
	}
	lo, hi, at := s.guess(f)
	return s.scan(f, lo, hi, at)
}

// guess returns the bounds of f's bucket in base and where f would be in
// it if the bucket's entries were spread evenly over its range of
// fingerprints, which they nearly are (even hashes): a bucket of about 32
// entries puts f within a few entries of the guess, on the same cache
// line or the next, where a binary search over the bucket waited for two
// or three lines one after the other.
func (s *heldSet) guess(f uint64) (lo, hi, at int) {
	k := f >> s.shift
	lo, hi = int(s.dir[k]), int(s.dir[k+1])
	// f's offset in the bucket's range as a fraction of 2^64 (shift is
	// 64 for a single bucket, whose range is all fingerprints), times
	// the bucket's entries.
	off, _ := bits.Mul64(f<<(64-s.shift), uint64(hi-lo))
	return lo, hi, lo + int(off)
}

// heldWalk bounds the steps scan walks from its guess before it searches
// the rest of the bucket by halves (a bucket whose entries are not spread
// evenly, which keyed hashes make unlikely, costs a binary search, not a
// walk over the bucket).
const heldWalk = 8

// scan returns the index of the first entry of base[lo:hi] not below f
// (hi if none), walking from at (lo <= at <= hi).
func (s *heldSet) scan(f uint64, lo, hi, at int) int {
	i := at
	for n := 0; i < hi && s.base[i] < f; n++ {
		if n == heldWalk {
			j, _ := slices.BinarySearch(s.base[i+1:hi], f)
			return i + 1 + j
		}
		i++
	}
	for n := 0; i > lo && s.base[i-1] >= f; n++ {
		if n == heldWalk {
			j, _ := slices.BinarySearch(s.base[lo:i-1], f)
			return lo + j
		}
		i--
	}
	return i
}

// baseGet returns the mode of fingerprint f in base.
func (s *heldSet) baseGet(f uint64) IPFSPinStatus {
	i := s.search(f)
	if i < len(s.base) && s.base[i]&^1 == f {
		return entryMode(s.base[i])
	}
	return IPFSPinStatusUnpinned
}

func entryMode(e uint64) IPFSPinStatus {
	if e&1 == 1 {
		return IPFSPinStatusRecursive
	}
	return IPFSPinStatusDirect
}

func entry(f uint64, mode IPFSPinStatus) uint64 {
	if mode == IPFSPinStatusRecursive {
		return f | 1
	}
	return f
}

// get returns how c is held: IPFSPinStatusDirect, IPFSPinStatusRecursive
// or IPFSPinStatusUnpinned.
func (s *heldSet) get(c cid.Cid) IPFSPinStatus { return s.getF(s.fingerprint(c)) }

func (s *heldSet) getF(f uint64) IPFSPinStatus {
	if m, ok := s.over[f]; ok {
		return m
	}
	return s.baseGet(f)
}

// heldBatch is the most lookups getMany does at once: the cache lines
// its first pass loads (a directory entry and a guessed entry's line per
// lookup) stay within the core's L2 cache until the second.
const heldBatch = 128

// getMany sets modes[i] to the mode of fingerprint fs[i] (len(modes) >=
// len(fs) <= heldBatch), as getF for each, but faster on a base larger
// than the CPU's caches: getF's misses (the directory, then the guessed
// entry's line) come one after the other, each waiting for the load
// before, while here the first pass issues the loads of every lookup,
// which do not depend on each other and which the CPU overlaps.
func (s *heldSet) getMany(fs []uint64, modes []IPFSPinStatus) {
	var lo, hi, at [heldBatch]int32
	if len(s.dir) > 0 {
		var sink uint64
		for i, f := range fs {
			l, h, a := s.guess(f)
			lo[i], hi[i], at[i] = int32(l), int32(h), int32(a)
			if a < h {
				// Load the guessed entry's cache line now, so that
				// the scans below find it in the cache.
				sink += s.base[a]
			}
		}
		if sink == 1 && len(modes) > 0 {
			// Never taken in practice; it keeps the loads above
			// from being dropped as unused (the loop below sets
			// modes[0]).
			modes[0] = IPFSPinStatusUnpinned
		}
	}
	for i, f := range fs {
		if m, ok := s.over[f]; ok {
			modes[i] = m
			continue
		}
		modes[i] = IPFSPinStatusUnpinned
		if l, h := int(lo[i]), int(hi[i]); l < h {
			j := s.scan(f, l, h, int(at[i]))
			if j < h && s.base[j]&^1 == f {
				modes[i] = entryMode(s.base[j])
			}
		}
	}
}

// set records that c is held in mode (IPFSPinStatusUnpinned: not held).
func (s *heldSet) set(c cid.Cid, mode IPFSPinStatus) { s.setF(s.fingerprint(c), mode) }

func (s *heldSet) setF(f uint64, mode IPFSPinStatus) {
	old := s.getF(f)
	if old == mode {
		return
	}
	switch {
	case old == IPFSPinStatusUnpinned:
		s.n++
	case mode == IPFSPinStatusUnpinned:
		s.n--
	}
	if s.baseGet(f) == mode {
		delete(s.over, f)
	} else {
		s.over[f] = mode
	}
	if len(s.over) >= heldFoldMin && len(s.over) > len(s.base)/8 {
		s.fold()
	}
}

// len returns the number of CIDs held.
func (s *heldSet) len() int { return s.n }

// fold merges over into base.
func (s *heldSet) fold() {
	if len(s.over) == 0 {
		return
	}
	add := make([]uint64, 0, len(s.over))
	for f, m := range s.over {
		if m != IPFSPinStatusUnpinned {
			add = append(add, entry(f, m))
		}
	}
	slices.Sort(add)
	merged := make([]uint64, 0, s.n)
	i, j := 0, 0
	for i < len(s.base) || j < len(add) {
		switch {
		case j == len(add) || (i < len(s.base) && s.base[i]&^1 < add[j]&^1):
			if _, changed := s.over[s.base[i]&^1]; !changed {
				merged = append(merged, s.base[i])
			}
			i++
		default: // add[j] is new or replaces base[i] (over holds it)
			merged = append(merged, add[j])
			j++
		}
	}
	s.setBase(merged)
	s.over = map[uint64]IPFSPinStatus{}
}

// entries calls fn for every fingerprint held, in ascending order.
func (s *heldSet) entries(fn func(f uint64)) {
	s.fold()
	for _, e := range s.base {
		fn(e &^ 1)
	}
}

// heldBuilder builds a heldSet from a listing of the node's pins.
type heldBuilder struct {
	seed maphash.Seed
	es   []uint64
}

// add records c held in mode (direct or recursive); a CID listed twice
// keeps its recursive pin.
func (b *heldBuilder) add(c cid.Cid, mode IPFSPinStatus) {
	f := maphash.String(b.seed, c.KeyString()) &^ 1
	b.es = append(b.es, entry(f, mode))
}

// set returns the heldSet built.
func (b *heldBuilder) set() *heldSet {
	es := b.es
	slices.Sort(es)
	// Equal fingerprints are adjacent, direct before recursive: keep the
	// last of each.
	out := es[:0]
	for i, e := range es {
		if i+1 < len(es) && es[i+1]&^1 == e&^1 {
			continue
		}
		out = append(out, e)
	}
	if cap(out)-len(out) > len(out)/8 {
		out = slices.Clone(out) // give back what append over-allocated
	}
	b.es = nil
	s := &heldSet{seed: b.seed, over: map[uint64]IPFSPinStatus{}, n: len(out)}
	s.setBase(out)
	return s
}
