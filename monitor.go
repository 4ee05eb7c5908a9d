package pincluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pincluster/pincluster/internal/gorun"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/pincluster/pincluster/internal/defaults"
)

// PeerMonitor publishes this peer's metrics, collects the other peers', and
// raises an Alert when a peer's metric expires without being renewed.
type PeerMonitor interface {
	Component
	// LogMetric stores a metric received from or about a peer.
	LogMetric(ctx context.Context, m Metric) error
	// PublishMetric sends this peer's metric to the other peers (and logs
	// it locally).
	PublishMetric(ctx context.Context, m Metric) error
	// LatestMetrics returns the newest valid metric of the given name for
	// every peer that has one.
	LatestMetrics(ctx context.Context, name string) []Metric
	// LatestForPeer returns the newest metric of the given name from pid,
	// valid or not; ok is false when there is none.
	LatestForPeer(ctx context.Context, name string, pid peer.ID) (m Metric, ok bool)
	// MetricNames lists the names of the metrics known.
	MetricNames(ctx context.Context) []string
	// Alerts delivers alerts. An alert fires once when a peer's metric
	// expires, and again only after it came back and expired again.
	Alerts() <-chan Alert
}

// Defaults of PubsubMonitorConfig (New passes Interval from
// WithMonitorInterval; the others are used as they are).
const (
	// defaultMonitorInterval is how often the monitor publishes.
	defaultMonitorInterval = 15 * time.Second
	// defaultMonitorTTLFactor: the default TTL is this many intervals, so
	// one lost publication does not raise an alert but two do.
	defaultMonitorTTLFactor = 2
	// defaultMonitorAlertBuffer is the capacity of the Alerts channel.
	defaultMonitorAlertBuffer = 256
	// defaultMonitorMaxPeers bounds the peers whose metrics are kept.
	defaultMonitorMaxPeers = 4096
	// defaultMonitorMaxNamesPerPeer bounds the metric names kept per peer.
	defaultMonitorMaxNamesPerPeer = 64
	// defaultMonitorForgetAfter is how long an expired metric is kept
	// (for LatestForPeer) before it is forgotten.
	defaultMonitorForgetAfter = time.Hour
)

// PubsubMonitorConfig configures a PubsubMonitor. Zero fields mean the
// default; negative durations or counts are errors.
type PubsubMonitorConfig struct {
	// ClusterName names the pubsub topic, "pincluster/<ClusterName>/metrics",
	// so that clusters sharing a pubsub do not mix. Default: "default".
	ClusterName string
	// Interval is how often this peer's metrics (the informers' and a
	// MetricPing) are published. Default: 15 s.
	Interval time.Duration
	// TTL is the validity given to every metric this monitor publishes:
	// a peer is declared silent (alert) when no metric of a name arrived
	// for TTL. It must be longer than Interval. Default: 2 × Interval.
	TTL time.Duration
	// CheckInterval is how often stored metrics are checked for expiry;
	// an alert fires at most CheckInterval after the metric expired.
	// Default: Interval / 2.
	CheckInterval time.Duration
	// MaxTTL caps the remaining validity of a received metric: a metric
	// claiming to be valid longer than MaxTTL from its reception is kept
	// as valid for MaxTTL only (protects failure detection against clock
	// skew and peers that publish far-future expiries). Default: 4 × TTL.
	MaxTTL time.Duration
	// Informers produce the metrics published on every interval, besides
	// MetricPing. Their ValidUntil is replaced by now + TTL. The monitor
	// does not shut them down. Default: none.
	Informers []Informer
	// PingValue, when set, gives the Value of every MetricPing published
	// (the cluster's describes the peer as IPFS Cluster's ping does: its
	// name and IPFS node as JSON). Default: nil, an empty value.
	PingValue func(ctx context.Context) string
	// Trusted, when set, restricts the peers whose metrics are accepted:
	// messages signed by a peer for which it returns false are ignored
	// (pubsub.ValidationIgnore) and counted in Stats.Untrusted. This
	// peer's own metrics are always accepted. Default: nil, every peer.
	Trusted func(peer.ID) bool
	// AlertBuffer is the capacity of the Alerts channel. When it is full,
	// the oldest undelivered alert is dropped to make room for the new one
	// and counted in Stats.AlertsDropped. Default: 256.
	AlertBuffer int
	// MaxPeers bounds the number of peers whose metrics are kept; metrics
	// of further peers are dropped (Stats.Dropped). Default: 4096.
	MaxPeers int
	// MaxNamesPerPeer bounds the metric names kept per peer; further names
	// are dropped (Stats.Dropped). Default: 64.
	MaxNamesPerPeer int
	// ForgetAfter is how long a metric is kept after it expired (and its
	// alert fired) before it is forgotten. Default: 1 h.
	ForgetAfter time.Duration
	// Logger receives the monitor's log lines. Default: nil, which
	// discards.
	Logger *slog.Logger
}

func (c PubsubMonitorConfig) withDefaults() (PubsubMonitorConfig, error) {
	if c.ClusterName == "" {
		c.ClusterName = "default"
	}
	if err := errors.Join(
		defaults.Set("Interval", &c.Interval, defaultMonitorInterval),
		defaults.NotNegative("TTL", c.TTL), // defaulted below, from Interval
		defaults.NotNegative("CheckInterval", c.CheckInterval),
		defaults.NotNegative("MaxTTL", c.MaxTTL),
		defaults.Set("ForgetAfter", &c.ForgetAfter, defaultMonitorForgetAfter),
		defaults.Set("AlertBuffer", &c.AlertBuffer, defaultMonitorAlertBuffer),
		defaults.Set("MaxPeers", &c.MaxPeers, defaultMonitorMaxPeers),
		defaults.Set("MaxNamesPerPeer", &c.MaxNamesPerPeer, defaultMonitorMaxNamesPerPeer),
	); err != nil {
		return c, fmt.Errorf("pincluster: new pubsub monitor: %w", err)
	}
	if c.TTL == 0 {
		c.TTL = defaultMonitorTTLFactor * c.Interval
	}
	if c.TTL <= c.Interval {
		return c, fmt.Errorf("pincluster: new pubsub monitor: TTL %s must be longer than the interval %s", c.TTL, c.Interval)
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = max(c.Interval/2, time.Millisecond)
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 4 * c.TTL
	}
	if c.MaxTTL < c.TTL {
		return c, fmt.Errorf("pincluster: new pubsub monitor: MaxTTL %s is shorter than TTL %s", c.MaxTTL, c.TTL)
	}
	c.Logger = defaults.Logger(c.Logger)
	for i, inf := range c.Informers {
		if inf == nil {
			return c, fmt.Errorf("pincluster: new pubsub monitor: informer %d is nil", i)
		}
	}
	c.Informers = slices.Clone(c.Informers)
	return c, nil
}

// MonitorStats counts what a PubsubMonitor saw. All counts are since the
// monitor was created.
type MonitorStats struct {
	// Received is the number of messages validated (this peer's included).
	Received uint64
	// Accepted is the number of messages that passed validation.
	Accepted uint64
	// Malformed is the number of messages rejected because their metric
	// did not decode.
	Malformed uint64
	// Forged is the number of messages rejected because the metric's peer
	// is not the message's signer.
	Forged uint64
	// Untrusted is the number of messages ignored because their signer is
	// not trusted (PubsubMonitorConfig.Trusted).
	Untrusted uint64
	// Dropped is the number of metrics not stored: older than the stored
	// one, or beyond MaxPeers / MaxNamesPerPeer.
	Dropped uint64
	// Alerts is the number of alerts raised.
	Alerts uint64
	// AlertsDropped is the number of alerts dropped because the Alerts
	// channel was full (oldest first).
	AlertsDropped uint64
}

type monitorStats struct {
	received, accepted, malformed, forged, untrusted, dropped, alerts, alertsDropped atomic.Uint64
}

// metricEntry is the latest metric of one name from one peer, and whether
// its expiry was already reported.
type metricEntry struct {
	m Metric
	// alerted is true once the expiry of m was reported (or m arrived
	// already expired): no new alert until a valid metric replaces it.
	alerted bool
}

// PubsubMonitor is the default PeerMonitor. It publishes this peer's
// metrics on a pubsub topic every interval, keeps the latest metric of
// each name from each peer, and raises an alert when one expires. It also
// publishes when a peer joins the topic (at most once a second), so that a
// peer that just connected knows this one's metrics at once rather than up
// to an interval later.
//
// Every message on the topic goes through a validator: a message whose
// payload does not decode as a Metric, or whose metric names a peer other
// than the message's signer, is rejected (pubsub.ValidationReject, so
// gossipsub peer scoring penalises whoever sent it, see GossipSubScoring)
// and counted in Stats; the WARN line about a forged metric is rate
// limited (a burst of 5, then one a second, each saying how many were
// suppressed).
// Failure detection assumes the peers' clocks agree to well within TTL:
// a metric's validity is the sender's ValidUntil, capped at MaxTTL after
// reception.
//
// Alerts: the latest metric of each (peer, name) raises exactly one alert
// when it expires, at most CheckInterval later; another alert for the same
// (peer, name) needs a valid metric to arrive first. This peer's own
// metrics never raise alerts. The Alerts channel is buffered
// (AlertBuffer); when full, the oldest alert is dropped (drop-oldest) and
// counted. The channel is closed by Shutdown.
type PubsubMonitor struct {
	cfg   PubsubMonitorConfig
	self  peer.ID
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	evs   *pubsub.TopicEventHandler
	kick  chan struct{} // a peer joined the topic: publish now
	name  string        // topic name
	g     *gorun.Group
	log   *slog.Logger

	alerts  chan Alert
	stats   monitorStats
	rejects *rejectLog // rate of the log lines about rejected messages

	mu      sync.RWMutex
	metrics map[string]map[peer.ID]*metricEntry // name -> peer -> entry
	names   map[peer.ID]int                     // peer -> number of names stored

	shutdownOnce sync.Once
	closed       atomic.Bool
	shutdownErr  error
}

var _ PeerMonitor = (*PubsubMonitor)(nil)

// MetricsTopic returns the pubsub topic on which the monitors of the
// cluster named clusterName publish.
func MetricsTopic(clusterName string) string { return "pincluster/" + clusterName + "/metrics" }

// NewPubsubMonitor joins the cluster's metrics topic on ps, registers its
// validator, and starts publishing h's metrics (the first publication
// happens at once) and checking for expired ones. It returns an error when
// cfg is invalid or the topic cannot be joined (for example because
// another monitor of the same cluster already uses ps). Shutdown undoes
// all of it; ps itself stays the caller's.
func NewPubsubMonitor(h host.Host, ps *pubsub.PubSub, cfg PubsubMonitorConfig) (*PubsubMonitor, error) {
	if h == nil || ps == nil {
		return nil, errors.New("pincluster: new pubsub monitor: nil host or pubsub")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &PubsubMonitor{
		cfg:     cfg,
		self:    h.ID(),
		ps:      ps,
		name:    MetricsTopic(cfg.ClusterName),
		g:       gorun.New(),
		log:     cfg.Logger,
		alerts:  make(chan Alert, cfg.AlertBuffer),
		metrics: make(map[string]map[peer.ID]*metricEntry),
		names:   make(map[peer.ID]int),
		kick:    make(chan struct{}, 1),
		rejects: newRejectLog(),
	}
	if err := ps.RegisterTopicValidator(m.name, m.validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("pincluster: new pubsub monitor: register validator on %s: %w", m.name, err)
	}
	m.topic, err = ps.Join(m.name)
	if err != nil {
		_ = ps.UnregisterTopicValidator(m.name)
		return nil, fmt.Errorf("pincluster: new pubsub monitor: join %s: %w", m.name, err)
	}
	m.sub, err = m.topic.Subscribe()
	if err != nil {
		_ = m.topic.Close()
		_ = ps.UnregisterTopicValidator(m.name)
		return nil, fmt.Errorf("pincluster: new pubsub monitor: subscribe %s: %w", m.name, err)
	}
	m.evs, err = m.topic.EventHandler()
	if err != nil {
		m.sub.Cancel()
		_ = m.topic.Close()
		_ = ps.UnregisterTopicValidator(m.name)
		return nil, fmt.Errorf("pincluster: new pubsub monitor: events of %s: %w", m.name, err)
	}
	// The group is fresh: Go cannot fail here.
	_ = m.g.Go(m.receiveLoop)
	_ = m.g.Go(m.publishLoop)
	_ = m.g.Go(m.checkLoop)
	_ = m.g.Go(m.joinLoop)
	return m, nil
}

// Stats returns the monitor's counters.
func (m *PubsubMonitor) Stats() MonitorStats {
	s := &m.stats
	return MonitorStats{
		Received: s.received.Load(), Accepted: s.accepted.Load(), Malformed: s.malformed.Load(),
		Forged: s.forged.Load(), Untrusted: s.untrusted.Load(), Dropped: s.dropped.Load(),
		Alerts: s.alerts.Load(), AlertsDropped: s.alertsDropped.Load(),
	}
}

// validate is the topic validator. It runs inline for every message,
// including this peer's own publications, and hands the decoded metric to
// the subscription through ValidatorData.
func (m *PubsubMonitor) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	m.stats.received.Add(1)
	var met Metric
	if err := met.UnmarshalBinary(msg.GetData()); err != nil {
		m.stats.malformed.Add(1)
		m.log.Debug("monitor: rejected malformed metric", "from", msg.GetFrom(), "err", err)
		return pubsub.ValidationReject
	}
	signer := msg.GetFrom()
	if met.Peer != signer || signer == "" {
		m.stats.forged.Add(1)
		m.rejects.warn(m.log, "monitor: rejected metric about another peer", "signer", signer, "claims", met.Peer, "metric", met.Name, "forged_total", m.stats.forged.Load())
		return pubsub.ValidationReject
	}
	if signer != m.self && m.cfg.Trusted != nil && !m.cfg.Trusted(signer) {
		m.stats.untrusted.Add(1)
		return pubsub.ValidationIgnore
	}
	m.stats.accepted.Add(1)
	msg.ValidatorData = met
	return pubsub.ValidationAccept
}

func (m *PubsubMonitor) receiveLoop(ctx context.Context) {
	for {
		msg, err := m.sub.Next(ctx)
		if err != nil {
			return // cancelled: Shutdown
		}
		if msg.GetFrom() == m.self {
			continue // stored by PublishMetric already
		}
		met, ok := msg.ValidatorData.(Metric)
		if !ok {
			continue // cannot happen: the validator sets it on accept
		}
		m.store(met, time.Now())
	}
}

// joinLoop asks for a publication whenever a peer joins the topic, so
// that it learns this peer's metrics at once instead of up to an Interval
// later (the first publication of a starting peer usually goes nowhere:
// no peer has seen its subscription yet).
func (m *PubsubMonitor) joinLoop(ctx context.Context) {
	for {
		ev, err := m.evs.NextPeerEvent(ctx)
		if err != nil {
			return // cancelled: Shutdown
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// joinPublishGap is the least time between two publications asked by
// peers joining: a flood of joins (or one peer joining and leaving in a
// loop) costs at most one publication per gap.
const joinPublishGap = time.Second

func (m *PubsubMonitor) publishLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	var last time.Time
	for {
		m.publishOnce(ctx)
		last = time.Now()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
			if wait := joinPublishGap - time.Since(last); wait > 0 && !gorun.Sleep(ctx, wait) {
				return
			}
		}
	}
}

// publishOnce gathers the informers' metrics and a ping, and publishes
// them, each valid for TTL.
func (m *PubsubMonitor) publishOnce(ctx context.Context) {
	gctx, cancel := context.WithTimeout(ctx, m.cfg.Interval)
	defer cancel()
	ping := Metric{Name: MetricPing}
	if m.cfg.PingValue != nil {
		ping.Value = m.cfg.PingValue(gctx)
	}
	out := []Metric{ping}
	for _, inf := range m.cfg.Informers {
		out = append(out, inf.GetMetrics(gctx)...)
	}
	for _, met := range out {
		if ctx.Err() != nil {
			return
		}
		met.ValidUntil = time.Time{} // re-stamped by PublishMetric
		if err := m.PublishMetric(ctx, met); err != nil && ctx.Err() == nil {
			m.log.Warn("monitor: publish failed", "metric", met.Name, "err", err)
		}
	}
}

func (m *PubsubMonitor) checkLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.check(now)
		}
	}
}

// check raises the alerts due at now and forgets long-expired metrics.
func (m *PubsubMonitor) check(now time.Time) {
	var due []Alert
	m.mu.Lock()
	for name, byPeer := range m.metrics {
		for p, e := range byPeer {
			if !e.m.Expired(now) {
				continue
			}
			if !e.alerted {
				e.alerted = true
				if p != m.self {
					due = append(due, Alert{Metric: e.m, TriggeredAt: now})
				}
			}
			if now.Sub(e.m.ValidUntil) > m.cfg.ForgetAfter {
				delete(byPeer, p)
				m.names[p]--
				if m.names[p] <= 0 {
					delete(m.names, p)
				}
			}
		}
		if len(byPeer) == 0 {
			delete(m.metrics, name)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(due, func(a, b Alert) int { return compareMetricKey(a.Metric, b.Metric) })
	for _, a := range due {
		m.sendAlert(a)
	}
}

func compareMetricKey(a, b Metric) int {
	if a.Peer != b.Peer {
		if a.Peer < b.Peer {
			return -1
		}
		return 1
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// sendAlert delivers a without blocking, dropping the oldest queued alert
// when the channel is full. Only the check loop sends.
func (m *PubsubMonitor) sendAlert(a Alert) {
	m.stats.alerts.Add(1)
	m.log.Info("monitor: metric expired", "peer", a.Metric.Peer, "metric", a.Metric.Name)
	for {
		select {
		case m.alerts <- a:
			return
		default:
		}
		select {
		case <-m.alerts:
			m.stats.alertsDropped.Add(1)
		default:
		}
	}
}

// store keeps met as the latest metric of its (peer, name) unless a newer
// one is stored. It reports whether met was stored.
func (m *PubsubMonitor) store(met Metric, now time.Time) bool {
	met.ReceivedAt = now
	if limit := now.Add(m.cfg.MaxTTL); met.ValidUntil.After(limit) {
		met.ValidUntil = limit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byPeer := m.metrics[met.Name]
	e := byPeer[met.Peer]
	switch {
	case e != nil && met.ValidUntil.Before(e.m.ValidUntil):
		m.stats.dropped.Add(1) // an older metric (replayed or reordered)
		return false
	case e == nil && m.names[met.Peer] == 0 && len(m.names) >= m.cfg.MaxPeers:
		m.stats.dropped.Add(1)
		return false
	case e == nil && m.names[met.Peer] >= m.cfg.MaxNamesPerPeer:
		m.stats.dropped.Add(1)
		return false
	}
	if e == nil {
		if byPeer == nil {
			byPeer = make(map[peer.ID]*metricEntry)
			m.metrics[met.Name] = byPeer
		}
		e = &metricEntry{}
		byPeer[met.Peer] = e
		m.names[met.Peer]++
	}
	e.m = met
	// A valid metric re-arms the alert; one that arrives expired does not.
	e.alerted = met.Expired(now)
	return true
}

func (m *PubsubMonitor) live(op string) error {
	if m.closed.Load() {
		return fmt.Errorf("pincluster: monitor: %s: %w", op, ErrClosed)
	}
	return nil
}

// LogMetric implements PeerMonitor: it stores m as received now. m must
// have a name and a peer. A metric older than the stored one of the same
// (peer, name) is ignored. Returns ErrClosed after Shutdown.
func (m *PubsubMonitor) LogMetric(_ context.Context, met Metric) error {
	if err := m.live("log metric"); err != nil {
		return err
	}
	if met.Name == "" || met.Peer == "" {
		return fmt.Errorf("pincluster: monitor: log metric: %w: metric without name or peer", ErrInvalidMetric)
	}
	m.store(met, time.Now())
	return nil
}

// PublishMetric implements PeerMonitor: it sets met.Peer to this peer (a
// metric about another peer is refused with ErrInvalidMetric), sets
// ValidUntil to now + TTL when it is zero, logs it locally and publishes
// it. Returns ErrClosed after Shutdown.
func (m *PubsubMonitor) PublishMetric(ctx context.Context, met Metric) error {
	if err := m.live("publish metric"); err != nil {
		return err
	}
	switch {
	case met.Peer == "":
		met.Peer = m.self
	case met.Peer != m.self:
		return fmt.Errorf("pincluster: monitor: publish metric: %w: metric about peer %s", ErrInvalidMetric, met.Peer)
	}
	if met.Name == "" {
		return fmt.Errorf("pincluster: monitor: publish metric: %w: metric without name", ErrInvalidMetric)
	}
	if met.ValidUntil.IsZero() {
		met.SetTTL(m.cfg.TTL)
	}
	data, err := met.MarshalBinary()
	if err != nil {
		return fmt.Errorf("pincluster: monitor: publish metric: %w", err)
	}
	m.store(met, time.Now())
	if err := m.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("pincluster: monitor: publish metric %s: %w", met.Name, err)
	}
	return nil
}

// LatestMetrics implements PeerMonitor: the valid metrics of the name,
// one per peer, sorted by peer ID. Nil after Shutdown.
func (m *PubsubMonitor) LatestMetrics(_ context.Context, name string) []Metric {
	if m.closed.Load() {
		return nil
	}
	now := time.Now()
	m.mu.RLock()
	var out []Metric
	for _, e := range m.metrics[name] {
		if e.m.Valid(now) {
			out = append(out, e.m)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, compareMetricKey)
	return out
}

// LatestForPeer implements PeerMonitor.
func (m *PubsubMonitor) LatestForPeer(_ context.Context, name string, pid peer.ID) (Metric, bool) {
	if m.closed.Load() {
		return Metric{}, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.metrics[name][pid]
	if !ok {
		return Metric{}, false
	}
	return e.m, true
}

// MetricNames implements PeerMonitor: the names of the stored metrics
// (valid or not), sorted.
func (m *PubsubMonitor) MetricNames(context.Context) []string {
	if m.closed.Load() {
		return nil
	}
	m.mu.RLock()
	out := make([]string, 0, len(m.metrics))
	for name := range m.metrics {
		out = append(out, name)
	}
	m.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Alerts implements PeerMonitor. The channel is closed by Shutdown.
func (m *PubsubMonitor) Alerts() <-chan Alert { return m.alerts }

// Shutdown stops publishing and checking, cancels the subscription,
// unregisters the validator and closes the topic, then closes the Alerts
// channel. It returns ctx.Err() (wrapped) if the goroutines do not stop in
// time; a second call returns an error wrapping ErrClosed. When the pubsub
// itself was already stopped, its resources are gone with it and Shutdown
// does not report that.
func (m *PubsubMonitor) Shutdown(ctx context.Context) error {
	first := false
	m.shutdownOnce.Do(func() {
		first = true
		m.closed.Store(true)
		m.g.Stop()
		m.sub.Cancel()
		m.evs.Cancel()
		if err := m.g.Wait(ctx); err != nil {
			m.shutdownErr = fmt.Errorf("pincluster: monitor: shutdown: %w", err)
			return
		}
		close(m.alerts)
		var errs []error
		if err := m.ps.UnregisterTopicValidator(m.name); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		if err := m.topic.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			m.shutdownErr = fmt.Errorf("pincluster: monitor: shutdown: %w", err)
		}
	})
	if !first {
		return fmt.Errorf("pincluster: monitor: shutdown: %w", ErrClosed)
	}
	return m.shutdownErr
}
