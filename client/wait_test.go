package client

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
)

// states returns the state of each task.
func states(tasks map[string]api.Task) map[string]string {
	m := make(map[string]string, len(tasks))
	for id, t := range tasks {
		m[id] = t.State
	}
	return m
}

func TestWaitSeesAnEndWhileItStarts(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateRunning) // event 1
	// The task completes just after Wait read it as running: the stream
	// must bring the end.
	f.onTaskGet = func(task *api.Task) {
		if task.State == api.StateRunning {
			f.setLocked(task.ID, api.StateCompleted, api.EventCompleted)
		}
	}
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateCompleted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
	f.mu.Lock()
	lastIDs := f.lastIDs
	f.mu.Unlock()
	if !reflect.DeepEqual(lastIDs, []string{"1"}) {
		t.Errorf("Last-Event-ID headers %q, want the ID from Stats", lastIDs)
	}
	// Subscribed before reading the task.
	want := []string{"GET /v1/stats", "GET /v1/events", "GET /v1/tasks/t1", "GET /v1/tasks/t1"}
	if got := f.requestLog(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestWaitIgnoresOldEvents(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateRunning)
	// Between Stats and the read, the task was paused and resumed: the
	// replayed "paused" event must not end the wait.
	calls := 0
	f.onTaskGet = func(task *api.Task) {
		if calls++; calls == 1 {
			f.setLocked(task.ID, api.StatePaused, api.EventPaused)
			f.setLocked(task.ID, api.StateRunning, api.EventResumed)
		}
	}
	f.onStream = func() {
		time.Sleep(100 * time.Millisecond)
		f.set("t1", api.StateFailed, api.EventFailed)
	}
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateFailed {
		t.Fatalf("Wait = %v, %v; want failed", states(got), err)
	}
}

func TestWaitAfterGap(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateRunning) // event 1
	f.onTaskGet = func(task *api.Task) {
		if task.ID == "t1" && task.State == api.StateRunning {
			f.setLocked("t1", api.StateCompleted, api.EventCompleted) // event 2: lost
			f.addLocked("https://example.com/b", api.StateQueued)     // event 3: lost
			f.setLocked("t2", api.StateRunning, api.EventStarted)     // event 4: kept
			f.firstKept = 4
		}
	}
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateCompleted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
}

func TestWaitSeveral(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateCompleted)
	f.add("https://example.com/b", api.StateRunning)
	f.add("https://example.com/c", api.StateQueued)
	f.add("https://example.com/d", api.StateRunning)
	f.onStream = func() {
		time.Sleep(50 * time.Millisecond)
		f.set("t2", api.StateCancelled, api.EventCancelled)
		f.set("t3", api.StateRunning, api.EventStarted)
		f.set("t3", api.StatePaused, api.EventPaused)
		f.mu.Lock()
		delete(f.tasks, "t4")
		f.emitLocked(api.Event{Kind: api.EventRemoved, TaskID: "t4"})
		f.mu.Unlock()
	}
	got, err := c.Wait(testContext(t), "t1", "t2", "t3", "t2", "t4")
	want := map[string]string{"t1": api.StateCompleted, "t2": api.StateCancelled, "t3": api.StatePaused, "t4": StateRemoved}
	if err != nil || !reflect.DeepEqual(states(got), want) {
		t.Fatalf("Wait = %v, %v; want %v", states(got), err, want)
	}
	if got["t4"].URL != "https://example.com/d" {
		t.Errorf("removed task %+v: want it as last seen", got["t4"])
	}
}

func TestWaitEndedAlready(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateInterrupted)
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateInterrupted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
	if got, err := c.Wait(testContext(t)); err != nil || len(got) != 0 {
		t.Errorf("Wait() = %v, %v", got, err)
	}
}

func TestWaitErrors(t *testing.T) {
	f := newFake()
	c := New(f.serveTCP(t), "")
	f.add("https://example.com/a", api.StateRunning)

	var ae *Error
	if _, err := c.Wait(testContext(t), "t1", "nope"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("unknown task: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx, "t1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
}
