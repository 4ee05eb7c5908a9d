package httpx

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// MaxCIDLen bounds the text of a CID parameter, in bytes.
const MaxCIDLen = 512

// MaxPathLen bounds an /ipfs/ path parameter, in bytes.
const MaxPathLen = 4096

// ErrBadCID is wrapped by ParseCID's errors.
var ErrBadCID = errors.New("invalid cid")

// ParseCID parses a CID given by a caller and applies boxo's verifcid
// rules that matter before any fetch: a known, secure multihash of at
// least 20 bytes (identity hashes of at most 128 bytes).
func ParseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, fmt.Errorf("%w: empty", ErrBadCID)
	}
	if len(s) > MaxCIDLen {
		return cid.Undef, fmt.Errorf("%w: %d bytes, limit %d", ErrBadCID, len(s), MaxCIDLen)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %q: %v", ErrBadCID, truncate(s), err)
	}
	if err := checkHash(c); err != nil {
		return cid.Undef, fmt.Errorf("%w: %q: %v", ErrBadCID, truncate(s), err)
	}
	return c, nil
}

func checkHash(c cid.Cid) error {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return err
	}
	switch d.Code {
	case mh.IDENTITY:
		if d.Length > 128 {
			return fmt.Errorf("identity hash of %d bytes, limit 128", d.Length)
		}
		return nil
	case mh.SHA2_256, mh.SHA2_512, mh.SHA3_224, mh.SHA3_256, mh.SHA3_384, mh.SHA3_512,
		mh.KECCAK_224, mh.KECCAK_256, mh.KECCAK_384, mh.KECCAK_512, mh.SHA2_256_TRUNC254_PADDED,
		mh.BLAKE3, mh.X11, 0xb220 /* blake2b-256 */, 0xb240 /* blake2b-512 */, 0xb260 /* blake2s-256 */ :
	default:
		return fmt.Errorf("insecure or unknown hash function 0x%x", d.Code)
	}
	if d.Length < 20 {
		return fmt.Errorf("hash of %d bytes is too short", d.Length)
	}
	return nil
}

// ParsePath checks an IPFS path given as /ipfs/..., /ipns/... or
// /ipld/...: bounded length, no empty, "." or ".." segments, and for /ipfs
// and /ipld a valid first CID. It returns the cleaned path.
func ParsePath(p string) (string, error) {
	if len(p) > MaxPathLen {
		return "", fmt.Errorf("invalid path: %d bytes, limit %d", len(p), MaxPathLen)
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	parts := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	if len(parts) < 2 {
		return "", fmt.Errorf("invalid path %q: needs a namespace and a root", truncate(p))
	}
	switch parts[0] {
	case "ipfs", "ipld":
		if _, err := ParseCID(parts[1]); err != nil {
			return "", fmt.Errorf("invalid path: %w", err)
		}
	case "ipns":
	default:
		return "", fmt.Errorf("invalid path %q: namespace must be ipfs, ipns or ipld", truncate(p))
	}
	for _, s := range parts[1:] {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("invalid path %q: empty or relative segment", truncate(p))
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("invalid path: control character")
			}
		}
	}
	return "/" + strings.Join(parts, "/"), nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// ErrMediaType is wrapped by CheckJSONContentType's errors: the request
// body is declared as something other than JSON (answered 415).
var ErrMediaType = errors.New("unsupported media type")

// CheckJSONContentType accepts a request whose Content-Type is
// application/json (any case), with or without parameters such as
// charset=utf-8, or is absent: a body without a declared type is read as
// JSON, as simple scripted clients send none. Any other type (including
// curl -d's application/x-www-form-urlencoded), several Content-Type
// headers, or one that does not parse give an error wrapping
// ErrMediaType.
func CheckJSONContentType(r *http.Request) error {
	v := r.Header.Values("Content-Type")
	if len(v) == 0 {
		return nil
	}
	if len(v) > 1 {
		return fmt.Errorf("%w: %d Content-Type headers", ErrMediaType, len(v))
	}
	mt, _, err := mime.ParseMediaType(v[0])
	if err != nil {
		return fmt.Errorf("%w: Content-Type %q: %v", ErrMediaType, truncate(v[0]), err)
	}
	if mt != "application/json" {
		return fmt.Errorf("%w: Content-Type %q, want application/json", ErrMediaType, truncate(mt))
	}
	return nil
}
