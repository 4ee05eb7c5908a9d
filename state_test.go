package pincluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
)

func mkCid(t testing.TB, i int) cid.Cid {
	t.Helper()
	h, err := mh.Sum(fmt.Appendf(nil, "pin-%d", i), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func mkPin(t testing.TB, i int) pincluster.Pin {
	return pincluster.NewPin(mkCid(t, i), pincluster.PinOptions{Name: fmt.Sprintf("pin %d", i),
		ReplicationMin: 1, ReplicationMax: 2, Metadata: map[string]string{"i": fmt.Sprint(i)}})
}

// stores opens one state of each kind.
func stores(t *testing.T) map[string]func(t *testing.T) *pincluster.DatastoreState {
	open := func(opts ...pincluster.Option) func(t *testing.T) *pincluster.DatastoreState {
		return func(t *testing.T) *pincluster.DatastoreState {
			s, err := pincluster.OpenState(opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	}
	return map[string]func(t *testing.T) *pincluster.DatastoreState{
		"memory": open(),
		"badger": func(t *testing.T) *pincluster.DatastoreState { return open(pincluster.WithBadger(t.TempDir()))(t) },
		"pebble": func(t *testing.T) *pincluster.DatastoreState { return open(pincluster.WithPebble(t.TempDir()))(t) },
	}
}

func listAll(t *testing.T, s pincluster.ReadOnly) map[cid.Cid]pincluster.Pin {
	t.Helper()
	out := map[cid.Cid]pincluster.Pin{}
	for p, err := range s.List(context.Background()) {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		out[p.Cid] = p
	}
	return out
}

func TestStateCRUD(t *testing.T) {
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			for i := range 100 {
				if err := s.Add(ctx, mkPin(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Get(ctx, mkCid(t, 7))
			if err != nil || !got.Equal(mkPin(t, 7)) {
				t.Fatalf("Get = %+v, %v", got, err)
			}
			if ok, err := s.Has(ctx, mkCid(t, 7)); !ok || err != nil {
				t.Fatalf("Has = %v, %v", ok, err)
			}
			if err := s.Rm(ctx, mkCid(t, 7)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, mkCid(t, 7)); !errors.Is(err, pincluster.ErrNotFound) {
				t.Fatalf("Get after Rm = %v, want ErrNotFound", err)
			}
			if err := s.Rm(ctx, mkCid(t, 7)); err != nil {
				t.Fatalf("Rm of absent = %v", err)
			}
			if n := len(listAll(t, s)); n != 99 {
				t.Fatalf("List has %d pins, want 99", n)
			}
			bad := mkPin(t, 1000)
			bad.Name = strings.Repeat("x", 300)
			if err := s.Add(ctx, bad); !errors.Is(err, pincluster.ErrNameTooLong) {
				t.Fatalf("Add of invalid pin = %v", err)
			}
			b, err := s.Batch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 200; i++ {
				if err := b.Add(ctx, mkPin(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Rm(ctx, mkCid(t, 0)); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(listAll(t, s)); n != 198 {
				t.Fatalf("List after batch has %d pins, want 198", n)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, mkCid(t, 1)); !errors.Is(err, pincluster.ErrClosed) {
				t.Fatalf("Get after Close = %v, want ErrClosed", err)
			}
			if err := s.Close(); !errors.Is(err, pincluster.ErrClosed) {
				t.Fatalf("second Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestStatePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"badger", "pebble"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			opt := pincluster.WithBadger(dir)
			if kind == "pebble" {
				opt = pincluster.WithPebble(dir)
			}
			s, err := pincluster.OpenState(opt)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if err := s.Add(ctx, mkPin(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = pincluster.OpenState(opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n := len(listAll(t, s)); n != 50 {
				t.Fatalf("reopened state has %d pins, want 50", n)
			}
		})
	}
}

// A value that does not decode must yield an error naming its key, from Get
// and from List, which then goes on with the other records.
func TestStateCorruptValue(t *testing.T) {
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			for i := range 10 {
				if err := s.Add(ctx, mkPin(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			// Find pin 3's key and overwrite its value with garbage.
			d := s.Datastore()
			res, err := d.Query(ctx, dsq.Query{Prefix: "/pins"})
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := res.Rest()
			var victim string
			want, _ := mkPin(t, 3).MarshalBinary()
			for _, e := range entries {
				if bytes.Equal(e.Value, want) {
					victim = e.Key
				}
			}
			if victim == "" {
				t.Fatal("pin 3 not found in datastore")
			}
			if err := d.Put(ctx, ds.NewKey(victim), []byte{0xa2, 0x00, 0x01, 0x01, 0x43, 0xff}); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(ctx, mkCid(t, 3))
			var re *pincluster.RecordError
			if !errors.As(err, &re) || re.Key != victim || !errors.Is(err, pincluster.ErrCorrupt) {
				t.Fatalf("Get of corrupt value = %v, want RecordError at %s", err, victim)
			}
			good, bad := 0, 0
			for _, err := range s.List(ctx) {
				if err != nil {
					if !errors.As(err, &re) || re.Key != victim {
						t.Fatalf("List error = %v, want RecordError at %s", err, victim)
					}
					bad++
					continue
				}
				good++
			}
			if good != 9 || bad != 1 {
				t.Fatalf("List: %d good, %d bad; want 9 and 1", good, bad)
			}
		})
	}
}

func TestStateExportImport(t *testing.T) {
	ctx := context.Background()
	src := pincluster.NewMemoryState()
	for i := range 1000 {
		if err := src.Add(ctx, mkPin(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := src.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			if err := dst.Add(ctx, mkPin(t, 5000)); err != nil {
				t.Fatal(err)
			}
			if err := dst.Import(ctx, bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			got := listAll(t, dst)
			if len(got) != 1001 {
				t.Fatalf("imported state has %d pins, want 1001", len(got))
			}
			for c, p := range listAll(t, src) {
				if !got[c].Equal(p) {
					t.Fatalf("pin %s differs after import", c)
				}
			}
		})
	}
}

// A truncated or hostile stream fails with an error naming the line and
// leaves the state exactly as it was.
func TestStateImportRejectsBadStreams(t *testing.T) {
	ctx := context.Background()
	src := pincluster.NewMemoryState()
	for i := range 50 {
		if err := src.Add(ctx, mkPin(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := src.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	full := buf.String()
	lines := strings.Split(strings.TrimSpace(full), "\n")
	longName := strings.Replace(lines[3], `"name":"`, `"name":"`+strings.Repeat("n", 300), 1)
	cases := []struct {
		name     string
		stream   string
		wantLine int
		want     error
	}{
		{"truncated mid-record", full[:len(full)-25], 51, pincluster.ErrCorrupt},
		{"empty", "", 1, pincluster.ErrCorrupt},
		{"no header", strings.Join(lines[1:], "\n"), 1, pincluster.ErrCorrupt},
		{"newer version", `{"pincluster_state":9}` + "\n", 1, pincluster.ErrUnsupportedVersion},
		{"garbage line", strings.Join(append(lines[:10:10], "{\x00\x01"), "\n"), 11, pincluster.ErrCorrupt},
		{"invalid pin", strings.Join(append(lines[:3:3], longName), "\n"), 4, pincluster.ErrNameTooLong},
		{"bad cid", lines[0] + "\n" + `{"cid":{"/":"zzz"}}`, 2, pincluster.ErrInvalidCID},
		{"line too long", lines[0] + "\n" + strings.Repeat("x", 2<<20), 2, pincluster.ErrCorrupt},
	}
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			for i := 100; i < 110; i++ {
				if err := dst.Add(ctx, mkPin(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			before := listAll(t, dst)
			for _, tc := range cases {
				err := dst.Import(ctx, strings.NewReader(tc.stream))
				var re *pincluster.RecordError
				if !errors.As(err, &re) || re.Line != tc.wantLine || !errors.Is(err, tc.want) {
					t.Fatalf("%s: Import = %v, want RecordError at line %d wrapping %v", tc.name, err, tc.wantLine, tc.want)
				}
				after := listAll(t, dst)
				if len(after) != len(before) {
					t.Fatalf("%s: failed import changed the state: %d pins, had %d", tc.name, len(after), len(before))
				}
				res, err := dst.Datastore().Query(ctx, dsq.Query{KeysOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				all, _ := res.Rest()
				if len(all) != len(before) {
					t.Fatalf("%s: %d keys in the datastore after a failed import, want %d (staging left behind)", tc.name, len(all), len(before))
				}
			}
		})
	}
}

func TestOpenStateOptionConflicts(t *testing.T) {
	_, err := pincluster.OpenState(pincluster.WithBadger(t.TempDir()), nil, pincluster.WithPebble(t.TempDir()))
	var oe *pincluster.OptionError
	if !errors.As(err, &oe) || !strings.Contains(oe.Options, "WithBadger") || !strings.Contains(oe.Options, "WithPebble") {
		t.Fatalf("conflicting stores = %v, want OptionError naming both", err)
	}
	if _, err := pincluster.OpenState(pincluster.WithBadger("")); !errors.Is(err, pincluster.ErrOption) {
		t.Fatalf("empty badger path = %v", err)
	}
	if _, err := pincluster.OpenState(pincluster.WithDatastore(nil)); !errors.Is(err, pincluster.ErrOption) {
		t.Fatalf("nil datastore = %v", err)
	}
	if _, err := pincluster.OpenState(pincluster.WithLogger(nil)); !errors.Is(err, pincluster.ErrOption) {
		t.Fatalf("nil logger = %v", err)
	}
}
