package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/durl-dev/durl/api"
)

// StateRemoved is the State that Wait gives a task removed while it
// waited; the rest of the task is as last seen.
const StateRemoved = "removed"

// Ended reports whether a task in state is done for now: completed,
// failed, cancelled, paused or interrupted (or StateRemoved). Queued and
// running tasks have not ended.
func Ended(state string) bool {
	switch state {
	case api.StateCompleted, api.StateFailed, api.StateCancelled, api.StatePaused, api.StateInterrupted, StateRemoved:
		return true
	}
	return false
}

// Wait blocks until every task of ids has ended (see Ended) and returns
// them by ID: all of them at once, so a task that ended and was resumed
// while Wait waited for others is waited for again. A task that does not
// exist when Wait starts is an error; one removed while it waits ends
// with State StateRemoved. If the daemon stops meanwhile, Wait reconnects
// and goes on once it is back.
//
// Wait cannot miss an end: it takes the newest event's ID first,
// subscribes to the events after it, and only then reads the tasks, so
// that an end between the reading and the subscription is still seen. It
// reads a task again on each event that changes its state (and every task
// after an api.EventGap), so that an old event never stands for the
// task's present state.
func (c *Client) Wait(ctx context.Context, ids ...string) (map[string]api.Task, error) {
	ids = unique(ids)
	tasks := make(map[string]api.Task, len(ids))
	if len(ids) == 0 {
		return tasks, nil
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	stream := c.events(ctx, st.LastID, true)
	defer stream.Close()
	if err := stream.Connect(); err != nil {
		return nil, err
	}
	if err := c.readTasks(ctx, ids, tasks, false); err != nil {
		return nil, err
	}
	for !allEnded(tasks) {
		ev, err := stream.Next()
		if err != nil {
			return nil, err
		}
		if err := c.follow(ctx, ev, ids, tasks); err != nil {
			return nil, err
		}
	}
	return tasks, nil
}

// follow updates tasks after the event ev.
func (c *Client) follow(ctx context.Context, ev api.Event, ids []string, tasks map[string]api.Task) error {
	t, watched := tasks[ev.TaskID]
	switch {
	case ev.Kind == api.EventGap:
		return c.readTasks(ctx, ids, tasks, true)
	case !watched:
		return nil
	case ev.Kind == api.EventRemoved:
		t.State = StateRemoved
		tasks[ev.TaskID] = t
		return nil
	case ev.Kind == api.EventCancelled:
		t.State = api.StateCancelled // for good: the daemon forgets a cancelled task
		tasks[ev.TaskID] = t
		return nil
	case changesState(ev) || ev.State != "" && ev.State != t.State:
		return c.readTasks(ctx, []string{ev.TaskID}, tasks, true)
	}
	return nil
}

// changesState reports whether ev is a change of its task's state.
func changesState(ev api.Event) bool {
	switch ev.Kind {
	case api.EventStarted, api.EventPaused, api.EventResumed, api.EventInterrupted, api.EventRecovered,
		api.EventCompleted, api.EventFailed, api.EventCancelled:
		return true
	}
	return false
}

// readTasks reads the tasks ids into tasks. With removedOK, a task that no
// longer exists gets StateRemoved; otherwise it is an error.
func (c *Client) readTasks(ctx context.Context, ids []string, tasks map[string]api.Task, removedOK bool) error {
	for _, id := range ids {
		t, err := c.Task(ctx, id)
		var ae *Error
		switch {
		case err == nil:
			tasks[id] = t
		case removedOK && errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			t = tasks[id]
			t.ID, t.State = id, StateRemoved
			tasks[id] = t
		default:
			return fmt.Errorf("task %s: %w", id, err)
		}
	}
	return nil
}

// allEnded reports whether every task has ended.
func allEnded(tasks map[string]api.Task) bool {
	for _, t := range tasks {
		if !Ended(t.State) {
			return false
		}
	}
	return true
}

// unique returns ids without repeats, in their order.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
