// Package api defines the JSON messages of durl's daemon API (durl serve):
// what clients send and what the daemon answers, with the paths they go to.
// docs/openapi.json is the OpenAPI description of the same API, and
// docs/api.md shows how to use it with curl.
//
// The API is HTTP with JSON bodies, served on a Unix socket in the state
// folder (SocketName) and, when asked, on TCP with a bearer token. Every
// error is answered with a 4xx or 5xx status and an ErrorResponse whose Code
// is one of the Code constants.
package api

import "time"

// SocketName is the daemon's Unix socket, inside the state folder.
const SocketName = "durl.sock"

// TokenName is the file in the state folder holding the bearer token that
// TCP clients must send, when the daemon generated it.
const TokenName = "token"

// MaxBodyBytes is the largest request body the daemon reads.
const MaxBodyBytes = 1 << 20

// Paths of the API. {id} is a task ID.
const (
	PathVersion   = "/v1/version"           // GET: Version
	PathTasks     = "/v1/tasks"             // GET: TaskList (filters: see ListQuery); POST AddRequest: AddResponse
	PathTask      = "/v1/tasks/{id}"        // GET: Task; PATCH TaskPatch: Task; DELETE (?delete_data=true): Task
	PathPause     = "/v1/tasks/{id}/pause"  // POST: Task
	PathResume    = "/v1/tasks/{id}/resume" // POST: Task
	PathCancel    = "/v1/tasks/{id}/cancel" // POST: Task (stopped, partial data removed, then forgotten: GET answers 404)
	PathPauseAll  = "/v1/pause-all"         // POST: Stats
	PathResumeAll = "/v1/resume-all"        // POST: Stats
	PathStats     = "/v1/stats"             // GET: Stats
	PathLimits    = "/v1/limits"            // GET: Limits; PATCH Limits: Limits
	PathEvents    = "/v1/events"            // GET: text/event-stream of Event after Last-Event-ID (header, or ?last_event_id=N); without one, new events only
	PathMetrics   = "/metrics"              // GET: Prometheus text format
)

// Version answers PathVersion.
type Version struct {
	Version string `json:"version"` // durl's version
	API     int    `json:"api"`     // the API's version: 1
}

// Bounds of the values of a Download.
const (
	MinPriority    = -1000 // the lowest Download.Priority
	MaxPriority    = 1000  // the highest Download.Priority
	MaxConnections = 64    // the most Download.Connections
)

// Download is one download to add.
type Download struct {
	// URL is the http or https URL to download. Required.
	URL string `json:"url"`
	// Mirrors are other URLs of the same file.
	Mirrors []string `json:"mirrors,omitempty"`
	// Output is the absolute destination file. At most one of Output and
	// Dir; with neither, the file goes to the daemon's default folder.
	Output string `json:"output,omitempty"`
	// Dir is the absolute folder to save into, under the name the server
	// gives.
	Dir string `json:"dir,omitempty"`
	// Headers are extra request headers, "Name: value".
	Headers []string `json:"headers,omitempty"`
	// Checksum is "ALG:HEX" (sha256, sha512, sha1, md5).
	Checksum string `json:"checksum,omitempty"`
	// Connections is the most connections for this file; 0 is automatic,
	// at most 64.
	Connections int `json:"connections,omitempty"`
	// Priority orders the queue: higher runs first; default 0, from -1000
	// to 1000.
	Priority int `json:"priority,omitempty"`
	// RateLimit caps this download's bytes per second; 0 is no limit.
	RateLimit int64 `json:"rate_limit,omitempty"`
	// Paused adds the download without starting it.
	Paused bool `json:"paused,omitempty"`
}

// AddRequest is the body of POST PathTasks: one or many downloads. Either
// all are added or, if one is refused, none.
type AddRequest struct {
	Downloads []Download `json:"downloads"`
}

// AddResponse answers an AddRequest with the new tasks, in the order given.
type AddResponse struct {
	Tasks []Task `json:"tasks"`
}

// Task states, as in Task.State.
const (
	StateQueued      = "queued"
	StateRunning     = "running"
	StatePaused      = "paused"
	StateInterrupted = "interrupted"
	StateCompleted   = "completed"
	StateFailed      = "failed"
	StateCancelled   = "cancelled"
)

// Task is one download as the daemon knows it.
type Task struct {
	ID          string    `json:"id"` // 16 lower-case hex digits
	URL         string    `json:"url"`
	Mirrors     []string  `json:"mirrors,omitempty"`
	Path        string    `json:"path,omitempty"` // the destination file, once known
	Dir         string    `json:"dir,omitempty"`  // the folder, for a download saved under the server's name
	State       string    `json:"state"`          // one of the State constants
	Priority    int       `json:"priority"`
	Written     int64     `json:"written"` // bytes written
	Total       int64     `json:"total"`   // size, -1 when unknown
	Rate        float64   `json:"rate"`    // bytes per second, recent average
	RateLimit   int64     `json:"rate_limit,omitempty"`
	Connections int       `json:"connections,omitempty"`
	Checksum    string    `json:"checksum,omitempty"`
	Created     time.Time `json:"created"`
	Error       *Error    `json:"error,omitempty"` // why a failed task stopped
}

// TaskList answers GET PathTasks: one page of tasks, oldest first.
type TaskList struct {
	Tasks []Task `json:"tasks"`
	// Total is how many tasks match the filter, over all pages.
	Total int `json:"total"`
	// Next is the cursor of the next page ("" on the last): pass it as
	// ?after=.
	Next string `json:"next,omitempty"`
}

// ListQuery holds the query parameters of GET PathTasks.
type ListQuery struct {
	State string // ?state=running,queued: only these states
	After string // ?after=ID: the page after the task with this ID
	Limit int    // ?limit=N: at most N tasks (default 100; more than 1000 counts as 1000)
}

// TaskPatch is the body of PATCH PathTask: the fields given are changed.
type TaskPatch struct {
	Priority  *int   `json:"priority,omitempty"`
	RateLimit *int64 `json:"rate_limit,omitempty"` // bytes per second; 0 removes the limit
}

// Limits are the daemon's queue settings, changeable while it runs. In a
// PATCH only the fields given are changed.
type Limits struct {
	MaxActive       *int   `json:"max_active,omitempty"`         // downloads at once; 0 is no limit
	MaxConnsPerHost *int   `json:"max_conns_per_host,omitempty"` // connections to one host across all downloads; 0 is the default, 16
	RateLimit       *int64 `json:"rate_limit,omitempty"`         // bytes per second of all downloads; 0 is no limit
}

// Stats answers PathStats.
type Stats struct {
	Tasks        map[string]int `json:"tasks"`         // how many tasks are in each state
	Rate         float64        `json:"rate"`          // bytes per second of all running downloads
	Written      int64          `json:"written"`       // bytes written by the tasks the daemon keeps
	LastID       uint64         `json:"last_event_id"` // the newest event's ID
	Uptime       float64        `json:"uptime_seconds"`
	Limits       Limits         `json:"limits"`
	Version      string         `json:"version"`
	EventClients int            `json:"event_clients"` // clients reading the event stream
}

// Event kinds, as in Event.Kind. A "gap" event says that events the client
// should have had are gone (trimmed from the log, or its Last-Event-ID is
// not from this log): it should read the tasks again. It comes first to a
// client whose Last-Event-ID is too old or unknown, or in the stream when
// a slow client fell behind the trimming; the events from FirstKept follow.
const (
	EventAdded       = "added"
	EventStarted     = "started"
	EventProgress    = "progress"
	EventRetrying    = "retrying"
	EventRestarted   = "restarted"
	EventPaused      = "paused"
	EventResumed     = "resumed"     // a paused, interrupted or failed task was resumed by a client
	EventInterrupted = "interrupted" // the daemon stopped during the download; its next start resumes it (recovered)
	EventRecovered   = "recovered"   // found in flight when the daemon started, and resumed
	EventCompleted   = "completed"
	EventFailed      = "failed"
	EventCancelled   = "cancelled"
	EventRemoved     = "removed"
	EventWarning     = "warning"
	EventGap         = "gap"
)

// Event is one message of the event stream. In the SSE stream its ID is
// the SSE id and its Kind the SSE event name; the data is this object.
type Event struct {
	ID      uint64    `json:"id"` // increasing, across daemon restarts
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	TaskID  string    `json:"task_id,omitempty"`
	URL     string    `json:"url,omitempty"`
	Path    string    `json:"path,omitempty"`
	State   string    `json:"state,omitempty"`   // the task's state after the event (a State constant)
	Written int64     `json:"written,omitempty"` // omitted when 0, as Total and Rate are
	Total   int64     `json:"total,omitempty"`
	Rate    float64   `json:"rate,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Error   *Error    `json:"error,omitempty"`
	// For EventGap: the first ID still kept; events after the client's
	// Last-Event-ID and before this one are gone.
	FirstKept uint64 `json:"first_kept,omitempty"`
}

// Error codes, stable across versions.
const (
	CodeBadRequest   = "bad_request"           // malformed JSON, unknown field, bad value (400)
	CodeTooLarge     = "body_too_large"        // the body exceeds MaxBodyBytes (413)
	CodeUnauthorized = "unauthorized"          // missing or wrong bearer token (401)
	CodeNotFound     = "not_found"             // no such task or path (404)
	CodeForbidden    = "forbidden_destination" // the destination is outside the daemon's download folders (403)
	CodeConflict     = "conflict"              // the task cannot do that now: it completed, was cancelled, or another process runs it (409)
	CodeMethod       = "method_not_allowed"    // (405)
	CodeUnavailable  = "shutting_down"         // the daemon is stopping (503)
	CodeInternal     = "internal"              // a failure of the daemon or its disk (500)
	// Reasons a task failed, in Task.Error and Event.Error.
	CodeNetwork       = "network"        // network or HTTP failure
	CodeRemoteChanged = "remote_changed" // the remote changed and could not restart
	CodeChecksum      = "checksum_mismatch"
	CodeDisk          = "disk"
	CodeLocked        = "locked"
	CodeFailed        = "failed" // anything else
)

// Error says what went wrong: a stable code and a message for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error Error `json:"error"`
}
