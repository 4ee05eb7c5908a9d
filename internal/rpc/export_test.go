package rpc

import "github.com/libp2p/go-libp2p/core/peer"

// streamsOf is how many of p's streams the server counts as open.
func (s *Server) streamsOf(p peer.ID) int {
	s.admit.Lock()
	defer s.admit.Unlock()
	return s.perPeer[p]
}
