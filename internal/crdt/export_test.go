package crdt

import (
	"context"
	"time"

	cid "github.com/ipfs/go-cid"
)

// DeliverForTest applies one block as if it had been fetched, in whatever
// order the test chooses (no DAG fetch, no queueing).
func (s *Datastore) DeliverForTest(ctx context.Context, c cid.Cid, raw []byte) error {
	if err := verifyBlock(c, raw); err != nil {
		return err
	}
	d, err := DecodeDelta(raw, s.cfg.limits())
	if err != nil {
		return err
	}
	s.applyMu.Lock()
	_, err = s.applyRemote(ctx, c, d)
	s.applyMu.Unlock()
	return err
}

// JoinNonceForTest returns the nonce of this replica's join requests.
func (s *Datastore) JoinNonceForTest() []byte { return s.snap.nonce }

// SetSnapshotCooldownForTest records a periodic snapshot that just ended
// after took: the next periodic one waits snapshotCooldown × took.
func (s *Datastore) SetSnapshotCooldownForTest(took time.Duration) {
	s.snap.mu.Lock()
	s.snap.producedAt, s.snap.produceTook = time.Now(), took
	s.snap.mu.Unlock()
}

// MaybeProduceForTest runs one round of periodic snapshot production.
func (s *Datastore) MaybeProduceForTest(ctx context.Context) { s.maybeProduce(ctx) }
