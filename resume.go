package durl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/resumedata"
)

// ResumeData describes where a paused or failed download stopped, like
// NSURLSession's resume data. It is opaque, versioned and signed by the
// session that made it: only that session (state folder) accepts it, and
// data that is corrupted, truncated, tampered with or from a newer durl is
// refused with ErrInvalidResumeData.
type ResumeData []byte

// resumePayload is what resume data holds, as JSON inside the signed
// envelope of package resumedata.
type resumePayload struct {
	Task       taskRecord         `json:"task"`
	Segments   []progress.Segment `json:"segments,omitempty"`
	HashOffset int64              `json:"hash_offset,omitempty"`
	HashState  []byte             `json:"hash_state,omitempty"`
}

// resumeDataFor makes resume data from the task's record and the newest
// progress record to trust.
func (s *Session) resumeDataFor(t *Task) (ResumeData, error) {
	t.mu.Lock()
	rec := t.rec
	t.mu.Unlock()
	p := resumePayload{Task: rec}
	f, err := s.fs.OpenFile(s.taskPath(rec.ID), os.O_RDONLY, 0)
	switch {
	case err == nil:
		prog, err := progress.New(f, progressBase, s.bootID).Load(rec.Generation)
		f.Close()
		if err == nil {
			p.Segments, p.HashOffset, p.HashState = prog.Segments, prog.HashOffset, prog.HashState
		}
	case !t.recorded():
		// A lazy task without a record yet has no progress to keep.
	default:
		return nil, &DiskError{Op: "read progress", Path: s.taskPath(rec.ID), Err: err}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return resumedata.Seal(s.key, s.id, b)
}

// openResumeData checks data and decodes its payload.
func (s *Session) openResumeData(data ResumeData) (resumePayload, error) {
	var p resumePayload
	b, err := resumedata.Open(s.key, s.id, data)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidResumeData, err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidResumeData, err)
	}
	if err := s.checkPayload(p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidResumeData, err)
	}
	return p, nil
}

// checkPayload refuses a payload that does not hold together, even though it
// is signed: it could only come from a bug, and it must never make durl
// write outside the task's destination.
func (s *Session) checkPayload(p resumePayload) error {
	rec := p.Task
	if rec.ID == "" || len(rec.ID) > 64 || filepath.Base(rec.ID) != rec.ID {
		return errors.New("bad task id")
	}
	req, err := s.checkRequest(rec.Request.request())
	if err != nil {
		return err
	}
	if req.Dest != rec.Request.Dest {
		return errors.New("destination is not absolute")
	}
	switch {
	case rec.Path == "":
	case !rec.Request.DestIsDir && rec.Path != rec.Request.Dest,
		rec.Request.DestIsDir && filepath.Dir(rec.Path) != rec.Request.Dest:
		return errors.New("destination file is outside the requested destination")
	}
	pr := progress.Record{Total: rec.Total, Segments: p.Segments, HashOffset: p.HashOffset, HashState: p.HashState}
	if _, err := progress.Unmarshal(mustMarshal(pr)); err != nil {
		return errors.New("inconsistent progress")
	}
	return nil
}

func mustMarshal(r progress.Record) []byte {
	b, err := r.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// adoptResumeData recreates a task the session no longer knows from its
// resume data: its record, and its progress as of the data.
func (s *Session) adoptResumeData(p resumePayload) (*Task, error) {
	rec := p.Task
	rec.State = recPaused
	f, err := s.createRecord(&rec)
	if err != nil {
		return nil, err
	}
	pr := progress.Record{Generation: rec.Generation, Total: rec.Total, Segments: p.Segments,
		HashOffset: p.HashOffset, HashState: p.HashState}
	err = progress.New(f, progressBase, s.bootID).WriteDurable(pr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, &DiskError{Op: "write progress", Path: s.taskPath(rec.ID), Err: err}
	}
	t := newTask(s, rec)
	t.state = Paused
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.tasks[rec.ID]; ok {
		return existing, nil
	}
	s.add(t)
	return t, nil
}
