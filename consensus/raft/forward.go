package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxamacker/cbor/v2"
	hraft "github.com/hashicorp/raft"
	host "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/pincluster/pincluster"
)

// The forward protocol carries a follower's operation to the leader: one
// stream per operation, a uvarint-length-prefixed CBOR opWire, answered by
// a uvarint-length-prefixed CBOR replyWire. Only the current voters are
// served; the request of anyone else is not read. (This package is public
// and, like connector/ and api/, uses only the root's exported API, so it
// does not use internal/rpc: its own small protocol has the same frame
// limit, deadline and pre-body permission check.)

// forwardProtocol is the protocol of the forward service of a cluster.
func forwardProtocol(name string) protocol.ID {
	return protocol.ID("/pincluster/raft/" + name + "/forward/1.0.0")
}

// maxForwardFrame bounds a forwarded request or reply.
const maxForwardFrame = pincluster.MaxEncodedPinSize + 4096

type replyWire struct {
	Err  string `cbor:"1,keyasint,omitempty"`
	Code uint8  `cbor:"2,keyasint,omitempty"`
}

// Reply codes that keep the error's identity across the wire.
const (
	codeOther uint8 = iota + 1
	codeRetry
	codeNoLeader
	codePermission
	codeInvalid
)

func writeFrame(w io.Writer, v any) error {
	b, err := cborEnc.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readFrame(r *bufio.Reader, v any) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > maxForwardFrame {
		return fmt.Errorf("raft: frame of %d bytes exceeds %d", n, maxForwardFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return cbor.Unmarshal(b, v)
}

// isVoter reports whether p is a voter of the current configuration: the
// peers allowed to forward operations to this one.
func (c *Consensus) isVoter(p peer.ID) bool {
	if c.isClosed() {
		return false
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == hraft.Voter && string(s.ID) == p.String() {
			return true
		}
	}
	return false
}

func (c *Consensus) serveForward(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(maxWait))
	from := s.Conn().RemotePeer()
	if !c.isVoter(from) {
		_ = writeFrame(s, replyWire{Err: "raft: forward from " + from.String() + ", not a voter", Code: codePermission})
		return
	}
	var op opWire
	if err := readFrame(bufio.NewReader(s), &op); err != nil {
		_ = writeFrame(s, replyWire{Err: "raft: malformed forward: " + err.Error(), Code: codeInvalid})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxWait)
	defer cancel()
	if addr, id := c.raft.LeaderWithID(); addr == "" || string(id) != c.h.ID().String() {
		_ = writeFrame(s, replyWire{Err: "raft: " + c.h.ID().String() + " is not the leader", Code: codeRetry})
		return
	}
	err := c.applyLocal(ctx, op)
	var r replyWire
	switch {
	case err == nil:
	case errors.Is(err, errRetry), errors.Is(err, pincluster.ErrClosed):
		r = replyWire{Err: err.Error(), Code: codeRetry}
	case errors.Is(err, pincluster.ErrNoLeader):
		r = replyWire{Err: err.Error(), Code: codeNoLeader}
	case errors.Is(err, pincluster.ErrInvalidPin):
		r = replyWire{Err: err.Error(), Code: codeInvalid}
	default:
		r = replyWire{Err: err.Error(), Code: codeOther}
	}
	_ = writeFrame(s, r)
}

// forward sends op to the leader and waits for its answer.
func (c *Consensus) forward(ctx context.Context, leader peer.ID, op opWire) error {
	return sendForward(ctx, c.h, c.cfg.ClusterName, leader, op)
}

// sendForward sends op from h to the leader of cluster and waits for its
// answer. Failures of the connection and the leader's retryable answers
// wrap errRetry; a refusal wraps pincluster.ErrPermission.
func sendForward(ctx context.Context, h host.Host, cluster string, leader peer.ID, op opWire) error {
	s, err := h.NewStream(ctx, leader, forwardProtocol(cluster))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("raft: forward to %s: %w", leader, ctx.Err())
		}
		return fmt.Errorf("%w: dial leader %s: %v", errRetry, leader, err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	// The leader may refuse before reading the request: send it while
	// reading the reply, so that neither side waits for the other.
	sent := make(chan error, 1)
	go func() {
		err := writeFrame(s, op)
		if err == nil {
			err = s.CloseWrite()
		}
		sent <- err
	}()
	var r replyWire
	rerr := readFrame(bufio.NewReader(s), &r)
	if rerr != nil || r.Code != 0 {
		_ = s.Reset() // a refusal may leave the writer blocked: unblock it
	} else {
		_ = s.Close()
	}
	werr := <-sent
	if rerr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("raft: forward to %s: %w", leader, ctx.Err())
		}
		if werr != nil {
			return fmt.Errorf("%w: send to leader %s: %v", errRetry, leader, werr)
		}
		return fmt.Errorf("%w: reply from leader %s: %v", errRetry, leader, rerr)
	}
	switch r.Code {
	case 0:
		return nil
	case codeRetry:
		return fmt.Errorf("%w: %s", errRetry, r.Err)
	case codeNoLeader:
		return fmt.Errorf("%w: %s", pincluster.ErrNoLeader, r.Err)
	case codePermission:
		return fmt.Errorf("%w: %s", pincluster.ErrPermission, r.Err)
	case codeInvalid:
		return fmt.Errorf("%w: %s", pincluster.ErrInvalidPin, r.Err)
	default:
		return fmt.Errorf("raft: leader %s: %s", leader, r.Err)
	}
}
