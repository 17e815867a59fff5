package durl

import (
	"container/heap"
	"context"
	"sync"
)

// gate lets at most limit holders through at once (0: no limit). Those
// waiting are let through highest priority first, then in the order they
// came. The limit can change at any time: raising it lets waiters through
// at once; lowering it lets none through until enough holders leave.
type gate struct {
	mu       sync.Mutex
	limit    int
	held     int
	waiters  waitQueue
	arrivals uint64 // numbers the waiters in the order they came
	stale    bool   // a priority may have changed: read them all again
}

type gateWaiter struct {
	priority func() int
	rank     int           // priority() when the queue was last ordered
	arrival  uint64        // the order it came in
	index    int           // its place in the queue's heap
	ready    chan struct{} // closed when let through
	through  bool
}

func newGate(limit int) *gate { return &gate{limit: limit} }

// acquire waits until the gate lets the caller through or ctx is done. The
// caller must release what it acquired. priority is read when the caller
// starts waiting and again after each reorder.
func (g *gate) acquire(ctx context.Context, priority func() int) error {
	g.mu.Lock()
	if len(g.waiters) == 0 && g.freeLocked() {
		g.held++
		g.mu.Unlock()
		return nil
	}
	w := &gateWaiter{priority: priority, rank: priority(), arrival: g.arrivals, ready: make(chan struct{})}
	g.arrivals++
	heap.Push(&g.waiters, w)
	g.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if w.through { // let through while giving up: hand the place on
			g.held--
			g.admitLocked()
		} else {
			heap.Remove(&g.waiters, w.index)
		}
		return context.Cause(ctx)
	}
}

// release frees a place taken by acquire.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held--
	g.admitLocked()
}

// setLimit changes the limit; 0 is no limit.
func (g *gate) setLimit(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = n
	g.admitLocked()
}

// reorder makes the gate read every waiter's priority again before it next
// chooses: a waiter's priority changed.
func (g *gate) reorder() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stale = true
}

// hasRoom reports whether acquire would let a caller through at once.
func (g *gate) hasRoom() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters) == 0 && g.freeLocked()
}

// waiting is the number of callers waiting.
func (g *gate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters)
}

func (g *gate) freeLocked() bool { return g.limit <= 0 || g.held < g.limit }

// admitLocked lets the best waiters through while there is room.
func (g *gate) admitLocked() {
	if g.stale && len(g.waiters) > 0 {
		for _, w := range g.waiters {
			w.rank = w.priority()
		}
		heap.Init(&g.waiters)
	}
	g.stale = false
	for len(g.waiters) > 0 && g.freeLocked() {
		w := heap.Pop(&g.waiters).(*gateWaiter)
		w.through = true
		g.held++
		close(w.ready)
	}
}

// waitQueue is a heap of waiters: highest rank first, then first come.
type waitQueue []*gateWaiter

func (q waitQueue) Len() int { return len(q) }

func (q waitQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank > q[j].rank
	}
	return q[i].arrival < q[j].arrival
}

func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *waitQueue) Push(x any) {
	w := x.(*gateWaiter)
	w.index = len(*q)
	*q = append(*q, w)
}

func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}
