// Command httppin measures the HTTP pin path: three pincluster peers in this
// process, each with its own libp2p host on loopback, its state on disk and
// IPFS Cluster's REST API (api/rest) on a real socket; N distinct 1 KiB raw
// blocks put into every peer's IPFS node first; then POST /pins/{cid} to
// peer 1 from -clients keep-alive Go HTTP clients, replication -1 (every
// peer). It reports the accepted rate, request latencies, the time until
// all three states hold the N pins and until all three IPFS nodes pinned
// them, and the process's RSS and CPU seconds. Then it times single pins
// on the idle cluster (visible on peer 3, pinned on all 3), polled every
// 500 µs.
//
//	go run ./bench/httppin -n 5000 -clients 8
//	PINCLUSTER_KUBO=$PWD/.cache/bin/ipfs go run ./bench/httppin -n 5000 -clients 8 -kubo start
//	go run ./bench/httppin -n 5000 -clients 8 -kubo /ip4/127.0.0.1/tcp/5001,/ip4/127.0.0.1/tcp/5002,/ip4/127.0.0.1/tcp/5003
//
// With -kubo each peer uses the Kubo connector on its own Kubo daemon:
// "start" starts three (internal/kubotest's configuration: --profile=test,
// Routing.Type none), or three RPC multiaddrs are taken. A counting proxy
// stands in front of each daemon's RPC API: it reports the RPC calls per
// pin by endpoint and when Kubo answered the last pin/add of each daemon
// (pinned on all 3 as Kubo reports it); the daemons' CPU seconds and RSS
// are read from /proc.
//
// With -target URL (a REST API of another implementation, such as IPFS
// Cluster's) no cluster is started: it drives the load against that URL
// with the same client and reports the same client-side figures. With
// -kubo as well, it puts the blocks into those daemons, opens the proxies
// (on -proxy-listen, where the other cluster's connectors must point),
// waits until a warm-up pin is pinned on all three, and reports the same
// Kubo figures; -peer-ports finds the other cluster's processes for their
// CPU seconds and RSS.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cid "github.com/ipfs/go-cid"
	pebbleds "github.com/ipfs/go-ds-pebble"
	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mc "github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/rest"
	"github.com/pincluster/pincluster/connector/kubo"
)

// profile is -cpuprofile; direct is -direct; batchSize and batchAge are
// -batch-size and -batch-age (WithBatching; age 0: the default, adaptive).
var (
	profile   string
	direct    bool
	batchSize int
	batchAge  time.Duration
)

func main() {
	n := flag.Int("n", 5000, "pins to send")
	clients := flag.Int("clients", 8, "parallel keep-alive HTTP clients")
	store := flag.String("store", "badger", "state store: badger, pebble or memory")
	kuboAddrs := flag.String("kubo", "", "\"start\" (three Kubo daemons of PINCLUSTER_KUBO) or three Kubo RPC multiaddrs, comma separated; default: the in-process IPFS node. With -target: the other cluster's Kubo daemons")
	target := flag.String("target", "", "drive only this REST API base URL (another implementation); no cluster is started")
	singles := flag.Int("singles", 50, "single pins timed on the idle cluster after the burst")
	flag.BoolVar(&direct, "direct", false, "call Cluster.Pin of peer 1 in process instead of POST /pins (to split HTTP from the rest)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the burst to this file")
	flag.IntVar(&batchSize, "batch-size", 1000, "with -batch-age: the most pins per CRDT delta (WithBatching)")
	flag.DurationVar(&batchAge, "batch-age", 0, "wait up to this long for a CRDT delta to fill (WithBatching); 0: the default adaptive group commit")
	flag.Parse()
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // before the first allocation worth counting
	}
	profile = *cpuprofile
	if err := run(*n, *clients, *store, *kuboAddrs, *target, *singles); err != nil {
		log.Fatal(err)
	}
}

// randomCIDs makes n raw 1 KiB blocks of random bytes and their CIDv1s.
func randomBlocks(n int) ([][]byte, []cid.Cid) {
	data := make([][]byte, n)
	cids := make([]cid.Cid, n)
	for i := range n {
		b := make([]byte, 1024)
		_, _ = rand.Read(b)
		h, _ := mh.Sum(b, mh.SHA2_256, -1)
		data[i], cids[i] = b, cid.NewCidV1(uint64(mc.Raw), h)
	}
	return data, cids
}

func run(n, clients int, store, kuboAddrs, target string, singles int) error {
	ctx := context.Background()
	data, cids := randomBlocks(n)
	dir, err := os.MkdirTemp("", "httppin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var kubos *kuboSet
	if kuboAddrs != "" {
		if kubos, err = openKubos(dir, kuboAddrs); err != nil {
			return err
		}
		defer kubos.stop()
	}
	if target != "" {
		return runTarget(ctx, strings.TrimRight(target, "/"), kubos, data, cids, clients)
	}

	var peers []*benchPeer
	for i := range 3 {
		var proxy string
		if kubos != nil {
			proxy = kubos.proxies[i].addr
		}
		p, err := startPeer(ctx, filepath.Join(dir, fmt.Sprint(i)), store, proxy, i)
		if err != nil {
			return err
		}
		defer p.stop()
		peers = append(peers, p)
	}
	for _, a := range peers {
		for _, b := range peers {
			if a != b {
				if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range peers {
		if err := p.c.WaitReady(ctx); err != nil {
			return err
		}
	}
	// Every peer has heard every other's metrics (replication -1 needs them).
	if err := waitFor(2*time.Minute, func() bool {
		for _, p := range peers {
			if len(p.c.Metrics(ctx, "ping")) < 3 {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	// A warm-up pin through HTTP, held by all three, before the clock
	// starts: every peer has joined and can allocate.
	wdata, wcids := randomBlocks(1)
	for _, p := range peers {
		if _, err := p.c.BlockPut(ctx, wdata[0], wcids[0].Prefix()); err != nil {
			return fmt.Errorf("block put: %w", err)
		}
	}
	warm := &http.Client{}
	if err := waitFor(2*time.Minute, func() bool { return post(warm, peers[0].url, wcids[0]) == nil }); err != nil {
		return fmt.Errorf("warm-up pin: %w", err)
	}
	if err := waitFor(2*time.Minute, func() bool {
		for _, p := range peers {
			if p.held() < 1 {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("warm-up pin on all 3: %w", err)
	}
	warm.CloseIdleConnections()
	if kubos != nil {
		if err := kubos.putBlocks(ctx, data, cids); err != nil {
			return err
		}
	} else {
		for _, p := range peers {
			for i, b := range data {
				if _, err := p.c.BlockPut(ctx, b, cids[i].Prefix()); err != nil {
					return fmt.Errorf("block put: %w", err)
				}
			}
		}
	}
	var kcpu0 []float64
	if kubos != nil {
		kubos.reset()
		kcpu0 = kubos.cpuSeconds()
	}
	cpu0 := cpuSeconds()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}

	stopProfiles := startExtraProfiles()
	start := time.Now()
	stateDone := make(chan []time.Duration, 1)
	pinnedDone := make(chan []time.Duration, 1)
	var acked atomic.Bool // the last pin was acknowledged: poll every millisecond
	go func() {
		stateDone <- waitEach(peers, start, &acked, func(p *benchPeer) bool { return p.holds(ctx, cids) })
	}()
	go func() {
		pinnedDone <- waitEach(peers, start, &acked, func(p *benchPeer) bool { return p.held() >= n+1 })
	}()
	cs0 := peers[0].consensusStats()
	var res result
	if bulkStreams > 0 {
		res = driveBulk(peers[0].url, cids, bulkStreams)
	} else if direct {
		res = driveFunc(cids, clients, func(_ *http.Client, ci cid.Cid) error {
			_, err := peers[0].c.Pin(ctx, ci, pincluster.PinOptions{})
			return err
		})
	} else {
		res = drive(peers[0].url, cids, clients)
	}
	acked.Store(true)
	cpuAck := cpuSeconds() - cpu0
	res.print(n)
	if cs := peers[0].consensusStats(); cs.LocalDeltas > cs0.LocalDeltas {
		d := cs.LocalDeltas - cs0.LocalDeltas
		fmt.Printf("peer 1 wrote %d deltas (%.1f pins per delta), sent %d broadcasts\n",
			d, float64(n)/float64(d), cs.SentBroadcasts-cs0.SentBroadcasts)
	}
	st := <-stateDone
	cpuState := cpuSeconds() - cpu0
	fmt.Printf("state holds N on peers 1,2,3 after %v (from the start; last ack at %v)\n", st, res.elapsed.Round(time.Millisecond))
	fmt.Printf("process CPU to the last ack %.2f s (%.0f µs/pin), to all states holding N %.2f s (%.0f µs/pin)\n",
		cpuAck, cpuAck*1e6/float64(n), cpuState, cpuState*1e6/float64(n))
	pt := <-pinnedDone
	fmt.Printf("pinned on peers 1,2,3 after %v (as their trackers know it)\n", pt)
	if kubos != nil {
		kt := kubos.waitPinned(cids, start, 90*time.Second)
		fmt.Printf("pinned on kubo 1,2,3 after %v (Kubo's last pin/add answer, from the start)\n", kt)
		pt = append(pt, kt...)
	}
	if res.failed > 0 || slices.Contains(st, 0) || slices.Contains(pt, 0) {
		return fmt.Errorf("%d pins refused, or not converged on every peer within 90 s", res.failed)
	}
	if profile != "" {
		pprof.StopCPUProfile()
	}
	if err := stopProfiles(); err != nil {
		return err
	}
	fmt.Printf("process: CPU %.2f s for the run, RSS %d MiB\n", cpuSeconds()-cpu0, rssMiB())
	if kubos != nil {
		kubos.printRun(kcpu0, n)
	}

	// Single pins on the idle cluster.
	if singles > 0 {
		sdata, scids := randomBlocks(singles)
		for _, p := range peers {
			for i, b := range sdata {
				if _, err := p.c.BlockPut(ctx, b, scids[i].Prefix()); err != nil {
					return err
				}
			}
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		var visible, pinned []time.Duration
		for i, ci := range scids {
			base := make([]int, 3)
			for j, p := range peers {
				base[j] = p.held()
			}
			t0 := time.Now()
			if err := post(client, peers[0].url, ci); err != nil {
				return err
			}
			var vis time.Duration
			for {
				if vis == 0 {
					if _, err := peers[2].c.PinGet(ctx, ci); err == nil {
						vis = time.Since(t0)
					}
				}
				all := true
				for j, p := range peers {
					if p.held() < base[j]+1 {
						all = false
					}
				}
				if all && vis != 0 {
					pinned = append(pinned, time.Since(t0))
					visible = append(visible, vis)
					break
				}
				if time.Since(t0) > time.Minute {
					return fmt.Errorf("single pin %d not pinned on all 3 within a minute", i)
				}
				time.Sleep(500 * time.Microsecond)
			}
		}
		fmt.Printf("single pin on the idle cluster (%d): visible on peer 3 p50 %v p90 %v; pinned on all 3 p50 %v p90 %v\n",
			singles, pct(visible, 50), pct(visible, 90), pct(pinned, 50), pct(pinned, 90))
	}
	return nil
}

// benchPeer is one cluster peer with its REST API.
type benchPeer struct {
	h    host.Host
	c    *pincluster.Cluster
	url  string
	stop func()
	seen int // holds' cursor: cids[:seen] are known to be in the state
}

// startPeer starts peer i; kuboAPI is the Kubo RPC multiaddr of its
// connector ("": the in-process IPFS node).
func startPeer(ctx context.Context, dir, store, kuboAPI string, i int) (_ *benchPeer, err error) {
	p := &benchPeer{}
	var undo []func() // run in reverse by stop
	p.stop = func() {
		for _, f := range slices.Backward(undo) {
			f()
		}
	}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	if p.h, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = p.h.Close() })
	psCtx, psCancel := context.WithCancel(context.Background())
	undo = append(undo, psCancel)
	ps, err := pubsub.NewGossipSub(psCtx, p.h)
	if err != nil {
		return nil, err
	}
	opts := []pincluster.Option{pincluster.WithReplication(-1, -1), pincluster.WithPeerName(fmt.Sprint("peer", i+1))}
	if batchAge > 0 {
		opts = append(opts, pincluster.WithBatching(batchSize, batchAge))
	}
	switch store {
	case "badger":
		opts = append(opts, pincluster.WithBadger(dir))
	case "pebble":
		d, err := pebbleds.NewDatastore(dir)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { _ = d.Close() })
		opts = append(opts, pincluster.WithDatastore(d))
	case "memory":
	default:
		return nil, fmt.Errorf("-store %q: want badger, pebble or memory", store)
	}
	if kuboAPI != "" {
		conn, err := kubo.New(kubo.Config{APIAddr: kuboAPI, PinNames: kuboPinNames})
		if err != nil {
			return nil, err
		}
		opts = append(opts, pincluster.WithConnector(withoutDAGSize(conn)))
	}
	var api *rest.API
	opts = append(opts, pincluster.WithAPI(func(c *pincluster.Cluster) (pincluster.Component, error) {
		a, err := rest.New(c, rest.Config{ListenAddr: "127.0.0.1:0"})
		if err != nil {
			return nil, err
		}
		api = a
		return a, a.Start()
	}))
	if p.c, err = pincluster.New(ctx, p.h, nil, ps, opts...); err != nil {
		return nil, err
	}
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.c.Shutdown(sctx)
	})
	p.url = "http://" + api.Addr().String()
	return p, nil
}

// holds reports whether the peer's state has every CID, resuming from the
// last one found so that each poll costs only the new ones.
func (p *benchPeer) holds(ctx context.Context, cids []cid.Cid) bool {
	for p.seen < len(cids) {
		if _, err := p.c.PinGet(ctx, cids[p.seen]); err != nil {
			return false
		}
		p.seen++
	}
	return true
}

// held is the number of CIDs the peer's tracker knows its node holds.
func (p *benchPeer) held() int {
	s, ok := p.c.TrackerStats()
	if !ok {
		return 0
	}
	return s.Held
}

// consensusStats returns the peer's CRDT counters (zero with another
// consensus).
func (p *benchPeer) consensusStats() pincluster.ConsensusStats {
	s, _ := p.c.ConsensusStats()
	return s
}

// waitEach polls cond for each peer and returns the time from start at
// which each first held (or a minute and a half). It polls every 10 ms
// until acked is set (the last pin was acknowledged), then every
// millisecond: the convergence after the last acknowledgement is timed to
// the millisecond, and the polling costs the run's CPU less while the
// pins still come in.
func waitEach(peers []*benchPeer, start time.Time, acked *atomic.Bool, cond func(*benchPeer) bool) []time.Duration {
	out := make([]time.Duration, len(peers))
	left := len(peers)
	for left > 0 && time.Since(start) < 90*time.Second {
		for i, p := range peers {
			if out[i] == 0 && cond(p) {
				out[i] = time.Since(start).Round(time.Millisecond)
				left--
			}
		}
		if acked.Load() {
			time.Sleep(time.Millisecond)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// result is what drive measured.
type result struct {
	elapsed  time.Duration
	failed   int64
	lat      []time.Duration
	firstErr string
}

func (r result) print(n int) {
	fmt.Printf("accepted %d of %d in %v: %.0f pins/s; latency p50 %v p90 %v p99 %v max %v\n",
		n-int(r.failed), n, r.elapsed.Round(time.Millisecond), float64(n-int(r.failed))/r.elapsed.Seconds(),
		pct(r.lat, 50), pct(r.lat, 90), pct(r.lat, 99), pct(r.lat, 100))
	if r.failed > 0 {
		fmt.Printf("failed: %d (first: %s)\n", r.failed, r.firstErr)
	}
}

// drive posts every CID to base/pins/{cid} from clients goroutines, each
// with its own keep-alive connection.
func drive(base string, cids []cid.Cid, clients int) result {
	return driveFunc(cids, clients, func(client *http.Client, ci cid.Cid) error { return post(client, base, ci) })
}

// driveFunc calls do for every CID from clients goroutines, each with its
// own keep-alive HTTP client.
func driveFunc(cids []cid.Cid, clients int, do func(*http.Client, cid.Cid) error) result {
	var next atomic.Int64
	var failed atomic.Int64
	var mu sync.Mutex
	var firstErr string
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			for {
				i := next.Add(1) - 1
				if int(i) >= len(cids) {
					return
				}
				t0 := time.Now()
				if err := do(client, cids[i]); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), failed: failed.Load(), firstErr: firstErr}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	return r
}

func post(client *http.Client, base string, ci cid.Cid) error {
	u := base + "/pins/" + ci.String()
	if pinName != "" {
		u += "?name=" + url.QueryEscape(pinName)
	}
	resp, err := client.Post(u, "", nil)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i].Round(10 * time.Microsecond)
}

// counter counts HTTP requests by path.
type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func newCounter() *counter { return &counter{m: map[string]int{}} }

func (c *counter) add(path string) {
	c.mu.Lock()
	c.m[path]++
	c.mu.Unlock()
}

func (c *counter) reset() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *counter) perPin(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(c.m[k])/float64(n)))
	}
	return strings.Join(parts, ", ")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func rssMiB() int { return statusRSSMiB("/proc/self/status") }

// statusRSSMiB reads VmRSS from a /proc/<pid>/status file, in MiB.
func statusRSSMiB(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}
