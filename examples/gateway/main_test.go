package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
	"github.com/pincluster/pincluster/internal/leaktest"
)

func TestMain(m *testing.M) {
	// clustertest runs on mocknet, which can orphan a stream at shutdown.
	goleak.VerifyTestMain(m, leaktest.MocknetOrphans()...)
}

// Peer 1 holds a file; the gateway on peer 0 serves it (fetched over
// bitswap) and pins it through the cluster, on both peers.
func TestGatewayServesAndPins(t *testing.T) {
	c := clustertest.Start(t, clustertest.Setup{N: 2, InProcessIPFS: true})
	ctx := t.Context()
	data := make([]byte, 600<<10) // several blocks
	_, _ = rand.Read(data)
	added, err := c.Peer(1).Add(ctx, func(yield func(string, io.Reader) bool) {
		yield("f", bytes.NewReader(data))
	}, pincluster.AddParams{PinOptions: pincluster.PinOptions{ReplicationMin: 1, ReplicationMax: 1}, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	root := added[len(added)-1].Cid

	srv := httptest.NewServer(NewGateway(c.Peer(0).Cluster, -1, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ipfs/" + root.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET: status %d, %d bytes, err %v", resp.StatusCode, len(got), err)
	}
	c.WaitStatus(0, root, 30*time.Second, func(g pincluster.GlobalPinInfo) bool {
		return clustertest.Count(g, pincluster.TrackerStatusPinned) == 2
	})
	pin, err := c.Peer(0).PinGet(ctx, root)
	if err != nil || !pin.IsPinEverywhere() {
		t.Fatalf("pin after serving: %+v, %v", pin, err)
	}

	resp, err = http.Get(srv.URL + "/ipfs/not-a-cid")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad path: status %d", resp.StatusCode)
	}
}
