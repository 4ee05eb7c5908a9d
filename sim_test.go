package pincluster_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	crypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// The many-peer simulation (issue 19): peers in one process on mocknet,
// each linked to a few random others (not a full mesh), pins written
// across all of them, measured until every peer's state holds every pin;
// then the same with a tenth of the links cut while writing and healed
// after. By default 8 peers and 1,000 pins without the cut (a CI test);
// the cut runs too with PINCLUSTER_LONG=1 or at the size:
//
//	PINCLUSTER_SIM_PEERS=50 PINCLUSTER_SIM_PINS=100000 go test -run TestManyPeerSimulation -v -timeout 60m .
//
// It logs the time until all peers hold all pins and the gossip per peer
// per pin: pubsub RPCs sent, messages published or forwarded in them, and
// their bytes (message fields and control message IDs, without protobuf
// framing; the DAG's blocks travel by bitswap and are not counted). It
// fails if the peers do not converge.
func TestManyPeerSimulation(t *testing.T) {
	peers, pins := simEnv(t, "PINCLUSTER_SIM_PEERS", 8), simEnv(t, "PINCLUSTER_SIM_PINS", 1000)
	variants := []bool{false}
	if os.Getenv("PINCLUSTER_SIM_PEERS") != "" || os.Getenv("PINCLUSTER_LONG") != "" {
		// Recovering from the cut waits for timed-out block fetches
		// (10 s each) to be retried: close to a minute even at 8 peers.
		variants = append(variants, true)
	}
	for _, cut := range variants {
		t.Run(fmt.Sprintf("cut=%v", cut), func(t *testing.T) {
			s := newSim(t, peers, simDegree)
			res := s.run(t, pins, cut)
			t.Logf("%d peers (each linked to ~%d), %d pins, links cut: %v: all peers hold all pins after %v (writes took %v, process CPU %.1f s, %d deltas); per peer per pin: %.2f gossip RPCs, %.1f pubsub messages, %.0f bytes sent",
				peers, simDegree, pins, cut, res.converged.Round(time.Millisecond), res.written.Round(time.Millisecond),
				res.cpu.Seconds(), res.deltas, res.rpcs, res.msgs, res.bytes)
		})
	}
}

// simDegree is how many random peers each peer dials (so about twice that
// links per peer).
const simDegree = 4

func simEnv(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, name)
		return n
	}
	return def
}

type sim struct {
	mn    mocknet.Mocknet
	hosts []host.Host
	cls   []*pincluster.Cluster
	links [][2]int
	sent  []*rpcCounter
}

// rpcCounter counts the pubsub RPCs a peer sends (a pubsub.RawTracer).
type rpcCounter struct {
	rpcs, msgs, bytes atomic.Int64
}

func (r *rpcCounter) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	r.rpcs.Add(1)
	r.msgs.Add(int64(len(rpc.GetPublish())))
	r.bytes.Add(int64(rpcBytes(rpc)))
}

// rpcBytes is the size of rpc's fields (messages and control message IDs),
// without the protobuf framing.
func rpcBytes(rpc *pubsub.RPC) int {
	n := 0
	for _, m := range rpc.GetPublish() {
		n += len(m.GetData()) + len(m.GetFrom()) + len(m.GetSeqno()) + len(m.GetSignature()) + len(m.GetKey()) + len(m.GetTopic())
	}
	ctl := rpc.GetControl()
	for _, ih := range ctl.GetIhave() {
		for _, id := range ih.GetMessageIDs() {
			n += len(id)
		}
	}
	for _, iw := range ctl.GetIwant() {
		for _, id := range iw.GetMessageIDs() {
			n += len(id)
		}
	}
	for _, id := range ctl.GetIdontwant() {
		for _, id := range id.GetMessageIDs() {
			n += len(id)
		}
	}
	return n
}

func (r *rpcCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (r *rpcCounter) OnClosedOutboundStream(peer.ID)                       {}
func (r *rpcCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (r *rpcCounter) Join(string)                                          {}
func (r *rpcCounter) Leave(string)                                         {}
func (r *rpcCounter) Graft(peer.ID, string)                                {}
func (r *rpcCounter) Prune(peer.ID, string)                                {}
func (r *rpcCounter) ValidateMessage(*pubsub.Message)                      {}
func (r *rpcCounter) DeliverMessage(*pubsub.Message)                       {}
func (r *rpcCounter) RejectMessage(*pubsub.Message, string)                {}
func (r *rpcCounter) DuplicateMessage(*pubsub.Message)                     {}
func (r *rpcCounter) ThrottlePeer(peer.ID)                                 {}
func (r *rpcCounter) RecvRPC(*pubsub.RPC)                                  {}
func (r *rpcCounter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (r *rpcCounter) UndeliverableMessage(*pubsub.Message)                 {}

func newSim(t *testing.T, n, degree int) *sim {
	ctx := context.Background()
	s := &sim{mn: mocknet.New()}
	t.Cleanup(func() { _ = s.mn.Close() })
	// After every peer's cleanup (cleanups run last first): a pubsub
	// whose context is cancelled may still be in announceRetry's sleep
	// (up to a second) when the test ends; goleak would report it.
	t.Cleanup(func() {
		require.Eventually(t, func() bool {
			buf := make([]byte, 1<<22)
			return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "go-libp2p-pubsub.(*PubSub).announceRetry")
		}, 10*time.Second, 50*time.Millisecond, "pubsub announce retries still running")
	})
	rng := mrand.New(mrand.NewPCG(uint64(n), uint64(degree)))
	for i := range n {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		require.NoError(t, err)
		h, err := s.mn.AddPeer(key, ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255+1)))
		require.NoError(t, err)
		s.hosts = append(s.hosts, h)
	}
	// A ring (connected whatever the draw) plus degree-1 random links
	// per peer.
	seen := map[[2]int]bool{}
	link := func(a, b int) {
		if a == b {
			return
		}
		if a > b {
			a, b = b, a
		}
		if seen[[2]int{a, b}] {
			return
		}
		seen[[2]int{a, b}] = true
		s.links = append(s.links, [2]int{a, b})
		_, err := s.mn.LinkPeers(s.hosts[a].ID(), s.hosts[b].ID())
		require.NoError(t, err)
	}
	for i := range n {
		link(i, (i+1)%n)
		for range degree - 1 {
			link(i, rng.IntN(n))
		}
	}
	for _, l := range s.links {
		_, err := s.mn.ConnectPeers(s.hosts[l[0]].ID(), s.hosts[l[1]].ID())
		require.NoError(t, err)
	}
	for i, h := range s.hosts {
		pctx, cancel := context.WithCancel(ctx)
		c := &rpcCounter{}
		ps, err := pubsub.NewGossipSub(pctx, h, pubsub.WithRawTracer(c))
		require.NoError(t, err)
		opts := []pincluster.Option{
			pincluster.WithPeerName("sim" + strconv.Itoa(i)),
			pincluster.WithConnector(clustertest.NewMockConnector()),
			pincluster.WithReplication(1, 1),
			// Metrics that outlive a loaded machine's stalls: with 50
			// peers in one process a peer's own metric expired and it
			// could not allocate (replication 1 needs one).
			pincluster.WithMonitorInterval(simDuration(t, "PINCLUSTER_SIM_MONITOR", 2*time.Second)),
			pincluster.WithMetricTTL(2 * time.Minute),
		}
		if age := simDuration(t, "PINCLUSTER_SIM_BATCH_AGE", 0); age > 0 {
			// What a user writing many pins at once may configure: the
			// committer waits up to age to put more pins in one delta.
			opts = append(opts, pincluster.WithBatching(1000, age))
		}
		cl, err := pincluster.New(ctx, h, nil, ps, opts...)
		require.NoError(t, err)
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			defer scancel()
			_ = cl.Shutdown(sctx)
			cancel()
		})
		s.cls = append(s.cls, cl)
		s.sent = append(s.sent, c)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, cl := range s.cls {
		require.NoError(t, cl.WaitReady(rctx))
	}
	return s
}

// simDuration reads a duration (such as 20ms) from the environment
// variable name, def when unset. PINCLUSTER_SIM_BATCH_AGE is the peers'
// WithBatching max age (unset: the default, adaptive group commit);
// PINCLUSTER_SIM_MONITOR their monitor interval (unset: 2 s; the
// library's default is 15 s).
func simDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, name)
	return d
}

type simResult struct {
	written, converged time.Duration
	cpu                time.Duration // CPU time of the process (user + system) from the writes to convergence
	deltas             uint64        // deltas written (all peers)
	rpcs, msgs, bytes  float64       // per peer per pin
}

func simCID(i int) cid.Cid {
	h, _ := mh.Sum([]byte("sim-"+strconv.Itoa(i)), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}

// run writes pins across the peers (round robin, 16 callers per peer);
// with cut, a tenth of the links is cut before the writes and healed
// after them. It returns when every peer's state holds every pin.
func (s *sim) run(t *testing.T, pins int, cut bool) simResult {
	ctx := context.Background()
	n := len(s.cls)
	var cutLinks [][2]int
	if cut {
		rng := mrand.New(mrand.NewPCG(7, uint64(n)))
		for _, i := range rng.Perm(len(s.links))[:max(1, len(s.links)/10)] {
			cutLinks = append(cutLinks, s.links[i])
		}
		for _, l := range cutLinks {
			a, b := s.hosts[l[0]].ID(), s.hosts[l[1]].ID()
			require.NoError(t, s.mn.UnlinkPeers(a, b))
			_ = s.mn.DisconnectPeers(a, b)
		}
	}
	var before [3]int64
	for _, c := range s.sent {
		before[0] += c.rpcs.Load()
		before[1] += c.msgs.Load()
		before[2] += c.bytes.Load()
	}
	start, cpu0 := time.Now(), processCPU(t)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 16 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := s.cls[w%n]
			for {
				i := int(next.Add(1) - 1)
				if i >= pins {
					return
				}
				if _, err := cl.Pin(ctx, simCID(i), pincluster.PinOptions{}); err != nil {
					select {
					case errs <- fmt.Errorf("pin %d on peer %d: %w", i, w%n, err):
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	written := time.Since(start)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, l := range cutLinks {
		a, b := s.hosts[l[0]].ID(), s.hosts[l[1]].ID()
		_, err := s.mn.LinkPeers(a, b)
		require.NoError(t, err)
		_, err = s.mn.ConnectPeers(a, b)
		require.NoError(t, err)
	}
	// Each peer's cursor: simCID(0..seen-1) are in its state.
	seen := make([]int, n)
	deadline := time.Now().Add(time.Duration(max(30, pins/100)) * time.Minute / 10)
	for {
		done := true
		for i, cl := range s.cls {
			for seen[i] < pins {
				if _, err := cl.PinGet(ctx, simCID(seen[i])); err != nil {
					break
				}
				seen[i]++
			}
			done = done && seen[i] == pins
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for i, cl := range s.cls {
				st, _ := cl.ConsensusStats()
				var missing error
				if seen[i] < pins {
					_, missing = cl.PinGet(ctx, simCID(seen[i]))
				}
				t.Logf("peer %d: %d connections, consensus %+v, first pin missing: %v", i, len(s.hosts[i].Network().Conns()), st, missing)
			}
			t.Fatalf("not every peer holds every pin after %v: pins held by each peer (prefix) %v", time.Since(start), seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := simResult{written: written, converged: time.Since(start), cpu: processCPU(t) - cpu0}
	for _, cl := range s.cls {
		st, _ := cl.ConsensusStats()
		res.deltas += st.LocalDeltas
	}
	var after [3]int64
	for _, c := range s.sent {
		after[0] += c.rpcs.Load()
		after[1] += c.msgs.Load()
		after[2] += c.bytes.Load()
	}
	per := float64(n) * float64(pins)
	res.rpcs, res.msgs, res.bytes = float64(after[0]-before[0])/per, float64(after[1]-before[1])/per, float64(after[2]-before[2])/per
	return res
}
