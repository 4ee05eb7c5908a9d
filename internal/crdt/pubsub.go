package crdt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	peer "github.com/libp2p/go-libp2p/core/peer"
)

var _ Broadcaster = (*PubSubBroadcaster)(nil)

// PubSubConfig configures a PubSubBroadcaster.
type PubSubConfig struct {
	// Topic is the pubsub topic name. Required.
	Topic string
	// Trusted reports whether messages signed by a peer are accepted. Nil
	// trusts every peer. Self is always trusted.
	Trusted func(peer.ID) bool
	// Self is the local peer ID: always trusted, and its own messages are
	// not returned by Next. Optional.
	Self peer.ID
	// Logger receives log lines. Nil discards them.
	Logger *slog.Logger
}

// PubSubBroadcaster is a Broadcaster over a go-libp2p-pubsub topic. It
// registers a topic validator that rejects (pubsub.ValidationReject)
// messages whose signer (msg.GetFrom(), not the relaying peer) is not
// trusted, so their heads never reach the Datastore.
type PubSubBroadcaster struct {
	ps      *pubsub.PubSub
	cfg     PubSubConfig
	topic   *pubsub.Topic
	sub     *pubsub.Subscription
	closeMu sync.Mutex
	closed  atomic.Bool

	rejected  atomic.Uint64
	received  atomic.Uint64
	published atomic.Uint64
}

// BroadcasterStats counts a PubSubBroadcaster's messages.
type BroadcasterStats struct {
	Rejected  uint64 // messages rejected by the validator (untrusted signer)
	Received  uint64 // messages returned by Next
	Published uint64 // messages published
}

// NewPubSubBroadcaster joins cfg.Topic on ps, registers the trust validator
// and subscribes. The caller keeps ownership of ps and must call Close,
// which leaves the topic.
func NewPubSubBroadcaster(ps *pubsub.PubSub, cfg PubSubConfig) (*PubSubBroadcaster, error) {
	if ps == nil || cfg.Topic == "" {
		return nil, errors.New("crdt: pubsub broadcaster: pubsub and topic are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &PubSubBroadcaster{ps: ps, cfg: cfg}
	if err := ps.RegisterTopicValidator(cfg.Topic, b.validate); err != nil {
		return nil, fmt.Errorf("crdt: pubsub broadcaster: register validator: %w", err)
	}
	t, err := ps.Join(cfg.Topic)
	if err != nil {
		_ = ps.UnregisterTopicValidator(cfg.Topic)
		return nil, fmt.Errorf("crdt: pubsub broadcaster: join %q: %w", cfg.Topic, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		_ = ps.UnregisterTopicValidator(cfg.Topic)
		return nil, fmt.Errorf("crdt: pubsub broadcaster: subscribe %q: %w", cfg.Topic, err)
	}
	b.topic, b.sub = t, sub
	return b, nil
}

func (b *PubSubBroadcaster) trusted(p peer.ID) bool {
	if p != "" && p == b.cfg.Self {
		return true
	}
	return b.cfg.Trusted == nil || b.cfg.Trusted(p)
}

func (b *PubSubBroadcaster) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	signer := msg.GetFrom()
	if !b.trusted(signer) {
		b.rejected.Add(1)
		b.cfg.Logger.Debug("crdt: rejected broadcast from untrusted peer", "signer", signer, "via", msg.ReceivedFrom)
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

// Broadcast publishes data on the topic.
func (b *PubSubBroadcaster) Broadcast(ctx context.Context, data []byte) error {
	if b.closed.Load() {
		return fmt.Errorf("crdt: broadcast: %w", ErrClosed)
	}
	if err := b.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("crdt: broadcast: %w", err)
	}
	b.published.Add(1)
	return nil
}

// Next returns the next message from another peer.
func (b *PubSubBroadcaster) Next(ctx context.Context) (Message, error) {
	for {
		if b.closed.Load() {
			return Message{}, fmt.Errorf("crdt: next: %w", ErrClosed)
		}
		msg, err := b.sub.Next(ctx)
		if err != nil {
			if b.closed.Load() {
				return Message{}, fmt.Errorf("crdt: next: %w", ErrClosed)
			}
			return Message{}, fmt.Errorf("crdt: next: %w", err)
		}
		from := msg.GetFrom()
		if b.cfg.Self != "" && from == b.cfg.Self {
			continue
		}
		b.received.Add(1)
		return Message{From: from, Data: msg.Data}, nil
	}
}

// Stats returns the broadcaster's counters.
func (b *PubSubBroadcaster) Stats() BroadcasterStats {
	return BroadcasterStats{Rejected: b.rejected.Load(), Received: b.received.Load(), Published: b.published.Load()}
}

// Close cancels the subscription, unregisters the validator and leaves the
// topic. A second Close returns an error wrapping ErrClosed.
func (b *PubSubBroadcaster) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed.Swap(true) {
		return fmt.Errorf("crdt: close broadcaster: %w", ErrClosed)
	}
	b.sub.Cancel()
	var errs []error
	if err := b.ps.UnregisterTopicValidator(b.cfg.Topic); err != nil {
		errs = append(errs, err)
	}
	if err := b.topic.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("crdt: close broadcaster: %w", err)
	}
	return nil
}
