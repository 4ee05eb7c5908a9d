package badgerds_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ds "github.com/ipfs/go-datastore"

	"github.com/pincluster/pincluster/internal/badgerds"
)

// BenchmarkCommitDurable is one small durable write, as the CRDT's group
// commit makes one per delta: a batch of a few keys committed, then made
// durable, either by Sync (the msync of badger's logs) or by SyncWrites
// (badger fsyncs in its write loop). For comparison, a 4 KiB write and
// fdatasync of a plain file on the same disk.
func BenchmarkCommitDurable(b *testing.B) {
	ctx := context.Background()
	val := make([]byte, 200)
	for _, mode := range []string{"Sync", "SyncWrites"} {
		b.Run(mode, func(b *testing.B) {
			d, err := badgerds.New(b.TempDir(), &badgerds.Options{SyncWrites: mode == "SyncWrites"})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.ResetTimer()
			for i := range b.N {
				batch, err := d.Batch(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for j := range 8 {
					if err := batch.Put(ctx, ds.NewKey(fmt.Sprint("/k/", i, "/", j)), val); err != nil {
						b.Fatal(err)
					}
				}
				if err := batch.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				if mode == "Sync" {
					if err := d.Sync(ctx, ds.NewKey("/")); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	b.Run("fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "f"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for range b.N {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
