package durl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/durl-dev/durl/internal/vfs"
)

// recordFormat is the version of the task record's JSON; testdata keeps a
// golden file of every version so old state folders keep opening.
const recordFormat = 1

// The persistent states of a task record. "active" means queued or running:
// a task that a new session must resume or report as interrupted.
const (
	recActive    = "active"
	recPaused    = "paused"
	recFailed    = "failed"
	recFinishing = "finishing" // verified and synced; being renamed into place
	recCompleted = "completed"
)

// taskRecord is what the state folder keeps of a task, in tasks/ID.json,
// always written with vfs.WriteFileAtomic.
type taskRecord struct {
	Format  int           `json:"format"`
	ID      string        `json:"id"`
	Request storedRequest `json:"request"`
	State   string        `json:"state"`
	// Path is the destination file, once known.
	Path string `json:"path,omitempty"`
	// FinalURL is where redirects led; resumes go there first.
	FinalURL string `json:"final_url,omitempty"`
	// The validator the resume is conditional on: a strong ETag, or else a
	// strong Last-Modified date. Both empty: no safe validator.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// AcceptRanges: the server said it honours byte ranges.
	AcceptRanges bool `json:"accept_ranges,omitempty"`
	// ReprDigest is the server's RFC 9530 digest of the file, if it sent one.
	ReprDigest string `json:"repr_digest,omitempty"`
	// Mirrors is what is known of each of Request.Mirrors, in order.
	Mirrors []mirrorState `json:"mirrors,omitempty"`
	// Total is the file's size, -1 when unknown.
	Total int64 `json:"total"`
	// Generation changes whenever the download starts over; progress
	// records of other generations are ignored.
	Generation uint64    `json:"generation"`
	Error      string    `json:"error,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// mirrorState is what a task knows of one mirror.
type mirrorState struct {
	// Verified: the mirror's size, digest and a sample of its bytes agreed
	// with the file; its validator may then make resumes conditional.
	Verified     bool   `json:"verified,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Dropped says why the mirror is no longer used, "" while it is.
	Dropped string `json:"dropped,omitempty"`
}

type storedRequest struct {
	URL       string      `json:"url"`
	Mirrors   []string    `json:"mirrors,omitempty"`
	Dest      string      `json:"dest"`
	DestIsDir bool        `json:"dest_is_dir,omitempty"`
	Header    http.Header `json:"header,omitempty"`
	Checksum  string      `json:"checksum,omitempty"`
	RateLimit int64       `json:"rate_limit,omitempty"`
	// Connections: 0 automatic, else at most this many.
	Connections int `json:"connections,omitempty"`
}

func (r storedRequest) request() Request {
	return Request{URL: r.URL, Mirrors: append([]string(nil), r.Mirrors...), Dest: r.Dest, DestIsDir: r.DestIsDir, Header: r.Header.Clone(),
		Checksum: r.Checksum, RateLimit: r.RateLimit, Connections: r.Connections}
}

func (r storedRequest) sameTarget(q Request) bool {
	return r.URL == q.URL && r.Dest == q.Dest && r.DestIsDir == q.DestIsDir
}

// partialPath is where the data of a download to path is written until it
// is complete.
func partialPath(path string) string { return path + PartialSuffix }

// PartialSuffix ends the name of the partial file durl writes beside the
// destination until the download is complete and verified.
const PartialSuffix = ".durl-part"

// mismatchSuffix ends the name a file that failed its checksum is kept as.
const mismatchSuffix = ".durl-mismatch"

func (s *Session) recordPath(id string) string { return filepath.Join(s.tasksDir, id+".json") }
func (s *Session) progressPath(id string) string {
	return filepath.Join(s.tasksDir, id+".progress")
}
func (s *Session) lockPath(id string) string { return filepath.Join(s.tasksDir, id+".lock") }

func (s *Session) saveRecord(rec *taskRecord) error {
	rec.Format = recordFormat
	rec.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(s.fs, s.recordPath(rec.ID), b, 0o600); err != nil {
		return &DiskError{Op: "save task record", Path: s.recordPath(rec.ID), Err: err}
	}
	return nil
}

func (s *Session) loadRecord(id string) (taskRecord, error) {
	var rec taskRecord
	b, err := vfs.ReadFile(s.fs, s.recordPath(id))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("task record %s: %w", id, err)
	}
	if rec.Format > recordFormat {
		return rec, fmt.Errorf("task record %s is from a newer durl (format %d)", id, rec.Format)
	}
	if rec.ID != id {
		return rec, fmt.Errorf("task record %s names task %q", id, rec.ID)
	}
	return rec, nil
}
