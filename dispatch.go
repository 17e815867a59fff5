package durl

import (
	"sync"
	"time"
)

// dispatcher delivers events to Options.OnEvent from one goroutine, in
// order, without making the task that emits them wait.
type dispatcher struct {
	fn      func(Event)
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Event
	seq     uint64
	closing bool
	done    chan struct{}
}

func newDispatcher(fn func(Event)) *dispatcher {
	d := &dispatcher{fn: fn, done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.loop()
	return d
}

func (d *dispatcher) emit(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fn == nil || d.closing {
		return
	}
	d.seq++
	e.Seq = d.seq
	e.Time = time.Now()
	d.queue = append(d.queue, e)
	d.cond.Signal()
}

func (d *dispatcher) loop() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closing {
			d.cond.Wait()
		}
		batch := d.queue
		d.queue = nil
		closing := d.closing
		d.mu.Unlock()
		for _, e := range batch {
			d.fn(e)
		}
		if closing && len(batch) == 0 {
			return
		}
	}
}

// close delivers what is queued, then stops.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closing = true
	d.cond.Signal()
	d.mu.Unlock()
	<-d.done
}

func (s *Session) emit(t *Task, kind EventKind, reason string, err error) {
	if s.opts.OnEvent == nil {
		return // nobody listens
	}
	t.mu.Lock()
	e := Event{Kind: kind, TaskID: t.id, URL: t.rec.Request.URL, Path: t.rec.Path, State: t.state,
		Progress: t.progressLocked(), Reason: reason, Err: err}
	t.mu.Unlock()
	s.events.emit(e)
}
