package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
)

// heartbeatInterval is how often an idle event stream gets a comment line,
// so that proxies and clients see it is alive.
var heartbeatInterval = 15 * time.Second

// eventWriteTimeout bounds how long one write to an event stream may take:
// a client that stops reading is dropped.
const eventWriteTimeout = 30 * time.Second

// onEvent receives the session's events and logs them. It is called from
// one goroutine of the session, in order, and returns at once.
func (s *Server) onEvent(e durl.Event) {
	s.log.Append(eventJSON(e))
}

// events answers GET /v1/events with a stream of server-sent events: the
// events after Last-Event-ID (header, or ?last_event_id=), else only new
// ones, until the client goes or the daemon stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query(), "last_event_id"); err != nil {
		return err
	}
	after, err := lastEventID(r)
	if err != nil {
		return err
	}
	if !s.enterStream() {
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the daemon is stopping; try again once it is restarted")
	}
	defer s.streams.Done()
	s.clients.Add(1)
	defer s.clients.Add(-1)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub := s.log.Subscribe(after)
	defer sub.Close()
	next, done := readEvents(ctx, sub)
	defer func() { cancel(); <-done }() // before sub.Close

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx not to buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(write func(io.Writer) error) error {
		rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if err := write(w); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send(func(w io.Writer) error { _, err := io.WriteString(w, "retry: 2000\n\n"); return err }) != nil {
		return nil
	}
	heartbeat := time.NewTicker(heartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case e, ok := <-next:
			if !ok {
				return nil // the log closed
			}
			if send(func(w io.Writer) error { return writeEvent(w, e) }) != nil {
				return nil
			}
		case <-heartbeat.C:
			if send(func(w io.Writer) error { _, err := io.WriteString(w, ": ping\n\n"); return err }) != nil {
				return nil
			}
		case <-s.stopping:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// subscription is what events needs of an event log subscription.
type subscription interface {
	Next(ctx context.Context) (api.Event, error)
}

// readEvents reads sub on a goroutine of its own until ctx is done or the
// log fails, and sends each event on the channel it returns (closed at the
// end). done is closed when the goroutine has returned.
func readEvents(ctx context.Context, sub subscription) (<-chan api.Event, <-chan struct{}) {
	next := make(chan api.Event)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(next)
		for {
			e, err := sub.Next(ctx)
			if err != nil {
				return
			}
			select {
			case next <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return next, done
}

// writeEvent writes e in the text/event-stream format: its ID, its kind as
// the event name, and the event as JSON data.
func writeEvent(w io.Writer, e api.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if e.ID > 0 {
		if _, err := fmt.Fprintf(w, "id: %d\n", e.ID); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, data)
	return err
}

// lastEventID returns the ID of the last event the client has: the
// Last-Event-ID header, else ?last_event_id=, else 0 (new events only).
func lastEventID(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	name := "Last-Event-ID"
	if v == "" {
		v, name = r.URL.Query().Get("last_event_id"), "last_event_id"
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s %q is not an event ID (a whole number)", name, v)
	}
	return id, nil
}
