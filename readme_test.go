package pincluster_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	libp2p "github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/pincluster/pincluster"
)

// embedding is the README's "Embedding" program: the lines between the
// README markers below are the README's Go block, character for character
// (TestREADMEEmbedding compares them and runs this function).
func embedding(ctx context.Context) error {
	// README:begin
	h, err := libp2p.New() // your libp2p host
	if err != nil {
		return err
	}
	defer h.Close()
	psCtx, stopPubsub := context.WithCancel(ctx) // you own the pubsub and its context
	defer stopPubsub()
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		return err
	}
	kad, err := dht.New(h) // your DHT, or nil
	if err != nil {
		return err
	}
	defer kad.Close()

	c, err := pincluster.New(ctx, h, kad, ps) // every default: CRDT, in-process IPFS node, memory
	if err != nil {
		return err
	}
	defer c.Shutdown(context.Background()) // before the host, DHT and pubsub close
	if err := c.WaitReady(ctx); err != nil {
		return err
	}

	// Add imports the data into the in-process node and pins its root
	// cluster-wide (on ReplicationMax peers, here every peer: the default).
	files := maps.All(map[string]io.Reader{"hello.txt": strings.NewReader("hello, cluster")})
	added, err := c.Add(ctx, files, pincluster.AddParams{})
	if err != nil {
		return err
	}
	root := added[len(added)-1].Cid

	// Pin (again) with options: a name and replication factors.
	if _, err := c.Pin(ctx, root, pincluster.PinOptions{Name: "hello", ReplicationMin: 1, ReplicationMax: 3}); err != nil {
		return err
	}
	for g, err := range c.StatusAll(ctx, pincluster.StatusFilter{}) {
		if err != nil {
			return err
		}
		fmt.Println(g.Cid, len(g.PeerMap), "peer(s)")
	}
	// README:end
	return nil
}

// TestREADMEEmbedding keeps the README's Go block compiled and true: it
// must equal embedding's body, and embedding must run.
func TestREADMEEmbedding(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	want := between(t, string(src), "\t// README:begin\n", "\t// README:end\n")
	var lines []string
	for l := range strings.Lines(want) {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	want = strings.Join(lines, "")
	got := between(t, string(readme), "## Embedding\n\n```go\n", "```\n")
	if got != want {
		t.Fatalf("README's Embedding block differs from embedding() in readme_test.go; README has:\n%s\nthe compiled code is:\n%s", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := embedding(ctx); err != nil {
		t.Fatal(err)
	}
}

// between returns the text of s after the first start and before the next
// end.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		t.Fatalf("%q not found", start)
	}
	body, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("%q not found after %q", end, start)
	}
	return body
}
