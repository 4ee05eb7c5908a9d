package pinsvc

import (
	"fmt"

	"github.com/pincluster/pincluster"
)

// Status is the state of a pin request in the Pinning Service API.
type Status string

// The four statuses of the spec.
const (
	// StatusQueued: no allocated peer has started fetching the data.
	StatusQueued Status = "queued"
	// StatusPinning: at least one allocated peer is fetching it, or fewer
	// than needed hold it.
	StatusPinning Status = "pinning"
	// StatusPinned: enough allocated peers hold it.
	StatusPinned Status = "pinned"
	// StatusFailed: every allocated peer reports an error, or the CID left
	// the cluster's pinset.
	StatusFailed Status = "failed"
)

var allStatuses = []Status{StatusQueued, StatusPinning, StatusPinned, StatusFailed}

// MapStatus turns the per-peer tracker statuses of a pin into a Pinning
// Service status, with a human explanation for PinStatus.info. Only peers
// that should hold the pin count ("remote" entries are ignored):
//
//   - pinned: at least max(1, replication min) of them report pinned (all
//     of them for a pin on every peer, replication -1);
//   - pinning: some report pinning or pinned, but not enough are pinned;
//   - failed: all of them report an error (pin_error, cluster_error);
//   - queued: otherwise (pin_queued, undefined, unpinned not yet acted
//     on, unexpectedly_unpinned waiting for a repin, no status at all).
func MapStatus(g pincluster.GlobalPinInfo, replicationMin int) (Status, string) {
	var considered, pinned, pinning, failed int
	var lastErr string
	for _, s := range g.PeerMap {
		switch s.Status {
		case pincluster.TrackerStatusRemote, pincluster.TrackerStatusSharded:
			continue
		}
		considered++
		switch s.Status {
		case pincluster.TrackerStatusPinned:
			pinned++
		case pincluster.TrackerStatusPinning:
			pinning++
		case pincluster.TrackerStatusPinError, pincluster.TrackerStatusClusterError:
			failed++
			if s.Error != "" {
				lastErr = s.Error
			}
		}
	}
	need := max(1, replicationMin)
	if replicationMin == -1 {
		need = max(1, considered)
	}
	need = min(need, max(1, considered))
	details := fmt.Sprintf("%d of %d allocated peers pinned", pinned, considered)
	switch {
	case considered > 0 && pinned >= need:
		return StatusPinned, details
	case pinned > 0 || pinning > 0:
		return StatusPinning, details
	case considered > 0 && failed == considered:
		if lastErr != "" {
			details += ": " + lastErr
		}
		return StatusFailed, details
	}
	return StatusQueued, details
}
