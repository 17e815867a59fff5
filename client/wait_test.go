package client

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/daemon/daemontest"
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
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning}) // event 1
	// The task completes just after Wait read it as running: the stream
	// must bring the end.
	f.OnTaskGet(func(task api.Task) {
		if task.State == api.StateRunning {
			f.Emit(api.Event{Kind: api.EventCompleted, TaskID: task.ID, State: api.StateCompleted})
		}
	})
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateCompleted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
	if lastIDs := f.LastEventIDs(); !reflect.DeepEqual(lastIDs, []string{"1"}) {
		t.Errorf("Last-Event-ID headers %q, want the ID from Stats", lastIDs)
	}
	// Subscribed before reading the task.
	want := []string{"GET /v1/stats", "GET /v1/events", "GET /v1/tasks/t1", "GET /v1/tasks/t1"}
	if got := f.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestWaitIgnoresOldEvents(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning})
	// Between Stats and the read, the task was paused and resumed: the
	// replayed "paused" event must not end the wait.
	calls := 0
	f.OnTaskGet(func(task api.Task) {
		if calls++; calls == 1 {
			f.Emit(api.Event{Kind: api.EventPaused, TaskID: task.ID, State: api.StatePaused})
			f.Emit(api.Event{Kind: api.EventResumed, TaskID: task.ID, State: api.StateRunning})
		}
	})
	f.OnStream(func() {
		time.Sleep(100 * time.Millisecond)
		f.Emit(api.Event{Kind: api.EventFailed, TaskID: "t1", State: api.StateFailed})
	})
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateFailed {
		t.Fatalf("Wait = %v, %v; want failed", states(got), err)
	}
}

func TestWaitAfterGap(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning}) // event 1
	f.OnTaskGet(func(task api.Task) {
		if task.ID == "t1" && task.State == api.StateRunning {
			f.Emit(api.Event{Kind: api.EventCompleted, TaskID: "t1", State: api.StateCompleted}) // event 2: lost
			f.Add(api.Task{URL: "https://example.com/b", State: api.StateQueued})                // event 3: lost
			f.Emit(api.Event{Kind: api.EventStarted, TaskID: "t2", State: api.StateRunning})     // event 4: kept
			f.Trim(4)
		}
	})
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateCompleted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
}

func TestWaitSeveral(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateCompleted})
	f.Add(api.Task{URL: "https://example.com/b", State: api.StateRunning})
	f.Add(api.Task{URL: "https://example.com/c", State: api.StateQueued})
	f.Add(api.Task{URL: "https://example.com/d", State: api.StateRunning})
	f.OnStream(func() {
		time.Sleep(50 * time.Millisecond)
		f.Emit(api.Event{Kind: api.EventCancelled, TaskID: "t2", State: api.StateCancelled})
		f.Emit(api.Event{Kind: api.EventStarted, TaskID: "t3", State: api.StateRunning})
		f.Emit(api.Event{Kind: api.EventPaused, TaskID: "t3", State: api.StatePaused})
		f.Remove("t4")
	})
	got, err := c.Wait(testContext(t), "t1", "t2", "t3", "t2", "t4")
	want := map[string]string{"t1": api.StateCompleted, "t2": api.StateCancelled, "t3": api.StatePaused, "t4": StateRemoved}
	if err != nil || !reflect.DeepEqual(states(got), want) {
		t.Fatalf("Wait = %v, %v; want %v", states(got), err, want)
	}
	if got["t4"].URL != "https://example.com/d" {
		t.Errorf("removed task %+v: want it as last seen", got["t4"])
	}
}

// TestWaitCancelled: a task cancelled while Wait waits ends cancelled,
// though the daemon forgets it at once.
func TestWaitCancelled(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning})
	var once sync.Once
	f.OnTaskGet(func(api.Task) { // Wait has read the task: another client cancels it
		once.Do(func() {
			if _, err := c.Cancel(testContext(t), "t1"); err != nil {
				t.Error(err)
			}
		})
	})
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateCancelled || got["t1"].URL != "https://example.com/a" {
		t.Fatalf("Wait = %+v, %v; want t1 cancelled", got, err)
	}
}

func TestWaitEndedAlready(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateInterrupted})
	got, err := c.Wait(testContext(t), "t1")
	if err != nil || got["t1"].State != api.StateInterrupted {
		t.Fatalf("Wait = %v, %v", states(got), err)
	}
	if got, err := c.Wait(testContext(t)); err != nil || len(got) != 0 {
		t.Errorf("Wait() = %v, %v", got, err)
	}
}

func TestWaitErrors(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning})

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
