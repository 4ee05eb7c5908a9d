package pincluster

import (
	"log/slog"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Gossipsub peer scoring for the cluster's metrics topic.
//
// The metrics topic's validator rejects (pubsub.ValidationReject) what
// every honest peer rejects alike: payloads that are not metrics, and
// metrics that claim another peer than their signer. With scoring on,
// each rejected message counts as an invalid delivery against the peer
// that sent it; one is enough for a negative score, which gossipsub
// prunes from the mesh at its next heartbeat; a flood takes the sender
// below the graylist threshold, after which its messages are dropped
// unread. The CRDT topic is not scored: its validator rejects signers
// the local peer does not trust, and peers may trust different sets, so
// an honest relay could be penalised.
//
// Scoring is the embedder's choice, made when creating the gossipsub
// router: pass GossipSubScoring(clusterName) to pubsub.NewGossipSub, or,
// with scoring of one's own, add MetricsTopic(clusterName):
// MetricsTopicScoreParams() to its PeerScoreParams.Topics. The monitor
// does not set the topic's parameters itself (Topic.SetScoreParams):
// go-libp2p-pubsub v0.19.0 panics in its event loop when the router's
// Topics map is nil. Without scoring, rejected messages are still
// dropped, counted in MonitorStats and logged at a bounded rate.

// Thresholds of GossipSubScoring.
const (
	// ScoreGossipThreshold: below it, no gossip to or from the peer.
	ScoreGossipThreshold = -10
	// ScorePublishThreshold: below it, no publishing to the peer.
	ScorePublishThreshold = -50
	// ScoreGraylistThreshold: below it, the peer's messages are ignored.
	ScoreGraylistThreshold = -80
)

// MetricsTopicScoreParams returns the gossipsub topic score parameters of
// the metrics topic: only invalid deliveries count, weighted -10 each,
// squared (so 3 rejected messages pass ScoreGraylistThreshold), decaying
// by 10% a second.
func MetricsTopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation: true,
		TopicWeight:          1,
		// Time in mesh is not scored (weight 0), but go-libp2p-pubsub
		// v0.19.0 divides by the quantum for every peer in the mesh:
		// it must not be 0.
		TimeInMeshQuantum:              time.Second,
		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  0.9,
	}
}

// GossipSubScoring returns the pubsub option that turns peer scoring on
// for the cluster named clusterName: pass it to pubsub.NewGossipSub. The
// metrics topic gets MetricsTopicScoreParams; nothing else is scored (no
// IP colocation or behaviour penalties, so peers sharing an address, as
// on loopback, are not penalised), and peer exchange is accepted only
// from peers with a score of at least 100, which no peer earns here.
func GossipSubScoring(clusterName string) pubsub.Option {
	return pubsub.WithPeerScore(
		&pubsub.PeerScoreParams{
			Topics:            map[string]*pubsub.TopicScoreParams{MetricsTopic(clusterName): MetricsTopicScoreParams()},
			AppSpecificScore:  func(peer.ID) float64 { return 0 },
			AppSpecificWeight: 1,
			DecayInterval:     time.Second,
			DecayToZero:       0.01,
			RetainScore:       10 * time.Minute,
		},
		&pubsub.PeerScoreThresholds{
			GossipThreshold:             ScoreGossipThreshold,
			PublishThreshold:            ScorePublishThreshold,
			GraylistThreshold:           ScoreGraylistThreshold,
			AcceptPXThreshold:           100,
			OpportunisticGraftThreshold: 1,
		},
	)
}

// Rate of the log lines about rejected messages: a burst, then one line
// per interval, each counting the rejections it stands for.
const (
	rejectLogBurst    = 5
	rejectLogInterval = time.Second
)

// rejectLog logs rejected pubsub messages at a bounded rate: an outsider
// decides how many there are.
type rejectLog struct {
	lim        *rate.Limiter
	suppressed atomic.Uint64
}

func newRejectLog() *rejectLog {
	return &rejectLog{lim: rate.NewLimiter(rate.Every(rejectLogInterval), rejectLogBurst)}
}

// warn logs msg at WARN, with the number of earlier lines suppressed,
// unless the rate is exceeded (then it only counts).
func (r *rejectLog) warn(log *slog.Logger, msg string, args ...any) {
	if !r.lim.Allow() {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
