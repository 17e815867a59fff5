package durl

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// recordFormat is the version of the task record; testdata keeps a golden
// file of every version so old state folders keep opening. Format 1 was a
// JSON file per task beside a progress file; format 2 is the task file.
const recordFormat = 2

// The persistent states of a task record. "active" means queued or running:
// a task that a new session must resume or report as interrupted.
const (
	recActive    = "active"
	recPaused    = "paused"
	recFailed    = "failed"
	recFinishing = "finishing" // verified and synced; being renamed into place
	recCompleted = "completed"
)

// taskRecord is what the state folder keeps of a task, in its task file.
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
	// Origin is the source whose answer started this generation, which
	// the download goes on asking for the parts no mirror serves: 0 the
	// URL, m+1 mirror m (the URL failed before it answered with the file).
	Origin int `json:"origin,omitempty"`
	// Total is the file's size, -1 when unknown.
	Total int64 `json:"total"`
	// Generation changes whenever the download starts over; progress
	// records of other generations are ignored.
	Generation uint64    `json:"generation"`
	Error      string    `json:"error,omitempty"`
	ErrorKind  string    `json:"error_kind,omitempty"` // see errorKind
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
	Priority    int `json:"priority,omitempty"`
}

func (r storedRequest) request() Request {
	return Request{URL: r.URL, Mirrors: append([]string(nil), r.Mirrors...), Dest: r.Dest, DestIsDir: r.DestIsDir, Header: r.Header.Clone(),
		Checksum: r.Checksum, RateLimit: r.RateLimit, Connections: r.Connections, Priority: r.Priority}
}

func (r storedRequest) sameTarget(q Request) bool {
	return r.URL == q.URL && r.Dest == q.Dest && r.DestIsDir == q.DestIsDir
}

// partialPath is where the data of a download to path is written until it
// is complete.
func partialPath(path string) string { return besideName(path, PartialSuffix) }

// maxNameBytes is the longest file name most file systems take (NAME_MAX).
const maxNameBytes = 255

// besideName is path with suffix added to its name. Where that would make
// the name too long for the file system, though path's own name fits, the
// name is cut short (at a character's boundary) and a digest of the whole
// name added, so that it still tells every destination apart.
func besideName(path, suffix string) string {
	dir, name := filepath.Split(path)
	if len(name)+len(suffix) <= maxNameBytes || len(name) > maxNameBytes {
		return path + suffix // fits; or path cannot be created: fail early
	}
	sum := sha256.Sum256([]byte(name))
	tag := "~" + hex.EncodeToString(sum[:8])
	keep := maxNameBytes - len(tag) - len(suffix)
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	return dir + name[:keep] + tag + suffix
}

// PartialSuffix ends the name of the partial file durl writes beside the
// destination until the download is complete and verified.
const PartialSuffix = ".durl-part"

// mismatchSuffix ends the name a file that failed its checksum is kept as.
const mismatchSuffix = ".durl-mismatch"

// The task file, tasks/ID.task, holds everything the state folder keeps of
// a task, always rewritten in place, never through temporary files, and it
// is the task's lock (whoever runs the task holds an OS lock on it):
//
//	[0, 64 KiB)          record slot A: the task record, JSON
//	[64 KiB, 128 KiB)    record slot B
//	[128 KiB, +12 KiB)   the progress record (package progress)
//
// A save writes the slot that does not hold the newest record, then syncs:
// a torn write leaves the other slot. Each slot is "DREC" | seq (8 bytes) |
// length (4) | CRC-32C of seq, length and body (4) | body.
const (
	taskSuffix     = ".task"
	recordSlotSize = 64 << 10
	progressBase   = 2 * recordSlotSize
	recordMagic    = "DREC"
	recordHeader   = 20
)

var errNoRecord = errors.New("no valid task record")

func (s *Session) taskPath(id string) string { return filepath.Join(s.tasksDir, id+taskSuffix) }

// createRecord creates the task file of a new task and makes it durable,
// name included, before the task is reported (D7). It returns the file,
// open, for the caller to close or keep.
func (s *Session) createRecord(rec *taskRecord) (vfs.File, error) {
	path := s.taskPath(rec.ID)
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, &DiskError{Op: "create task file", Path: path, Err: err}
	}
	err = writeRecordSlot(f, rec, 0, 1, true)
	if err == nil {
		err = s.syncTasksDir()
	}
	if err != nil {
		f.Close()
		s.fs.Remove(path)
		return nil, &DiskError{Op: "create task file", Path: path, Err: err}
	}
	return f, nil
}

// writeRecord replaces the task's record, synced or not. An unsynced save
// may be lost or torn by a power loss, leaving the record before it.
func (s *Session) writeRecord(rec *taskRecord, durable bool) error {
	path := s.taskPath(rec.ID)
	f, err := s.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return &DiskError{Op: "save task record", Path: path, Err: err}
	}
	defer f.Close()
	_, slot, seq := readRecordSlots(f)
	if err := writeRecordSlot(f, rec, 1-slot, seq+1, durable); err != nil {
		return &DiskError{Op: "save task record", Path: path, Err: err}
	}
	return nil
}

// loadRecord reads a task's record.
func (s *Session) loadRecord(id string) (taskRecord, error) {
	f, err := s.fs.OpenFile(s.taskPath(id), os.O_RDONLY, 0)
	if err != nil {
		return taskRecord{}, err
	}
	defer f.Close()
	body, _, _ := readRecordSlots(f)
	if body == nil {
		return taskRecord{}, fmt.Errorf("task %s: %w", id, errNoRecord)
	}
	return decodeRecord(id, body)
}

func decodeRecord(id string, body []byte) (taskRecord, error) {
	var rec taskRecord
	if err := json.Unmarshal(body, &rec); err != nil {
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

// writeRecordSlot writes rec to slot (0 or 1) with sequence number seq and,
// if durable, syncs the file.
func writeRecordSlot(f vfs.File, rec *taskRecord, slot int, seq uint64, durable bool) error {
	rec.Format = recordFormat
	rec.Updated = time.Now().UTC()
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if recordHeader+len(body) > recordSlotSize {
		return fmt.Errorf("the task record is %d bytes, more than %d (too many headers or mirrors?)", len(body), recordSlotSize-recordHeader)
	}
	b := make([]byte, recordHeader, recordHeader+len(body))
	copy(b, recordMagic)
	binary.LittleEndian.PutUint64(b[4:], seq)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(body)))
	b = append(b, body...)
	binary.LittleEndian.PutUint32(b[16:], recordCRC(b))
	if _, err := f.WriteAt(b, int64(slot)*recordSlotSize); err != nil || !durable {
		return err
	}
	return f.Sync()
}

// readRecordSlots returns the body of the newest valid slot (nil if none),
// its slot and its sequence number.
func readRecordSlots(f vfs.File) (body []byte, slot int, seq uint64) {
	slot = 1 // so that a file with no valid slot is written at slot 0 first
	for i := 0; i < 2; i++ {
		head := make([]byte, recordHeader)
		if n, _ := f.ReadAt(head, int64(i)*recordSlotSize); n < recordHeader || string(head[:4]) != recordMagic {
			continue
		}
		n := binary.LittleEndian.Uint32(head[12:])
		if n > recordSlotSize-recordHeader {
			continue
		}
		b := make([]byte, recordHeader+int(n))
		if m, _ := f.ReadAt(b, int64(i)*recordSlotSize); m < len(b) {
			continue
		}
		if recordCRC(b) != binary.LittleEndian.Uint32(b[16:]) {
			continue
		}
		if s := binary.LittleEndian.Uint64(b[4:]); body == nil || s > seq {
			body, slot, seq = b[recordHeader:], i, s
		}
	}
	return body, slot, seq
}

// recordCRC is the CRC-32C of a slot's sequence number, length and body.
func recordCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[4:16])
	return crc32.Update(c, castagnoli, b[recordHeader:])
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// syncTasksDir makes the tasks folder's entries durable.
func (s *Session) syncTasksDir() error { return s.syncDir(s.tasksDir) }

// migrateV1 converts a task kept in the format-1 layout (ID.json,
// ID.progress, ID.lock, written by durl before the task file) into a task
// file, then removes the old files.
func (s *Session) migrateV1(id string) error {
	jsonPath := filepath.Join(s.tasksDir, id+".json")
	b, err := vfs.ReadFile(s.fs, jsonPath)
	if err != nil {
		return err
	}
	rec, err := decodeRecord(id, b)
	if err != nil {
		return err
	}
	progressPath := filepath.Join(s.tasksDir, id+".progress")
	if _, err := s.fs.Stat(s.taskPath(id)); err != nil {
		f, err := s.createRecord(&rec)
		if err != nil {
			return err
		}
		if old, rerr := vfs.ReadFile(s.fs, progressPath); rerr == nil {
			_, err = f.WriteAt(old[:min(len(old), progress.Size)], progressBase)
			if err == nil {
				err = f.Sync()
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	for _, p := range []string{progressPath, filepath.Join(s.tasksDir, id+".lock"), jsonPath} {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return s.syncTasksDir()
}
