// Command gateway is an HTTP gateway in front of a pincluster peer: GET
// /ipfs/<cid>[/path] serves the file from the peer's in-process IPFS node
// (fetched over bitswap from the cluster or the network as it is read),
// then pins what it served through the cluster, so that content people
// ask for stays available. Stop it with Ctrl-C.
//
//	go run ./examples/gateway [-listen 127.0.0.1:8080] [-join /ip4/.../p2p/ID] [-replication 2]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address")
	join := flag.String("join", "", "multiaddress (with /p2p/) of a cluster peer to join")
	repl := flag.Int("replication", -1, "replication of the pins the gateway makes (-1: every peer)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *listen, *join, *repl, log); err != nil {
		log.Error("gateway", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, join string, repl int, log *slog.Logger) error {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/0"))
	if err != nil {
		return err
	}
	defer h.Close()
	psCtx, stopPS := context.WithCancel(context.Background())
	defer stopPS()
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		return err
	}
	if join != "" {
		ai, err := peer.AddrInfoFromString(join)
		if err != nil {
			return fmt.Errorf("-join: %w", err)
		}
		if err := h.Connect(ctx, *ai); err != nil {
			return fmt.Errorf("-join: %w", err)
		}
	}
	c, err := pincluster.New(ctx, h, nil, ps, pincluster.WithLogger(log))
	if err != nil {
		return err
	}
	defer c.Shutdown(context.Background())

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: NewGateway(c, repl, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("gateway listening", "http", "http://"+ln.Addr().String()+"/ipfs/", "peer", h.ID())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewGateway returns the handler of GET /ipfs/<cid>[/path]: it serves the
// file through c and then pins its CID with replication repl (min = max;
// -1: every peer), named "gateway".
func NewGateway(c *pincluster.Cluster, repl int, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ipfs/{path...}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
		defer cancel()
		path := "/ipfs/" + r.PathValue("path")
		f, ci, err := c.Cat(ctx, path)
		switch {
		case errors.Is(err, pincluster.ErrNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer f.Close()
		w.Header().Set("X-Ipfs-Path", path)
		w.Header().Set("Etag", `"`+ci.String()+`"`)
		http.ServeContent(w, r, "", time.Time{}, f)
		name := "gateway " + strings.TrimPrefix(path, "/ipfs/")
		if len(name) > pincluster.MaxNameLen {
			name = name[:pincluster.MaxNameLen]
		}
		// The response is out; the pin is best effort and logged.
		if _, err := c.Pin(context.WithoutCancel(ctx), ci, pincluster.PinOptions{
			Name: name, ReplicationMin: repl, ReplicationMax: repl,
		}); err != nil {
			log.Warn("gateway: pin what was served", "cid", ci, "err", err)
		}
	})
	return mux
}
