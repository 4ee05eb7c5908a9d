package pincluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

func testCid(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func testPeer(t testing.TB, s string) peer.ID {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return peer.ID(h)
}

// fullPin returns a pin with every field set.
func fullPin(t testing.TB) Pin {
	t.Helper()
	p := NewPin(testCid(t, "root"), PinOptions{
		ReplicationMin:  2,
		ReplicationMax:  3,
		Name:            "site",
		ShardSize:       1024,
		UserAllocations: []peer.ID{testPeer(t, "u1")},
		ExpireAt:        time.Unix(1900000000, 5).UTC(),
		Metadata:        map[string]string{"k": "v", "owner": "me"},
		PinUpdate:       testCid(t, "old"),
		Origins:         []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + testPeer(t, "o").String())},
	})
	p.Allocations = []peer.ID{testPeer(t, "a"), testPeer(t, "b")}
	p.MaxDepth = 5
	p.Reference = testCid(t, "ref")
	p.Timestamp = time.Unix(1800000000, 123).UTC()
	return p
}

func TestPinValidate(t *testing.T) {
	c := testCid(t, "x")
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[strings.Repeat("k", i+1)] = "v"
		}
		return m
	}
	origins := func(n int) []ma.Multiaddr {
		var out []ma.Multiaddr
		for range n {
			out = append(out, ma.StringCast("/ip4/127.0.0.1/tcp/1"))
		}
		return out
	}
	cases := []struct {
		name string
		pin  Pin
		want error // nil: valid
	}{
		{"default", NewPin(c, PinOptions{}), nil},
		{"everywhere", NewPin(c, PinOptions{ReplicationMin: -1, ReplicationMax: -1}), nil},
		{"direct", NewPin(c, PinOptions{Mode: PinModeDirect}), nil},
		{"full", fullPin(t), nil},
		{"undefined cid", NewPin(cid.Undef, PinOptions{}), ErrInvalidCID},
		{"min over max", NewPin(c, PinOptions{ReplicationMin: 3, ReplicationMax: 2}), ErrInvalidReplication},
		{"half everywhere", NewPin(c, PinOptions{ReplicationMin: -1, ReplicationMax: 3}), ErrInvalidReplication},
		{"below -1", NewPin(c, PinOptions{ReplicationMin: -2}), ErrInvalidReplication},
		{"user allocations over max", NewPin(c, PinOptions{ReplicationMax: 1,
			UserAllocations: []peer.ID{testPeer(t, "1"), testPeer(t, "2")}}), ErrTooManyAllocations},
		{"name 256 bytes", NewPin(c, PinOptions{Name: strings.Repeat("n", 256)}), ErrNameTooLong},
		{"name 255 bytes", NewPin(c, PinOptions{Name: strings.Repeat("n", 255)}), nil},
		{"65 metadata keys", NewPin(c, PinOptions{Metadata: many(65)}), ErrMetadataTooLarge},
		{"64 metadata keys", NewPin(c, PinOptions{Metadata: many(64)}), nil},
		{"2 KiB metadata value", NewPin(c, PinOptions{Metadata: map[string]string{"k": strings.Repeat("v", 2048)}}), ErrMetadataTooLarge},
		{"empty metadata key", NewPin(c, PinOptions{Metadata: map[string]string{"": "v"}}), ErrMetadataTooLarge},
		{"21 origins", NewPin(c, PinOptions{Origins: origins(21)}), ErrTooManyOrigins},
		{"20 origins", NewPin(c, PinOptions{Origins: origins(20)}), nil},
		{"unknown mode", NewPin(c, PinOptions{Mode: 7}), ErrUnknownMode},
		{"direct with depth", func() Pin { p := NewPin(c, PinOptions{Mode: PinModeDirect}); p.MaxDepth = 3; return p }(), ErrInvalidPin},
		{"bad type", func() Pin { p := NewPin(c, PinOptions{}); p.Type = 0; return p }(), ErrInvalidPin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.pin.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidPin) {
				t.Fatalf("Validate = %v, want %v and ErrInvalidPin", err, tc.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("Validate = %#v, want a *ValidationError naming the field", err)
			}
		})
	}
}

func TestParsePinMode(t *testing.T) {
	for s, want := range map[string]PinMode{"": PinModeRecursive, "recursive": PinModeRecursive, "Direct": PinModeDirect} {
		if got, err := ParsePinMode(s); err != nil || got != want {
			t.Errorf("ParsePinMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParsePinMode("sideways"); !errors.Is(err, ErrUnknownMode) {
		t.Fatalf("ParsePinMode(sideways) = %v, want ErrUnknownMode", err)
	}
}

func TestTrackerStatusNames(t *testing.T) {
	for _, n := range trackerStatusNames {
		got, err := ParseTrackerStatus(n.name)
		if err != nil || got != n.s {
			t.Errorf("ParseTrackerStatus(%q) = %v, %v; want %v", n.name, got, err, n.s)
		}
		if n.s.String() != n.name {
			t.Errorf("%d.String() = %q, want %q", int(n.s), n.s.String(), n.name)
		}
	}
	f, err := ParseTrackerStatus("pin_queued, pinning,pin_error")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []TrackerStatus{TrackerStatusPinQueued, TrackerStatusPinning, TrackerStatusPinError} {
		if !s.Match(f) {
			t.Errorf("%v does not match %v", s, f)
		}
	}
	if TrackerStatusPinned.Match(f) {
		t.Errorf("pinned matches %v", f)
	}
	if !TrackerStatusUnpinError.Match(TrackerStatusError) || !TrackerStatusPinned.Match(0) {
		t.Error("error filter or empty filter broken")
	}
	if _, err := ParseTrackerStatus("pinned,bogus"); !errors.Is(err, ErrInvalidStatus) {
		t.Fatalf("ParseTrackerStatus(bogus) = %v, want ErrInvalidStatus", err)
	}
	if got := (TrackerStatusPinned | TrackerStatusRemote).String(); got != "pinned,remote" {
		t.Fatalf("combined String = %q", got)
	}
}

func TestPinAllocationHelpers(t *testing.T) {
	a, b := testPeer(t, "a"), testPeer(t, "b")
	p := NewPin(testCid(t, "x"), PinOptions{ReplicationMin: 1, ReplicationMax: 1})
	p.Allocations = []peer.ID{a}
	if p.IsRemote(a) || !p.IsRemote(b) || !p.IsAllocatedTo(a) {
		t.Fatal("IsRemote/IsAllocatedTo wrong for allocated pin")
	}
	every := NewPin(testCid(t, "x"), PinOptions{ReplicationMin: -1, ReplicationMax: -1})
	if every.IsRemote(b) {
		t.Fatal("pin-everywhere is remote")
	}
	now := time.Now()
	p.ExpireAt = now
	if !p.Expired(now) || p.Expired(now.Add(-time.Second)) {
		t.Fatal("Expired wrong")
	}
	q := fullPin(t)
	r := q.Clone()
	r.Metadata["k"] = "changed"
	r.Allocations[0] = b
	if q.Metadata["k"] != "v" || q.Allocations[0] == b {
		t.Fatal("Clone shares memory")
	}
	if q.Equal(r) || !q.Equal(q.Clone()) {
		t.Fatal("Equal wrong")
	}
}

func TestRepoStatFreeSpace(t *testing.T) {
	if got := (RepoStat{RepoSize: 10, StorageMax: 25}).FreeSpace(); got != 15 {
		t.Fatalf("FreeSpace = %d", got)
	}
	if got := (RepoStat{RepoSize: 30, StorageMax: 25}).FreeSpace(); got != 0 {
		t.Fatalf("FreeSpace over max = %d", got)
	}
}
