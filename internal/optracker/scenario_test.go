package optracker

// Scenario tests written as data, in the style of etcd-io/raft's
// interaction tests: each testdata/*.txt file is a script of commands, each
// followed by "----" and the expected output, ended by a blank line. Lines
// starting with '#' are comments. Run with -rewrite to regenerate the
// expected outputs from the current behaviour (then review the diff).
//
// Each file runs inside one testing/synctest bubble: time is fake and
// advances only through "advance", and after every command the runner waits
// until every goroutine of the tracker is blocked, so the output is
// deterministic.
//
// Commands:
//
//	new [pin-concurrency=N] [unpin-concurrency=N] [max-queue=N]
//	    [max-retries=N|unlimited|none] [base-backoff=D] [max-backoff=D]
//	    [pin-timeout=D|none] [unpin-timeout=D|none]
//	                         (re)create the tracker (closing the previous)
//	enqueue pin|unpin NAME...   enqueue operations
//	finish NAME              the running call for NAME returns nil
//	fail NAME MESSAGE...     the running call for NAME returns an error
//	progress NAME [bytes=N] [blocks=N]   the running call reports progress
//	stubborn NAME            NAME's calls ignore cancellation from now on
//	advance DURATION         let fake time pass
//	status                   list every operation (All)
//	filter [pin|unpin] [PHASE...]   list with a Filter
//	stats                    gauges and counters
//	recover NAME | recover-all | cancel NAME | get NAME
//	close                    close the tracker
//
// Events printed after a command's own output: "start NAME TYPE
// attempt=N" when an operation function is called, "NAME TYPE cancelled:
// CAUSE" when its context is cancelled, each prefixed with the fake time
// since "new" (events of one command are sorted).

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScenarioFile(t, f)
		})
	}
}

// scriptPart is a run of comment/blank lines (raw) or one test case.
type scriptPart struct {
	raw      string
	cmd      string
	expected string
	actual   string
	line     int
}

func parseScript(t *testing.T, path string) []*scriptPart {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var parts []*scriptPart
	for i := 0; i < len(lines); {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			parts = append(parts, &scriptPart{raw: l + "\n"})
			i++
			continue
		}
		p := &scriptPart{cmd: l, line: i + 1}
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s:%d: command %q not followed by ----", path, p.line, l)
		}
		i++
		var exp []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			exp = append(exp, lines[i])
		}
		if i < len(lines) {
			i++ // the blank line ending the case
		}
		p.expected = strings.Join(exp, "\n")
		parts = append(parts, p)
	}
	return parts
}

func runScenarioFile(t *testing.T, path string) {
	parts := parseScript(t, path)
	synctest.Test(t, func(t *testing.T) {
		h := &harness{t: t, names: map[cid.Cid]string{}, calls: map[string]*call{}, stubborn: map[string]bool{}}
		defer h.closeTracker()
		for _, p := range parts {
			if p.cmd == "" {
				continue
			}
			p.actual = h.run(p.cmd)
			if !*rewrite && p.actual != p.expected {
				t.Errorf("%s:%d: %s\n--- expected:\n%s\n--- actual:\n%s", path, p.line, p.cmd, p.expected, p.actual)
			}
		}
	})
	if *rewrite {
		var b strings.Builder
		for _, p := range parts {
			if p.cmd == "" {
				b.WriteString(p.raw)
				continue
			}
			fmt.Fprintf(&b, "%s\n----\n%s\n\n", p.cmd, p.actual)
		}
		out := strings.TrimRight(b.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness drives a Tracker whose operation functions block until the
// script says how they end.
type harness struct {
	t     *testing.T
	tr    *Tracker
	start time.Time
	names map[cid.Cid]string
	repl  *strings.Replacer

	mu       sync.Mutex
	calls    map[string]*call
	stubborn map[string]bool
	events   []event
	closed   bool
}

type event struct {
	at   time.Duration
	text string
}

type call struct {
	typ      OpType
	progress ProgressFunc
	result   chan error
}

func testCid(name string) cid.Cid {
	sum, err := mh.Sum([]byte(name), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}

func (h *harness) cid(name string) cid.Cid {
	c := testCid(name)
	if _, ok := h.names[c]; !ok {
		h.names[c] = name
		var pairs []string
		for c, n := range h.names {
			pairs = append(pairs, c.String(), n)
		}
		h.repl = strings.NewReplacer(pairs...)
	}
	return c
}

func (h *harness) eventLocked(format string, args ...any) {
	h.events = append(h.events, event{time.Since(h.start), fmt.Sprintf(format, args...)})
}

func (h *harness) fn(ctx context.Context, op Op, progress ProgressFunc) error {
	name := h.names[op.Cid]
	c := &call{typ: op.Type, progress: progress, result: make(chan error)}
	h.mu.Lock()
	if prev := h.calls[name]; prev != nil {
		h.eventLocked("VIOLATION: %s %s started while %s runs", name, op.Type, prev.typ)
	}
	h.calls[name] = c
	h.eventLocked("start %s %s attempt=%d", name, op.Type, op.Attempts)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.calls[name] == c {
			delete(h.calls, name)
		}
		h.mu.Unlock()
	}()
	select {
	case err := <-c.result:
		return err
	case <-ctx.Done():
	}
	h.mu.Lock()
	stubborn := h.stubborn[name]
	h.eventLocked("%s %s cancelled: %v", name, op.Type, context.Cause(ctx))
	h.mu.Unlock()
	if stubborn {
		return <-c.result
	}
	return ctx.Err()
}

// closeTracker closes the tracker; its operation functions all return on
// cancellation except stubborn ones, which the script must finish first.
func (h *harness) closeTracker() {
	if h.tr == nil || h.closed {
		return
	}
	h.closed = true
	if err := h.tr.Close(context.Background()); err != nil {
		h.t.Errorf("close: %v", err)
	}
}

func (h *harness) run(line string) string {
	fields := strings.Fields(line)
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	cmd, args := fields[0], fields[1:]
	if h.tr == nil && cmd != "new" {
		return "error: no tracker (use new)"
	}
	switch cmd {
	case "new":
		h.closeTracker()
		cfg, err := h.config(args)
		if err != nil {
			return "error: " + err.Error()
		}
		h.start = time.Now()
		h.closed = false
		h.tr, err = New(cfg)
		if err != nil {
			return "error: " + err.Error()
		}
		add("ok")
	case "enqueue":
		typ := OpPin
		if args[0] == "unpin" {
			typ = OpUnpin
		}
		for _, n := range args[1:] {
			op, err := h.tr.Enqueue(h.cid(n), typ, nil)
			if err != nil {
				add("%s: %s", n, errName(err))
			} else {
				add("%s", h.fmtOp(op))
			}
			synctest.Wait() // let a free worker take it before the next

		}
	case "finish", "fail":
		h.mu.Lock()
		c := h.calls[args[0]]
		h.mu.Unlock()
		if c == nil {
			return "error: no running call for " + args[0]
		}
		var err error
		if cmd == "fail" {
			err = errors.New(strings.Join(args[1:], " "))
		}
		c.result <- err
	case "progress":
		h.mu.Lock()
		c := h.calls[args[0]]
		h.mu.Unlock()
		if c == nil {
			return "error: no running call for " + args[0]
		}
		var p Progress
		for _, kv := range args[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "bytes":
				p.Bytes = n
			case "blocks":
				p.Blocks = n
			}
		}
		c.progress(p)
	case "stubborn":
		h.mu.Lock()
		h.stubborn[args[0]] = true
		h.mu.Unlock()
	case "advance":
		d, err := time.ParseDuration(args[0])
		if err != nil {
			return "error: " + err.Error()
		}
		time.Sleep(d)
	case "status", "filter":
		var f Filter
		if cmd == "filter" {
			for _, a := range args {
				switch a {
				case "pin":
					f.Types |= OpPin
				case "unpin":
					f.Types |= OpUnpin
				default:
					f.Phases |= parsePhase(a)
				}
			}
		}
		for op, err := range h.tr.Filter(context.Background(), f) {
			if err != nil {
				add("error: %s", errName(err))
				break
			}
			add("%s", h.fmtOp(op))
		}
		if len(out) == 0 {
			add("no operations")
		}
	case "stats":
		s := h.tr.Stats()
		add("ops=%d queued=%d/%d inflight=%d/%d errors=%d retrying=%d", s.Ops, s.PinsQueued, s.UnpinsQueued, s.PinsInFlight, s.UnpinsInFlight, s.Errors, s.Retrying)
		add("done=%d timedout=%d superseded=%d recovered=%d pin-attempts=%d/%d-failed unpin-attempts=%d/%d-failed",
			s.Done, s.TimedOut, s.Superseded, s.Recovered, s.Pin.Count, s.Pin.Failed, s.Unpin.Count, s.Unpin.Failed)
	case "recover", "cancel", "get":
		var op Op
		var err error
		switch cmd {
		case "recover":
			op, err = h.tr.Recover(h.cid(args[0]))
		case "cancel":
			op, err = h.tr.Cancel(h.cid(args[0]))
		default:
			op, err = h.tr.Get(h.cid(args[0]))
		}
		if err != nil {
			add("%s: %s", args[0], errName(err))
		} else {
			add("%s", h.fmtOp(op))
		}
	case "recover-all":
		for op, err := range h.tr.RecoverAll(context.Background()) {
			if err != nil {
				add("error: %s", errName(err))
				break
			}
			add("recovered %s", h.fmtOp(op))
		}
	case "close":
		h.closeTracker()
	default:
		return "error: unknown command " + cmd
	}
	synctest.Wait()
	h.mu.Lock()
	ev := h.events
	h.events = nil
	h.mu.Unlock()
	slices.SortFunc(ev, func(a, b event) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return strings.Compare(a.text, b.text)
	})
	for _, e := range ev {
		out = append(out, "t="+e.at.String()+" "+e.text)
	}
	if len(out) == 0 {
		out = append(out, "ok")
	}
	res := strings.Join(out, "\n")
	if h.repl != nil {
		res = h.repl.Replace(res)
	}
	return res
}

func (h *harness) config(args []string) (Config, error) {
	cfg := Config{Pin: h.fn, Unpin: h.fn}
	for _, kv := range args {
		k, v, _ := strings.Cut(kv, "=")
		dur := func() time.Duration {
			if v == "none" {
				return NoTimeout
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				h.t.Fatalf("%s: %v", kv, err)
			}
			return d
		}
		num := func() int {
			n, err := strconv.Atoi(v)
			if err != nil {
				h.t.Fatalf("%s: %v", kv, err)
			}
			return n
		}
		switch k {
		case "pin-concurrency":
			cfg.PinConcurrency = num()
		case "unpin-concurrency":
			cfg.UnpinConcurrency = num()
		case "max-queue":
			cfg.MaxQueue = num()
		case "max-retries":
			switch v {
			case "unlimited":
				cfg.MaxRetries = UnlimitedRetries
			case "none":
				cfg.MaxRetries = NoRetries
			default:
				cfg.MaxRetries = num()
			}
		case "base-backoff":
			cfg.BaseBackoff = dur()
		case "max-backoff":
			cfg.MaxBackoff = dur()
		case "pin-timeout":
			cfg.PinTimeout = dur()
		case "unpin-timeout":
			cfg.UnpinTimeout = dur()
		default:
			return cfg, fmt.Errorf("unknown option %q", k)
		}
	}
	return cfg, nil
}

func (h *harness) fmtOp(op Op) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s attempts=%d", h.names[op.Cid], op.Type, op.Phase, op.Attempts)
	if op.Progress != (Progress{}) {
		fmt.Fprintf(&b, " progress=%dB/%dblk", op.Progress.Bytes, op.Progress.Blocks)
	}
	if !op.NextRetry.IsZero() {
		fmt.Fprintf(&b, " retry-in=%s", time.Until(op.NextRetry))
	} else if op.Phase == PhaseError {
		b.WriteString(" no-retry")
	}
	if op.Err != nil {
		fmt.Fprintf(&b, " err=%q", op.Err.Error())
		if errors.Is(op.Err, ErrTimeout) {
			b.WriteString(" (ErrTimeout)")
		}
	}
	return b.String()
}

func parsePhase(s string) Phase {
	for _, p := range []Phase{PhaseQueued, PhaseInProgress, PhaseError, PhaseDone, PhaseCancelled} {
		if p.String() == s {
			return p
		}
	}
	return 0
}

// errName names the sentinel an error wraps, so scripts do not depend on
// message details.
func errName(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{
		{ErrQueueFull, "ErrQueueFull"}, {ErrClosed, "ErrClosed"}, {ErrNotFound, "ErrNotFound"},
		{ErrInvalidType, "ErrInvalidType"}, {ErrInvalidCid, "ErrInvalidCid"}, {ErrInvalidConfig, "ErrInvalidConfig"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "error: " + err.Error()
}
