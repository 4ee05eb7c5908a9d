package pinsvc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster"
)

// Ownership of cluster pins (see the package doc, "One pinset, two APIs").
//
// A cluster pin made or co-held by a Pinning Service API carries, in its
// metadata, one holder mark per such API: the key HolderMarkPrefix + the
// serving peer's ID, whose value is the pin's CID. A pin without any mark
// is held by the cluster's other clients (the REST API, a Go program);
// re-pinning a marked CID through them replaces its metadata, marks
// included, and so takes the pin over. The value names the CID so that a
// mark copied to another CID (PinUpdate copies metadata) counts for
// nothing.

// HolderMarkPrefix starts the metadata keys of holder marks. Pin request
// meta may not use it.
const HolderMarkPrefix = "pinsvc-holder/"

// ReservedMetaKeys is how many of a cluster pin's pincluster.MaxMetadataKeys
// metadata entries are kept for holder marks: a pin request's meta has at
// most MaxMetadataKeys - ReservedMetaKeys keys. A pin co-held by more
// Pinning Service APIs than that is still held by the first ones; the
// others leave it to them (they never unpin it).
const ReservedMetaKeys = 8

// ownMark is this API's holder mark key.
func (a *API) ownMark() string { return HolderMarkPrefix + a.backend.Host().ID().String() }

// marks returns the holder mark keys of pin that name its CID.
func marks(pin pincluster.Pin) []string {
	var out []string
	want := pin.Cid.String()
	for k, v := range pin.Metadata {
		if strings.HasPrefix(k, HolderMarkPrefix) && v == want {
			out = append(out, k)
		}
	}
	return out
}

// acquire makes sure the cluster pins c for a request of this API, with
// opts for a new pin: it pins c when it is not in the pinset (again, if
// it left it), adds this API's mark to a pin held by other Pinning
// Service APIs, and leaves a pin held by the cluster's other clients
// alone. It reports whether it changed the pinset (rollback with
// release).
func (a *API) acquire(ctx context.Context, c cid.Cid, opts pincluster.PinOptions) (bool, error) {
	pin, err := a.backend.PinGet(ctx, c)
	switch {
	case errors.Is(err, pincluster.ErrNotFound):
		md := maps.Clone(opts.Metadata)
		if md == nil {
			md = make(map[string]string, 1)
		}
		md[a.ownMark()] = c.String()
		opts.Metadata = md
		if _, err := a.backend.Pin(ctx, c, opts); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("pinsvc: pin %s: %w", c, err)
	}
	ms := marks(pin)
	if len(ms) == 0 || pin.Metadata[a.ownMark()] == c.String() {
		return false, nil // theirs, or already ours
	}
	if len(pin.Metadata) >= pincluster.MaxMetadataKeys {
		return false, nil // no room: the other holders keep it
	}
	po := pin.PinOptions
	po.Metadata = maps.Clone(pin.Metadata)
	po.Metadata[a.ownMark()] = c.String()
	po.PinUpdate = cid.Undef
	if _, err := a.backend.Pin(ctx, c, po); err != nil {
		return false, err
	}
	return true, nil
}

// release drops this API's hold on c, when its last request for c is
// gone: a pin that carries this API's mark is unpinned when no other
// Pinning Service API holds it, or re-pinned without the mark when
// others do; a pin without the mark (held by the cluster's other
// clients) or absent is left alone.
func (a *API) release(ctx context.Context, c cid.Cid) error {
	pin, err := a.backend.PinGet(ctx, c)
	if errors.Is(err, pincluster.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pinsvc: release %s: %w", c, err)
	}
	own := a.ownMark()
	if pin.Metadata[own] != c.String() {
		return nil
	}
	if len(marks(pin)) == 1 {
		if _, err := a.backend.Unpin(ctx, c); err != nil && !errors.Is(err, pincluster.ErrNotFound) {
			return err
		}
		return nil
	}
	po := pin.PinOptions
	po.Metadata = maps.Clone(pin.Metadata)
	delete(po.Metadata, own)
	po.PinUpdate = cid.Undef
	if _, err := a.backend.Pin(ctx, c, po); err != nil {
		return err
	}
	return nil
}
