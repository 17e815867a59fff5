package client

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

// fake is a small in-memory daemon API for the tests.
type fake struct {
	token string // the bearer token required, "" for none
	stop  chan struct{}

	mu        sync.Mutex
	tasks     map[string]*api.Task
	order     []string
	events    []api.Event // events[i].ID == i+1
	firstKept uint64      // events before this ID are gone: a stream asking for them gets a gap
	changed   chan struct{}
	requests  []string // "METHOD /path?query body"
	lastIDs   []string // the Last-Event-ID header of each stream request

	// Hooks, set by tests.
	dropAfter int               // a stream ends after sending this many events (0: never)
	onTaskGet func(t *api.Task) // called, locked, before a task is answered
	onStream  func()            // called, in a goroutine, when a stream starts
}

// newFake returns an empty fake daemon.
func newFake() *fake {
	return &fake{tasks: map[string]*api.Task{}, changed: make(chan struct{}), stop: make(chan struct{})}
}

// serveTCP serves f on 127.0.0.1 and returns its URL.
func (f *fake) serveTCP(t *testing.T) string {
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	t.Cleanup(f.close)
	return srv.URL
}

// serveUnix serves f on the socket of a new state folder, which it
// returns.
func (f *fake) serveUnix(t *testing.T) string {
	dir := shortTempDir(t)
	l, err := listenUnix(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(f.close)
	return dir
}

// listenUnix listens on the daemon's socket in the state folder dir.
func listenUnix(dir string) (net.Listener, error) {
	return net.Listen("unix", filepath.Join(dir, api.SocketName))
}

// shortTempDir returns a new temporary folder whose path is short enough
// for a Unix socket inside it.
func shortTempDir(t *testing.T) string {
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

// close ends the streams.
func (f *fake) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

// add adds a task in state and returns it.
func (f *fake) add(url, state string) api.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(url, state)
}

func (f *fake) addLocked(url, state string) api.Task {
	id := "t" + strconv.Itoa(len(f.order)+1)
	t := &api.Task{ID: id, URL: url, State: state, Total: -1}
	f.tasks[id] = t
	f.order = append(f.order, id)
	f.emitLocked(api.Event{Kind: api.EventAdded, TaskID: id, URL: url, State: state})
	return *t
}

// set changes the state of task id and sends the event kind.
func (f *fake) set(id, state, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(id, state, kind)
}

func (f *fake) setLocked(id, state, kind string) {
	f.tasks[id].State = state
	f.emitLocked(api.Event{Kind: kind, TaskID: id, State: state})
}

// emitLocked appends an event and wakes the streams.
func (f *fake) emitLocked(ev api.Event) {
	ev.ID = uint64(len(f.events) + 1)
	f.events = append(f.events, ev)
	close(f.changed)
	f.changed = make(chan struct{})
}

// requestLog returns the requests received.
func (f *fake) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// handler returns the API's handler.
func (f *fake) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		answer(w, api.Version{Version: "1.2.3", API: 1})
	})
	mux.HandleFunc("GET /v1/stats", f.stats)
	mux.HandleFunc("POST /v1/pause-all", f.stats)
	mux.HandleFunc("POST /v1/resume-all", f.stats)
	mux.HandleFunc("POST /v1/tasks", f.addTasks)
	mux.HandleFunc("GET /v1/tasks", f.list)
	mux.HandleFunc("GET /v1/tasks/{id}", f.taskAction(""))
	mux.HandleFunc("PATCH /v1/tasks/{id}", f.taskAction(""))
	mux.HandleFunc("DELETE /v1/tasks/{id}", f.taskAction(StateRemoved))
	mux.HandleFunc("POST /v1/tasks/{id}/pause", f.taskAction(api.StatePaused))
	mux.HandleFunc("POST /v1/tasks/{id}/resume", f.taskAction(api.StateQueued))
	mux.HandleFunc("POST /v1/tasks/{id}/cancel", f.taskAction(api.StateCancelled))
	mux.HandleFunc("GET /v1/limits", func(w http.ResponseWriter, r *http.Request) {
		n := 3
		answer(w, api.Limits{MaxActive: &n})
	})
	mux.HandleFunc("PATCH /v1/limits", func(w http.ResponseWriter, r *http.Request) {
		var l api.Limits
		json.NewDecoder(r.Body).Decode(&l)
		answer(w, l)
	})
	mux.HandleFunc("GET /v1/events", f.stream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+strings.TrimSpace(string(body))))
		f.mu.Unlock()
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			fail(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or wrong token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// answer writes v as JSON.
func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail writes an error answer.
func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorResponse{Error: api.Error{Code: code, Message: msg}})
}

func (f *fake) stats(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := api.Stats{Tasks: map[string]int{}, LastID: uint64(len(f.events))}
	for _, t := range f.tasks {
		s.Tasks[t.State]++
	}
	answer(w, s)
}

func (f *fake) addTasks(w http.ResponseWriter, r *http.Request) {
	var req api.AddRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var resp api.AddResponse
	for _, d := range req.Downloads {
		resp.Tasks = append(resp.Tasks, f.addLocked(d.URL, api.StateQueued))
	}
	answer(w, resp)
}

func (f *fake) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 2
	}
	after := r.URL.Query().Get("after")
	var list api.TaskList
	started := after == ""
	for _, id := range f.order {
		t := f.tasks[id]
		if q := r.URL.Query().Get("state"); q != "" && !strings.Contains(","+q+",", ","+t.State+",") {
			continue
		}
		list.Total++
		if !started {
			started = id == after
			continue
		}
		if len(list.Tasks) == limit {
			if list.Next == "" {
				list.Next = list.Tasks[len(list.Tasks)-1].ID
			}
			continue
		}
		list.Tasks = append(list.Tasks, *t)
	}
	answer(w, list)
}

// taskAction handles a request about one task, which then gets state
// (unless "").
func (f *fake) taskAction(state string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		t := f.tasks[r.PathValue("id")]
		if t == nil {
			fail(w, http.StatusNotFound, api.CodeNotFound, "no task "+r.PathValue("id"))
			return
		}
		if r.Method == http.MethodGet && f.onTaskGet != nil {
			snapshot := *t
			f.onTaskGet(t)
			answer(w, snapshot)
			return
		}
		if state == StateRemoved {
			delete(f.tasks, t.ID)
			f.emitLocked(api.Event{Kind: api.EventRemoved, TaskID: t.ID})
		} else if state != "" {
			f.setLocked(t.ID, state, state)
		}
		answer(w, *t)
	}
}

// stream serves the events after the Last-Event-ID, or from now on.
func (f *fake) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	last := r.Header.Get("Last-Event-ID")
	f.lastIDs = append(f.lastIDs, last)
	pos := uint64(len(f.events))
	if last != "" {
		pos, _ = strconv.ParseUint(last, 10, 64)
	}
	gap := f.firstKept > 0 && pos+1 < f.firstKept
	hook, drop := f.onStream, f.dropAfter
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": welcome\n\n")
	if gap {
		pos = f.firstKept - 1
		writeEvent(w, api.Event{ID: pos, Kind: api.EventGap, FirstKept: f.firstKept})
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
		case <-time.After(50 * time.Millisecond):
			fmt.Fprint(w, ": ping\n\n")
		case <-r.Context().Done():
			return
		case <-f.stop:
			return
		}
	}
}

// writeEvent writes ev as a Server-Sent Event.
func writeEvent(w http.ResponseWriter, ev api.Event) {
	b, _ := json.Marshal(ev)
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Kind, b)
}
