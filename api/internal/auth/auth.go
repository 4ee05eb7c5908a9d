// Package auth checks the credentials of API requests for api/rest and
// api/pinsvc: HTTP basic auth, static bearer tokens and JWTs (HS256) that
// the server signs with its own key. Every comparison of a secret is done
// in constant time over SHA-256 digests, with no early exit, so that
// neither the length nor the position of a mismatch shows in the timing.
// Check throttles a client address that presents wrong credentials
// repeatedly (Config.FailureBurst, ErrThrottled).
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	jwt "github.com/golang-jwt/jwt/v5"
)

// Errors returned by Check and its variants.
var (
	// ErrMissing: the request carries no credentials.
	ErrMissing = errors.New("auth: credentials missing")
	// ErrInvalid: the credentials are wrong, expired, revoked or malformed.
	ErrInvalid = errors.New("auth: credentials invalid")
)

// MinJWTKeyLen is the shortest JWT signing key accepted, in bytes.
const MinJWTKeyLen = 32

// DefaultJWTTTL is how long an issued JWT is valid when Config.JWTTTL is 0.
const DefaultJWTTTL = 24 * time.Hour

// Config lists the accepted credentials. The zero Config accepts nothing.
type Config struct {
	// Basic maps basic-auth user names to passwords.
	Basic map[string]string
	// Tokens maps static bearer tokens to the user they belong to.
	Tokens map[string]string
	// JWTKey is the HS256 key that signs and verifies JWTs; nil disables
	// JWTs. At least MinJWTKeyLen bytes.
	JWTKey []byte
	// JWTTTL is the validity of issued JWTs. Default: DefaultJWTTTL.
	JWTTTL time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// FailureBurst is how many wrong credentials (not missing ones) a
	// client address may present in a row; beyond, Check refuses its
	// requests with a *ThrottledError, without checking them, until it
	// earns another attempt every FailureInterval. 0: DefaultFailureBurst;
	// negative: no throttling.
	FailureBurst int
	// FailureInterval: see FailureBurst. Default: DefaultFailureInterval.
	FailureInterval time.Duration
	// Revocations is the JWT revocation list this Authenticator checks
	// and Revoke adds to. Authenticators given the same list honour each
	// other's revocations. Default: a list of its own.
	Revocations *Revocations
}

type digestPair struct {
	a, b [sha256.Size]byte
	user string
}

// Authenticator checks requests against a Config. Safe for concurrent use.
type Authenticator struct {
	basic  []digestPair // user digest, password digest
	tokens []digestPair // token digest (a), unused b
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
	// revoked is Config.Revocations (nil without a JWT key).
	revoked *Revocations
	// throttle counts failures per client address (nil: off).
	throttle *throttle
}

// constantTimeCompare compares secrets (their SHA-256 digests). A variable
// so that a test can check that every comparison goes through it and
// that it is crypto/subtle's.
var constantTimeCompare = subtle.ConstantTimeCompare

// Revocations is a JWT revocation list, in memory: the ids (jti) of the
// revoked tokens until they expire. It is owned by the API server that
// creates it; servers given the same list refuse each other's revoked
// tokens, others do not see them. Safe for concurrent use.
type Revocations struct {
	mu sync.Mutex
	m  map[string]time.Time // token id -> expiry
}

// NewRevocations returns an empty revocation list.
func NewRevocations() *Revocations {
	return &Revocations{m: make(map[string]time.Time)}
}

// New validates cfg and returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.JWTKey != nil && len(cfg.JWTKey) < MinJWTKeyLen {
		return nil, fmt.Errorf("auth: jwt key of %d bytes, need at least %d", len(cfg.JWTKey), MinJWTKeyLen)
	}
	if cfg.JWTTTL < 0 {
		return nil, fmt.Errorf("auth: negative jwt ttl %s", cfg.JWTTTL)
	}
	if cfg.FailureInterval < 0 {
		return nil, fmt.Errorf("auth: negative failure interval %s", cfg.FailureInterval)
	}
	a := &Authenticator{
		key: append([]byte(nil), cfg.JWTKey...),
		ttl: cfg.JWTTTL,
		now: cfg.Now,
	}
	if a.ttl == 0 {
		a.ttl = DefaultJWTTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.FailureBurst >= 0 {
		burst, every := cfg.FailureBurst, cfg.FailureInterval
		if burst == 0 {
			burst = DefaultFailureBurst
		}
		if every == 0 {
			every = DefaultFailureInterval
		}
		a.throttle = newThrottle(burst, every)
	}
	if cfg.JWTKey == nil {
		a.key = nil
	} else if a.revoked = cfg.Revocations; a.revoked == nil {
		a.revoked = NewRevocations()
	}
	for u, p := range cfg.Basic {
		if u == "" || strings.Contains(u, ":") {
			return nil, fmt.Errorf("auth: invalid basic auth user name %q", u)
		}
		a.basic = append(a.basic, digestPair{a: sha256.Sum256([]byte(u)), b: sha256.Sum256([]byte(p)), user: u})
	}
	for t, u := range cfg.Tokens {
		if t == "" {
			return nil, errors.New("auth: empty bearer token")
		}
		a.tokens = append(a.tokens, digestPair{a: sha256.Sum256([]byte(t)), user: u})
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(a.now),
		jwt.WithLeeway(0),
	)
	return a, nil
}

// Enabled reports whether any credential is configured. An Authenticator
// with nothing configured lets every request through (see Check).
func (a *Authenticator) Enabled() bool {
	return len(a.basic) > 0 || len(a.tokens) > 0 || a.key != nil
}

// JWTEnabled reports whether JWTs can be issued and checked.
func (a *Authenticator) JWTEnabled() bool { return a.key != nil }

// Check authenticates r by its Authorization header and returns the user.
// With nothing configured it returns "" and nil. Otherwise a request
// without credentials gets ErrMissing, wrong ones ErrInvalid, and any
// request with credentials from a client address that presented too many
// wrong ones lately a *ThrottledError (ErrThrottled), unchecked.
func (a *Authenticator) Check(r *http.Request) (string, error) {
	if !a.Enabled() {
		return "", nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrMissing
	}
	key, ok := clientKey(r.RemoteAddr)
	if !ok || a.throttle == nil {
		return a.check(r, h)
	}
	now := a.now()
	if d := a.throttle.wait(key, now); d > 0 {
		return "", &ThrottledError{RetryAfter: d}
	}
	user, err := a.check(r, h)
	if errors.Is(err, ErrInvalid) {
		a.throttle.fail(key, now)
	}
	return user, err
}

func (a *Authenticator) check(r *http.Request, h string) (string, error) {
	if u, p, ok := r.BasicAuth(); ok {
		return a.CheckBasic(u, p)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: unsupported authorization scheme", ErrInvalid)
	}
	return a.CheckBearer(strings.TrimSpace(tok))
}

// CheckBasic checks a user name and password.
func (a *Authenticator) CheckBasic(user, pass string) (string, error) {
	ud, pd := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	found := 0
	var who string
	for _, e := range a.basic { // no early exit
		m := constantTimeCompare(ud[:], e.a[:]) & constantTimeCompare(pd[:], e.b[:])
		if m == 1 {
			who = e.user
		}
		found |= m
	}
	if found != 1 {
		return "", fmt.Errorf("%w: wrong user name or password", ErrInvalid)
	}
	return who, nil
}

// CheckBearer checks a static token or, if it is not one and JWTs are
// enabled, a JWT.
func (a *Authenticator) CheckBearer(tok string) (string, error) {
	if tok == "" {
		return "", ErrMissing
	}
	td := sha256.Sum256([]byte(tok))
	found := 0
	var who string
	for _, e := range a.tokens {
		m := constantTimeCompare(td[:], e.a[:])
		if m == 1 {
			who = e.user
		}
		found |= m
	}
	if found == 1 {
		return who, nil
	}
	if a.key == nil || strings.Count(tok, ".") != 2 {
		return "", fmt.Errorf("%w: unknown token", ErrInvalid)
	}
	return a.ParseJWT(tok)
}

type claims struct {
	jwt.RegisteredClaims
}

// ParseJWT verifies a JWT signed by this server (HS256 only; "none" and
// every other algorithm are refused), not expired and not revoked, and
// returns its subject.
func (a *Authenticator) ParseJWT(tok string) (string, error) {
	c, err := a.parseClaims(tok)
	if err != nil {
		return "", err
	}
	a.revoked.mu.Lock()
	_, revoked := a.revoked.m[c.ID]
	a.revoked.mu.Unlock()
	if revoked {
		return "", fmt.Errorf("%w: token revoked", ErrInvalid)
	}
	return c.Subject, nil
}

func (a *Authenticator) parseClaims(tok string) (*claims, error) {
	if a.key == nil {
		return nil, fmt.Errorf("%w: jwt not enabled", ErrInvalid)
	}
	if len(tok) > 8<<10 {
		return nil, fmt.Errorf("%w: token too long", ErrInvalid)
	}
	var c claims
	_, err := a.parser.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return a.key, nil })
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" || c.ID == "" {
		return nil, fmt.Errorf("%w: token without subject or id", ErrInvalid)
	}
	return &c, nil
}

// Issue signs a JWT for user, valid for the configured TTL.
func (a *Authenticator) Issue(user string) (string, time.Time, error) {
	if a.key == nil {
		return "", time.Time{}, errors.New("auth: issue: jwt not enabled")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue: %w", err)
	}
	now := a.now()
	exp := now.Add(a.ttl)
	c := claims{jwt.RegisteredClaims{
		Subject:   user,
		ID:        hex.EncodeToString(id[:]),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue: %w", err)
	}
	return s, exp, nil
}

// Revoke adds a JWT signed with this Authenticator's key to its
// revocation list (Config.Revocations) until it expires, so the token is
// refused by every Authenticator given the same list; the list does not
// survive a restart and is not seen by other processes. It returns an
// error wrapping ErrInvalid for a token that does not verify (already
// expired, foreign, malformed).
func (a *Authenticator) Revoke(tok string) error {
	c, err := a.parseClaims(tok)
	if err != nil {
		return fmt.Errorf("auth: revoke: %w", err)
	}
	now := a.now()
	rv := a.revoked
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for id, exp := range rv.m { // forget entries that expired anyway
		if !now.Before(exp) {
			delete(rv.m, id)
		}
	}
	rv.m[c.ID] = c.ExpiresAt.Time
	return nil
}
