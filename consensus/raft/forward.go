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
	"github.com/libp2p/go-libp2p/core/network"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// The forward protocol carries a follower's operation to the leader: one
// stream per operation, a uvarint-length-prefixed CBOR opWire, answered by
// a uvarint-length-prefixed CBOR replyWire. Only trusted peers (voters,
// peers given to Trust) are served; the request is not read otherwise.

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

func (c *Consensus) serveForward(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(maxWait))
	from := s.Conn().RemotePeer()
	if !c.IsTrustedPeer(context.Background(), from) {
		_ = writeFrame(s, replyWire{Err: "raft: forward from untrusted peer " + from.String(), Code: codePermission})
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
		_ = writeFrame(s, replyWire{Err: "raft: not the leader", Code: codeRetry})
		return
	}
	err := c.applyLocal(ctx, op)
	var r replyWire
	switch {
	case err == nil:
	case errors.Is(err, errRetry):
		r = replyWire{Err: err.Error(), Code: codeRetry}
	case errors.Is(err, pincluster.ErrInvalidPin):
		r = replyWire{Err: err.Error(), Code: codeInvalid}
	default:
		r = replyWire{Err: err.Error(), Code: codeOther}
	}
	_ = writeFrame(s, r)
}

// forward sends op to the leader and waits for its answer.
func (c *Consensus) forward(ctx context.Context, leader peer.ID, op opWire) error {
	s, err := c.h.NewStream(ctx, leader, forwardProtocol(c.cfg.ClusterName))
	if err != nil {
		return fmt.Errorf("%w: dial leader %s: %v", errRetry, leader, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	if err := writeFrame(s, op); err != nil {
		return fmt.Errorf("%w: send to leader %s: %v", errRetry, leader, err)
	}
	var r replyWire
	if err := readFrame(bufio.NewReader(s), &r); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("raft: forward to %s: %w", leader, ctx.Err())
		}
		return fmt.Errorf("%w: reply from leader %s: %v", errRetry, leader, err)
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
