// Command scale measures one pincluster peer at a large pinset (issue 19):
// the state's write rate and memory as the pinset grows, and, in a fresh
// process on the same directory, the restart until Ready, the idle RSS and
// the rates and peak memory of listing the pins and of StatusAll.
//
// The peer has its own libp2p host on loopback, the CRDT consensus, the
// state in Badger or Pebble under -dir, replication 1 and a connector that
// pins instantly and keeps the pinned CIDs in a file (not in memory), so
// that the RSS measured is the library's. CIDs are CIDv1 raw sha2-256 of
// the pin's index, so a later run can name them without storing them.
//
//	go run ./bench/scale -mode write -store badger -dir /tmp/s -n 1000000
//	go run ./bench/scale -mode open -store badger -dir /tmp/s
//
// Memory figures: RSS and peak RSS (VmRSS, VmHWM of /proc/self/status; the
// peak is reset before each phase) and the Go heap (runtime/metrics
// /memory/classes/heap/objects:bytes, sampled every 5 ms for peaks). CPU
// figures (the process's user and system time, from getrusage: Linux, as
// /proc) say whether the work per pin grows on a machine whose load makes
// rates alone unreliable.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	cid "github.com/ipfs/go-cid"
	pebbleds "github.com/ipfs/go-ds-pebble"
	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	mc "github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"

	"github.com/pincluster/pincluster"
)

func main() {
	mode := flag.String("mode", "write", "write (add -n pins from -from), open (restart, list, status) or join (a fresh peer in a child process joins the peer of -dir)")
	store := flag.String("store", "badger", "state store: badger, pebble (WithPebble), or pebble-default (Pebble opened here, with its own defaults changed by -pebblecache and -pebblebloom, given by WithDatastore)")
	dir := flag.String("dir", "", "data directory (required)")
	n := flag.Int("n", 1_000_000, "pins to write")
	from := flag.Int("from", 0, "index of the first pin to write")
	clients := flag.Int("clients", 64, "parallel callers of Cluster.Pin")
	every := flag.Int("every", 100_000, "report every this many pins")
	profDir := flag.String("profiles", "", "open: write CPU profiles of List and StatusAll and heap profiles after 500,000 items into this directory")
	snapshots := flag.Int("snapshots", -1, "WithSnapshots(n, false): a snapshot every n deltas (0: none; -1: the library's default)")
	heapAt := flag.Int("heapprofile-at", 0, "write a heap profile to -dir/heap.pprof after this many pins")
	limit := flag.Duration("for", 0, "write: stop starting pins after this long (0: no limit) and shut down cleanly, so that a run that will not finish in time leaves a directory -mode open can use")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060), to take CPU profiles at chosen steps of a long run")
	joinDir := flag.String("joindir", "", "join: the fresh peer's data directory (must not exist)")
	joinStore := flag.String("joinstore", "", "join: the fresh peer's store (default: -store)")
	connect := flag.String("connect", "", "joiner (the child of -mode join): the source peer's multiaddr")
	height := flag.Uint64("height", 0, "joiner: the source's DAG height to reach")
	want := flag.Int("want", 0, "joiner: the pins the source holds")
	idleFor := flag.Duration("idle", 0, "open: after the idle RSS, stay idle this long and report the CPU used (the periodic state sync at this pinset)")
	flag.Int64Var(&pebbleCache, "pebblecache", 0, "-store pebble-default: Pebble's block cache in bytes (0: Pebble's default, 8 MiB)")
	flag.BoolVar(&pebbleBloom, "pebblebloom", false, "-store pebble-default: Bloom filters (10 bits per key) on every level")
	flag.Parse()
	snapshotEvery = *snapshots
	if *pprofAddr != "" {
		go func() { log.Printf("pprof: %v", http.ListenAndServe(*pprofAddr, nil)) }()
	}
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	var err error
	switch *mode {
	case "write":
		err = write(*store, *dir, *n, *from, *clients, *every, *heapAt, *limit)
	case "open":
		err = open(*store, *dir, *profDir, *idleFor)
	case "join":
		js := *joinStore
		if js == "" {
			js = *store
		}
		err = join(*store, *dir, js, *joinDir, *limit)
	case "joiner":
		err = joiner(*store, *dir, *connect, *height, *want, *limit)
	default:
		err = fmt.Errorf("-mode %q: want write or open", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// pinCID is the CID of pin i.
func pinCID(i int) cid.Cid {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h, _ := mh.Sum(b[:], mh.SHA2_256, -1)
	return cid.NewCidV1(uint64(mc.Raw), h)
}

// peer is the one cluster peer.
type peer struct {
	c    *pincluster.Cluster
	h    host.Host
	conn *fileConnector
	stop func()
}

// snapshotEvery is -snapshots.
var snapshotEvery = -1

// pebbleCache and pebbleBloom are -pebblecache and -pebblebloom.
var (
	pebbleCache int64
	pebbleBloom bool
)

// start starts the peer on dir; with connect (a multiaddr with /p2p/), its
// host connects there before the pubsub and the Cluster start, so that a
// joining peer finds the other at once. It returns once the Cluster is
// Ready.
func start(ctx context.Context, store, dir, connect string) (*peer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The same peer across runs: pins are allocated to its ID.
	key, err := loadKey(filepath.Join(dir, "identity.key"))
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, err
	}
	if connect != "" {
		ai, err := libp2ppeer.AddrInfoFromString(connect)
		if err == nil {
			err = h.Connect(ctx, *ai)
		}
		if err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("connect to %s: %w", connect, err)
		}
	}
	psCtx, psCancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(psCtx, h)
	if err != nil {
		psCancel()
		_ = h.Close()
		return nil, err
	}
	conn, err := newFileConnector(filepath.Join(dir, "pinned.cids"))
	if err != nil {
		psCancel()
		_ = h.Close()
		return nil, err
	}
	opts := []pincluster.Option{pincluster.WithReplication(1, 1), pincluster.WithConnector(conn)}
	closeStore := func() {}
	if snapshotEvery >= 0 {
		opts = append(opts, pincluster.WithSnapshots(snapshotEvery, false))
	}
	switch store {
	case "badger":
		opts = append(opts, pincluster.WithBadger(filepath.Join(dir, "state")))
	case "pebble":
		opts = append(opts, pincluster.WithPebble(filepath.Join(dir, "state")))
	case "pebble-default":
		// Pebble opened here, with its defaults (8 MiB cache, no
		// filters) or -pebblecache and -pebblebloom: for comparisons.
		po := &pebble.Options{CacheSize: pebbleCache}
		if pebbleBloom {
			for i := range po.Levels {
				po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
			}
		}
		pd, err := pebbleds.NewDatastore(filepath.Join(dir, "state"), pebbleds.WithPebbleOpts(po))
		if err != nil {
			psCancel()
			_ = h.Close()
			_ = conn.Close()
			return nil, err
		}
		opts = append(opts, pincluster.WithDatastore(pd))
		closeStore = func() { _ = pd.Close() }
	default:
		psCancel()
		_ = h.Close()
		_ = conn.Close()
		return nil, fmt.Errorf("-store %q: want badger, pebble or pebble-default", store)
	}
	c, err := pincluster.New(ctx, h, nil, ps, opts...)
	if err != nil {
		psCancel()
		_ = h.Close()
		_ = conn.Close()
		closeStore()
		return nil, err
	}
	p := &peer{c: c, h: h, conn: conn, stop: func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Shutdown(sctx); err != nil {
			log.Printf("shutdown: %v", err)
		}
		psCancel()
		_ = h.Close()
		_ = conn.Close()
		closeStore()
	}}
	if err := c.WaitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func write(store, dir string, n, from, clients, every, heapAt int, limit time.Duration) error {
	ctx := context.Background()
	resetPeak()
	t0 := time.Now()
	p, err := start(ctx, store, dir, "")
	if err != nil {
		return err
	}
	fmt.Printf("write %s: %d pins from %d, %d callers; ready in %v\n", store, n, from, clients, time.Since(t0).Round(time.Millisecond))
	mon := startMonitor()
	var next, done atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	var deadline time.Time
	if limit > 0 {
		deadline = start.Add(limit)
	}
	last, lastAt, lastCPU := 0, start, cpuTime()
	var repMu sync.Mutex
	report := func(k int) {
		repMu.Lock()
		defer repMu.Unlock()
		now := time.Now()
		rss, hwm := procStatus()
		anon, file := rssSplit()
		cpu := cpuTime()
		fmt.Printf("  %9d pins  %7.0f/s (last %d: %7.0f/s, %.0f CPU-us/pin)  RSS %5d MiB (anon %d, file %d, of it dirty %d)  peak RSS %5d MiB  heap %5d MiB  peak heap %5d MiB  load %s\n",
			k, float64(k)/now.Sub(start).Seconds(), k-last, float64(k-last)/now.Sub(lastAt).Seconds(),
			float64((cpu-lastCPU).Microseconds())/float64(k-last),
			rss, anon, file, fileDirtyMiB(), hwm, heapMiB(), mon.peakMiB(), loadavg())
		last, lastAt, lastCPU = k, now, cpu
		if heapAt > 0 && k == heapAt {
			if err := writeHeap(filepath.Join(dir, "heap.pprof")); err != nil {
				log.Printf("heap profile: %v", err)
			}
		}
	}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if _, err := p.c.Pin(ctx, pinCID(from+i), pincluster.PinOptions{}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				if k := int(done.Add(1)); k%every == 0 || k == n {
					report(k)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	mon.stop()
	wrote := int(done.Load())
	if wrote < n {
		fmt.Printf("stopped by -for %v after %d of %d pins (the next run's -from is %d)\n", limit, wrote, n, from+wrote)
	}
	fmt.Printf("wrote %d pins in %v: %.0f pins/s; failed %d %v\n", wrote, elapsed.Round(time.Millisecond), float64(wrote)/elapsed.Seconds(), failed.Load(), firstErr.Load())
	_, hwm := procStatus()
	fmt.Printf("peak RSS of the process %d MiB, peak Go heap %d MiB\n", hwm, mon.peakMiB())
	if st, ok := p.c.ConsensusStats(); ok {
		fmt.Printf("deltas written %d (%.1f pins each)\n", st.LocalDeltas, float64(wrote)/float64(max(st.LocalDeltas, 1)))
	}
	t1 := time.Now()
	p.stop()
	fmt.Printf("shutdown %v; disk: %s\n", time.Since(t1).Round(time.Millisecond), du(filepath.Join(dir, "state")))
	if failed.Load() > 0 {
		return fmt.Errorf("%d pins failed", failed.Load())
	}
	return nil
}

func open(store, dir, profDir string, idleFor time.Duration) error {
	ctx := context.Background()
	resetPeak()
	t0 := time.Now()
	p, err := start(ctx, store, dir, "")
	if err != nil {
		return err
	}
	defer p.stop()
	ready := time.Since(t0)
	rss, hwm := procStatus()
	anon, file := rssSplit()
	fmt.Printf("open %s: Ready in %v; RSS %d MiB (anon %d, file %d), peak RSS %d MiB, heap %d MiB; load %s\n", store, ready.Round(time.Millisecond), rss, anon, file, hwm, heapMiB(), loadavg())
	// Idle: the start-up state sync hands every pin to the tracker; wait
	// until it has looked at them all (the tracker has loaded what the
	// node holds), then 10 s more.
	for {
		s, ok := p.c.TrackerStats()
		if ok && s.Held >= p.conn.count() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(10 * time.Second)
	rss, hwm = procStatus()
	anon, file = rssSplit()
	fmt.Printf("idle at %v: RSS %d MiB (anon %d, file %d, of it dirty %d), peak RSS %d MiB, heap %d MiB; load %s\n", time.Since(t0).Round(time.Second), rss, anon, file, fileDirtyMiB(), hwm, heapMiB(), loadavg())

	if idleFor > 0 {
		// The peer's periodic work at this pinset (the state sync every
		// minute by default, the expiry, metrics): CPU over idleFor.
		cpu0, t := cpuTime(), time.Now()
		time.Sleep(idleFor)
		used := cpuTime() - cpu0
		rss, hwm = procStatus()
		anon, file = rssSplit()
		fmt.Printf("idle for %v: CPU %v (%.0f %% of a core); RSS %d MiB (anon %d, file %d), peak RSS %d MiB; load %s\n",
			time.Since(t).Round(time.Second), used.Round(time.Millisecond), 100*used.Seconds()/time.Since(t).Seconds(), rss, anon, file, hwm, loadavg())
	}

	phase := func(name string, seq func(yield func() bool)) {
		runtime.GC()
		resetPeak()
		base := heapMiB()
		mon := startMonitor()
		t, cpu0 := time.Now(), cpuTime()
		k := 0
		var cpu *os.File
		if profDir != "" {
			cpu, _ = os.Create(filepath.Join(profDir, "cpu-"+strings.Fields(name)[0]+".pprof"))
			_ = pprof.StartCPUProfile(cpu)
		}
		seq(func() bool {
			k++
			if profDir != "" && k == 500_000 {
				if err := writeHeap(filepath.Join(profDir, "heap-"+strings.Fields(name)[0]+".pprof")); err != nil {
					log.Printf("heap profile: %v", err)
				}
			}
			return true
		})
		if cpu != nil {
			pprof.StopCPUProfile()
			_ = cpu.Close()
		}
		d, used := time.Since(t), cpuTime()-cpu0
		mon.stop()
		rss, hwm := procStatus()
		fmt.Printf("%s: %d in %v: %.0f/s (CPU %v: %.0f/CPU-s); heap before %d MiB, peak %d MiB; RSS %d MiB, peak RSS %d MiB; load %s\n",
			name, k, d.Round(time.Millisecond), float64(k)/d.Seconds(), used.Round(time.Millisecond), float64(k)/used.Seconds(),
			base, mon.peakMiB(), rss, hwm, loadavg())
	}
	phase("List", func(yield func() bool) {
		for _, err := range p.c.Pins(ctx, pincluster.PinFilter{}) {
			if err != nil {
				log.Fatal(err)
			}
			yield()
		}
	})
	phase("StatusAll (local)", func(yield func() bool) {
		for _, err := range p.c.StatusAll(ctx, pincluster.StatusFilter{Local: true}) {
			if err != nil {
				log.Fatal(err)
			}
			yield()
		}
	})
	t1 := time.Now()
	fmt.Printf("disk: %s\n", du(filepath.Join(dir, "state")))
	_ = t1
	return nil
}

// join opens the peer of dir (the source) and starts, in a child process
// (so that its memory is measured alone), a fresh peer on joinDir that
// connects to it and joins; the child reports until it is in sync.
func join(store, dir, joinStore, joinDir string, limit time.Duration) error {
	if joinDir == "" {
		return errors.New("-joindir is required")
	}
	if _, err := os.Stat(joinDir); err == nil {
		return fmt.Errorf("-joindir %s exists: a fresh peer needs a new directory", joinDir)
	}
	ctx := context.Background()
	t0 := time.Now()
	p, err := start(ctx, store, dir, "")
	if err != nil {
		return err
	}
	defer p.stop()
	st, _ := p.c.ConsensusStats()
	want := p.conn.count()
	addrs := p.h.Addrs()
	if len(addrs) == 0 {
		return errors.New("source has no listen address")
	}
	addr := fmt.Sprintf("%s/p2p/%s", addrs[0], p.h.ID())
	fmt.Printf("source %s: Ready in %v, %d pins, height %d, %d heads; load %s\n", store, time.Since(t0).Round(time.Millisecond), want, st.Height, st.Heads, loadavg())
	args := []string{"-mode", "joiner", "-store", joinStore, "-dir", joinDir, "-connect", addr,
		"-height", fmt.Sprint(st.Height), "-want", fmt.Sprint(want)}
	if limit > 0 {
		args = append(args, "-for", limit.String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cpu0 := cpuTime()
	err = cmd.Run()
	fmt.Printf("source CPU during the join %v; RSS %d MiB (anon %d, file %d); load %s\n",
		(cpuTime() - cpu0).Round(time.Millisecond), func() int { r, _ := procStatus(); return r }(), func() int { a, _ := rssSplit(); return a }(), func() int { _, f := rssSplit(); return f }(), loadavg())
	return err
}

// joiner is the child of join: a fresh peer that connects to the source
// and waits until its DAG reaches the source's height with nothing
// queued; then it counts its pins.
func joiner(store, dir, connect string, height uint64, want int, limit time.Duration) error {
	ctx := context.Background()
	resetPeak()
	mon := startMonitor()
	t0, cpu0 := time.Now(), cpuTime()
	p, err := start(ctx, store, dir, connect)
	if err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("joiner %s: Ready in %v\n", store, time.Since(t0).Round(time.Millisecond))
	lastPrint := time.Now()
	for {
		st, ok := p.c.ConsensusStats()
		if ok && st.Height >= height && st.Heads == 1 && st.QueuedDeltas == 0 {
			break
		}
		if limit > 0 && time.Since(t0) > limit {
			return fmt.Errorf("not in sync after %v: %+v", limit, st)
		}
		if time.Since(lastPrint) >= 15*time.Second {
			lastPrint = time.Now()
			rss, hwm := procStatus()
			anon, file := rssSplit()
			fmt.Printf("  %v: height %d of %d, %d heads, %d deltas applied, %d queued; RSS %d MiB (anon %d, file %d), peak RSS %d MiB, peak heap %d MiB; load %s\n",
				time.Since(t0).Round(time.Second), st.Height, height, st.Heads, st.RemoteDeltas, st.QueuedDeltas, rss, anon, file, hwm, mon.peakMiB(), loadavg())
		}
		time.Sleep(100 * time.Millisecond)
	}
	took, cpu := time.Since(t0), cpuTime()-cpu0
	st, _ := p.c.ConsensusStats()
	rss, hwm := procStatus()
	anon, file := rssSplit()
	fmt.Printf("joiner in sync in %v (CPU %v): height %d, %d deltas applied above the snapshot; RSS %d MiB (anon %d, file %d), peak RSS %d MiB, peak heap %d MiB; load %s\n",
		took.Round(time.Millisecond), cpu.Round(time.Millisecond), st.Height, st.RemoteDeltas, rss, anon, file, hwm, mon.peakMiB(), loadavg())
	mon.stop()
	n := 0
	for _, err := range p.c.Pins(ctx, pincluster.PinFilter{}) {
		if err != nil {
			return err
		}
		n++
	}
	fmt.Printf("joiner holds %d pins (source %d); disk: %s\n", n, want, du(filepath.Join(dir, "state")))
	if n != want {
		return fmt.Errorf("joiner holds %d pins, source %d", n, want)
	}
	return nil
}

// cpuTime returns the CPU time the process has used (user and system, all
// threads): on a shared machine, CPU time per pin tells whether the work
// per pin grows, which the rate alone cannot.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadKey reads the peer's private key from path, or makes one and writes
// it there.
func loadKey(path string) (crypto.PrivKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		return crypto.UnmarshalPrivateKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return key, os.WriteFile(path, b, 0o600)
}

// monitor samples the Go heap every 5 ms and keeps its peak.
type monitor struct {
	peak atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func startMonitor() *monitor {
	m := &monitor{done: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapBytes(); h > m.peak.Load() {
				m.peak.Store(h)
			}
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *monitor) stop()        { close(m.done); m.wg.Wait() }
func (m *monitor) peakMiB() int { return int(m.peak.Load() >> 20) }

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func heapMiB() int { return int(heapBytes() >> 20) }

// procStatus returns VmRSS and VmHWM in MiB.
func procStatus() (rss, hwm int) {
	v := procStatusMiB("VmRSS", "VmHWM")
	return v[0], v[1]
}

// rssSplit returns RssAnon and RssFile in MiB: memory of the process
// against pages of mapped files (badger's tables and value log), which the
// kernel can drop.
func rssSplit() (anon, file int) {
	v := procStatusMiB("RssAnon", "RssFile")
	return v[0], v[1]
}

// fileDirtyMiB returns the dirty part of the process's file-backed
// mappings (/proc/self/smaps: Shared_Dirty + Private_Dirty of mappings of
// a path): the rest of RssFile is clean page cache mapped into the
// process, which the kernel can drop without writing anything.
func fileDirtyMiB() int {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return -1
	}
	kb, file := 0, false
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// A mapping's header: address perms offset dev inode [path].
			file = len(f) >= 6 && strings.HasPrefix(f[5], "/")
			continue
		}
		if file && (f[0] == "Shared_Dirty:" || f[0] == "Private_Dirty:") && len(f) >= 2 {
			var v int
			fmt.Sscan(f[1], &v)
			kb += v
		}
	}
	return kb >> 10
}

// procStatusMiB returns the named fields of /proc/self/status (given in
// kB there) in MiB, 0 for a field not found.
func procStatusMiB(names ...string) []int {
	out := make([]int, len(names))
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for l := range strings.Lines(string(b)) {
		for i, name := range names {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				var kb int
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				out[i] = kb >> 10
			}
		}
	}
	return out
}

// resetPeak resets VmHWM to the current RSS.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func du(path string) string {
	out, err := exec.Command("du", "-sh", path).Output()
	if err != nil {
		return err.Error()
	}
	return strings.Fields(string(out))[0]
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
