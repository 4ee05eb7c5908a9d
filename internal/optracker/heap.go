package optracker

// opHeap is a binary min-heap of operations that records each operation's
// index in it (through idx), so that any operation can be removed in
// O(log n). It is used for the two run queues and for the timer.
type opHeap struct {
	ops  []*op
	less func(a, b *op) bool
	idx  func(o *op) *int32
}

// queueLess orders a run queue: fewer failures first (a fresh operation
// overtakes every retry), then first queued first.
func queueLess(a, b *op) bool {
	if a.failures != b.failures {
		return a.failures < b.failures
	}
	return a.seq < b.seq
}

func timerLess(a, b *op) bool {
	if a.timerAt != b.timerAt {
		return a.timerAt < b.timerAt
	}
	return a.id < b.id
}

func newQueue() opHeap {
	return opHeap{less: queueLess, idx: func(o *op) *int32 { return &o.qidx }}
}

func newTimerHeap() opHeap {
	return opHeap{less: timerLess, idx: func(o *op) *int32 { return &o.tidx }}
}

func (h *opHeap) Len() int { return len(h.ops) }

func (h *opHeap) peek() *op {
	if len(h.ops) == 0 {
		return nil
	}
	return h.ops[0]
}

func (h *opHeap) push(o *op) {
	*h.idx(o) = int32(len(h.ops))
	h.ops = append(h.ops, o)
	h.up(len(h.ops) - 1)
}

func (h *opHeap) pop() *op {
	if len(h.ops) == 0 {
		return nil
	}
	o := h.ops[0]
	h.remove(o)
	return o
}

// remove takes o out of the heap; it does nothing if o is not in it.
func (h *opHeap) remove(o *op) {
	p := h.idx(o)
	i := int(*p)
	if i < 0 || i >= len(h.ops) || h.ops[i] != o {
		return
	}
	last := len(h.ops) - 1
	if i != last {
		h.swap(i, last)
	}
	h.ops[last] = nil
	h.ops = h.ops[:last]
	*p = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	// Give memory back after a burst.
	if cap(h.ops) > 1024 && len(h.ops) < cap(h.ops)/4 {
		h.ops = append([]*op(nil), h.ops...)
	}
}

func (h *opHeap) swap(i, j int) {
	h.ops[i], h.ops[j] = h.ops[j], h.ops[i]
	*h.idx(h.ops[i]) = int32(i)
	*h.idx(h.ops[j]) = int32(j)
}

func (h *opHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(h.ops[j], h.ops[i]) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h *opHeap) down(i0 int) bool {
	i, n := i0, len(h.ops)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(h.ops[r], h.ops[l]) {
			j = r
		}
		if !h.less(h.ops[j], h.ops[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
