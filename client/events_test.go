package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/daemon/daemontest"
)

func TestSSEParsing(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fmt.Fprint(w, ": ping\n\n"+
			"retry: 1000\n\n"+
			// The data of one event over several lines.
			"id: 7\nevent: progress\ndata: {\"id\":7,\n"+
			"data:\"kind\":\"progress\",\n"+
			"data:  \"task_id\":\"t1\", \"written\": 10}\n\n"+
			": heartbeat\n"+
			// CRLF line endings; the ID and kind only in the SSE fields.
			"id: 8\r\nevent: completed\r\ndata: {\"task_id\":\"t1\",\"path\":\"/d/a b\"}\r\n\r\n"+
			// A message without data is no event.
			"event: nothing\n\n"+
			// A field without a colon, and an unknown field.
			"data\nfoo: bar\nid: 9\ndata: {\"kind\":\"warning\",\"reason\":\"x\"}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)

	s := New(srv.URL, "").Events(testContext(t), 5)
	defer s.Close()
	want := []api.Event{
		{ID: 7, Kind: api.EventProgress, TaskID: "t1", Written: 10},
		{ID: 8, Kind: api.EventCompleted, TaskID: "t1", Path: "/d/a b"},
		{ID: 9, Kind: api.EventWarning, Reason: "x"},
	}
	for i, w := range want {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !reflect.DeepEqual(ev, w) {
			t.Errorf("event %d\n got %+v\nwant %+v", i, ev, w)
		}
	}
	if s.LastID() != 9 {
		t.Errorf("LastID %d", s.LastID())
	}
}

func TestSSEReaderRejectsHugeLines(t *testing.T) {
	r := newSSEReader(strings.NewReader("data: " + strings.Repeat("x", maxLineBytes+1) + "\n\n"))
	var pe *protocolError
	if _, err := r.next(); !errors.As(err, &pe) {
		t.Errorf("got %v, want a protocol error", err)
	}
}

func TestEventsReconnect(t *testing.T) {
	f := daemontest.New()
	f.DropStreamsAfter(2)
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateQueued}) // event 1, before the stream
	s := c.Events(testContext(t), 0)
	defer s.Close()

	go func() {
		for i := 0; i < 5; i++ {
			time.Sleep(20 * time.Millisecond)
			f.Emit(api.Event{Kind: api.EventProgress, TaskID: "t1", State: api.StateRunning}) // events 2 to 6
		}
	}()
	var got []uint64
	for len(got) < 5 {
		ev, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID)
	}
	if !reflect.DeepEqual(got, []uint64{2, 3, 4, 5, 6}) {
		t.Errorf("event IDs %v, want 2 to 6, each once", got)
	}
	if got, want := f.LastEventIDs(), []string{"1", "3", "5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Last-Event-ID headers %q, want %q", got, want)
	}
}

func TestEventsReconnectAfterDaemonRestart(t *testing.T) {
	f := daemontest.New()
	dir := daemontest.StateDir(t)
	srv1 := f.ServeUnixAt(t, dir)
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateQueued}) // event 1: before the stream
	var once sync.Once
	f.OnStream(func() {
		once.Do(func() { f.Emit(api.Event{Kind: api.EventStarted, TaskID: "t1", State: api.StateRunning}) })
	})
	s := c.Events(testContext(t), 0)
	defer s.Close()
	if ev, err := s.Next(); err != nil || ev.ID != 2 {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	srv1.Close() // the daemon stops: the stream breaks and the socket is gone
	f.Emit(api.Event{Kind: api.EventCompleted, TaskID: "t1", State: api.StateCompleted})
	time.Sleep(300 * time.Millisecond) // a few failed reconnections
	f.ServeUnixAt(t, dir)
	if ev, err := s.Next(); err != nil || ev.ID != 3 || ev.Kind != api.EventCompleted {
		t.Fatalf("event after the restart %+v, %v", ev, err)
	}
	if ids := f.LastEventIDs(); ids[len(ids)-1] != "2" {
		t.Errorf("Last-Event-ID headers %q, want 2 after the restart", ids)
	}
}

func TestEventsEnd(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")

	ctx, cancel := context.WithCancel(context.Background())
	s := c.Events(ctx, 0)
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("again after cancel: %v", err)
	}

	s = c.Events(testContext(t), 0)
	time.AfterFunc(100*time.Millisecond, s.Close)
	if _, err := s.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestEventsRefused(t *testing.T) {
	f := daemontest.New()
	f.Token = "right"
	s := New(f.ServeTCP(t), "wrong").Events(testContext(t), 3)
	defer s.Close()
	var ae *Error
	if _, err := s.Next(); !errors.As(err, &ae) || ae.Code != api.CodeUnauthorized {
		t.Errorf("got %v, want the 401 answer", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	s = New(srv.URL, "").Events(testContext(t), 3)
	defer s.Close()
	var pe *protocolError
	if _, err := s.Next(); !errors.As(err, &pe) {
		t.Errorf("got %v, want a protocol error", err)
	}
}

// TestIdleStreamIsClosed: a stream that stays silent longer than the idle
// timeout (no event, no heartbeat) is closed, so Next reconnects instead of
// waiting forever on a half-open connection; data keeps it open.
func TestIdleStreamIsClosed(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	body := closeWhenIdle(pr, 100*time.Millisecond)
	go func() {
		for i := 0; i < 5; i++ {
			time.Sleep(40 * time.Millisecond)
			pw.Write([]byte("x"))
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 5; i++ {
		if _, err := body.Read(buf); err != nil {
			t.Fatalf("read %d while data flows: %v", i, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := body.Read(buf); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a read on a silent stream succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent stream was not closed")
	}
}
