package ipfsnode

// QueuedPinWrites returns how many pin records wait for the next batch
// (putPin's group commit).
func (n *Node) QueuedPinWrites() int {
	n.pinq.mu.Lock()
	defer n.pinq.mu.Unlock()
	return len(n.pinq.queue)
}
