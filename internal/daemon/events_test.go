package daemon

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/durltest"
)

func TestEventsReplayAfterRestart(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	s := d.events(0)
	task := d.add(api.Download{URL: src.FileURL(), Paused: true})[0]
	added := s.until(func(e api.Event) bool { return e.Kind == api.EventAdded })[0]
	if added.Kind != api.EventAdded || added.TaskID != task.ID || added.ID == 0 || added.Time.IsZero() {
		t.Fatalf("first event: %+v", added)
	}
	d.call("POST", "/v1/tasks/"+task.ID+"/resume", nil, http.StatusOK, nil)
	s.until(func(e api.Event) bool { return e.Kind == api.EventResumed && e.TaskID == task.ID })

	// The stream ends when the daemon stops.
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-s.events:
		for ok {
			_, ok = <-s.events
		}
	case <-time.After(waitTimeout):
		t.Fatal("the event stream did not end when the daemon stopped")
	}

	// A client that reconnects after the restart gets every event after
	// the one it had, with no gap, then new ones.
	d = startDaemon(t, state, dl, oneAtATime)
	s = d.events(added.ID)
	replay := s.until(func(e api.Event) bool { return e.Kind == api.EventRecovered && e.TaskID == task.ID })
	d.call("POST", "/v1/tasks/"+task.ID+"/pause", nil, http.StatusOK, nil)
	replay = append(replay, s.until(func(e api.Event) bool { return e.Kind == api.EventPaused && e.TaskID == task.ID })...)
	kinds := map[string]bool{}
	for i, e := range replay {
		if e.ID != added.ID+1+uint64(i) {
			t.Fatalf("event %d of the replay has ID %d, want %d: %+v", i, e.ID, added.ID+1+uint64(i), replay)
		}
		kinds[e.Kind] = true
	}
	for _, k := range []string{api.EventResumed, api.EventRecovered, api.EventPaused} {
		if !kinds[k] {
			t.Errorf("no %s event in the replay: %+v", k, replay)
		}
	}
	if kinds[api.EventGap] {
		t.Errorf("a gap event though nothing was trimmed: %+v", replay)
	}
}

func TestEventsGap(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime, func(c *Config) { c.EventMax = 4 })
	for i := range 8 { // an added event each
		d.add(api.Download{URL: src.URL + "/" + strings.Repeat("x", i+1), Paused: true})
	}
	if err := d.srv.log.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log trimmed", func() bool { return d.srv.log.FirstID() > 2 })

	s := d.events(1)
	gap := s.next()
	if gap.Kind != api.EventGap || gap.FirstKept <= 2 {
		t.Fatalf("first event after a trimmed ID: %+v, want a gap", gap)
	}
	if next := s.next(); next.ID != gap.FirstKept {
		t.Fatalf("after the gap: event %d, want %d", next.ID, gap.FirstKept)
	}
}

func TestEventsHeartbeat(t *testing.T) {
	old := heartbeatInterval
	heartbeatInterval = 20 * time.Millisecond
	t.Cleanup(func() { heartbeatInterval = old })
	state, dl := testDirs(t)
	d := startDaemon(t, state, dl)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://durl"+api.PathEvents, nil)
	resp, err := d.stream.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := 0; ; i++ {
		if !sc.Scan() || i > 100 {
			t.Fatalf("no heartbeat: %v", sc.Err())
		}
		if sc.Text() == ": ping" {
			break
		}
	}
	var st api.Stats
	d.call("GET", api.PathStats, nil, http.StatusOK, &st)
	if st.EventClients != 1 {
		t.Fatalf("%d event clients, want 1", st.EventClients)
	}
}

// TestProgressEventsAreBounded: progress events come at most once per
// ProgressInterval per task, not once per read. With an interval longer
// than the download, each run of the task sends one: its first.
func TestProgressEventsAreBounded(t *testing.T) {
	state, dl := testDirs(t)
	const size = 192 << 10
	src := durltest.NewServer(durltest.WithContent(6, size), durltest.WithRate(96<<10))
	defer src.Close()
	d := startDaemon(t, state, dl, func(c *Config) { c.ProgressInterval = time.Hour })
	s := d.events(0)
	task := d.add(api.Download{URL: src.FileURL(), Connections: 1})[0]
	got := s.until(func(e api.Event) bool { return e.TaskID == task.ID && e.Kind == api.EventCompleted })
	runs, progress := 0, 0
	for _, e := range got {
		switch {
		case e.TaskID != task.ID:
		case e.Kind == api.EventStarted:
			runs++
		case e.Kind == api.EventProgress:
			progress++
		}
	}
	if runs == 0 || progress > runs {
		t.Fatalf("%d progress events in %d runs of a %d-byte download, want at most one a run: %+v", progress, runs, size, got)
	}
	if last := got[len(got)-1]; last.Written != size || last.Time.IsZero() {
		t.Fatalf("completed event: %+v", last)
	}
}
