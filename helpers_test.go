package durl

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs"
)

// eventLog collects a session's events for assertions.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) count(kind EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// waitFor waits (at most 10 s) until n events of kind were delivered.
func (l *eventLog) waitFor(kind EventKind, n int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for l.count(kind) < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func (l *eventLog) reasons(kind EventKind) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r []string
	for _, e := range l.events {
		if e.Kind == kind {
			r = append(r, e.Reason)
		}
	}
	return r
}

// testSession opens a session in a temporary folder with fast retries.
func testSession(t *testing.T, srv *durltest.Server, opts Options) (*Session, *eventLog, string) {
	t.Helper()
	dir := t.TempDir()
	log := &eventLog{}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(dir, "state")
	}
	opts.OnEvent = log.add
	if srv != nil && opts.Client == nil {
		opts.Client = srv.Client()
	}
	if opts.Retry.BaseDelay == 0 {
		opts.Retry.BaseDelay = 10 * time.Millisecond
		opts.Retry.MaxDelay = 100 * time.Millisecond
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log, dir
}

// wait waits for a task's run to end, at most 30 s.
func wait(t *testing.T, task *Task) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := task.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("task %s did not end in 30 s (state %s)", task.ID(), task.State())
	}
	return err
}

// get downloads url to dir/name and returns the task's error.
func get(t *testing.T, s *Session, url, dest string) (*Task, error) {
	t.Helper()
	task, err := s.Start(Request{URL: url, Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	return task, wait(t, task)
}

// checkFile fails unless path holds the server's content (seed, size).
func checkFile(t *testing.T, path string, seed uint64, size int64) {
	t.Helper()
	if err := durltest.VerifyFile(path, seed, size); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// waitWritten waits until the task has written at least n bytes; it fails
// at once if the task ends first.
func waitWritten(t *testing.T, task *Task, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for task.Progress().Written < n {
		select {
		case <-task.Done():
			if task.Progress().Written < n {
				t.Fatalf("task ended after %d bytes, waited for %d: %v", task.Progress().Written, n, task.Wait(context.Background()))
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("task wrote %d bytes, waited for %d", task.Progress().Written, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// of returns the events of one task.
func (l *eventLog) of(id string) []Event {
	var of []Event
	for _, e := range l.snapshot() {
		if e.TaskID == id {
			of = append(of, e)
		}
	}
	return of
}

// startOn opens a session on fsys (in boot bootA) with opts, closed when
// the test ends, and starts a download of srv's file to crashDest in it.
func startOn(t *testing.T, fsys vfs.FS, opts Options, srv *durltest.Server) (*Session, *Task) {
	t.Helper()
	s, err := open(context.Background(), opts, fsys, bootA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: crashDest})
	if err != nil {
		t.Fatal(err)
	}
	return s, task
}
