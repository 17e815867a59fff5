package durl

import (
	"context"
	"sync"
)

// gate lets at most limit holders through at once (0: no limit). Those
// waiting are let through highest priority first, then in the order they
// came. The limit can change at any time: raising it lets waiters through
// at once; lowering it lets none through until enough holders leave.
type gate struct {
	mu      sync.Mutex
	limit   int
	held    int
	waiters []*gateWaiter // in the order they came
}

type gateWaiter struct {
	priority func() int
	ready    chan struct{} // closed when let through
	through  bool
}

func newGate(limit int) *gate { return &gate{limit: limit} }

// acquire waits until the gate lets the caller through or ctx is done. The
// caller must release what it acquired. priority is read each time the gate
// chooses, so a changed priority counts at once.
func (g *gate) acquire(ctx context.Context, priority func() int) error {
	g.mu.Lock()
	if len(g.waiters) == 0 && g.freeLocked() {
		g.held++
		g.mu.Unlock()
		return nil
	}
	w := &gateWaiter{priority: priority, ready: make(chan struct{})}
	g.waiters = append(g.waiters, w)
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
			g.removeLocked(w)
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

// admitLocked lets the best waiters through while there is room. A linear
// scan keeps priorities live; even 10,000 waiters cost microseconds.
func (g *gate) admitLocked() {
	for len(g.waiters) > 0 && g.freeLocked() {
		best, bestPriority := 0, g.waiters[0].priority()
		for i, w := range g.waiters[1:] {
			if p := w.priority(); p > bestPriority {
				best, bestPriority = i+1, p
			}
		}
		w := g.waiters[best]
		g.removeLocked(w)
		w.through = true
		g.held++
		close(w.ready)
	}
}

func (g *gate) removeLocked(w *gateWaiter) {
	for i, o := range g.waiters {
		if o == w {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			return
		}
	}
}
