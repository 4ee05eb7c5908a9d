package badgerds

import (
	"context"
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// maxGCRounds bounds how many value-log files one GC pass may rewrite, so
// that one pass never monopolises the disk.
const maxGCRounds = 16

// gcLoop runs value-log GC every GCInterval until the group stops.
func (d *Datastore) gcLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.enter("gc"); err != nil {
			return
		}
		n, err := d.runGC(ctx)
		d.closeMu.RUnlock()
		if d.opts.onGC != nil {
			d.opts.onGC(err)
		}
		if err != nil && d.opts.Logger != nil {
			d.opts.Logger.Warn("badgerds: value-log gc", "err", err)
		} else if n > 0 && d.opts.Logger != nil {
			d.opts.Logger.Debug("badgerds: value-log gc", "rewritten", n)
		}
	}
}

// runGC rewrites value-log files until badger reports nothing to do,
// maxGCRounds is reached or ctx is done. It returns how many files were
// rewritten. The caller holds closeMu for reading.
func (d *Datastore) runGC(ctx context.Context) (int, error) {
	for n := 0; n < maxGCRounds; n++ {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := d.db.RunValueLogGC(d.opts.GCDiscardRatio)
		switch {
		case err == nil:
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, err
		}
	}
	return maxGCRounds, nil
}
