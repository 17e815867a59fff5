package eventlog

import (
	"context"
	"sync"
	"time"

	"github.com/durl-dev/durl/api"
)

// Subscription reads the log's committed events in ID order, from the
// point given to Subscribe on. Next must be called from one goroutine at a
// time; Close may be called from any.
type Subscription struct {
	l     *Log
	next  uint64      // next ID to fetch
	reset bool        // the client's ID is unknown here: send a gap first
	page  []api.Event // fetched events not returned yet, page[pos:]
	pos   int

	closeOnce sync.Once
	done      chan struct{}
}

// Subscribe starts reading the events with IDs above after: the stored
// ones first, then live ones as they are committed.
//
//   - after == 0 is a new client: it gets only the events committed after
//     Subscribe, none of the stored ones.
//   - If events after `after` were trimmed (after+1 < FirstID()), Next
//     first returns an api.EventGap event with FirstKept set to the oldest
//     kept ID and ID one below it, then the events from FirstKept on.
//   - If after > LastID(), the client's ID comes from another or a reset
//     log: Next first returns a gap event the same way, then every kept
//     event from the oldest on.
//
// A subscriber that falls so far behind that its next events are trimmed
// while it reads also gets a gap event, then goes on from the oldest kept.
func (l *Log) Subscribe(after uint64) *Subscription {
	s := &Subscription{l: l, page: make([]api.Event, 0, pageSize), done: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case after == 0:
		s.next = l.last + 1
	case after > l.last:
		s.reset = true
	default:
		s.next = after + 1
	}
	return s
}

// Next returns the next committed event. It blocks until there is one,
// ctx is done (ctx.Err()), or the log or the subscription is closed
// (ErrClosed). An event that is ready is returned even when ctx is done.
func (s *Subscription) Next(ctx context.Context) (api.Event, error) {
	l := s.l
	for {
		select {
		case <-s.done:
			return api.Event{}, ErrClosed
		default:
		}
		if s.pos < len(s.page) {
			e := s.page[s.pos]
			s.pos++
			return e, nil
		}
		s.page, s.pos = s.page[:0], 0

		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return api.Event{}, ErrClosed
		}
		if s.reset || s.next < l.lo {
			s.reset = false
			s.next = l.lo
			l.mu.Unlock()
			return gapEvent(s.next), nil
		}
		last := l.last
		if s.next <= last && s.next >= l.tailLo {
			// In the memory tail: copy one page under the lock.
			end := min(last, s.next+pageSize-1)
			for id := s.next; id <= end; id++ {
				s.page = append(s.page, l.ring[id%uint64(len(l.ring))])
			}
			s.next = end + 1
			l.mu.Unlock()
			continue
		}
		if s.next <= last {
			// Behind the memory tail: read one page from the file.
			l.mu.Unlock()
			from := s.next
			page, err := l.readPage(from, last, s.page)
			if err != nil {
				l.mu.Lock()
				closed := l.closed
				l.mu.Unlock()
				if closed {
					return api.Event{}, ErrClosed
				}
				return api.Event{}, err
			}
			s.page = page
			// Trimming deletes the oldest events only, so whatever is
			// missing before the page (or up to last) is trimmed.
			firstKept := last + 1
			if len(page) > 0 {
				firstKept = page[0].ID
				s.next = page[len(page)-1].ID + 1
			} else {
				s.next = last + 1
			}
			if firstKept > from {
				return gapEvent(firstKept), nil
			}
			continue
		}
		ch := l.notify
		l.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return api.Event{}, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return api.Event{}, ctx.Err()
		case <-s.done:
			return api.Event{}, ErrClosed
		}
	}
}

// Close ends the subscription: Next returns ErrClosed, also a Next that is
// waiting.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// gapEvent tells the client that the events before firstKept that it did
// not get are gone.
func gapEvent(firstKept uint64) api.Event {
	return api.Event{
		ID:        firstKept - 1,
		Time:      time.Now().UTC().Round(0),
		Kind:      api.EventGap,
		FirstKept: firstKept,
	}
}
