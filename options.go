package durl

import (
	"net/http"
	"time"
)

// RecoveryMode says what Open does with the tasks it finds in flight, left
// by a process that died or a session that was closed while they ran.
type RecoveryMode int

const (
	// ResumeInterrupted resumes every task found in flight (the default).
	ResumeInterrupted RecoveryMode = iota
	// ReportInterrupted leaves them in state Interrupted, each with its
	// ResumeData, and lists them in Session.Interrupted: the program
	// decides, as an app does when NSURLSession calls
	// didCompleteWithError: on its next launch.
	ReportInterrupted
)

// Options configure a Session. The zero value of every field but StateDir
// is a sensible default.
type Options struct {
	// StateDir is the state folder: task records, progress records and the
	// session's key live here. Required.
	StateDir string

	// Recovery chooses what Open does with tasks found in flight.
	Recovery RecoveryMode

	// OnEvent, if set, receives every event of every task, in order, from
	// one goroutine of the session. It must return quickly and must not
	// call methods of the session that wait (Pause, Wait, Close).
	OnEvent func(Event)

	// ProgressInterval is the least time between two Progress events of a
	// task. Default 200 ms.
	ProgressInterval time.Duration

	// Client makes the HTTP requests. Default: a client with the proxy
	// from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) whose
	// plain-http GETs run on the task's own goroutine, which saves CPU
	// time on many small files. durl installs its own redirect policy on
	// a copy of the Client given.
	Client *http.Client

	// UserAgent is sent with every request unless the Request sets one.
	UserAgent string

	// MaxActive is the number of tasks that transfer at once; more wait in
	// state Queued. Zero means no limit. A task whose bytes are all written
	// may give its place to the next while its file is made durable and
	// moved into place, so that small files finishing together share
	// their syncs; at most MaxActive tasks finish so, beside those whose
	// partial file marks itself complete (see LazyRecords). Each running task
	// spends milliseconds in fsync now and then; on a machine with few
	// cores, run the program with GOMAXPROCS of 8 or more so that those
	// system calls do not hold up the network (the durl command does
	// this).
	MaxActive int

	// MaxConnsPerHost caps the connections to one host across all tasks.
	// Default 16.
	MaxConnsPerHost int

	// Retry says how failed attempts are retried.
	Retry RetryPolicy

	// StallTimeout drops and resumes a connection that delivered no byte
	// for this long. Default 30 s.
	StallTimeout time.Duration

	// CheckpointInterval and CheckpointBytes bound how much progress a
	// power loss can cost: a durable checkpoint (data synced, then the
	// record synced) is made after whichever comes first. Defaults 1 s and
	// 64 MiB. A kill of the process loses at most one read buffer
	// (128 KiB) whatever these are.
	CheckpointInterval time.Duration
	CheckpointBytes    int64

	// LazyRecords leaves a started task without a record in the state
	// folder until it has progress worth keeping: its first progress
	// record (after 64 KiB), a checkpoint, a pause or a failure. A
	// download that completes sooner never writes one, which makes many
	// small files much cheaper; in exchange, a crash before the first
	// record forgets the task (and the few KiB it had) rather than
	// resuming it. A complete file waiting for its flush is not lost so:
	// its partial file carries a mark (an extended attribute) that lets
	// a task started again for the same URL and destination, in the same
	// boot, finish it without downloading it again. For programs that
	// start their downloads again from their own list, as durl get does.
	// By default every task is recorded durably before Start returns (D7).
	LazyRecords bool

	// NoSync turns off every fsync: faster, but a power loss can leave
	// progress records that claim data that never reached the disk. For
	// scratch data only.
	NoSync bool

	// RateLimit caps the bytes per second of all tasks together. Zero
	// means no limit.
	RateLimit int64

	// KeepCompleted is how long the records of completed tasks are kept
	// in the state folder (listed by Tasks) before Open removes them.
	// Default 7 days.
	KeepCompleted time.Duration

	// AllowedDirs, if not empty, are the only folders downloads may be
	// written to (after resolving symbolic links).
	AllowedDirs []string
}

// RetryPolicy says how a task retries transient failures: network errors,
// stalls and the statuses 408, 429, 500, 502, 503 and 504. Waits grow
// exponentially from BaseDelay to MaxDelay with full jitter, and honour a
// server's Retry-After up to MaxDelay. Any progress resets the count.
type RetryPolicy struct {
	// MaxAttempts is how many attempts in a row may fail before the task
	// fails. Zero means no limit other than MaxWait.
	MaxAttempts int
	// MaxWait is how long a task keeps retrying without making progress.
	// Default 2 h: long enough for a laptop to sleep an hour and finish.
	MaxWait time.Duration
	// BaseDelay is the first wait. Default 1 s.
	BaseDelay time.Duration
	// MaxDelay caps a single wait. Default 60 s.
	MaxDelay time.Duration
}

// defaultMaxConnsPerHost is the default of Options.MaxConnsPerHost.
const defaultMaxConnsPerHost = 16

func (o *Options) setDefaults() {
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 200 * time.Millisecond
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = 64 << 20
	}
	if o.Retry.MaxWait <= 0 {
		o.Retry.MaxWait = 2 * time.Hour
	}
	if o.Retry.BaseDelay <= 0 {
		o.Retry.BaseDelay = time.Second
	}
	if o.Retry.MaxDelay <= 0 {
		o.Retry.MaxDelay = time.Minute
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = defaultMaxConnsPerHost
	}
	if o.KeepCompleted <= 0 {
		o.KeepCompleted = 7 * 24 * time.Hour
	}
	if o.UserAgent == "" {
		o.UserAgent = "durl/" + Version
	}
}

// Version is durl's version.
const Version = "0.1.0"
