package main

// The Kubo side of the benchmark: three Kubo daemons (started here with
// internal/kubotest, or taken by address), a counting reverse proxy in
// front of each one's RPC API, the time at which each Kubo answered the
// last pin/add, and the CPU seconds and RSS of processes read from /proc.
// -target drives another implementation's REST API with the same client
// and measures its Kubo nodes the same way.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// proxyListen is -proxy-listen; peerPorts is -peer-ports; noDAGSize is
// -no-dagsize; pinName is -name; kuboPinNames is -kubo-pin-names.
var (
	proxyListen  string
	peerPorts    string
	noDAGSize    bool
	pinName      string
	kuboPinNames bool
)

func init() {
	flag.StringVar(&pinName, "name", "", "give every pin this name (POST /pins/{cid}?name=...)")
	flag.BoolVar(&kuboPinNames, "kubo-pin-names", false, "set the Kubo connector's PinNames: pass pin names on to Kubo")
	flag.BoolVar(&noDAGSize, "no-dagsize", false, "experiment: hide the Kubo connector's DAGSize (and its other optional abilities) from the cluster; the allocation of pins with a replication factor then asks Kubo no dag/stat (replication -1 pins never ask it)")
	flag.StringVar(&proxyListen, "proxy-listen", "", "listen addresses (host:port, comma separated) of the counting proxies in front of the three Kubo RPC APIs (default: any free port); with -target, point the other cluster's connectors at them")
	flag.StringVar(&peerPorts, "peer-ports", "", "with -target: a TCP port each of the other cluster's peers listens on (e.g. their REST APIs), comma separated, to find their processes for CPU seconds and RSS")
}

// withoutDAGSize returns conn, or with -no-dagsize conn without its
// optional abilities (DAGSizer among them).
func withoutDAGSize(conn *kubo.Connector) pincluster.IPFSConnector {
	if noDAGSize {
		return struct{ pincluster.IPFSConnector }{conn}
	}
	return conn
}

// kuboSet is the three Kubo daemons of a run and a counting proxy in front
// of each.
type kuboSet struct {
	apis    []string // RPC multiaddrs of the daemons themselves
	pids    []int    // the daemons' process IDs (0: not found)
	proxies []*kuboProxy
	stop    func()
}

// openKubos starts three Kubo daemons (spec "start", which needs
// PINCLUSTER_KUBO) or takes three RPC multiaddrs, comma separated, and
// opens a counting proxy in front of each (on the -proxy-listen
// addresses, or free ports).
func openKubos(dir, spec string) (_ *kuboSet, err error) {
	k := &kuboSet{stop: func() {}}
	var undo []func()
	k.stop = func() {
		for _, f := range slices.Backward(undo) {
			f()
		}
	}
	defer func() {
		if err != nil {
			k.stop()
		}
	}()
	if spec == "start" {
		tb := &launcherTB{dir: dir}
		undo = append(undo, tb.cleanup)
		for range 3 {
			d, err := tb.start()
			if err != nil {
				return nil, err
			}
			k.apis = append(k.apis, d.APIAddr.String())
		}
	} else {
		k.apis = strings.Split(spec, ",")
		if len(k.apis) != 3 {
			return nil, fmt.Errorf("-kubo: want \"start\" or 3 addresses, got %d", len(k.apis))
		}
	}
	var listen []string
	if proxyListen != "" {
		if listen = strings.Split(proxyListen, ","); len(listen) != 3 {
			return nil, fmt.Errorf("-proxy-listen: want 3 addresses, got %d", len(listen))
		}
	}
	for i, a := range k.apis {
		hostport, err := hostPort(a)
		if err != nil {
			return nil, err
		}
		k.pids = append(k.pids, pidListening(hostport))
		l := "127.0.0.1:0"
		if listen != nil {
			l = listen[i]
		}
		p, err := newKuboProxy(hostport, l)
		if err != nil {
			return nil, err
		}
		undo = append(undo, p.close)
		k.proxies = append(k.proxies, p)
	}
	return k, nil
}

// putBlocks puts every block into every daemon, past the proxies.
func (k *kuboSet) putBlocks(ctx context.Context, data [][]byte, cids []cid.Cid) error {
	for _, a := range k.apis {
		conn, err := kubo.New(kubo.Config{APIAddr: a})
		if err != nil {
			return err
		}
		err = parallel(8, len(data), func(i int) error {
			_, err := conn.BlockPut(ctx, data[i], cids[i].Prefix())
			return err
		})
		_ = conn.Shutdown(ctx)
		if err != nil {
			return fmt.Errorf("block put to %s: %w", a, err)
		}
	}
	return nil
}

// reset clears the proxies' counts; the clock of waitPinned starts here.
func (k *kuboSet) reset() {
	for _, p := range k.proxies {
		p.reset()
	}
}

// waitPinned waits until every daemon has answered a pin/add of each of
// cids (or d passes) and returns, for each, the time from start of its
// last such answer (0: not all within d).
func (k *kuboSet) waitPinned(cids []cid.Cid, start time.Time, d time.Duration) []time.Duration {
	want := make([]string, len(cids))
	for i, c := range cids {
		want[i] = c.String()
	}
	out := make([]time.Duration, len(k.proxies))
	seen := make([]int, len(k.proxies)) // want[:seen[i]] were pinned by Kubo i
	left := len(k.proxies)
	for left > 0 && time.Since(start) < d {
		for i, p := range k.proxies {
			if out[i] != 0 {
				continue
			}
			if at, ok := p.pinnedAll(want, &seen[i]); ok {
				out[i] = at.Sub(start).Round(time.Millisecond)
				left--
			}
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

// cpuSeconds returns each daemon's CPU seconds so far.
func (k *kuboSet) cpuSeconds() []float64 {
	out := make([]float64, len(k.pids))
	for i, pid := range k.pids {
		out[i] = procCPU(pid)
	}
	return out
}

// printRun prints the daemons' CPU seconds since cpu0 per pin, their RSS
// and the RPC calls per pin by endpoint.
func (k *kuboSet) printRun(cpu0 []float64, n int) {
	cpu := k.cpuSeconds()
	var total float64
	for i, pid := range k.pids {
		d := cpu[i] - cpu0[i]
		total += d
		fmt.Printf("kubo %d (pid %d): CPU %.2f s for the run (%.0f µs per pin), RSS %d MiB; RPC calls per pin: %s\n",
			i+1, pid, d, d/float64(n)*1e6, procRSSMiB(pid), k.proxies[i].calls.perPin(n))
	}
	fmt.Printf("kubo total: CPU %.2f s, %.0f µs per pin per node\n", total, total/float64(n*len(k.pids))*1e6)
}

// runTarget drives another implementation's REST API (IPFS Cluster's) at
// base: it puts the blocks into its Kubo daemons (-kubo), waits until a
// warm-up pin is pinned on all three, then posts the N pins and reports
// the client's figures, the time until every Kubo answered pin/add for
// each, the daemons' CPU and calls per pin, and the CPU seconds and RSS
// of the processes listening on -peer-ports.
func runTarget(ctx context.Context, base string, kubos *kuboSet, data [][]byte, cids []cid.Cid, clients int) error {
	n := len(cids)
	if kubos == nil {
		res := drive(base, cids, clients)
		res.print(n)
		return nil
	}
	for i, p := range kubos.proxies {
		fmt.Printf("kubo %d: RPC %s behind the proxy %s\n", i+1, kubos.apis[i], p.addr)
	}
	fmt.Println("proxies ready")
	wdata, wcids := randomBlocks(1)
	if err := kubos.putBlocks(ctx, wdata, wcids); err != nil {
		return err
	}
	warmStart := time.Now()
	warm := &http.Client{}
	if err := waitFor(5*time.Minute, func() bool { return post(warm, base, wcids[0]) == nil }); err != nil {
		return fmt.Errorf("warm-up pin: %w", err)
	}
	warm.CloseIdleConnections()
	if slices.Contains(kubos.waitPinned(wcids, warmStart, 5*time.Minute), 0) {
		return errors.New("warm-up pin not pinned on all 3 Kubo daemons within 5 minutes")
	}
	if err := kubos.putBlocks(ctx, data, cids); err != nil {
		return err
	}
	var pids []int
	if peerPorts != "" {
		for p := range strings.SplitSeq(peerPorts, ",") {
			pid := pidListening(net.JoinHostPort("127.0.0.1", strings.TrimSpace(p)))
			if pid == 0 {
				return fmt.Errorf("-peer-ports: no process listens on port %s", p)
			}
			pids = append(pids, pid)
		}
	}
	kubos.reset()
	kcpu0 := kubos.cpuSeconds()
	pcpu0 := make([]float64, len(pids))
	for i, pid := range pids {
		pcpu0[i] = procCPU(pid)
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	res := drive(base, cids, clients)
	res.print(n)
	pt := kubos.waitPinned(cids, start, 5*time.Minute)
	fmt.Printf("pinned on kubo 1,2,3 after %v (Kubo's last pin/add answer, from the start)\n", pt)
	fmt.Printf("this process (the clients and the 3 proxies): CPU %.2f s\n", cpuSeconds()-cpu0)
	kubos.printRun(kcpu0, n)
	for i, pid := range pids {
		fmt.Printf("cluster peer %d (pid %d): CPU %.2f s, RSS %d MiB\n", i+1, pid, procCPU(pid)-pcpu0[i], procRSSMiB(pid))
	}
	if res.failed > 0 || slices.Contains(pt, 0) {
		return fmt.Errorf("%d pins refused, or not pinned on every Kubo within 5 minutes", res.failed)
	}
	return nil
}

// kuboProxy is a reverse proxy to one Kubo RPC API that counts requests by
// path and records the CIDs whose pin/add Kubo answered with a result.
type kuboProxy struct {
	addr  string // multiaddr of the proxy
	calls *counter
	srv   *http.Server

	mu     sync.Mutex
	pinned map[string]time.Time // CID argument of a successful pin/add: when
}

func newKuboProxy(target, listen string) (*kuboProxy, error) {
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("proxy listen %s: %w", listen, err)
	}
	p := &kuboProxy{calls: newCounter(), pinned: map[string]time.Time{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.add(r.URL.Path)
		// Kubo may answer (and the proxy, flushing at once, pass on its
		// headers) before the request body has been read to its end; an
		// HTTP/1 server then stops the reads of that body, the copy to
		// Kubo fails and the proxy cuts the answer short (the connector saw
		// "unexpected EOF" on about 1 block/put in 20 runs). Full duplex
		// keeps the body readable, as it is when the connector talks to
		// Kubo with no proxy between.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.URL.Path != "/api/v0/pin/add" {
			rp.ServeHTTP(w, r)
			return
		}
		sw := &pinAddWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		if sw.pinned {
			now := time.Now()
			p.mu.Lock()
			for _, a := range r.URL.Query()["arg"] {
				p.pinned[strings.TrimPrefix(a, "/ipfs/")] = now
			}
			p.mu.Unlock()
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	tcp := ln.Addr().(*net.TCPAddr)
	p.addr = fmt.Sprintf("/ip4/%s/tcp/%d", tcp.IP, tcp.Port)
	return p, nil
}

func (p *kuboProxy) close() { _ = p.srv.Close() }

func (p *kuboProxy) reset() {
	p.calls.reset()
	p.mu.Lock()
	clear(p.pinned)
	p.mu.Unlock()
}

// pinnedAll reports whether every CID in want was pinned, resuming at
// *seen, and when the last of them was.
func (p *kuboProxy) pinnedAll(want []string, seen *int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; *seen < len(want); *seen++ {
		if _, ok := p.pinned[want[*seen]]; !ok {
			return time.Time{}, false
		}
	}
	var last time.Time
	for _, w := range want {
		if at := p.pinned[w]; at.After(last) {
			last = at
		}
	}
	return last, true
}

// pinAddWriter passes a pin/add answer on and notes whether it carried the
// result ("Pins"), which Kubo sends once the pin is done.
type pinAddWriter struct {
	http.ResponseWriter
	status int
	pinned bool
}

func (w *pinAddWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *pinAddWriter) Write(b []byte) (int, error) {
	if (w.status == 0 || w.status == http.StatusOK) && bytes.Contains(b, []byte(`"Pins":[`)) {
		w.pinned = true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the connection's writer.
func (w *pinAddWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets the proxy stream Kubo's progress lines.
func (w *pinAddWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// hostPort turns /ip4/H/tcp/P into H:P.
func hostPort(maddr string) (string, error) {
	parts := strings.Split(strings.Trim(maddr, "/"), "/")
	if len(parts) < 4 || parts[2] != "tcp" {
		return "", fmt.Errorf("kubo address %q: want /ip4/HOST/tcp/PORT", maddr)
	}
	return net.JoinHostPort(parts[1], parts[3]), nil
}

// pidListening finds the process listening on the TCP port of hostport,
// through /proc (0 when not found).
func pidListening(hostport string) int {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	var inodes []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == pn {
				inodes = append(inodes, "socket:["+fs[9]+"]")
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		l, err := os.Readlink(fd)
		if err != nil || !slices.Contains(inodes, l) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		if pid != os.Getpid() {
			return pid
		}
	}
	return 0
}

// procCPU returns the user+system CPU seconds of a process (0 when it
// cannot be read).
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	d, err := kubotest.ProcCPU(pid)
	if err != nil {
		return 0
	}
	return d.Seconds()
}

// procRSSMiB returns a process's resident set size in MiB.
func procRSSMiB(pid int) int {
	if pid == 0 {
		return 0
	}
	return statusRSSMiB(fmt.Sprintf("/proc/%d/status", pid))
}

// parallel calls f(0..n-1) from workers goroutines and returns the first
// error.
func parallel(workers, n int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// launcherTB lets a program start Kubo daemons with internal/kubotest,
// which reports through testing.TB: a fatal report becomes an error of
// start, and the cleanups run when the program is done with the daemons.
type launcherTB struct {
	testing.TB // not used: every method kubotest calls is below
	dir        string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// tbFatal carries a fatal report of kubotest out of start.
type tbFatal string

// start starts one daemon with kubotest's defaults.
func (t *launcherTB) start() (d *kubotest.Daemon, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(tbFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(string(msg))
		}
	}()
	return kubotest.Start(t, kubotest.Options{}), nil
}

func (t *launcherTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

func (t *launcherTB) Helper()      {}
func (t *launcherTB) Name() string { return "httppin" }
func (t *launcherTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *launcherTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}
func (t *launcherTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "kubo")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
func (t *launcherTB) Logf(format string, args ...any) { log.Printf(format, args...) }
func (t *launcherTB) Fatalf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	panic(tbFatal(fmt.Sprintf(format, args...)))
}
func (t *launcherTB) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *launcherTB) Skip(args ...any)  { t.Fatal(args...) }
