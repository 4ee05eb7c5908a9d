package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/pincluster/pincluster"
)

// telemetry holds the daemon's metrics: one OpenTelemetry MeterProvider
// (the library's instruments and the daemon's own) exported in the
// Prometheus format, next to the Go runtime and process collectors.
type telemetry struct {
	reg     *prometheus.Registry
	mp      *sdkmetric.MeterProvider
	meter   metric.Meter
	reqs    metric.Int64Counter
	reqDur  metric.Float64Histogram
	bcast   *broadcastCounter
	cluster atomic.Pointer[pincluster.Cluster]
	host    host.Host

	statusMu   sync.Mutex
	statusAt   time.Time
	statusByID map[string]int64
	pinset     int64
}

// statusCacheTTL bounds how often a scrape recomputes the pins by status
// (a walk over the pinset).
const statusCacheTTL = 10 * time.Second

func newTelemetry(h host.Host, bc *broadcastCounter) (*telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	// Durations in seconds get buckets from 1ms to 5min (the SDK's
	// default buckets suit milliseconds).
	secondsView := sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
			Boundaries: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300},
		}},
	)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(secondsView))
	t := &telemetry{reg: reg, mp: mp, meter: mp.Meter("pinclusterd"), bcast: bc, host: h}
	if err := t.instruments(); err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	return t, nil
}

// instruments creates the daemon's instruments; the observable ones read
// the Cluster (once set) at each scrape.
func (t *telemetry) instruments() error {
	m := t.meter
	var err error
	if t.reqs, err = m.Int64Counter("pincluster.http.requests",
		metric.WithDescription("HTTP requests served, by API, route and status code")); err != nil {
		return err
	}
	if t.reqDur, err = m.Float64Histogram("pincluster.http.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP requests, by API and route")); err != nil {
		return err
	}
	pins, err := m.Int64ObservableGauge("pincluster.pins",
		metric.WithDescription("Pins of the shared pinset by their status on this peer (refreshed at most every 10s)"))
	if err != nil {
		return err
	}
	pinset, err := m.Int64ObservableGauge("pincluster.pinset.size",
		metric.WithDescription("Pins in the shared pinset (refreshed at most every 10s)"))
	if err != nil {
		return err
	}
	queue, err := m.Int64ObservableGauge("pincluster.tracker.queue",
		metric.WithDescription("Tracker operations by kind (pin, unpin) and state (queued, in_flight)"))
	if err != nil {
		return err
	}
	trErrors, err := m.Int64ObservableGauge("pincluster.tracker.errors",
		metric.WithDescription("Tracker operations in error"))
	if err != nil {
		return err
	}
	held, err := m.Int64ObservableGauge("pincluster.tracker.held",
		metric.WithDescription("CIDs the tracker knows the IPFS node holds"))
	if err != nil {
		return err
	}
	opCount, err := m.Int64ObservableCounter("pincluster.tracker.ops",
		metric.WithDescription("Pin and unpin attempts of the tracker that returned, by kind and outcome"))
	if err != nil {
		return err
	}
	opSeconds, err := m.Float64ObservableCounter("pincluster.tracker.op.duration.total", metric.WithUnit("s"),
		metric.WithDescription("Total duration of the tracker's pin and unpin attempts"))
	if err != nil {
		return err
	}
	opMax, err := m.Float64ObservableGauge("pincluster.tracker.op.duration.max", metric.WithUnit("s"),
		metric.WithDescription("Longest pin and unpin attempt of the tracker"))
	if err != nil {
		return err
	}
	heads, err := m.Int64ObservableGauge("pincluster.crdt.heads", metric.WithDescription("Heads of the Merkle-CRDT DAG"))
	if err != nil {
		return err
	}
	height, err := m.Int64ObservableGauge("pincluster.crdt.height", metric.WithDescription("Highest priority among the CRDT heads"))
	if err != nil {
		return err
	}
	deltas, err := m.Int64ObservableCounter("pincluster.crdt.deltas",
		metric.WithDescription("CRDT deltas written here (origin=local) or applied from other peers (origin=remote)"))
	if err != nil {
		return err
	}
	queued, err := m.Int64ObservableGauge("pincluster.crdt.queued",
		metric.WithDescription("Received CRDT heads waiting to be fetched or applied"))
	if err != nil {
		return err
	}
	bytes, err := m.Int64ObservableCounter("pincluster.pubsub.bytes", metric.WithUnit("By"),
		metric.WithDescription("Pubsub message payload bytes by topic (crdt, metrics, other) and direction (sent, received)"))
	if err != nil {
		return err
	}
	peers, err := m.Int64ObservableGauge("pincluster.peers",
		metric.WithDescription("Cluster peers with a valid ping metric, this one included"))
	if err != nil {
		return err
	}
	conns, err := m.Int64ObservableGauge("pincluster.libp2p.peers",
		metric.WithDescription("libp2p peers connected"))
	if err != nil {
		return err
	}
	age, err := m.Float64ObservableGauge("pincluster.metric.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest valid metric of each name among the peers"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if t.bcast != nil {
			for _, k := range t.bcast.snapshot() {
				o.ObserveInt64(bytes, k.n, metric.WithAttributes(attribute.String("topic", k.topic), attribute.String("direction", k.dir)))
			}
		}
		if t.host != nil {
			o.ObserveInt64(conns, int64(len(t.host.Network().Peers())))
		}
		c := t.cluster.Load()
		if c == nil {
			return nil
		}
		byStatus, size := t.statuses(ctx, c)
		for s, n := range byStatus {
			o.ObserveInt64(pins, n, metric.WithAttributes(attribute.String("status", s)))
		}
		o.ObserveInt64(pinset, size)
		if ts, ok := c.TrackerStats(); ok {
			q := func(op, state string, n int) {
				o.ObserveInt64(queue, int64(n), metric.WithAttributes(attribute.String("op", op), attribute.String("state", state)))
			}
			q("pin", "queued", ts.PinsQueued)
			q("unpin", "queued", ts.UnpinsQueued)
			q("pin", "in_flight", ts.PinsInFlight)
			q("unpin", "in_flight", ts.UnpinsInFlight)
			o.ObserveInt64(trErrors, int64(ts.Errors))
			o.ObserveInt64(held, int64(ts.Held))
			for op, tm := range map[string]pincluster.OpTiming{"pin": ts.Pin, "unpin": ts.Unpin} {
				opAttr := attribute.String("op", op)
				o.ObserveInt64(opCount, int64(tm.Count-tm.Failed), metric.WithAttributes(opAttr, attribute.String("outcome", "ok")))
				o.ObserveInt64(opCount, int64(tm.Failed), metric.WithAttributes(opAttr, attribute.String("outcome", "error")))
				o.ObserveFloat64(opSeconds, tm.Total.Seconds(), metric.WithAttributes(opAttr))
				o.ObserveFloat64(opMax, tm.Max.Seconds(), metric.WithAttributes(opAttr))
			}
		}
		if cs, ok := c.ConsensusStats(); ok {
			o.ObserveInt64(heads, int64(cs.Heads))
			o.ObserveInt64(height, int64(cs.Height))
			o.ObserveInt64(deltas, int64(cs.LocalDeltas), metric.WithAttributes(attribute.String("origin", "local")))
			o.ObserveInt64(deltas, int64(cs.RemoteDeltas), metric.WithAttributes(attribute.String("origin", "remote")))
			o.ObserveInt64(queued, cs.QueuedDeltas)
		}
		now := time.Now()
		o.ObserveInt64(peers, int64(len(c.Metrics(ctx, pincluster.MetricPing))))
		for _, name := range c.MetricNames(ctx) {
			if pincluster.IsTagMetric(name) {
				continue // one series per tag would be unbounded
			}
			oldest := time.Duration(-1)
			for _, mt := range c.Metrics(ctx, name) {
				if !mt.ReceivedAt.IsZero() {
					oldest = max(oldest, now.Sub(mt.ReceivedAt))
				}
			}
			if oldest >= 0 {
				o.ObserveFloat64(age, oldest.Seconds(), metric.WithAttributes(attribute.String("name", name)))
			}
		}
		return nil
	}, pins, pinset, queue, trErrors, held, opCount, opSeconds, opMax, heads, height, deltas, queued, bytes, peers, conns, age)
	return err
}

// statuses returns the pins by their local status and the pinset size,
// recomputed at most every statusCacheTTL.
func (t *telemetry) statuses(ctx context.Context, c *pincluster.Cluster) (map[string]int64, int64) {
	t.statusMu.Lock()
	defer t.statusMu.Unlock()
	if t.statusByID != nil && time.Since(t.statusAt) < statusCacheTTL {
		return t.statusByID, t.pinset
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	by := map[string]int64{}
	var n int64
	for g, err := range c.StatusAll(ctx, pincluster.StatusFilter{Local: true}) {
		if err != nil {
			break
		}
		n++
		for _, pi := range g.PeerMap {
			by[pi.Status.String()]++
		}
	}
	t.statusByID, t.pinset, t.statusAt = by, n, time.Now()
	return by, n
}

// middleware counts the requests of one API by route (its pattern among
// routes, "other" when none matches) and status code.
func (t *telemetry) middleware(api string, routes []string) func(http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r, http.NotFoundHandler())
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			route := "other"
			if _, p := mux.Handler(r); p != "" {
				route = p
			}
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				code := sw.code
				if code == 0 {
					code = http.StatusOK
				}
				attrs := metric.WithAttributes(attribute.String("api", api), attribute.String("route", route),
					attribute.String("code", strconv.Itoa(code)))
				t.reqs.Add(context.Background(), 1, attrs)
				t.reqDur.Record(context.Background(), time.Since(start).Seconds(),
					metric.WithAttributes(attribute.String("api", api), attribute.String("route", route)))
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// handler serves /metrics.
func (t *telemetry) handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{})
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for streaming answers.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// broadcastCounter is a pubsub RawTracer counting message payload bytes by
// topic kind and direction: sent to each peer (a message forwarded to
// three peers counts three times) and received.
type broadcastCounter struct {
	mu sync.Mutex
	n  map[[2]string]int64
}

var _ pubsub.RawTracer = (*broadcastCounter)(nil)

type topicCount struct {
	topic, dir string
	n          int64
}

// newBroadcastCounter starts every known series at zero, so that they
// are exported before the first message.
func newBroadcastCounter() *broadcastCounter {
	b := &broadcastCounter{n: map[[2]string]int64{}}
	for _, t := range []string{"crdt", "metrics"} {
		for _, d := range []string{"sent", "received"} {
			b.n[[2]string{t, d}] = 0
		}
	}
	return b
}

func (b *broadcastCounter) snapshot() []topicCount {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]topicCount, 0, len(b.n))
	for k, v := range b.n {
		out = append(out, topicCount{topic: k[0], dir: k[1], n: v})
	}
	return out
}

// topicKind bounds the label's values.
func topicKind(topic string) string {
	switch {
	case strings.HasPrefix(topic, "pincluster/") && strings.HasSuffix(topic, "/crdt"):
		return "crdt"
	case strings.HasPrefix(topic, "pincluster/") && strings.HasSuffix(topic, "/metrics"):
		return "metrics"
	default:
		return "other"
	}
}

func (b *broadcastCounter) add(topic, dir string, n int) {
	b.mu.Lock()
	b.n[[2]string{topicKind(topic), dir}] += int64(n)
	b.mu.Unlock()
}

func (b *broadcastCounter) rpc(rpc *pubsub.RPC, dir string) {
	if rpc == nil {
		return
	}
	for _, m := range rpc.GetPublish() {
		b.add(m.GetTopic(), dir, len(m.GetData()))
	}
}

// RecvRPC counts received payloads.
func (b *broadcastCounter) RecvRPC(rpc *pubsub.RPC) { b.rpc(rpc, "received") }

// SendRPC counts sent payloads (each copy to each peer).
func (b *broadcastCounter) SendRPC(rpc *pubsub.RPC, _ peer.ID) { b.rpc(rpc, "sent") }

// The other events are not counted.

func (*broadcastCounter) AddPeer(peer.ID, protocol.ID)                         {}
func (*broadcastCounter) RemovePeer(peer.ID)                                   {}
func (*broadcastCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*broadcastCounter) OnClosedOutboundStream(peer.ID)                       {}
func (*broadcastCounter) Join(string)                                          {}
func (*broadcastCounter) Leave(string)                                         {}
func (*broadcastCounter) Graft(peer.ID, string)                                {}
func (*broadcastCounter) Prune(peer.ID, string)                                {}
func (*broadcastCounter) ValidateMessage(*pubsub.Message)                      {}
func (*broadcastCounter) DeliverMessage(*pubsub.Message)                       {}
func (*broadcastCounter) RejectMessage(*pubsub.Message, string)                {}
func (*broadcastCounter) DuplicateMessage(*pubsub.Message)                     {}
func (*broadcastCounter) ThrottlePeer(peer.ID)                                 {}
func (*broadcastCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*broadcastCounter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*broadcastCounter) UndeliverableMessage(*pubsub.Message)                 {}
