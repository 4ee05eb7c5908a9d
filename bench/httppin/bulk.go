package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
)

// bulkStreams is -bulk: the number of parallel POST /pins/stream requests
// that carry the pins (0: one POST /pins/{cid} per pin). bulkFlushEvery is
// -bulk-flush: how many lines a stream writes between flushes (the server
// pins what it has received, so the lines arrive in batches).
var (
	bulkStreams    int
	bulkFlushEvery int
)

func init() {
	flag.IntVar(&bulkStreams, "bulk", 0, "send the pins as NDJSON lines through this many parallel POST /pins/stream requests instead of one POST /pins/{cid} each")
	flag.IntVar(&bulkFlushEvery, "bulk-flush", 512, "with -bulk: lines each stream writes between flushes")
}

// driveBulk sends the CIDs through streams parallel POST /pins/stream
// requests (stream w sends cids[w], cids[w+streams], ...) and waits for
// every line's answer. A line's latency runs from its flush to its answer.
func driveBulk(base string, cids []cid.Cid, streams int) result {
	var mu sync.Mutex
	res := result{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range streams {
		var mine []cid.Cid
		for i := w; i < len(cids); i += streams {
			mine = append(mine, cids[i])
		}
		wg.Go(func() {
			lat, failed, err := bulkStream(base, mine)
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, lat...)
			res.failed += int64(failed)
			if err != nil && res.firstErr == "" {
				res.firstErr = err.Error()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// bulkStream sends one POST /pins/stream with the CIDs and reads its
// answers; it returns the answered lines' latencies and how many lines
// were not answered without error.
func bulkStream(base string, cids []cid.Cid) (lat []time.Duration, failed int, err error) {
	pr, pw := io.Pipe()
	sent := make([]time.Time, len(cids))
	var sentMu sync.Mutex
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		var pending []int
		flush := func() error {
			if err := bw.Flush(); err != nil {
				return err
			}
			now := time.Now()
			sentMu.Lock()
			for _, i := range pending {
				sent[i] = now
			}
			sentMu.Unlock()
			pending = pending[:0]
			return nil
		}
		for i, ci := range cids {
			fmt.Fprintf(bw, "{\"cid\":%q}\n", ci.String())
			pending = append(pending, i)
			if len(pending) == bulkFlushEvery {
				if err := flush(); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
		if err := flush(); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, base+"/pins/stream", pr)
	if err != nil {
		return nil, len(cids), err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		return nil, len(cids), err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, len(cids), fmt.Errorf("%s: %s", resp.Status, b)
	}
	sc := bufio.NewScanner(resp.Body)
	ok := 0
	var first error
	for sc.Scan() {
		var ack struct {
			Line  int `json:"line"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ack); err != nil || ack.Line < 1 || ack.Line > len(cids) {
			return lat, len(cids) - ok, fmt.Errorf("bad answer line %q", sc.Text())
		}
		if ack.Error != nil {
			if first == nil {
				first = fmt.Errorf("line %d: %d %s", ack.Line, ack.Error.Code, ack.Error.Message)
			}
			continue
		}
		ok++
		sentMu.Lock()
		t := sent[ack.Line-1]
		sentMu.Unlock()
		if !t.IsZero() {
			lat = append(lat, time.Since(t))
		}
	}
	if err := sc.Err(); err != nil && first == nil {
		first = err
	}
	return lat, len(cids) - ok, first
}
