package pincluster

import (
	"errors"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestValidatePinRecord checks the CRDT value hook of the default
// consensus (hostile deltas): a pin record that would be refused
// by Pin (here a 256-byte name) or that sits under another CID's key makes
// the hook fail, so the CRDT rejects the delta holding it whole (its own
// tests show that path); valid records pass.
func TestValidatePinRecord(t *testing.T) {
	mk := func(s string) cid.Cid {
		h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		return cid.NewCidV1(cid.Raw, h)
	}
	a, b := mk("a"), mk("b")
	enc := func(p Pin) []byte {
		raw, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := NewPin(a, PinOptions{Name: "fine", ReplicationMin: -1, ReplicationMax: -1})
	keyA := pinKey(pinsNamespace, a).String()
	if err := validatePin(keyA, enc(good)); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	long := good
	long.Name = strings.Repeat("n", 256)
	err := validatePin(keyA, enc(long))
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "name" {
		t.Fatalf("256-byte name: got %v, want a ValidationError on name", err)
	}
	if err := validatePin(pinKey(pinsNamespace, b).String(), enc(good)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("pin of a under b's key: got %v, want ErrCorrupt", err)
	}
	if err := validatePin(keyA, []byte{0xff, 0x00}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: got %v, want ErrCorrupt", err)
	}
	if err := validatePin("/other/key", []byte("anything")); err != nil {
		t.Fatalf("key outside /pins: %v", err)
	}
}

// validatePin is decodePinRecord's check alone.
func validatePin(key string, value []byte) error {
	_, err := decodePinRecord(key, value)
	return err
}
