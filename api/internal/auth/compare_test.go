package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"reflect"
	"testing"
)

// TestConstantTimeCompare is the unit half of the constant-time check:
// secrets are compared with crypto/subtle's ConstantTimeCompare, always
// over two SHA-256 digests (so the secret's length does not matter), and
// against every configured entry whatever the position of the match (no
// early exit). It does not measure timing.
func TestConstantTimeCompare(t *testing.T) {
	if reflect.ValueOf(constantTimeCompare).Pointer() != reflect.ValueOf(subtle.ConstantTimeCompare).Pointer() {
		t.Fatal("secrets are not compared with subtle.ConstantTimeCompare")
	}
	calls := 0
	orig := constantTimeCompare
	constantTimeCompare = func(x, y []byte) int {
		calls++
		if len(x) != sha256.Size || len(y) != sha256.Size {
			t.Errorf("compared %d and %d bytes, not two digests", len(x), len(y))
		}
		return orig(x, y)
	}
	t.Cleanup(func() { constantTimeCompare = orig })

	tokens := map[string]string{"token-one": "a", "token-two": "b", "token-six": "c"}
	basic := map[string]string{"ann": "password1", "bob": "password2", "cat": "password3"}
	a, err := New(Config{Tokens: tokens, Basic: basic})
	if err != nil {
		t.Fatal(err)
	}
	bearer := map[string]bool{ // token -> accepted
		"token-one": true, "token-two": true, "token-six": true,
		"token-0ne":          false, // same length, one byte off
		"token-on":           false, // a prefix
		"token-one-and-more": false, "x": false,
		string(bytes.Repeat([]byte("t"), 4096)): false,
	}
	for tok, ok := range bearer {
		calls = 0
		_, err := a.CheckBearer(tok)
		if ok != (err == nil) {
			t.Errorf("bearer %.20q: err %v, want accepted %v", tok, err, ok)
		}
		if !ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("bearer %.20q: err %v, want ErrInvalid", tok, err)
		}
		if calls != len(tokens) {
			t.Errorf("bearer %.20q: %d comparisons, want one per token (%d)", tok, calls, len(tokens))
		}
	}
	type up struct{ u, p string }
	creds := map[up]bool{
		{"ann", "password1"}: true, {"cat", "password3"}: true,
		{"ann", "password2"}:  false, // another user's password
		{"ann", "passwordX"}:  false, // same length
		{"ann", "pass"}:       false, // shorter
		{"ann", "password1!"}: false,
		{"dan", "password1"}:  false,
	}
	for c, ok := range creds {
		calls = 0
		_, err := a.CheckBasic(c.u, c.p)
		if ok != (err == nil) {
			t.Errorf("basic %v: err %v, want accepted %v", c, err, ok)
		}
		if calls != 2*len(basic) {
			t.Errorf("basic %v: %d comparisons, want user and password of every entry (%d)", c, calls, 2*len(basic))
		}
	}
}
