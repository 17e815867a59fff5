package durl

import "time"

// EventKind says what happened to a task.
type EventKind int

// The kinds of event.
const (
	EventAdded       EventKind = iota // a new task was created
	EventStarted                      // a task began (or went back to) transferring
	EventProgress                     // bytes were written (at most once per Options.ProgressInterval)
	EventRetrying                     // an attempt failed; the task waits and retries (Err says why)
	EventRestarted                    // the download started over from zero (Reason says why)
	EventPaused                       // the task was paused
	EventInterrupted                  // found in flight after a crash and not resumed (ReportInterrupted)
	EventRecovered                    // found in flight after a crash and resumed
	EventCompleted                    // the file is at its destination
	EventFailed                       // the task stopped with an error (Err)
	EventCancelled                    // the task was cancelled and its data removed
	EventWarning                      // something the user should know (Reason), e.g. a mirror was dropped
	EventRemoved                      // the session forgot the task (Reason says why): Task.Remove, or its completed record expired
)

var eventNames = [...]string{"added", "started", "progress", "retrying", "restarted", "paused",
	"interrupted", "recovered", "completed", "failed", "cancelled", "warning", "removed"}

// String returns the kind's lower-case name.
func (k EventKind) String() string {
	if k < 0 || int(k) >= len(eventNames) {
		return "unknown"
	}
	return eventNames[k]
}

// MarshalText encodes the kind as its name.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is something that happened to a task. Events of a session are
// numbered in order by Seq.
type Event struct {
	Seq      uint64
	Time     time.Time
	Kind     EventKind
	TaskID   string
	URL      string
	Path     string // the destination file, once known
	State    State
	Progress Progress
	Reason   string // for EventRestarted and EventRetrying: why, in words; for EventCompleted, set when the file in place was kept unchanged
	Err      error  // for EventFailed and EventRetrying
}

// Progress is a snapshot of a task's transfer.
type Progress struct {
	Written int64   // bytes written to the partial file
	Total   int64   // size of the file, -1 when unknown
	Rate    float64 // bytes per second, recent average
}
