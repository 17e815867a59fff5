package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 20 * time.Second

// testDirs makes a short state folder (Unix socket paths must stay under
// 104 bytes, which t.TempDir may not) and a download folder, both removed
// at the end of the test.
func testDirs(t *testing.T) (state, downloads string) {
	t.Helper()
	root, err := os.MkdirTemp("", "durl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	root, err = filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	downloads = filepath.Join(root, "dl")
	if err := os.Mkdir(downloads, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "st"), downloads
}

// testDaemon is a daemon serving on its Unix socket for a test.
type testDaemon struct {
	t         *testing.T
	srv       *Server
	cfg       Config
	client    *http.Client // over the Unix socket
	stream    *http.Client // over the Unix socket, without a timeout: for the event stream
	cancel    context.CancelFunc
	serveDone chan error
}

// startDaemon starts a daemon over state, allowed to write into downloads,
// with cfg changed by opts. It is stopped at the end of the test if the
// test did not stop it.
func startDaemon(t *testing.T, state, downloads string, opts ...func(*Config)) *testDaemon {
	t.Helper()
	cfg := Config{StateDir: state, DownloadDirs: []string{downloads}, NoSync: true}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &testDaemon{t: t, srv: srv, cfg: cfg, cancel: cancel, serveDone: make(chan error, 1)}
	go func() { d.serveDone <- srv.Serve(ctx) }()
	d.client = unixClient(srv.SocketPath(), waitTimeout)
	d.stream = unixClient(srv.SocketPath(), 0)
	t.Cleanup(func() { d.stop() })
	return d
}

// unixClient returns an HTTP client that reaches the daemon's socket.
func unixClient(path string, timeout time.Duration) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// stop stops the daemon gracefully and returns Serve's error. Later calls
// return nil.
func (d *testDaemon) stop() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.cancel = nil
	d.client.CloseIdleConnections()
	d.stream.CloseIdleConnections()
	select {
	case err := <-d.serveDone:
		return err
	case <-time.After(waitTimeout):
		d.t.Errorf("Serve did not return %v after its context was cancelled", waitTimeout)
		return errors.New("timeout")
	}
}

// do sends a request with body (marshalled to JSON unless it is a string
// or []byte) and returns the status and the answer's body.
func (d *testDaemon) do(method, path string, body any) (int, []byte) {
	d.t.Helper()
	return doRequest(d.t, d.client, "http://durl", method, path, body, nil)
}

// doRequest sends one request with the headers h.
func doRequest(t *testing.T, c *http.Client, base, method, path string, body any, h http.Header) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// call sends a request that must answer want, and decodes the answer into
// out (when not nil).
func (d *testDaemon) call(method, path string, body any, want int, out any) {
	d.t.Helper()
	status, data := d.do(method, path, body)
	if status != want {
		d.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			d.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// wantError sends a request that must fail with status and code.
func (d *testDaemon) wantError(method, path string, body any, status int, code string) api.Error {
	d.t.Helper()
	got, data := d.do(method, path, body)
	var e api.ErrorResponse
	if err := json.Unmarshal(data, &e); err != nil {
		d.t.Fatalf("%s %s: the error answer is not JSON: %v: %q", method, path, err, data)
	}
	if got != status || e.Error.Code != code || e.Error.Message == "" {
		d.t.Fatalf("%s %s: got %d %+v, want %d %s with a message", method, path, got, e.Error, status, code)
	}
	return e.Error
}

// add adds downloads and returns the new tasks.
func (d *testDaemon) add(downloads ...api.Download) []api.Task {
	d.t.Helper()
	var out api.AddResponse
	d.call("POST", api.PathTasks, api.AddRequest{Downloads: downloads}, http.StatusOK, &out)
	if len(out.Tasks) != len(downloads) {
		d.t.Fatalf("added %d downloads, got %d tasks", len(downloads), len(out.Tasks))
	}
	return out.Tasks
}

// get returns the task with this ID.
func (d *testDaemon) get(id string) api.Task {
	d.t.Helper()
	var task api.Task
	d.call("GET", "/v1/tasks/"+id, nil, http.StatusOK, &task)
	return task
}

// count returns how many tasks the daemon knows.
func (d *testDaemon) count() int {
	d.t.Helper()
	var list api.TaskList
	d.call("GET", api.PathTasks+"?limit=1", nil, http.StatusOK, &list)
	return list.Total
}

// waitState waits until the task is in one of the states, and returns it.
func (d *testDaemon) waitState(id string, states ...string) api.Task {
	d.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		task := d.get(id)
		for _, s := range states {
			if task.State == s {
				return task
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("task %s is %s after %v, want %v (error %+v)", id, task.State, waitTimeout, states, task.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor waits until cond holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventStream reads server-sent events.
type eventStream struct {
	t      *testing.T
	resp   *http.Response
	events chan api.Event
	cancel context.CancelFunc
}

// events opens the event stream, after lastID when it is not 0.
func (d *testDaemon) events(lastID uint64) *eventStream {
	d.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://durl"+api.PathEvents, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(lastID, 10))
	}
	resp, err := d.stream.Do(req)
	if err != nil {
		cancel()
		d.t.Fatalf("GET %s: %v", api.PathEvents, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		d.t.Fatalf("GET %s: %s %s", api.PathEvents, resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{t: d.t, resp: resp, events: make(chan api.Event, 1000), cancel: cancel}
	go s.read()
	d.t.Cleanup(s.close)
	return s
}

// read parses the stream into s.events, checking that each event's SSE id
// and name agree with its data. It closes s.events at the end.
func (s *eventStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var id, name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var e api.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					s.t.Errorf("event data %q: %v", data, err)
					return
				}
				if e.Kind != name || (id != "" && id != strconv.FormatUint(e.ID, 10)) {
					s.t.Errorf("event id %q name %q disagree with its data %q", id, name, data)
				}
				s.events <- e
			}
			id, name, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// next returns the next event, failing the test if none comes in time.
func (s *eventStream) next() api.Event {
	s.t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		return e
	case <-time.After(waitTimeout):
		s.t.Fatalf("no event after %v", waitTimeout)
	}
	return api.Event{}
}

// until returns the events up to and including the first for which match
// holds.
func (s *eventStream) until(match func(api.Event) bool) []api.Event {
	s.t.Helper()
	var got []api.Event
	for range 10_000 {
		e := s.next()
		got = append(got, e)
		if match(e) {
			return got
		}
	}
	s.t.Fatal("no matching event among 10,000")
	return nil
}

// close ends the stream.
func (s *eventStream) close() {
	s.cancel()
	s.resp.Body.Close()
}
