package auth

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func reqFrom(remote, token string) *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	r.RemoteAddr = remote
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestThrottle: a client address that presents FailureBurst wrong
// credentials is refused, unchecked (the right token too), with a
// RetryAfter, until it earns an attempt every FailureInterval; other
// addresses and missing credentials are unaffected; an IPv6 /64 counts
// as one address.
func TestThrottle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, err := New(Config{Tokens: map[string]string{"good": "u"}, FailureBurst: 3, FailureInterval: 10 * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const bad = "10.0.0.1:1234"
	for i := range 3 {
		if _, err := a.Check(reqFrom(bad, "wrong")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err = a.Check(reqFrom(bad, "good"))
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || te.RetryAfter <= 0 || te.RetryAfter > 10*time.Second {
		t.Fatalf("4th attempt: %v, want a ThrottledError within the interval", err)
	}
	if _, err := a.Check(reqFrom(bad, "")); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing credentials: %v", err)
	}
	if u, err := a.Check(reqFrom("10.0.0.2:1", "good")); err != nil || u != "u" {
		t.Fatalf("another address: %q %v", u, err)
	}
	now = now.Add(te.RetryAfter)
	if u, err := a.Check(reqFrom(bad, "good")); err != nil || u != "u" {
		t.Fatalf("after RetryAfter: %q %v", u, err)
	}
	// IPv6: the /64 is one client.
	for i := range 3 {
		remote := "[2001:db8:1:2::" + string(rune('a'+i)) + "]:80"
		if _, err := a.Check(reqFrom(remote, "wrong")); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}
	if _, err := a.Check(reqFrom("[2001:db8:1:2:ffff::1]:80", "good")); !errors.Is(err, ErrThrottled) {
		t.Fatalf("same /64: %v", err)
	}
	if _, err := a.Check(reqFrom("[2001:db8:1:3::1]:80", "good")); err != nil {
		t.Fatalf("other /64: %v", err)
	}
	// Off.
	off, _ := New(Config{Tokens: map[string]string{"good": "u"}, FailureBurst: -1})
	for range 100 {
		if _, err := off.Check(reqFrom(bad, "wrong")); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}
	if _, err := New(Config{FailureInterval: -1}); err == nil {
		t.Fatal("negative interval accepted")
	}
}

// TestThrottleBounded: the addresses tracked stay bounded under failures
// from more addresses than maxThrottled.
func TestThrottleBounded(t *testing.T) {
	th := newThrottle(1, time.Hour)
	now := time.Unix(1_700_000_000, 0)
	for i := range maxThrottled + 1000 {
		addr, _ := clientKey("10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255) + ":1")
		th.fail(addr, now)
	}
	if n := len(th.m); n > maxThrottled {
		t.Fatalf("%d addresses tracked, bound %d", n, maxThrottled)
	}
}
