package pincluster

import (
	"context"
	"fmt"
	"iter"
	"time"

	cid "github.com/ipfs/go-cid"
)

// PinRequest is one pin of PinMany or PinStream: a CID and its options,
// as Pin takes them.
type PinRequest struct {
	Cid  cid.Cid
	Opts PinOptions
}

// PinResult answers one PinRequest: the pin as logged (or as it already
// was, when nothing changed), or Err, why this request was refused (a
// *ValidationError, an *AllocationError, ...).
type PinResult struct {
	Pin Pin
	Err error
}

// MaxPinBatch is the most requests PinMany takes at once, and the largest
// batch PinStream forms.
const MaxPinBatch = 10_000

// PinMany pins every request as Pin does, and logs them together: with the
// default (CRDT) consensus they are written as one batch (one delta per
// WithBatching max size, and one sync for each), so importing many pins
// costs a fraction of one Pin each. Results are in the order of reqs. A
// request that is refused has its Err set and does not stop the others.
// When PinMany returns a nil error, every result without Err is durable,
// as after Pin. A non-nil error (the batch could not be written, ctx
// ended, the peer is closing; or ErrPermission, ErrFollowerMode, a
// *NotReadyError as for Pin, or more than MaxPinBatch requests, a
// *ValidationError) means no pin of the batch may be assumed logged.
func (c *Cluster) PinMany(ctx context.Context, reqs []PinRequest) ([]PinResult, error) {
	if err := c.writable("pin many"); err != nil {
		return nil, err
	}
	if len(reqs) > MaxPinBatch {
		return nil, &ValidationError{Field: "pins", Err: ErrInvalidPin,
			Detail: fmt.Sprintf("%d pins in one batch, at most %d", len(reqs), MaxPinBatch)}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	if err := c.acceptedByPeers(ctx, "pin"); err != nil {
		return nil, err
	}
	ctx, end := c.span(ctx, "Cluster.PinMany")
	res, err := c.pinMany(ctx, reqs)
	end(err)
	return res, err
}

func (c *Cluster) pinMany(ctx context.Context, reqs []PinRequest) ([]PinResult, error) {
	res := make([]PinResult, len(reqs))
	now := time.Now()
	var toLog []int // indexes of res to log
	for i, r := range reqs {
		if !r.Opts.ExpireAt.IsZero() && !r.Opts.ExpireAt.After(now) {
			res[i].Err = &ValidationError{Field: "expire_at", Err: ErrExpired,
				Detail: fmt.Sprintf("%s is not after now", r.Opts.ExpireAt.UTC().Format(time.RFC3339Nano))}
			continue
		}
		pin, log, err := c.preparePin(ctx, r.Cid, r.Opts, nil, false)
		res[i] = PinResult{Pin: pin, Err: err}
		if err == nil && log {
			toLog = append(toLog, i)
		}
	}
	if len(toLog) == 0 {
		return res, nil
	}
	cc, ok := c.consensus.(*crdtConsensus)
	if !ok {
		// Another consensus: one entry per pin.
		for _, i := range toLog {
			if err := c.consensus.LogPin(ctx, res[i].Pin); err != nil {
				return nil, fmt.Errorf("pincluster: pin many: %s: %w", res[i].Pin.Cid, err)
			}
		}
		return res, nil
	}
	if err := cc.check("log pins"); err != nil {
		return nil, err
	}
	b, err := cc.state.Batch(ctx)
	if err != nil {
		return nil, fmt.Errorf("pincluster: pin many: %w", closedErr(err))
	}
	for _, i := range toLog {
		if err := b.addValid(ctx, res[i].Pin); err != nil {
			return nil, fmt.Errorf("pincluster: pin many: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pincluster: pin many: %w", closedErr(err))
	}
	return res, nil
}

// PinStream pins the requests received from reqs: it takes the first
// waiting request and every other already waiting (up to MaxPinBatch),
// pins them with PinMany, and yields their results, in order, once they
// are durable; then the next batch. It ends when reqs is closed (after
// the last batch), or yields an error once (PinMany's, or ctx's) and
// ends; a consumer that stops early stops it too. It reads reqs and
// calls PinMany from the consumer's goroutine and starts none.
func (c *Cluster) PinStream(ctx context.Context, reqs <-chan PinRequest) iter.Seq2[[]PinResult, error] {
	return func(yield func([]PinResult, error) bool) {
		batch := make([]PinRequest, 0, 256)
		for {
			batch = batch[:0]
			select {
			case r, ok := <-reqs:
				if !ok {
					return
				}
				batch = append(batch, r)
			case <-ctx.Done():
				yield(nil, fmt.Errorf("pincluster: pin stream: %w", ctx.Err()))
				return
			}
		gather:
			for len(batch) < MaxPinBatch {
				select {
				case r, ok := <-reqs:
					if !ok {
						break gather
					}
					batch = append(batch, r)
				default:
					break gather
				}
			}
			res, err := c.PinMany(ctx, batch)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(res, nil) {
				return
			}
		}
	}
}
