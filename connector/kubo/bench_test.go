package kubo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/connector/kubo"
	"github.com/pincluster/pincluster/internal/kubotest"
)

// BenchmarkPin1000 pins 1,000 small blocks already local on one (offline)
// daemon, through the Connector and directly, so that the connector's
// overhead shows: one op = 1,000 pins. The pins are removed between
// iterations (not timed).
//
//	PINCLUSTER_KUBO=$PWD/.cache/bin/ipfs go test -run XXX -bench Pin1000 -benchtime 5x ./connector/kubo/
func BenchmarkPin1000(b *testing.B) {
	d := kubotest.Start(b, kubotest.Options{Offline: true})
	c := connect(b, d, kubo.Config{})
	ctx := context.Background()
	cids := make([]cid.Cid, 1000)
	args := make([]string, len(cids))
	for i := range cids {
		ci, err := c.BlockPut(ctx, []byte(fmt.Sprintf("benchmark block %d", i)), cid.Prefix{})
		if err != nil {
			b.Fatal(err)
		}
		cids[i], args[i] = ci, ci.String()
	}
	unpinAll := func(b *testing.B) {
		b.StopTimer()
		out := run(b, d, append([]string{"pin", "ls", "--type=recursive", "-q"}, []string{}...)...)
		if strings.Contains(out, cids[0].String()) {
			run(b, d, append([]string{"pin", "rm"}, args...)...)
		}
		b.StartTimer()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	rawPin := func(b *testing.B, ci string, progress bool) {
		u := d.APIURL + "/api/v0/pin/add?arg=" + ci + "&recursive=true"
		if progress {
			u += "&progress=true"
		}
		resp, err := client.Post(u, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
	parallel := func(b *testing.B, workers int, fn func(i int)) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(cids); i += workers {
					fn(i)
				}
			})
		}
		wg.Wait()
	}

	// interleaved alternates the connector and bare HTTP calls (with the
	// same progress=true) round by round, so that the machine's noise hits
	// both alike, and reports the ratio.
	b.Run("interleaved", func(b *testing.B) {
		var conn, raw time.Duration
		for i := range b.N {
			for k := range 2 {
				unpinAll(b)
				start := time.Now()
				if (i+k)%2 == 0 {
					for _, ci := range cids {
						if err := c.Pin(ctx, pincluster.NewPin(ci, pincluster.PinOptions{}), nil); err != nil {
							b.Fatal(err)
						}
					}
					conn += time.Since(start)
				} else {
					for _, ci := range args {
						rawPin(b, ci, true)
					}
					raw += time.Since(start)
				}
			}
		}
		b.ReportMetric(conn.Seconds()/float64(b.N), "connector-s/1000pins")
		b.ReportMetric(raw.Seconds()/float64(b.N), "http-s/1000pins")
		b.ReportMetric(conn.Seconds()/raw.Seconds(), "ratio")
	})
	b.Run("connector", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			for _, ci := range cids {
				if err := c.Pin(ctx, pincluster.NewPin(ci, pincluster.PinOptions{}), nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("http-per-cid-progress", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			for _, ci := range args {
				rawPin(b, ci, true)
			}
		}
	})
	b.Run("http-per-cid", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			for _, ci := range args {
				rawPin(b, ci, false)
			}
		}
	})
	b.Run("cli-one-call", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			run(b, d, append([]string{"pin", "add"}, args...)...)
		}
	})
	b.Run("connector-8-workers", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			parallel(b, 8, func(i int) {
				if err := c.Pin(ctx, pincluster.NewPin(cids[i], pincluster.PinOptions{}), nil); err != nil {
					b.Error(err)
				}
			})
		}
	})
	b.Run("http-per-cid-8-workers", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			parallel(b, 8, func(i int) { rawPin(b, args[i], false) })
		}
	})
	b.Run("http-per-cid-progress-8-workers", func(b *testing.B) {
		for range b.N {
			unpinAll(b)
			parallel(b, 8, func(i int) { rawPin(b, args[i], true) })
		}
	})
	unpinAll(b)
}

// BenchmarkPinClientOverhead isolates the client side: a fake API answers
// pin/add at once with Kubo's exact stream, so the difference between the
// Connector and a bare HTTP call is the connector's own cost. One op = one
// pin.
//
//	go test -run XXX -bench PinClientOverhead ./connector/kubo/
func BenchmarkPinClientOverhead(b *testing.B) {
	ci, _ := cid.Decode("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
	body := `{"Progress":1,"Bytes":3}` + "\n" + `{"Pins":["` + ci.String() + `"]}` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Stream-Error")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	defer srv.Close()
	c, err := kubo.New(kubo.Config{APIAddr: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	pin := pincluster.NewPin(ci, pincluster.PinOptions{})
	ctx := context.Background()

	b.Run("connector", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Pin(ctx, pin, func(pincluster.PinProgress) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Post(srv.URL+"/api/v0/pin/add?arg="+ci.String()+"&recursive=true&progress=true", "", nil)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkKuboCPUPerPin reports the CPU the Kubo daemon spends per pin
// (from /proc/<pid>/stat), for pins without and with a name passed on
// (Config.PinNames): 1,000 local 1 KiB blocks pinned from 10 goroutines,
// the tracker's default pin concurrency; one op = 1,000 pins, unpinned
// between iterations (outside the measure).
//
//	PINCLUSTER_KUBO=$PWD/.cache/bin/ipfs go test -run XXX -bench KuboCPUPerPin -benchtime 2x -count 4 ./connector/kubo/
func BenchmarkKuboCPUPerPin(b *testing.B) {
	d := kubotest.Start(b, kubotest.Options{Offline: true})
	ctx := context.Background()
	plain := connect(b, d, kubo.Config{})
	named := connect(b, d, kubo.Config{PinNames: true})
	cids := make([]cid.Cid, 1000)
	args := make([]string, len(cids))
	for i := range cids {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 512)
		ci, err := plain.BlockPut(ctx, data, cid.Prefix{})
		if err != nil {
			b.Fatal(err)
		}
		cids[i], args[i] = ci, ci.String()
	}
	pid := d.Pid()
	for _, tc := range []struct {
		name string
		c    *kubo.Connector
	}{{"unnamed", plain}, {"named", named}} {
		b.Run(tc.name, func(b *testing.B) {
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				if strings.Contains(run(b, d, "pin", "ls", "--type=recursive", "-q"), args[0]) {
					run(b, d, append([]string{"pin", "rm"}, args...)...)
				}
				b.StartTimer()
				c0 := procCPU(b, pid)
				var wg sync.WaitGroup
				for w := range 10 {
					wg.Go(func() {
						for i := w; i < len(cids); i += 10 {
							pin := pincluster.NewPin(cids[i], pincluster.PinOptions{Name: "benchmark pin"})
							if err := tc.c.Pin(ctx, pin, nil); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				cpu += procCPU(b, pid) - c0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(cids)), "kubo-cpu-µs/pin")
		})
	}
}

// procCPU returns the user and system CPU time of a process so far.
func procCPU(b *testing.B, pid int) time.Duration {
	d, err := kubotest.ProcCPU(pid)
	if err != nil {
		b.Skipf("no CPU time for pid %d: %v", pid, err)
	}
	return d
}
