package durl

// State is where a task is in its lifecycle. The transitions are drawn in
// docs/task-states.md; every change of state goes through Task.setState.
type State int

// The states of a task.
const (
	// Queued: accepted, waiting for a free slot.
	Queued State = iota
	// Running: transferring data.
	Running
	// Paused: stopped by Pause or by closing the session; resumable.
	Paused
	// Interrupted: found in flight when the session was opened after a
	// crash, and not resumed automatically; resumable.
	Interrupted
	// Completed: the verified file is at its destination.
	Completed
	// Failed: stopped by an error; resumable if its error carries
	// ResumeData.
	Failed
	// Cancelled: stopped and its partial data removed.
	Cancelled
)

var stateNames = [...]string{"queued", "running", "paused", "interrupted", "completed", "failed", "cancelled"}

// String returns the state's lower-case name, as used in JSON and the CLI.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// Active reports whether a task in this state is queued or running.
func (s State) Active() bool { return s == Queued || s == Running }

// Final reports whether the task can never run again (completed or
// cancelled).
func (s State) Final() bool { return s == Completed || s == Cancelled }

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
