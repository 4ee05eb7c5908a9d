package auth

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v5"

	"github.com/pincluster/pincluster/api/internal/alloccheck"
)

var key = bytes.Repeat([]byte("k"), 32)

func TestIssueCheckRevoke(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	a, err := New(Config{Basic: map[string]string{"u": "p"}, Tokens: map[string]string{"tok": "robot"}, JWTKey: key, JWTTTL: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := a.Issue("u")
	if err != nil || !exp.Equal(now.Add(time.Minute)) {
		t.Fatal(err, exp)
	}
	if u, err := a.CheckBearer(tok); err != nil || u != "u" {
		t.Fatal(u, err)
	}
	if u, err := a.CheckBearer("tok"); err != nil || u != "robot" {
		t.Fatal(u, err)
	}
	if _, err := a.CheckBasic("u", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if u, err := a.CheckBasic("u", "p"); err != nil || u != "u" {
		t.Fatal(u, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := a.CheckBearer(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("expired token accepted: %v", err)
	}
	now = now.Add(-2 * time.Minute)
	if err := a.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CheckBearer(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	r, _ := http.NewRequest("GET", "/", nil)
	if _, err := a.Check(r); !errors.Is(err, ErrMissing) {
		t.Fatal(err)
	}
	if _, err := New(Config{JWTKey: []byte("short")}); err == nil {
		t.Fatal("short key accepted")
	}
	open, _ := New(Config{})
	if u, err := open.Check(r); err != nil || u != "" {
		t.Fatal("open authenticator refused", err)
	}
}

func FuzzJWT(f *testing.F) {
	a, err := New(Config{JWTKey: key})
	if err != nil {
		f.Fatal(err)
	}
	good, _, _ := a.Issue("u")
	f.Add(good)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "jti": "1", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(none)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		alloccheck.Bound(t, len(tok), func() {
			u, err := a.CheckBearer(tok)
			if err == nil && tok != good {
				// Only tokens signed with key verify; a fuzzer cannot forge one.
				if _, perr := a.parseClaims(tok); perr != nil || u == "" {
					t.Fatalf("accepted %q", tok)
				}
			}
		})
	})
}

// TestRevocationShared: a revocation made through one Authenticator is
// honoured by the others given the same Revocations, by none with a list
// of its own (even with the same key), and a token of another key cannot
// be revoked.
func TestRevocationShared(t *testing.T) {
	k := bytes.Repeat([]byte("s"), 32)
	list := NewRevocations()
	a, err := New(Config{JWTKey: k, Revocations: list})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{JWTKey: append([]byte(nil), k...), Revocations: list})
	alone, _ := New(Config{JWTKey: k}) // same key, its own list
	other, _ := New(Config{JWTKey: bytes.Repeat([]byte("z"), 32), Revocations: list})
	tok, _, err := a.Issue("u")
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _, _ := other.Issue("u")
	if _, err := b.CheckBearer(tok); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*Authenticator{"issuer": a, "revoker": b} {
		if _, err := x.CheckBearer(tok); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s accepts a revoked token: %v", name, err)
		}
	}
	if _, err := alone.CheckBearer(tok); err != nil {
		t.Fatalf("revocation leaked to an Authenticator with its own list: %v", err)
	}
	if _, err := other.CheckBearer(otherTok); err != nil {
		t.Fatalf("revocation leaked to another key: %v", err)
	}
	if err := other.Revoke(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked a token of another key: %v", err)
	}
}
