package pincluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"sync/atomic"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// ReadOnly is a read-only view of a pinset.
type ReadOnly interface {
	// Get returns the pin of c, or an error wrapping ErrNotFound.
	Get(ctx context.Context, c cid.Cid) (Pin, error)
	// Has reports whether c is in the pinset.
	Has(ctx context.Context, c cid.Cid) (bool, error)
	// List streams every pin, in no particular order. A record that cannot
	// be decoded yields a *RecordError naming its key, and the listing
	// goes on with the next record if the caller keeps iterating.
	List(ctx context.Context) iter.Seq2[Pin, error]
}

// WriteOnly modifies a pinset.
type WriteOnly interface {
	// Add adds or replaces a pin. The pin is validated first.
	Add(ctx context.Context, pin Pin) error
	// Rm removes the pin of c; removing an absent CID is not an error.
	Rm(ctx context.Context, c cid.Cid) error
}

// State is a pinset that can be read and modified.
type State interface {
	ReadOnly
	WriteOnly
}

// Exporter is an optional ability of a State: write the whole pinset to a
// stream and read one back.
type Exporter interface {
	// Export writes every pin to w in the export format (see
	// DatastoreState.Export).
	Export(ctx context.Context, w io.Writer) error
	// Import reads an export stream and adds or replaces its pins. A
	// corrupt or hostile stream fails with a *RecordError naming the line
	// and leaves the state untouched.
	Import(ctx context.Context, r io.Reader) error
}

// Namespaces of DatastoreState inside its datastore.
var (
	pinsNamespace    = ds.NewKey("/pins")
	stagingNamespace = ds.NewKey("/import-staging")
)

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// pinKey returns the datastore key of c below ns: the base32 (no padding)
// form of the CID's bytes, so that keys are case-stable and sort by CID.
func pinKey(ns ds.Key, c cid.Cid) ds.Key {
	// RawKey: the base32 alphabet needs no cleaning.
	return ds.RawKey(ns.String() + "/" + keyEncoding.EncodeToString(c.Bytes()))
}

// DatastoreState is a State, Exporter and batch writer over any go-datastore
// Batching: an in-memory map (NewMemoryState), Badger (OpenState with
// WithBadger), Pebble (WithPebble), or a caller's own. Pins are stored in
// their binary encoding under /pins/<base32 of the CID bytes>.
//
// It is safe for concurrent use. Methods called after Close return
// ErrClosed.
type DatastoreState struct {
	store  ds.Batching
	owned  io.Closer // closed by Close when the state opened the store
	closed atomic.Bool

	importMu sync.Mutex // one Import at a time (they share the staging area)
}

var (
	_ State    = (*DatastoreState)(nil)
	_ Exporter = (*DatastoreState)(nil)
)

// NewDatastoreState returns a State over d. Close does not close d.
func NewDatastoreState(d ds.Batching) *DatastoreState {
	return &DatastoreState{store: d}
}

// NewMemoryState returns an empty State held in memory (a map behind a
// read-write lock, listed without copying the pinset). It is fit for production use on peers that need no persistence
// as well as for tests.
func NewMemoryState() *DatastoreState {
	return NewDatastoreState(newMemStore())
}

// OpenState opens the State selected by the datastore options (WithBadger,
// WithPebble, WithDatastore; in memory when none is given). Close closes
// the store when OpenState opened it. Options that do not concern the
// state are accepted and ignored.
func OpenState(opts ...Option) (*DatastoreState, error) {
	cfg, err := newConfig(opts...)
	if err != nil {
		return nil, err
	}
	d, closer, err := cfg.openDatastore()
	if err != nil {
		return nil, err
	}
	s := NewDatastoreState(d)
	s.owned = closer
	return s, nil
}

// Datastore returns the datastore the state is stored in.
func (s *DatastoreState) Datastore() ds.Batching { return s.store }

// Close closes the datastore if the state opened it. A second Close returns
// an error wrapping ErrClosed.
func (s *DatastoreState) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("pincluster: state close: %w", ErrClosed)
	}
	if s.owned != nil {
		if err := s.owned.Close(); err != nil {
			return fmt.Errorf("pincluster: state close: %w", err)
		}
	}
	return nil
}

func (s *DatastoreState) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("pincluster: state %s: %w", op, ErrClosed)
	}
	return nil
}

// Get implements ReadOnly.
func (s *DatastoreState) Get(ctx context.Context, c cid.Cid) (Pin, error) {
	if err := s.check("get"); err != nil {
		return Pin{}, err
	}
	if !c.Defined() {
		return Pin{}, &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	k := pinKey(pinsNamespace, c)
	b, err := s.store.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return Pin{}, fmt.Errorf("pincluster: state get %s: %w", c, ErrNotFound)
	}
	if err != nil {
		return Pin{}, fmt.Errorf("pincluster: state get %s: %w", c, err)
	}
	p, err := decodePin(b)
	if err != nil {
		return Pin{}, &RecordError{Key: k.String(), Err: err}
	}
	return p, nil
}

// Has implements ReadOnly.
func (s *DatastoreState) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if err := s.check("has"); err != nil {
		return false, err
	}
	if !c.Defined() {
		return false, &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	ok, err := s.store.Has(ctx, pinKey(pinsNamespace, c))
	if err != nil {
		return false, fmt.Errorf("pincluster: state has %s: %w", c, err)
	}
	return ok, nil
}

// List implements ReadOnly. Memory stays flat: records are decoded one at a
// time as the datastore's query yields them.
func (s *DatastoreState) List(ctx context.Context) iter.Seq2[Pin, error] {
	return s.listNamespace(ctx, pinsNamespace)
}

func (s *DatastoreState) listNamespace(ctx context.Context, ns ds.Key) iter.Seq2[Pin, error] {
	return func(yield func(Pin, error) bool) {
		if err := s.check("list"); err != nil {
			yield(Pin{}, err)
			return
		}
		res, err := s.store.Query(ctx, dsq.Query{Prefix: ns.String()})
		if err != nil {
			yield(Pin{}, fmt.Errorf("pincluster: state list: %w", err))
			return
		}
		defer res.Close()
		var dec pinDecoder
		// NextSync, not Next: Next starts a goroutine that hands each
		// result over a channel, a select and two goroutine switches
		// per pin.
		for r, ok := res.NextSync(); ok; r, ok = res.NextSync() {
			if r.Error != nil {
				yield(Pin{}, fmt.Errorf("pincluster: state list: %w", r.Error))
				return
			}
			p, err := dec.decode(r.Value)
			if err != nil {
				if !yield(Pin{}, &RecordError{Key: r.Key, Err: err}) {
					return
				}
				continue
			}
			if !yield(p, nil) {
				return
			}
			if ctx.Err() != nil {
				yield(Pin{}, fmt.Errorf("pincluster: state list: %w", ctx.Err()))
				return
			}
		}
	}
}

// Add implements WriteOnly.
func (s *DatastoreState) Add(ctx context.Context, pin Pin) error {
	if err := s.check("add"); err != nil {
		return err
	}
	k, b, err := encodeForState(pin)
	if err != nil {
		return err
	}
	return s.put(ctx, k, b, pin)
}

// addValid is Add for a pin its caller has validated (Cluster.pin): it is
// encoded, and handed on decoded, without being validated again.
func (s *DatastoreState) addValid(ctx context.Context, pin Pin) error {
	if err := s.check("add"); err != nil {
		return err
	}
	b, err := pin.MarshalBinary()
	if err != nil {
		return err
	}
	return s.put(ctx, pinKey(pinsNamespace, pin.Cid), b, pin)
}

// decodedPutter is a store that takes a value with its decoded form
// (internal/crdt's Datastore), so that it neither decodes nor validates it
// again and hands the pin on to its hooks.
type decodedPutter interface {
	PutDecoded(ctx context.Context, key ds.Key, value []byte, decoded any) error
}

func (s *DatastoreState) put(ctx context.Context, k ds.Key, b []byte, pin Pin) error {
	var err error
	if dp, ok := s.store.(decodedPutter); ok {
		err = dp.PutDecoded(ctx, k, b, pin)
	} else {
		err = s.store.Put(ctx, k, b)
	}
	if err != nil {
		return fmt.Errorf("pincluster: state add %s: %w", pin.Cid, err)
	}
	return nil
}

func encodeForState(pin Pin) (ds.Key, []byte, error) {
	if err := pin.Validate(); err != nil {
		return ds.Key{}, nil, err
	}
	b, err := pin.MarshalBinary()
	if err != nil {
		return ds.Key{}, nil, err
	}
	return pinKey(pinsNamespace, pin.Cid), b, nil
}

// Rm implements WriteOnly.
func (s *DatastoreState) Rm(ctx context.Context, c cid.Cid) error {
	if err := s.check("rm"); err != nil {
		return err
	}
	if !c.Defined() {
		return &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	if err := s.store.Delete(ctx, pinKey(pinsNamespace, c)); err != nil {
		return fmt.Errorf("pincluster: state rm %s: %w", c, err)
	}
	return nil
}

// StateBatch groups writes to a DatastoreState; nothing is visible until
// Commit. It may be reused after Commit. It is not safe for concurrent use.
type StateBatch struct {
	s *DatastoreState
	b ds.Batch
	n int
}

// Batch starts a batch of writes.
func (s *DatastoreState) Batch(ctx context.Context) (*StateBatch, error) {
	if err := s.check("batch"); err != nil {
		return nil, err
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		return nil, fmt.Errorf("pincluster: state batch: %w", err)
	}
	return &StateBatch{s: s, b: b}, nil
}

// Add queues the addition of pin, validating it first.
func (b *StateBatch) Add(ctx context.Context, pin Pin) error {
	k, v, err := encodeForState(pin)
	if err != nil {
		return err
	}
	if err := b.b.Put(ctx, k, v); err != nil {
		return fmt.Errorf("pincluster: state batch add %s: %w", pin.Cid, err)
	}
	b.n++
	return nil
}

// Rm queues the removal of c.
func (b *StateBatch) Rm(ctx context.Context, c cid.Cid) error {
	if !c.Defined() {
		return &ValidationError{Field: "cid", Err: ErrInvalidCID, Detail: "undefined"}
	}
	if err := b.b.Delete(ctx, pinKey(pinsNamespace, c)); err != nil {
		return fmt.Errorf("pincluster: state batch rm %s: %w", c, err)
	}
	b.n++
	return nil
}

// addValid is Add for a pin its caller has validated (Cluster.PinMany):
// encoded, and handed on decoded, without being validated again.
func (b *StateBatch) addValid(ctx context.Context, pin Pin) error {
	v, err := pin.MarshalBinary()
	if err != nil {
		return err
	}
	k := pinKey(pinsNamespace, pin.Cid)
	if dp, ok := b.b.(decodedPutter); ok {
		err = dp.PutDecoded(ctx, k, v, pin)
	} else {
		err = b.b.Put(ctx, k, v)
	}
	if err != nil {
		return fmt.Errorf("pincluster: state batch add %s: %w", pin.Cid, err)
	}
	b.n++
	return nil
}

// Len returns how many writes are queued.
func (b *StateBatch) Len() int { return b.n }

// Commit writes the queued changes.
func (b *StateBatch) Commit(ctx context.Context) error {
	if err := b.s.check("batch commit"); err != nil {
		return err
	}
	if err := b.b.Commit(ctx); err != nil {
		return fmt.Errorf("pincluster: state batch commit: %w", err)
	}
	// Some stores' batches cannot be reused: start a fresh one.
	nb, err := b.s.store.Batch(ctx)
	if err != nil {
		return fmt.Errorf("pincluster: state batch commit: %w", err)
	}
	b.b, b.n = nb, 0
	return nil
}

// The export format is newline-delimited JSON: a header line
// {"pincluster_state":1}, then one pin per line in IPFS Cluster's JSON
// form (Pin.MarshalJSON).
const exportVersion = 1

type exportHeader struct {
	Version int `json:"pincluster_state"`
}

// maxExportLine bounds one line of an export stream.
const maxExportLine = 2 * MaxEncodedPinSize

// Export implements Exporter.
func (s *DatastoreState) Export(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(exportHeader{Version: exportVersion}); err != nil {
		return fmt.Errorf("pincluster: state export: %w", err)
	}
	for p, err := range s.List(ctx) {
		if err != nil {
			return fmt.Errorf("pincluster: state export: %w", err)
		}
		if err := enc.Encode(p); err != nil {
			return fmt.Errorf("pincluster: state export %s: %w", p.Cid, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("pincluster: state export: %w", err)
	}
	return nil
}

// importBatchSize is how many records Import writes per datastore batch.
const importBatchSize = 4096

// Import implements Exporter. The stream is first decoded and validated
// into a staging area; only when all of it is good are the pins copied into
// the state. Pins not in the stream are kept.
func (s *DatastoreState) Import(ctx context.Context, r io.Reader) error {
	if err := s.check("import"); err != nil {
		return err
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	if err := s.clearNamespace(ctx, stagingNamespace); err != nil {
		return err
	}
	if err := s.stage(ctx, r); err != nil {
		if cerr := s.clearNamespace(context.WithoutCancel(ctx), stagingNamespace); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return s.promoteStaged(ctx)
}

func (s *DatastoreState) stage(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExportLine)
	line := 0
	next := func() ([]byte, error) {
		for sc.Scan() {
			line++
			if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
				return b, nil
			}
		}
		if err := sc.Err(); err != nil {
			return nil, &RecordError{Line: line + 1, Err: err}
		}
		return nil, io.EOF
	}
	head, err := next()
	if err == io.EOF {
		return &RecordError{Line: 1, Err: errors.New("empty stream: no header")}
	}
	if err != nil {
		return err
	}
	var h exportHeader
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.Version == 0 {
		return &RecordError{Line: line, Err: fmt.Errorf("not a pincluster export header: %q", truncate(head, 64))}
	}
	if h.Version != exportVersion {
		return &RecordError{Line: line, Err: fmt.Errorf("%w: export version %d", ErrUnsupportedVersion, h.Version)}
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		return fmt.Errorf("pincluster: state import: %w", err)
	}
	pending := 0
	for {
		rec, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var p Pin
		if err := p.UnmarshalJSON(rec); err != nil {
			return &RecordError{Line: line, Err: err}
		}
		v, err := p.MarshalBinary()
		if err != nil {
			return &RecordError{Line: line, Err: err}
		}
		if err := b.Put(ctx, pinKey(stagingNamespace, p.Cid), v); err != nil {
			return fmt.Errorf("pincluster: state import line %d: %w", line, err)
		}
		if pending++; pending == importBatchSize {
			if err := b.Commit(ctx); err != nil {
				return fmt.Errorf("pincluster: state import line %d: %w", line, err)
			}
			if b, err = s.store.Batch(ctx); err != nil {
				return fmt.Errorf("pincluster: state import: %w", err)
			}
			pending = 0
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("pincluster: state import: %w", err)
	}
	return nil
}

// promoteStaged copies the staged pins into the state and clears the
// staging area.
func (s *DatastoreState) promoteStaged(ctx context.Context) error {
	res, err := s.store.Query(ctx, dsq.Query{Prefix: stagingNamespace.String()})
	if err != nil {
		return fmt.Errorf("pincluster: state import: %w", err)
	}
	b, err := s.store.Batch(ctx)
	if err != nil {
		res.Close()
		return fmt.Errorf("pincluster: state import: %w", err)
	}
	pending := 0
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return fmt.Errorf("pincluster: state import: %w", r.Error)
		}
		name := strings.TrimPrefix(r.Key, stagingNamespace.String()+"/")
		if err := b.Put(ctx, pinsNamespace.ChildString(name), r.Value); err != nil {
			res.Close()
			return fmt.Errorf("pincluster: state import: %w", err)
		}
		if pending++; pending == importBatchSize {
			if err := b.Commit(ctx); err != nil {
				res.Close()
				return fmt.Errorf("pincluster: state import: %w", err)
			}
			if b, err = s.store.Batch(ctx); err != nil {
				res.Close()
				return fmt.Errorf("pincluster: state import: %w", err)
			}
			pending = 0
		}
	}
	res.Close()
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("pincluster: state import: %w", err)
	}
	return s.clearNamespace(ctx, stagingNamespace)
}

func (s *DatastoreState) clearNamespace(ctx context.Context, ns ds.Key) error {
	for {
		res, err := s.store.Query(ctx, dsq.Query{Prefix: ns.String(), KeysOnly: true, Limit: importBatchSize})
		if err != nil {
			return fmt.Errorf("pincluster: state clear %s: %w", ns, err)
		}
		entries, err := res.Rest()
		if err != nil {
			return fmt.Errorf("pincluster: state clear %s: %w", ns, err)
		}
		if len(entries) == 0 {
			return nil
		}
		b, err := s.store.Batch(ctx)
		if err != nil {
			return fmt.Errorf("pincluster: state clear %s: %w", ns, err)
		}
		for _, e := range entries {
			if err := b.Delete(ctx, ds.NewKey(e.Key)); err != nil {
				return fmt.Errorf("pincluster: state clear %s: %w", ns, err)
			}
		}
		if err := b.Commit(ctx); err != nil {
			return fmt.Errorf("pincluster: state clear %s: %w", ns, err)
		}
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
