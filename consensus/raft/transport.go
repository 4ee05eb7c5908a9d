package raft

import (
	"context"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"
	host "github.com/libp2p/go-libp2p/core/host"
	peer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
)

// streamLayer carries raft's connections over libp2p streams: a server
// address is a peer ID, and a connection is a stream of the raft protocol.
type streamLayer struct {
	net.Listener
	h     host.Host
	proto protocol.ID
}

var _ hraft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(h host.Host, proto protocol.ID) (*streamLayer, error) {
	l, err := gostream.Listen(h, proto)
	if err != nil {
		return nil, err
	}
	return &streamLayer{Listener: l, h: h, proto: proto}, nil
}

// Dial opens a stream to the peer whose ID is address.
func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(address))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return gostream.Dial(ctx, s.h, pid, s.proto)
}

// idAddress maps a raft server ID (a peer ID) to its address (the same).
type idAddress struct{}

func (idAddress) ServerAddr(id hraft.ServerID) (hraft.ServerAddress, error) {
	return hraft.ServerAddress(id), nil
}
