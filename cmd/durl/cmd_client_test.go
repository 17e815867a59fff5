package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/daemon/daemontest"
	"github.com/durl-dev/durl/internal/vfs"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clientRun is a run of durl in this process.
type clientRun struct {
	vars     map[string]string
	cwd      string
	terminal bool
	stdout   syncBuffer
	stderr   syncBuffer
}

// run runs durl args with the state folder stateDir and returns the exit
// code; it gives up after 10 s.
func (r *clientRun) run(ctx context.Context, stateDir string, args ...string) int {
	vars := map[string]string{"DURL_STATE": stateDir}
	for k, v := range r.vars {
		vars[k] = v
	}
	cwd := r.cwd
	if cwd == "" {
		cwd = "/cwd"
	}
	e := &env{
		stdin:    strings.NewReader(""),
		stdout:   &r.stdout,
		stderr:   &r.stderr,
		getenv:   func(k string) string { return vars[k] },
		getwd:    func() (string, error) { return cwd, nil },
		terminal: r.terminal,
		fs:       vfs.OS,
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return run(ctx, args, e)
}

// runClient runs durl args against the daemon of stateDir.
func runClient(t *testing.T, stateDir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var r clientRun
	code = r.run(context.Background(), stateDir, args...)
	return code, r.stdout.String(), r.stderr.String()
}

func TestClientCommandsWithoutDaemon(t *testing.T) {
	dir := daemontest.StateDir(t)
	want := "durl: no durl daemon is running for state folder " + dir + "; start one with: durl serve --state " + dir + "\n"
	for _, args := range [][]string{
		{"add", "https://example.com/a"}, {"ls"}, {"pause", "t1"}, {"resume", "t1"}, {"cancel", "t1"},
		{"rm", "t1"}, {"watch"}, {"wait", "t1"},
	} {
		code, stdout, stderr := runClient(t, dir, args...)
		if code != exitError || stderr != want || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, stdout, stderr, want)
		}
	}
}

func TestClientUsageErrors(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"add"}, "no URL given"},
		{[]string{"add", "-o", "f", "https://h/a", "https://h/b"}, "-o names one file"},
		{[]string{"add", "--checksum", "md5:00", "https://h/a"}, "32 hex digits"},
		{[]string{"add", "--limit-rate", "fast", "https://h/a"}, "--limit-rate"},
		{[]string{"add", "-H", "bad", "https://h/a"}, "want 'Name: value'"},
		{[]string{"add", "ftp://h/a"}, "not an http or https URL"},
		{[]string{"add", "--priority", "1001", "https://h/a"}, "--priority must be from -1000 to 1000"},
		{[]string{"add", "-x", "65", "https://h/a"}, "-x must be from 0 to 64"},
		{[]string{"ls", "--only", "running,sleeping"}, `"sleeping" is not a state`},
		{[]string{"ls", "extra"}, "unknown command"},
		{[]string{"pause"}, "no task ID given"},
		{[]string{"rm"}, "no task ID given"},
		{[]string{"wait"}, "no task ID given"},
		{[]string{"ls", "--server", "ftp://127.0.0.1:1"}, "--server"},
	} {
		code, _, stderr := runClient(t, dir, tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	if got := f.Requests(); len(got) != 0 {
		t.Errorf("requests sent for usage errors: %q", got)
	}
}

func TestAdd(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	cwd := t.TempDir()
	r := &clientRun{cwd: cwd}
	sum := "sha256:" + strings.Repeat("ab", 32)
	code := r.run(context.Background(), dir, "add", "-o", "out/f.bin", "--priority", "3", "-x", "4", "--checksum", sum,
		"-H", "X-A:  1 ", "--mirror", "https://m.example/x", "--limit-rate", "1M", "--paused", "https://example.com/x")
	if code != 0 || r.stdout.String() != "t1\n" || r.stderr.String() != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
	}
	var req api.AddRequest
	log := f.Requests()
	if err := json.Unmarshal([]byte(strings.TrimPrefix(log[0], "POST /v1/tasks ")), &req); err != nil {
		t.Fatal(log[0], err)
	}
	want := api.Download{URL: "https://example.com/x", Mirrors: []string{"https://m.example/x"},
		Output: filepath.Join(cwd, "out", "f.bin"), Headers: []string{"X-A: 1"}, Checksum: sum, Connections: 4,
		Priority: 3, RateLimit: 1 << 20, Paused: true}
	if len(req.Downloads) != 1 || !reflect.DeepEqual(req.Downloads[0], want) {
		t.Errorf("request %+v\nwant %+v", req.Downloads, want)
	}

	// -d, several URLs, --json.
	r = &clientRun{cwd: cwd}
	code = r.run(context.Background(), dir, "add", "-d", "dl", "--json", "https://example.com/a", "https://example.com/b")
	tasks := jsonLines[api.Task](t, r.stdout.String())
	if code != 0 || len(tasks) != 2 {
		t.Fatalf("exit %d, stdout %q", code, r.stdout.String())
	}
	if tasks[0].ID != "t2" || tasks[1].ID != "t3" || tasks[1].Dir != filepath.Join(cwd, "dl") {
		t.Errorf("tasks %+v", tasks)
	}

	// Neither -o nor -d: the daemon's folder.
	code, stdout, _ := runClient(t, dir, "add", "https://example.com/c")
	if last := f.Requests()[2]; code != 0 || stdout != "t4\n" || last != `POST /v1/tasks {"downloads":[{"url":"https://example.com/c"}]}` {
		t.Errorf("exit %d, stdout %q, request %s", code, stdout, last)
	}
}

func TestAddRefused(t *testing.T) {
	srvDir := daemontest.StateDir(t)
	l, err := net.Listen("unix", filepath.Join(srvDir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	message := "/etc/x is outside the download folders"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		daemontest.WriteError(w, http.StatusForbidden, api.CodeForbidden, message)
	})}
	go srv.Serve(l)
	defer srv.Close()
	code, _, stderr := runClient(t, srvDir, "add", "-o", "/etc/x", "https://example.com/x")
	want := "durl: /etc/x is outside the download folders; choose a destination (-o, -d) inside the daemon's download folders\n"
	if code != exitError || stderr != want {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	// A message that says what to do is shown as it is.
	mu.Lock()
	message = "/etc is outside the download folders; start durl serve with -d /etc"
	mu.Unlock()
	code, _, stderr = runClient(t, srvDir, "add", "-o", "/etc/x", "https://example.com/x")
	if want := "durl: /etc is outside the download folders; start durl serve with -d /etc\n"; code != exitError || stderr != want {
		t.Errorf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

func TestLs(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/files/a.iso", State: api.StateRunning, Written: 512 << 10, Total: 1 << 20, Rate: 2048})
	f.Add(api.Task{ID: "t2", URL: "https://example.com/b", Path: "/d/b.bin", State: api.StateCompleted, Written: 3000, Total: 3000})
	f.Add(api.Task{ID: "t3", URL: "https://example.com/c", State: api.StateQueued, Total: -1})

	code, stdout, stderr := runClient(t, dir, "ls")
	want := "" +
		"ID  STATE      PROGRESS  SIZE     RATE       NAME\n" +
		"t1  running    50%       1.0 MiB  2.0 KiB/s  a.iso\n" +
		"t2  completed  100%      2.9 KiB  -          b.bin\n" +
		"t3  queued     0 B       ?        -          c\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", code, stderr, stdout, want)
	}

	code, stdout, _ = runClient(t, dir, "ls", "--only", "running, queued", "--json")
	if tasks := jsonLines[api.Task](t, stdout); code != 0 || len(tasks) != 2 || tasks[1].ID != "t3" {
		t.Errorf("exit %d, stdout %s", code, stdout)
	}
	if log := f.Requests(); log[len(log)-1] != "GET /v1/tasks?limit=1000&state=running%2Cqueued" {
		t.Errorf("requests %q", log)
	}

	// Empty: the header only, or no line.
	f2 := daemontest.New()
	dir2 := f2.ServeUnix(t)
	if _, stdout, _ := runClient(t, dir2, "ls"); stdout != "ID  STATE  PROGRESS  SIZE  RATE  NAME\n" {
		t.Errorf("empty: %q", stdout)
	}
	if _, stdout, _ := runClient(t, dir2, "ls", "--json"); stdout != "" {
		t.Errorf("empty --json: %q", stdout)
	}
}

// jsonLines decodes out, one JSON value of type T a line.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var values []T
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		values = append(values, v)
	}
	return values
}

func TestTaskActions(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/a", State: api.StateRunning})
	f.Add(api.Task{ID: "t2", URL: "https://example.com/b", State: api.StateQueued})
	f.Add(api.Task{ID: "t3", URL: "https://example.com/c", State: api.StateCompleted})

	code, stdout, stderr := runClient(t, dir, "pause", "t1", "nope", "t2")
	if code != exitError || stdout != "t1: paused\nt2: paused\n" ||
		stderr != "durl: nope: no task nope; list the tasks with: durl ls\n" {
		t.Errorf("pause: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, tt := range []struct{ cmd, want string }{{"resume", "resumed"}, {"cancel", "cancelled"}} {
		code, stdout, stderr := runClient(t, dir, tt.cmd, "t1")
		if code != 0 || stdout != "t1: "+tt.want+"\n" || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tt.cmd, code, stdout, stderr)
		}
	}
	code, stdout, _ = runClient(t, dir, "rm", "--delete-data", "t3")
	if code != 0 || stdout != "t3: removed, data deleted\n" {
		t.Errorf("rm: exit %d, stdout %q", code, stdout)
	}
	code, stdout, _ = runClient(t, dir, "rm", "t2")
	if code != 0 || stdout != "t2: removed\n" {
		t.Errorf("rm: exit %d, stdout %q", code, stdout)
	}
	for _, cmd := range []string{"pause", "resume"} {
		code, stdout, _ = runClient(t, dir, cmd, "--all")
		if code != 0 || !strings.HasPrefix(stdout, "all tasks ") {
			t.Errorf("%s --all: exit %d, stdout %q", cmd, code, stdout)
		}
	}
	if code, _, _ := runClient(t, dir, "pause", "--all", "t1"); code != exitUsage {
		t.Errorf("pause --all with an ID: exit %d, want %d", code, exitUsage)
	}
	want := []string{
		"POST /v1/tasks/t1/pause", "POST /v1/tasks/nope/pause", "POST /v1/tasks/t2/pause",
		"POST /v1/tasks/t1/resume", "POST /v1/tasks/t1/cancel",
		"DELETE /v1/tasks/t3?delete_data=true", "DELETE /v1/tasks/t2",
		"POST /v1/pause-all", "POST /v1/resume-all",
	}
	if got := f.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n got %q\nwant %q", got, want)
	}
}

func TestWait(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/a", Path: "/d/a", State: api.StateCompleted, Written: 2048, Total: 2048})
	f.Add(api.Task{ID: "t2", URL: "https://example.com/b", State: api.StateFailed,
		Error: &api.Error{Code: api.CodeChecksum, Message: "the file does not match the checksum"}})
	f.Add(api.Task{ID: "t3", URL: "https://example.com/c", State: api.StatePaused})
	f.Add(api.Task{ID: "t4", URL: "https://example.com/d", State: api.StateFailed,
		Error: &api.Error{Code: api.CodeNetwork, Message: "the server answered 404 Not Found"}})
	f.Add(api.Task{ID: "t5", URL: "https://example.com/e", State: api.StateCancelled})

	code, stdout, stderr := runClient(t, dir, "wait", "t1", "t2", "t3")
	if code != exitChecksum || stdout != "t1: completed /d/a (2.0 KiB)\n" ||
		stderr != "durl: t2: https://example.com/b: the file does not match the checksum; check the checksum and the URL\n"+
			"durl: t3: https://example.com/c: paused; continue it with: durl resume t3\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, tt := range []struct {
		ids  []string
		code int
	}{
		{[]string{"t1"}, exitOK},
		{[]string{"t3", "t2"}, exitInterrupted},
		{[]string{"t1", "t4", "t2"}, exitNetwork},
		{[]string{"t5", "t4"}, exitError},
	} {
		if code, _, stderr := runClient(t, dir, append([]string{"wait"}, tt.ids...)...); code != tt.code {
			t.Errorf("wait %v: exit %d, want %d; stderr %q", tt.ids, code, tt.code, stderr)
		}
	}
	code, _, stderr = runClient(t, dir, "wait", "t1", "nope")
	if code != exitError || !strings.Contains(stderr, "no task nope; list the tasks with: durl ls") {
		t.Errorf("unknown task: exit %d, stderr %q", code, stderr)
	}
}

func TestWaitFollowsEvents(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/a", State: api.StateRunning, Total: 10})
	f.OnStream(func() {
		time.Sleep(50 * time.Millisecond)
		f.Emit(api.Event{Kind: api.EventProgress, TaskID: "t1", State: api.StateRunning, Written: 5})
		f.Emit(api.Event{Kind: api.EventCompleted, TaskID: "t1", State: api.StateCompleted, Written: 10})
	})
	code, stdout, stderr := runClient(t, dir, "wait", "t1")
	if code != 0 || stdout != "t1: completed https://example.com/a (10 B)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Ctrl-C: exit 7, the download goes on.
	f.Add(api.Task{ID: "t2", URL: "https://example.com/b", State: api.StateRunning})
	f.OnStream(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var r clientRun
	if code := r.run(ctx, dir, "wait", "t2"); code != exitInterrupted ||
		r.stderr.String() != "durl: stopped waiting; the downloads go on in the daemon (see durl ls)\n" {
		t.Errorf("interrupted: exit %d, stderr %q", code, r.stderr.String())
	}
}

// runUntil runs durl args until the output has want, then cancels it as
// Ctrl-C would, and returns the exit code.
func runUntil(t *testing.T, r *clientRun, dir string, out *syncBuffer, want string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- r.run(ctx, dir, args...) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output after 5 s: %q (stderr %q)", want, out.String(), r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		return code
	case <-time.After(5 * time.Second):
		t.Fatal("durl did not stop after Ctrl-C")
	}
	return -1
}

func TestWatchLines(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/files/a.iso", State: api.StateQueued, Total: -1})
	f.OnStream(func() {
		f.Emit(api.Event{Kind: api.EventStarted, TaskID: "t1", State: api.StateRunning, Path: "/d/a.iso", Total: 4096})
		f.Emit(api.Event{Kind: api.EventProgress, TaskID: "t1", State: api.StateRunning, Written: 1024, Total: 4096, Rate: 1024})
		f.Emit(api.Event{Kind: api.EventFailed, TaskID: "t1", State: api.StateFailed,
			Error: &api.Error{Code: api.CodeNetwork, Message: "connection reset"}})
		f.Add(api.Task{ID: "t2", URL: "https://example.com/b", State: api.StateQueued})
	})
	r := &clientRun{}
	code := runUntil(t, r, dir, &r.stdout, "t2 added", "watch")
	want := "" +
		"t1 started a.iso\n" +
		"t1 progress a.iso 1.0 KiB of 4.0 KiB (25%), 1.0 KiB/s\n" +
		"t1 failed a.iso: connection reset\n" +
		"t2 added https://example.com/b\n"
	if code != 0 || r.stdout.String() != want || r.stderr.String() != "" {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", code, r.stderr.String(), r.stdout.String(), want)
	}

	// --json: the events as they are.
	r = &clientRun{}
	f.OnStream(func() { f.Emit(api.Event{Kind: api.EventPaused, TaskID: "t2", State: api.StatePaused}) })
	code = runUntil(t, r, dir, &r.stdout, "\n", "watch", "--json")
	var ev api.Event
	if err := json.Unmarshal([]byte(r.stdout.String()), &ev); code != 0 || err != nil || ev.Kind != api.EventPaused || ev.TaskID != "t2" {
		t.Errorf("--json: exit %d, %v, stdout %q", code, err, r.stdout.String())
	}
}

func TestWatchTerminal(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/a.iso", State: api.StateCompleted, Written: 10, Total: 10})
	f.Add(api.Task{ID: "t2", URL: "https://example.com/b.iso", State: api.StateRunning, Written: 5, Total: 10, Rate: 100})
	r := &clientRun{terminal: true}
	code := runUntil(t, r, dir, &r.stderr, "b.iso", "watch")
	out := r.stderr.String()
	if code != 0 || r.stdout.String() != "" {
		t.Errorf("exit %d, stdout %q", code, r.stdout.String())
	}
	for _, want := range []string{"\x1b[J", "2 tasks, 1 running, 1 completed; 100 B/s", "ID  STATE", "t2  running    50%"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
	if strings.Index(out, "t2  running") > strings.Index(out, "t1  completed") {
		t.Errorf("the running task is not first: %q", out)
	}
}

func TestServerFlag(t *testing.T) {
	f := daemontest.New()
	f.Token = "s3cret"
	url := f.ServeTCP(t)
	f.Add(api.Task{ID: "t1", URL: "https://example.com/a", State: api.StateQueued, Total: -1})
	state := t.TempDir() // no daemon there

	code, stdout, stderr := runClient(t, state, "ls", "--server", url, "--token", "s3cret")
	if code != 0 || !strings.Contains(stdout, "t1  queued") {
		t.Errorf("--server: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runClient(t, state, "ls", "--server", url, "--token", "wrong")
	if code != exitError || stderr != "durl: missing or wrong token; check --token or $DURL_TOKEN\n" {
		t.Errorf("wrong token: exit %d, stderr %q", code, stderr)
	}

	r := &clientRun{vars: map[string]string{"DURL_SERVER": strings.TrimPrefix(url, "http://"), "DURL_TOKEN": "s3cret"}}
	if code := r.run(context.Background(), state, "pause", "t1"); code != 0 || r.stdout.String() != "t1: paused\n" {
		t.Errorf("$DURL_SERVER: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
	}

	// A local server: the token file of the state folder.
	if err := os.WriteFile(filepath.Join(state, api.TokenName), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runClient(t, state, "resume", "t1", "--server", url); code != 0 {
		t.Errorf("token file: exit %d, stderr %q", code, stderr)
	}

	// Nobody there.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	code, _, stderr = runClient(t, state, "ls", "--server", "http://"+addr)
	if code != exitError || !strings.HasPrefix(stderr, "durl: cannot talk to the durl daemon at http://"+addr) ||
		!strings.HasSuffix(stderr, "; check that durl serve is running, and --server, --token or --state\n") {
		t.Errorf("closed port: exit %d, stderr %q", code, stderr)
	}
}

// TestClientCommandsWithDaemon runs the client commands against a real
// durl serve: the exit code of durl wait says how each task ended, and
// what durl add sends is judged by the daemon.
func TestClientCommandsWithDaemon(t *testing.T) {
	state, dl := serveDirs(t)
	stop, serveErr := startServe(t, state, "-d", dl)
	waitListening(t, serveErr)
	const size = 96 << 10
	src := durltest.NewServer(durltest.WithContent(3, size))
	defer src.Close()
	missing := durltest.NewServer(durltest.WithStatusSequence(http.StatusNotFound))
	defer missing.Close()

	add := func(args ...string) string {
		t.Helper()
		r := &clientRun{cwd: dl}
		if code := r.run(context.Background(), state, append([]string{"add"}, args...)...); code != 0 {
			t.Fatalf("add %v: exit %d, stderr %q", args, code, r.stderr.String())
		}
		return strings.TrimSpace(r.stdout.String())
	}
	good := add("-o", "good.bin", src.FileURL())
	bad := add("-o", "bad.bin", "--checksum", "sha256:"+strings.Repeat("0", 64), src.FileURL())
	gone := add("-o", "gone.bin", missing.FileURL())

	for _, tt := range []struct {
		ids  []string
		code int
	}{
		{[]string{good}, exitOK},
		{[]string{bad}, exitChecksum},
		{[]string{gone}, exitNetwork},
		{[]string{good, bad, gone}, exitChecksum},
		{[]string{good, gone, bad}, exitNetwork},
	} {
		code, stdout, stderr := runClient(t, state, append([]string{"wait"}, tt.ids...)...)
		completed := strings.Contains(stdout, good+": completed "+filepath.Join(dl, "good.bin"))
		if code != tt.code || completed != (tt.ids[0] == good) {
			t.Errorf("wait %v: exit %d, stdout %q, stderr %q; want exit %d", tt.ids, code, stdout, stderr, tt.code)
		}
		if lines := strings.Count(stdout+stderr, "\n"); lines != len(tt.ids) {
			t.Errorf("wait %v: %d lines, want one a task: %q %q", tt.ids, lines, stdout, stderr)
		}
	}
	if err := durltest.VerifyFile(filepath.Join(dl, "good.bin"), 3, size); err != nil {
		t.Fatal(err)
	}

	code, stdout, _ := runClient(t, state, "ls", "--json")
	states := map[string]string{}
	for _, task := range jsonLines[api.Task](t, stdout) {
		states[task.ID] = task.State
	}
	if want := map[string]string{good: api.StateCompleted, bad: api.StateFailed, gone: api.StateFailed}; code != 0 || !reflect.DeepEqual(states, want) {
		t.Errorf("ls --json: exit %d, states %v, want %v", code, states, want)
	}

	// A destination outside the download folder is refused, in one line.
	r := &clientRun{cwd: dl}
	if code := r.run(context.Background(), state, "add", "-o", "../outside.bin", src.FileURL()); code != exitError ||
		strings.Count(r.stderr.String(), "\n") != 1 || !strings.Contains(r.stderr.String(), "outside the download folders") {
		t.Errorf("add outside: exit %d, stderr %q", code, r.stderr.String())
	}

	// A task cancelled while durl wait waits for it. durl wait starts once
	// the task has started, so that the cancel comes after its first read.
	c, err := client.Dial(state)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := c.Events(ctx, 0)
	defer events.Close()
	if err := events.Connect(); err != nil {
		t.Fatal(err)
	}
	slow := durltest.NewServer(durltest.WithContent(4, 1<<20), durltest.WithRate(16<<10))
	defer slow.Close()
	slowID := add("-o", "slow.bin", slow.FileURL())
	for {
		ev, err := events.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.TaskID == slowID && ev.Kind == api.EventStarted {
			break
		}
	}
	waiting := make(chan [3]string, 1)
	go func() {
		var r clientRun
		code := r.run(context.Background(), state, "wait", slowID)
		waiting <- [3]string{strconv.Itoa(code), r.stdout.String(), r.stderr.String()}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := c.Stats(ctx); err == nil && st.EventClients == 2 { // this test's stream and durl wait's
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("durl wait does not follow the events")
		}
	}
	if code, stdout, stderr := runClient(t, state, "cancel", slowID); code != 0 || stdout != slowID+": cancelled\n" {
		t.Errorf("cancel: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := <-waiting; got[0] != "1" || got[1] != "" || !strings.HasPrefix(got[2], "durl: "+slowID+": "+slow.FileURL()+": cancelled; ") {
		t.Errorf("wait for a cancelled task: exit %s, stdout %q, stderr %q", got[0], got[1], got[2])
	}

	if code, stdout, stderr := runClient(t, state, "rm", "--delete-data", good); code != 0 || stdout != good+": removed, data deleted\n" {
		t.Errorf("rm: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dl, "good.bin")); !os.IsNotExist(err) {
		t.Errorf("rm --delete-data left the file: %v", err)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("durl serve: exit %d, %q", code, serveErr.String())
	}
}
