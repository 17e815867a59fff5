// Package daemontest is an in-memory fake of durl serve's API (package
// api), for the tests of its clients: package client and the client
// commands of durl. It keeps tasks and numbered events in memory, serves
// the event stream from a Last-Event-ID, records the requests it gets, and
// has hooks that let a test change things at the moments that matter.
package daemontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
)

// pageSize is the most tasks a page of GET /v1/tasks holds, whatever the
// limit asked: small, so that clients must follow the pages.
const pageSize = 2

// pingInterval is how often an idle event stream gets a comment line.
const pingInterval = 50 * time.Millisecond

// Fake is a fake daemon. Create it with New; its methods are safe for
// concurrent use.
type Fake struct {
	// Token is the bearer token the fake requires, "" for none. Set it
	// before the fake serves.
	Token string

	stopOnce sync.Once
	stop     chan struct{} // closed when the test ends: the streams stop

	mu        sync.Mutex
	tasks     map[string]*api.Task
	order     []string    // task IDs, oldest first
	events    []api.Event // events[i].ID == i+1
	firstKept uint64      // events before this ID are gone
	changed   chan struct{}
	requests  []string         // "METHOD /path?query body"
	lastIDs   []string         // the Last-Event-ID header of each stream request
	dropAfter int              // a stream ends after this many events (0: never)
	onTaskGet func(t api.Task) // see OnTaskGet
	onStream  func()           // see OnStream
}

// New returns a fake daemon without tasks or events.
func New() *Fake {
	return &Fake{tasks: map[string]*api.Task{}, changed: make(chan struct{}), stop: make(chan struct{})}
}

// StateDir returns a new temporary folder, removed at the end of the
// test, whose path is short enough for the daemon's socket inside it.
func StateDir(t testing.TB) string {
	dir := t.TempDir()
	if len(dir)+len(api.SocketName) < 100 {
		return dir
	}
	dir, err := os.MkdirTemp("", "durl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// ServeTCP serves the fake on 127.0.0.1 until the end of the test and
// returns its URL.
func (f *Fake) ServeTCP(t testing.TB) string {
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(f.close)
	return srv.URL
}

// ServeUnix serves the fake on the socket of a new state folder (see
// StateDir) until the end of the test, and returns the folder.
func (f *Fake) ServeUnix(t testing.TB) string {
	dir := StateDir(t)
	f.ServeUnixAt(t, dir)
	return dir
}

// ServeUnixAt serves the fake on the socket of the state folder dir until
// the end of the test, or until the server it returns is closed, which
// removes the socket as a daemon that stops does.
func (f *Fake) ServeUnixAt(t testing.TB, dir string) *http.Server {
	l, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(f.close)
	return srv
}

// close ends the event streams.
func (f *Fake) close() {
	f.stopOnce.Do(func() { close(f.stop) })
}

// Add adds task, giving it the ID "tN" (N counting the tasks from 1) when
// it has none, and sends its added event. It returns the task.
func (f *Fake) Add(task api.Task) api.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(task)
}

// addLocked is Add with f.mu held.
func (f *Fake) addLocked(task api.Task) api.Task {
	if task.ID == "" {
		task.ID = "t" + strconv.Itoa(len(f.order)+1)
	}
	f.tasks[task.ID] = &task
	f.order = append(f.order, task.ID)
	f.emitLocked(api.Event{Kind: api.EventAdded, TaskID: task.ID, URL: task.URL, State: task.State})
	return task
}

// Emit sends ev with the next ID. When ev has a State, its task gets it,
// with ev's Error, and ev's Written when not 0.
func (f *Fake) Emit(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyLocked(ev)
}

// applyLocked is Emit with f.mu held.
func (f *Fake) applyLocked(ev api.Event) {
	if t := f.tasks[ev.TaskID]; t != nil && ev.State != "" {
		t.State, t.Error = ev.State, ev.Error
		if ev.Written > 0 {
			t.Written = ev.Written
		}
	}
	f.emitLocked(ev)
}

// Remove forgets the task id and sends its removed event.
func (f *Fake) Remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(id)
}

// removeLocked is Remove with f.mu held.
func (f *Fake) removeLocked(id string) {
	delete(f.tasks, id)
	f.emitLocked(api.Event{Kind: api.EventRemoved, TaskID: id})
}

// emitLocked appends ev with the next ID and wakes the streams.
func (f *Fake) emitLocked(ev api.Event) {
	ev.ID = uint64(len(f.events) + 1)
	f.events = append(f.events, ev)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Trim makes the events before firstKept gone: a stream asking for one of
// them starts with a gap event.
func (f *Fake) Trim(firstKept uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.firstKept = firstKept
}

// DropStreamsAfter makes every event stream end after sending n events, as
// a dropped connection would (0: never).
func (f *Fake) DropStreamsAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropAfter = n
}

// OnTaskGet sets fn (nil for none) to run on every GET of one task, after
// the task is read and before it is answered, so that what fn changes is
// seen by the next request only. fn may call the methods of f.
func (f *Fake) OnTaskGet(fn func(task api.Task)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onTaskGet = fn
}

// OnStream sets fn (nil for none) to run, in a goroutine of its own, each
// time an event stream has been answered.
func (f *Fake) OnStream(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStream = fn
}

// Requests returns the requests received so far, each as "METHOD
// /path?query body".
func (f *Fake) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// LastEventIDs returns the Last-Event-ID header of each event stream
// request so far ("" when it had none).
func (f *Fake) LastEventIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lastIDs...)
}

// Handler returns the fake's API.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathVersion, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.Version{Version: "1.2.3", API: 1})
	})
	mux.HandleFunc("GET "+api.PathStats, f.stats)
	mux.HandleFunc("POST "+api.PathPauseAll, f.stats)
	mux.HandleFunc("POST "+api.PathResumeAll, f.stats)
	mux.HandleFunc("POST "+api.PathTasks, f.addTasks)
	mux.HandleFunc("GET "+api.PathTasks, f.list)
	mux.HandleFunc("GET "+api.PathTask, f.taskAction(""))
	mux.HandleFunc("PATCH "+api.PathTask, f.taskAction(""))
	mux.HandleFunc("DELETE "+api.PathTask, f.taskAction(api.EventRemoved))
	mux.HandleFunc("POST "+api.PathPause, f.taskAction(api.StatePaused))
	mux.HandleFunc("POST "+api.PathResume, f.taskAction(api.StateQueued))
	mux.HandleFunc("POST "+api.PathCancel, f.taskAction(api.StateCancelled)) // then forgotten, as by the daemon
	mux.HandleFunc("GET "+api.PathLimits, func(w http.ResponseWriter, r *http.Request) {
		n := 3
		writeJSON(w, api.Limits{MaxActive: &n})
	})
	mux.HandleFunc("PATCH "+api.PathLimits, func(w http.ResponseWriter, r *http.Request) {
		var l api.Limits
		json.NewDecoder(r.Body).Decode(&l)
		writeJSON(w, l)
	})
	mux.HandleFunc("GET "+api.PathEvents, f.stream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+strings.TrimSpace(string(body))))
		f.mu.Unlock()
		if f.Token != "" && r.Header.Get("Authorization") != "Bearer "+f.Token {
			WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or wrong token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// WriteError answers an error as the daemon does: status, and an
// api.ErrorResponse with code and message.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorResponse{Error: api.Error{Code: code, Message: message}})
}

// stats answers the count of tasks by state and the newest event's ID.
func (f *Fake) stats(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := api.Stats{Tasks: map[string]int{}, LastID: uint64(len(f.events))}
	for _, t := range f.tasks {
		s.Tasks[t.State]++
	}
	writeJSON(w, s)
}

// addTasks adds the downloads of an api.AddRequest as queued tasks.
func (f *Fake) addTasks(w http.ResponseWriter, r *http.Request) {
	var req api.AddRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var resp api.AddResponse
	for _, d := range req.Downloads {
		task := api.Task{URL: d.URL, Path: d.Output, Dir: d.Dir, State: api.StateQueued, Total: -1}
		resp.Tasks = append(resp.Tasks, f.addLocked(task))
	}
	writeJSON(w, resp)
}

// list answers a page of the tasks, oldest first, filtered by ?state=.
func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > pageSize {
		limit = pageSize
	}
	after := q.Get("after")
	var list api.TaskList
	started := after == ""
	for _, id := range f.order {
		t := f.tasks[id]
		if t == nil {
			continue
		}
		if s := q.Get("state"); s != "" && !strings.Contains(","+s+",", ","+t.State+",") {
			continue
		}
		list.Total++
		switch {
		case !started:
			started = id == after
		case len(list.Tasks) < limit:
			list.Tasks = append(list.Tasks, *t)
		case list.Next == "":
			list.Next = list.Tasks[len(list.Tasks)-1].ID
		}
	}
	writeJSON(w, list)
}

// taskAction answers a request about one task, which then gets state:
// none for "", forgotten for api.EventRemoved; a cancelled task is
// forgotten after its event, as the daemon does.
func (f *Fake) taskAction(state string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		t := f.tasks[r.PathValue("id")]
		if t == nil {
			f.mu.Unlock()
			WriteError(w, http.StatusNotFound, api.CodeNotFound, "no task "+r.PathValue("id"))
			return
		}
		switch state {
		case "":
		case api.EventRemoved:
			f.removeLocked(t.ID)
		default:
			f.applyLocked(api.Event{Kind: state, TaskID: t.ID, State: state})
		}
		if state == api.StateCancelled {
			delete(f.tasks, t.ID)
		}
		answer, hook := *t, f.onTaskGet
		f.mu.Unlock()
		if r.Method == http.MethodGet && hook != nil {
			hook(answer)
		}
		writeJSON(w, answer)
	}
}

// stream serves the events after the Last-Event-ID, or from now on
// without one.
func (f *Fake) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	last := r.Header.Get("Last-Event-ID")
	f.lastIDs = append(f.lastIDs, last)
	pos := uint64(len(f.events))
	if last != "" {
		pos, _ = strconv.ParseUint(last, 10, 64)
	}
	firstKept := f.firstKept
	hook, drop := f.onStream, f.dropAfter
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": welcome\n\n")
	if firstKept > 0 && pos+1 < firstKept {
		pos = firstKept - 1
		writeEvent(w, api.Event{ID: pos, Kind: api.EventGap, FirstKept: firstKept})
	}
	w.(http.Flusher).Flush()
	if hook != nil {
		go hook()
	}
	sent := 0
	for {
		f.mu.Lock()
		evs := append([]api.Event(nil), f.events[min(pos, uint64(len(f.events))):]...)
		changed := f.changed
		f.mu.Unlock()
		for _, ev := range evs {
			writeEvent(w, ev)
			pos = ev.ID
			if sent++; drop > 0 && sent >= drop {
				return
			}
		}
		w.(http.Flusher).Flush()
		select {
		case <-changed:
		case <-time.After(pingInterval):
			fmt.Fprint(w, ": ping\n\n")
		case <-r.Context().Done():
			return
		case <-f.stop:
			return
		}
	}
}

// writeEvent writes ev as a server-sent event.
func writeEvent(w io.Writer, ev api.Event) {
	b, _ := json.Marshal(ev)
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Kind, b)
}
