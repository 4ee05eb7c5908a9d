package auth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the failure throttle (Config.FailureBurst and
// Config.FailureInterval).
const (
	// DefaultFailureBurst is how many wrong credentials one client
	// address may present in a row before it is throttled.
	DefaultFailureBurst = 10
	// DefaultFailureInterval is how often a throttled address earns one
	// more attempt: after a burst, at most one guess a second.
	DefaultFailureInterval = time.Second
	// maxThrottled bounds the addresses tracked; beyond it, random
	// entries are forgotten (an attacker with that many addresses can
	// reset its own counters, but memory stays bounded).
	maxThrottled = 16384
)

// ErrThrottled is wrapped by the error Check returns for a client address
// that presented too many wrong credentials recently (a *ThrottledError,
// which says when to retry). Its credentials are not checked.
var ErrThrottled = errors.New("auth: too many failed attempts")

// ThrottledError is returned by Check for a throttled client address.
type ThrottledError struct {
	// RetryAfter is how long until the address may try again.
	RetryAfter time.Duration
}

// Error says the address is throttled and for how long.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: retry in %s", ErrThrottled, e.RetryAfter.Round(time.Millisecond))
}

// Unwrap returns ErrThrottled.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// throttle counts failed authentications per client address in token
// buckets: each failure takes a token; an address with none left is
// refused without a check until it earns one.
type throttle struct {
	every time.Duration
	burst int

	mu sync.Mutex
	m  map[netip.Addr]*rate.Limiter
}

func newThrottle(burst int, every time.Duration) *throttle {
	return &throttle{every: every, burst: burst, m: make(map[netip.Addr]*rate.Limiter)}
}

// clientKey is the address a request is throttled by: the remote IP, or
// its /64 for IPv6 (one host usually owns the whole prefix). ok is false
// when remoteAddr holds no IP (a unix socket, a test's fake): such
// requests are not throttled.
func clientKey(remoteAddr string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// wait returns how long key must wait before its credentials are
// checked again; 0 when it may try now.
func (t *throttle) wait(key netip.Addr, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[key]
	if l == nil || l.TokensAt(now) >= 1 {
		return 0
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return max(d, time.Millisecond)
}

// fail records a failed authentication of key.
func (t *throttle) fail(key netip.Addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[key]
	if l == nil {
		if len(t.m) >= maxThrottled {
			t.prune(now)
		}
		l = rate.NewLimiter(rate.Every(t.every), t.burst)
		t.m[key] = l
	}
	l.AllowN(now, 1)
}

// prune forgets the addresses whose bucket is full again, then, if the
// map is still full, random ones. Callers hold mu.
func (t *throttle) prune(now time.Time) {
	for k, l := range t.m {
		if l.TokensAt(now) >= float64(t.burst) {
			delete(t.m, k)
		}
	}
	for k := range t.m { // map order: unspecified, varies
		if len(t.m) < maxThrottled*3/4 {
			break
		}
		delete(t.m, k)
	}
}
