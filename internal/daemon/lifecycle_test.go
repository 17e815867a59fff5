package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/durltest"
)

func TestDownloadCompletes(t *testing.T) {
	state, dl := testDirs(t)
	const size = 256 << 10
	src := durltest.NewServer(durltest.WithContent(7, size))
	defer src.Close()
	d := startDaemon(t, state, dl)

	out := filepath.Join(dl, "sub", "a.bin")
	sum := durltest.Digest(7, size)
	task := d.add(api.Download{URL: src.FileURL(), Output: out, Checksum: fmt.Sprintf("sha256:%x", sum)})[0]
	task = d.waitState(task.ID, api.StateCompleted)
	if task.Path != out || task.Written != size || task.Total != size {
		t.Fatalf("completed task: %+v", task)
	}
	if err := durltest.VerifyFile(out, 7, size); err != nil {
		t.Fatal(err)
	}
}

func TestPauseResumeCancel(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl)
	out := filepath.Join(dl, "slow.bin")
	task := d.add(api.Download{URL: src.FileURL(), Output: out})[0]
	id := task.ID
	d.waitState(id, api.StateRunning)

	var got api.Task
	d.call("POST", "/v1/tasks/"+id+"/pause", nil, http.StatusOK, &got)
	if got.State != api.StatePaused {
		t.Fatalf("after pause: %s", got.State)
	}
	if _, err := os.Stat(out + durl.PartialSuffix); err != nil {
		t.Fatalf("no partial file after pause: %v", err)
	}
	d.call("POST", "/v1/tasks/"+id+"/pause", nil, http.StatusOK, &got) // pausing again is fine
	d.call("POST", "/v1/tasks/"+id+"/resume", nil, http.StatusOK, &got)
	if got.State != api.StateQueued && got.State != api.StateRunning {
		t.Fatalf("after resume: %s", got.State)
	}
	d.call("POST", "/v1/tasks/"+id+"/resume", nil, http.StatusOK, &got) // resuming again is fine
	d.call("POST", "/v1/tasks/"+id+"/cancel", nil, http.StatusOK, &got)
	if got.State != api.StateCancelled {
		t.Fatalf("after cancel: %s", got.State)
	}
	if _, err := os.Stat(out + durl.PartialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the partial file is still there after cancel: %v", err)
	}
	d.wantError("GET", "/v1/tasks/"+id, nil, http.StatusNotFound, api.CodeNotFound)
	d.wantError("POST", "/v1/tasks/"+id+"/cancel", nil, http.StatusNotFound, api.CodeNotFound)
	d.wantError("POST", "/v1/tasks/"+id+"/resume", nil, http.StatusNotFound, api.CodeNotFound)
}

func TestRemove(t *testing.T) {
	state, dl := testDirs(t)
	src := durltest.NewServer(durltest.WithContent(3, 64<<10))
	defer src.Close()
	slow := slowSource(t)
	d := startDaemon(t, state, dl)

	kept := d.add(api.Download{URL: src.URL + "/kept.bin"})[0]
	gone := d.add(api.Download{URL: src.URL + "/gone.bin"})[0]
	kept = d.waitState(kept.ID, api.StateCompleted)
	gone = d.waitState(gone.ID, api.StateCompleted)
	d.wantError("POST", "/v1/tasks/"+kept.ID+"/cancel", nil, http.StatusConflict, api.CodeConflict)
	d.wantError("POST", "/v1/tasks/"+kept.ID+"/pause", nil, http.StatusConflict, api.CodeConflict)
	d.wantError("POST", "/v1/tasks/"+kept.ID+"/resume", nil, http.StatusConflict, api.CodeConflict)
	d.wantError("PATCH", "/v1/tasks/"+kept.ID, `{"priority": 3}`, http.StatusConflict, api.CodeConflict)
	d.wantError("DELETE", "/v1/tasks/"+kept.ID+"?delete_data=perhaps", nil, http.StatusBadRequest, api.CodeBadRequest)

	d.call("DELETE", "/v1/tasks/"+kept.ID, nil, http.StatusOK, nil)
	d.wantError("GET", "/v1/tasks/"+kept.ID, nil, http.StatusNotFound, api.CodeNotFound)
	if err := durltest.VerifyFile(kept.Path, 3, 64<<10); err != nil {
		t.Fatalf("DELETE without delete_data removed the file: %v", err)
	}
	d.call("DELETE", "/v1/tasks/"+gone.ID+"?delete_data=true", nil, http.StatusOK, nil)
	if _, err := os.Stat(gone.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DELETE with delete_data left the file: %v", err)
	}

	out := filepath.Join(dl, "partial.bin")
	part := d.add(api.Download{URL: slow.FileURL(), Output: out})[0]
	d.waitState(part.ID, api.StateRunning)
	d.call("DELETE", "/v1/tasks/"+part.ID+"?delete_data=true", nil, http.StatusOK, nil)
	if _, err := os.Stat(out + durl.PartialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DELETE with delete_data left the partial file: %v", err)
	}
	d.wantError("DELETE", "/v1/tasks/"+part.ID, nil, http.StatusNotFound, api.CodeNotFound)
	if n := d.count(); n != 0 {
		t.Fatalf("%d tasks left", n)
	}
}

// TestCompletedTasksArePruned: a completed task older than KeepCompleted
// is forgotten with a removed event; its file stays.
func TestCompletedTasksArePruned(t *testing.T) {
	state, dl := testDirs(t)
	src := durltest.NewServer(durltest.WithContent(4, 32<<10))
	defer src.Close()
	d := startDaemon(t, state, dl, func(c *Config) { c.KeepCompleted = time.Millisecond; c.PruneInterval = 20 * time.Millisecond })
	s := d.events(0)
	task := d.add(api.Download{URL: src.FileURL()})[0]
	removed := s.until(func(e api.Event) bool { return e.Kind == api.EventRemoved })
	if e := removed[len(removed)-1]; e.TaskID != task.ID || e.Reason == "" {
		t.Fatalf("removed event %+v, want one for task %s with a reason", e, task.ID)
	}
	d.wantError("GET", "/v1/tasks/"+task.ID, nil, http.StatusNotFound, api.CodeNotFound)
	if err := durltest.VerifyFile(filepath.Join(dl, "file"), 4, 32<<10); err != nil {
		t.Fatalf("pruning touched the file: %v", err)
	}
}

// TestPrunedAtStartIsLogged: a completed task that expires while the
// daemon is down is forgotten by the next start, and a client catching up
// with Last-Event-ID learns it from a removed event.
func TestPrunedAtStartIsLogged(t *testing.T) {
	state, dl := testDirs(t)
	src := durltest.NewServer(durltest.WithContent(6, 32<<10))
	defer src.Close()
	d := startDaemon(t, state, dl)
	s := d.events(0)
	task := d.add(api.Download{URL: src.FileURL()})[0]
	done := s.until(func(e api.Event) bool { return e.Kind == api.EventCompleted })
	seen := done[len(done)-1].ID
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // older than KeepCompleted below
	d = startDaemon(t, state, dl, func(c *Config) { c.KeepCompleted = time.Millisecond })
	removed := d.events(seen).until(func(e api.Event) bool { return e.Kind == api.EventRemoved })
	if e := removed[len(removed)-1]; e.TaskID != task.ID || e.State != api.StateCompleted || e.Reason == "" {
		t.Fatalf("removed event %+v, want one for completed task %s with a reason", e, task.ID)
	}
	d.wantError("GET", "/v1/tasks/"+task.ID, nil, http.StatusNotFound, api.CodeNotFound)
}

// TestGracefulStopResumesOnRestart: a daemon stopped gracefully
// checkpoints its running downloads, says they were interrupted, not
// paused, and its next start resumes them where they stopped.
func TestGracefulStopResumesOnRestart(t *testing.T) {
	state, dl := testDirs(t)
	const size = 1 << 20
	src := durltest.NewServer(durltest.WithContent(5, size), durltest.WithRate(512<<10))
	defer src.Close()
	out := filepath.Join(dl, "big.bin")

	d := startDaemon(t, state, dl)
	s := d.events(0)
	task := d.add(api.Download{URL: src.FileURL(), Output: out})[0]
	added := s.until(func(e api.Event) bool { return e.Kind == api.EventAdded })[0]
	waitFor(t, "some bytes written", func() bool { return d.get(task.ID).Written > 0 })
	if err := d.stop(); err != nil {
		t.Fatalf("Serve after a graceful stop: %v", err)
	}
	if _, err := os.Stat(d.srv.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is still there after the stop: %v", err)
	}
	if err := durltest.VerifyFile(out, 5, size); err == nil {
		t.Skip("the download completed before the stop; the source is too fast for this machine")
	}
	before := len(src.Requests())

	d2 := startDaemon(t, state, dl)
	d2.waitState(task.ID, api.StateCompleted)
	if err := durltest.VerifyFile(out, 5, size); err != nil {
		t.Fatal(err)
	}
	for _, r := range src.Requests()[before:] {
		if r.Range == "" || strings.HasPrefix(r.Range, "bytes=0-") {
			t.Errorf("after the restart the daemon asked for %q: it did not resume from the checkpoint", r.Range)
		}
	}
	replay := d2.events(added.ID).until(func(e api.Event) bool { return e.TaskID == task.ID && e.Kind == api.EventCompleted })
	var kinds []string
	for _, e := range replay {
		if e.TaskID == task.ID && e.Kind != api.EventProgress {
			kinds = append(kinds, e.Kind)
		}
		if e.Kind == api.EventInterrupted && e.State != api.StateInterrupted {
			t.Errorf("interrupted event with state %q", e.State)
		}
	}
	want := []string{api.EventStarted, api.EventInterrupted, api.EventRecovered, api.EventStarted, api.EventCompleted}
	if !slices.Equal(kinds, want) {
		t.Errorf("events of the task %v, want %v", kinds, want)
	}
}

func TestOneDaemonPerStateFolder(t *testing.T) {
	state, dl := testDirs(t)
	startDaemon(t, state, dl)
	_, err := New(context.Background(), Config{StateDir: state, DownloadDirs: []string{dl}})
	if !errors.Is(err, ErrRunning) {
		t.Fatalf("a second New on the same state folder: %v, want ErrRunning", err)
	}
}

func TestStaleSocket(t *testing.T) {
	state, dl := testDirs(t)
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(state, api.SocketName)

	// A socket that something else answers on is refused.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), Config{StateDir: state, DownloadDirs: []string{dl}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); !errors.Is(err, ErrRunning) {
		t.Fatalf("Listen over a live socket: %v, want ErrRunning", err)
	}
	srv.Close()

	// A socket left by a process that died is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, state, dl)
	d.call("GET", api.PathVersion, nil, http.StatusOK, nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestFailureCodes: a failed task carries a stable error code, in its
// failed event and in the task, and keeps it across a restart.
func TestFailureCodes(t *testing.T) {
	state, dl := testDirs(t)
	missing := durltest.NewServer(durltest.WithStatusSequence(http.StatusNotFound))
	defer missing.Close()
	src := durltest.NewServer(durltest.WithContent(8, 64<<10))
	defer src.Close()
	d := startDaemon(t, state, dl)
	s := d.events(0)

	want := map[string]string{}
	task := d.add(api.Download{URL: missing.FileURL(), Output: filepath.Join(dl, "missing.bin")})[0]
	want[task.ID] = api.CodeNetwork
	task = d.add(api.Download{URL: src.FileURL(), Output: filepath.Join(dl, "bad.bin"), Checksum: "sha256:" + strings.Repeat("0", 64)})[0]
	want[task.ID] = api.CodeChecksum

	failed := map[string]bool{}
	s.until(func(e api.Event) bool {
		if e.Kind == api.EventFailed {
			if e.Error == nil || e.Error.Code != want[e.TaskID] || e.Error.Message == "" || e.State != api.StateFailed {
				t.Errorf("failed event %+v, want the code %q", e, want[e.TaskID])
			}
			failed[e.TaskID] = true
		}
		return len(failed) == len(want)
	})
	check := func(d *testDaemon) {
		t.Helper()
		for id, code := range want {
			got := d.get(id)
			if got.State != api.StateFailed || got.Error == nil || got.Error.Code != code {
				t.Errorf("task %s: %s %+v, want failed with %q", id, got.State, got.Error, code)
			}
		}
	}
	check(d)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	check(startDaemon(t, state, dl))
}

// TestRemoteChangedRestarts: a file that changes on the server during the
// download makes the task start over, with a restarted event that says why,
// and end with the new version whole.
func TestRemoteChangedRestarts(t *testing.T) {
	state, dl := testDirs(t)
	const size = 256 << 10
	src := durltest.NewServer(durltest.WithContent(1, size), durltest.WithReplaceAtByte(64<<10, 2, size))
	defer src.Close()
	d := startDaemon(t, state, dl)
	s := d.events(0)
	out := filepath.Join(dl, "changed.bin")
	task := d.add(api.Download{URL: src.FileURL(), Output: out})[0]
	events := s.until(func(e api.Event) bool {
		return e.TaskID == task.ID && (e.Kind == api.EventCompleted || e.Kind == api.EventFailed)
	})
	restarted := slices.IndexFunc(events, func(e api.Event) bool { return e.Kind == api.EventRestarted })
	if restarted < 0 || events[restarted].Reason == "" {
		t.Fatalf("no restarted event with a reason: %+v", events)
	}
	if end := events[len(events)-1]; end.Kind != api.EventCompleted {
		t.Fatalf("the task ended with %+v", end)
	}
	if err := durltest.VerifyFile(out, 2, size); err != nil {
		t.Fatal(err)
	}
}

// TestAddOutlivesTheClient: a client that sends an add and is gone before
// the answer (killed) does not take its download with it.
func TestAddOutlivesTheClient(t *testing.T) {
	state, dl := testDirs(t)
	const size = 128 << 10
	src := durltest.NewServer(durltest.WithContent(9, size), durltest.WithRate(64<<10))
	defer src.Close()
	d := startDaemon(t, state, dl)

	conn, err := net.Dial("unix", d.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"downloads": [{"url": %q}]}`, src.FileURL())
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: durl\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		api.PathTasks, len(body), body)
	conn.Close() // gone without reading the answer

	var list api.TaskList
	waitFor(t, "the task added", func() bool {
		d.call("GET", api.PathTasks, nil, http.StatusOK, &list)
		return len(list.Tasks) == 1
	})
	d.waitState(list.Tasks[0].ID, api.StateCompleted)
	if err := durltest.VerifyFile(filepath.Join(dl, "file"), 9, size); err != nil {
		t.Fatal(err)
	}
}
