package durl

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrPaused: the task was paused (by Pause or by closing the session).
	ErrPaused = errors.New("durl: paused")
	// ErrRemoteChanged: the remote file changed and the download could not
	// start over (for example, the server stopped honouring the request).
	ErrRemoteChanged = errors.New("durl: the remote file changed")
	// ErrChecksumMismatch: the downloaded file does not match its expected
	// checksum; it is kept aside, not at the destination.
	ErrChecksumMismatch = errors.New("durl: checksum mismatch")
	// ErrLocked: another process (or task) is writing the same download.
	ErrLocked = errors.New("durl: another durl is already downloading this file")
	// ErrInvalidResumeData: resume data that is corrupted, truncated,
	// tampered with, from another session or from a newer version of durl.
	ErrInvalidResumeData = errors.New("durl: invalid resume data")
	// ErrSessionClosed: the session was closed.
	ErrSessionClosed = errors.New("durl: session closed")
	// ErrNotResumable: the task has nothing to resume (it completed, was
	// cancelled, or is running).
	ErrNotResumable = errors.New("durl: task cannot be resumed")
	// ErrOutsideAllowedDirs: the destination is outside
	// Options.AllowedDirs.
	ErrOutsideAllowedDirs = errors.New("durl: the destination is outside the folders downloads may be written to")
)

// TaskError is the error a task ends with when it did not complete. When
// some data had been written, ResumeData lets the download continue later
// with Session.Resume, like NSURLSession's NSURLSessionDownloadTaskResumeData.
type TaskError struct {
	TaskID     string
	URL        string
	Err        error      // what went wrong; one of the sentinels, *StatusError, *DiskError or a network error
	ResumeData ResumeData // nil when there is nothing to resume from
}

// Error names the URL and what went wrong.
func (e *TaskError) Error() string { return fmt.Sprintf("%s: %v", e.URL, e.Err) }

// Unwrap returns the underlying error.
func (e *TaskError) Unwrap() error { return e.Err }

// StatusError is an HTTP answer durl could not use, after retries where the
// status is transient.
type StatusError struct {
	StatusCode int
	Status     string // e.g. "404 Not Found"
}

// Error says what the server answered.
func (e *StatusError) Error() string {
	return "durl: the server answered " + e.Status
}

// Temporary reports whether the status is worth retrying later.
func (e *StatusError) Temporary() bool {
	switch e.StatusCode {
	case 408, 429, 500, 502, 503, 504:
		return true
	}
	return false
}

// DiskError is a local file-system failure (a full disk, an I/O error, a
// folder that vanished). The partial data and its progress record stay
// consistent: free space or fix the folder, then resume.
type DiskError struct {
	Op   string // what durl was doing, e.g. "write", "sync", "rename"
	Path string
	Err  error
}

// Error says what durl was doing, where, and what failed.
func (e *DiskError) Error() string { return fmt.Sprintf("durl: %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *DiskError) Unwrap() error { return e.Err }

// DestinationInUseError: another task of the same session is downloading
// to the same file, such as a second URL whose name (from the URL, or the
// server's Content-Disposition) is the same in the same folder. It wraps
// ErrLocked.
type DestinationInUseError struct {
	Path   string // the destination file
	TaskID string // the task downloading to it
	URL    string // that task's URL
}

// Error names the other task and the file.
func (e *DestinationInUseError) Error() string {
	return fmt.Sprintf("durl: task %s is already downloading to %s", e.TaskID, e.Path)
}

// Unwrap returns ErrLocked.
func (e *DestinationInUseError) Unwrap() error { return ErrLocked }

// errorKind classifies the error a task failed with, for its record, so
// that the error it is loaded with by a later session still answers
// errors.Is and errors.As as the original did (see storedError).
func errorKind(err error) string {
	var (
		disk   *DiskError
		status *StatusError
		retry  *retryableError
		netErr net.Error
	)
	switch {
	case errors.Is(err, ErrChecksumMismatch):
		return "checksum"
	case errors.Is(err, ErrRemoteChanged):
		return "remote-changed"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.As(err, &disk):
		return "disk"
	case errors.As(err, &status):
		return "status:" + strconv.Itoa(status.StatusCode)
	case errors.As(err, &retry), errors.As(err, &netErr):
		return "network"
	}
	return ""
}

// storedError is the error of a failed task loaded from its record: the
// message it failed with, and what errorKind said it was.
type storedError struct {
	msg  string
	kind error // a sentinel, *DiskError or *StatusError; nil if unknown
}

func (e *storedError) Error() string { return e.msg }
func (e *storedError) Unwrap() error { return e.kind }

// storedNetError is a storedError of a network failure: it is a net.Error.
type storedNetError struct{ storedError }

func (e *storedNetError) Timeout() bool   { return false }
func (e *storedNetError) Temporary() bool { return true }

// restoreError rebuilds a failed task's error from its record.
func restoreError(kind, msg string) error {
	e := storedError{msg: msg}
	switch {
	case kind == "checksum":
		e.kind = ErrChecksumMismatch
	case kind == "remote-changed":
		e.kind = ErrRemoteChanged
	case kind == "locked":
		e.kind = ErrLocked
	case kind == "disk":
		e.kind = &DiskError{Op: "a past run", Err: errors.New(msg)}
	case kind == "network":
		return &storedNetError{e}
	case strings.HasPrefix(kind, "status:"):
		code, _ := strconv.Atoi(strings.TrimPrefix(kind, "status:"))
		e.kind = &StatusError{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code))}
	}
	return &e
}
