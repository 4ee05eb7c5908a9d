package ipfsnode_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	dshelp "github.com/ipfs/boxo/datastore/dshelp"
	cid "github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster/internal/ipfsnode"
)

// logLines records the messages logged through a slog handler.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if bytes.Contains([]byte(m), []byte(s)) {
			return true
		}
	}
	return false
}

// A pin whose block reaches the only connected peer behind bitswap's back
// (no announcement: the peer answered DONT_HAVE before) stalls; the stall
// watchdog starts new sessions, which ask again, and the pin completes
// without an error from the replaced sessions.
func TestFetchStallRestartsSession(t *testing.T) {
	logs := &logLines{}
	a := newNode(t, ipfsnode.Config{FetchStall: 200 * time.Millisecond, Logger: slog.New(logs)})
	bds := newDS()
	b := newNode(t, ipfsnode.Config{Datastore: bds})
	connect(t, a, b)
	data := []byte("arrives late, silently")
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- a.Pin(ctx, c, ipfsnode.PinOptions{MaxDepth: -1})
	}()
	require.Eventually(t, func() bool { return logs.has("no block") }, 10*time.Second, 10*time.Millisecond,
		"the watchdog restarts the stalled session")
	key := ds.NewKey("/ipfsnode/blocks").Child(dshelp.MultihashToDsKey(c.Hash()))
	require.NoError(t, bds.Put(context.Background(), key, data))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(25 * time.Second):
		t.Fatal("the pin did not complete")
	}
	_, err = a.GetPin(context.Background(), c)
	require.NoError(t, err)
}
