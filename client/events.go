package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/durl-dev/durl/api"
)

// ErrClosed is returned by EventStream.Next after Close.
var ErrClosed = errors.New("the event stream is closed")

// Waits between reconnections of an EventStream: the first is
// minBackoff, each next one twice the last, up to maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// maxLineBytes bounds a line, and maxDataBytes the data of a message, of
// the event stream.
const (
	maxLineBytes = 1 << 20
	maxDataBytes = 1 << 20
)

// EventStream follows the daemon's events (Server-Sent Events at
// api.PathEvents). It connects on the first Next and, when the connection
// drops, reconnects by itself, asking for the events after the last one it
// returned: none is lost or repeated, unless the daemon no longer keeps
// them, which it says with an api.EventGap event.
//
// Next must not be called concurrently; Close may be called at any time.
type EventStream struct {
	c      *Client
	parent context.Context
	ctx    context.Context // parent, also cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool

	last  uint64 // the ID of the last event returned, or the starting point
	known bool   // last is a position to send as Last-Event-ID

	body      io.ReadCloser // the current connection's body, nil when none
	rd        *sseReader
	connected bool          // connected at least once
	backoff   time.Duration // the last wait before reconnecting
	err       error         // the error Next keeps returning
}

// Events returns the stream of the events after the one with ID lastID,
// or, when lastID is 0, of the events from when it connects (it then reads
// the newest ID with Stats, to ask for the events after it when it
// reconnects). The stream ends when ctx is done or Close is called. It
// connects on Connect or on the first Next.
func (c *Client) Events(ctx context.Context, lastID uint64) *EventStream {
	return c.events(ctx, lastID, lastID != 0)
}

// events returns a stream starting after lastID; when known is false,
// lastID is replaced by the newest event's ID on connecting.
func (c *Client) events(ctx context.Context, lastID uint64, known bool) *EventStream {
	sctx, cancel := context.WithCancel(ctx)
	return &EventStream{c: c, parent: ctx, ctx: sctx, cancel: cancel, last: lastID, known: known}
}

// LastID returns the ID of the last event Next returned (or the ID the
// stream started after).
func (s *EventStream) LastID() uint64 { return s.last }

// Close ends the stream and its connection. Next then returns ErrClosed.
func (s *EventStream) Close() {
	s.closed.Store(true)
	s.cancel()
}

// Connect opens the stream now, if it is not open, rather than on the
// first Next: once it returns nil, the daemon keeps every new event for
// this stream. Use it to read the tasks after subscribing, so that no
// change between the two is lost. A failure is final, as for Next.
func (s *EventStream) Connect() error {
	if s.err == nil && s.body == nil {
		if err := s.connect(); err != nil {
			if s.ctx.Err() != nil {
				err = s.ctxErr()
			}
			s.fail(err)
		}
	}
	return s.err
}

// Next returns the next event, waiting for it. After a dropped connection,
// or a daemon that restarts, it reconnects with waits from 100 ms to 2 s.
// It returns ctx's error once the context is done, ErrClosed after Close,
// and an error when the first connection fails, when the daemon refuses
// the stream (an *Error) or when it sends what is not an event stream;
// after an error, Next returns it again.
func (s *EventStream) Next() (api.Event, error) {
	for s.err == nil {
		if s.body == nil {
			if err := s.connect(); err != nil {
				s.retryOrFail(err)
				continue
			}
		}
		ev, err := s.read()
		if err == nil {
			s.backoff = 0
			return ev, nil
		}
		s.disconnect()
		s.retryOrFail(err)
	}
	return api.Event{}, s.err
}

// retryOrFail waits before reconnecting after err, or keeps err (or the
// context's error) as the stream's final error.
func (s *EventStream) retryOrFail(err error) {
	switch {
	case s.ctx.Err() != nil:
		s.fail(s.ctxErr())
	case !s.connected || !retryable(err):
		s.fail(err)
	default:
		if werr := s.sleep(); werr != nil {
			s.fail(werr)
		}
	}
}

// fail makes err the stream's final error and releases the connection.
func (s *EventStream) fail(err error) {
	s.err = err
	s.disconnect()
	s.cancel()
}

// ctxErr is the error Next returns once s.ctx is done.
func (s *EventStream) ctxErr() error {
	if err := s.parent.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return s.ctx.Err()
}

// sleep waits before the next connection, longer each time.
func (s *EventStream) sleep() error {
	s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
	t := time.NewTimer(s.backoff)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return s.ctxErr()
	}
}

// protocolError is a stream that is not a valid event stream: retrying
// would not help.
type protocolError struct{ msg string }

// Error returns what is wrong with the stream.
func (e *protocolError) Error() string { return e.msg }

// retryable reports whether a failure of the stream is worth a new
// connection: a network failure or a 5xx answer, such as a daemon
// shutting down to restart.
func retryable(err error) bool {
	var (
		pe *protocolError
		ae *Error
	)
	switch {
	case errors.As(err, &pe):
		return false
	case errors.As(err, &ae):
		return ae.Status >= 500
	}
	return true
}

// connect opens the stream, asking for the events after s.last.
func (s *EventStream) connect() error {
	if !s.known {
		st, err := s.c.Stats(s.ctx)
		if err != nil {
			return err
		}
		s.last, s.known = st.LastID, true
	}
	req, err := s.c.newRequest(s.ctx, http.MethodGet, api.PathEvents, nil, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.last, 10))
	}
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return s.c.transportError(s.ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return decodeError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return &protocolError{fmt.Sprintf("the daemon answered %s with %q, not an event stream", api.PathEvents, mt)}
	}
	body := closeWhenIdle(resp.Body, idleTimeout)
	s.body, s.rd, s.connected = body, newSSEReader(body), true
	return nil
}

// idleTimeout is how long a stream may stay silent before it is taken for
// dead (a half-open connection, a daemon on a machine that vanished) and
// reconnected: the daemon sends a heartbeat every 15 s.
var idleTimeout = 45 * time.Second

// idleBody closes a response body that delivered nothing for a while,
// which makes the Read waiting on it fail.
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	after time.Duration
}

// closeWhenIdle returns body, closed when it delivers nothing for after.
func closeWhenIdle(body io.ReadCloser, after time.Duration) *idleBody {
	return &idleBody{ReadCloser: body, after: after, timer: time.AfterFunc(after, func() { body.Close() })}
}

// Read reads from the body and, when it got bytes, waits after again
// before closing it.
func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.after)
	}
	return n, err
}

// Close stops the timer and closes the body.
func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}

// disconnect closes the current connection, if any.
func (s *EventStream) disconnect() {
	if s.body != nil {
		s.body.Close()
		s.body, s.rd = nil, nil
	}
}

// read returns the next event of the connection.
func (s *EventStream) read() (api.Event, error) {
	msg, err := s.rd.next()
	if err != nil {
		return api.Event{}, err
	}
	var ev api.Event
	if err := json.Unmarshal([]byte(msg.data), &ev); err != nil {
		return api.Event{}, &protocolError{fmt.Sprintf("the daemon sent an event that is not valid JSON: %v", err)}
	}
	if msg.id != "" {
		if id, err := strconv.ParseUint(msg.id, 10, 64); err == nil {
			if ev.ID == 0 {
				ev.ID = id
			}
		}
	}
	if ev.Kind == "" {
		ev.Kind = msg.event
	}
	if ev.ID != 0 {
		s.last = ev.ID
	}
	return ev, nil
}

// sseMessage is one message of a Server-Sent Events stream.
type sseMessage struct {
	id    string // the id field, "" when none
	event string // the event field
	data  string // the data fields, joined by "\n"
}

// sseReader reads the messages of a Server-Sent Events stream
// (https://html.spec.whatwg.org/multipage/server-sent-events.html).
type sseReader struct {
	r *bufio.Reader
}

// newSSEReader returns a reader of the stream r.
func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next message that has data, skipping comments (such as
// ": ping" heartbeats) and messages without data. An incomplete message at
// the end of the stream is dropped, as the specification says.
func (r *sseReader) next() (sseMessage, error) {
	var (
		m       sseMessage
		data    strings.Builder
		hasData bool
	)
	for {
		line, err := r.readLine()
		if err != nil {
			return sseMessage{}, err
		}
		if line == "" {
			if hasData {
				m.data = strings.TrimSuffix(data.String(), "\n")
				return m, nil
			}
			m = sseMessage{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if data.Len()+len(value) > maxDataBytes {
				return sseMessage{}, &protocolError{"the daemon sent an event larger than 1 MiB"}
			}
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			m.event = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				m.id = value
			}
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n".
func (r *sseReader) readLine() (string, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLineBytes {
			return "", &protocolError{"the daemon sent an event stream line longer than 1 MiB"}
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the stream should never end
			}
			return "", err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		return string(line), nil
	}
}
