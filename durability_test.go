package durl

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/resumedata"
	"github.com/durl-dev/durl/internal/vfs/errfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// D6: a second writer of the same download is refused with ErrLocked,
// whether it shares the state folder or not.
func TestOneWriterPerDownload(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(1, 4*mib), durltest.WithRate(2*mib))
	defer srv.Close()
	s1, _, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, err := s1.Start(Request{URL: srv.FileURL(), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 1)

	// Another session on the same state folder (another process).
	s2, _, _ := testSession(t, srv, Options{StateDir: filepath.Join(dir, "state")})
	if _, err := s2.Start(Request{URL: srv.FileURL(), Dest: dest}); !errors.Is(err, ErrLocked) {
		t.Errorf("same state folder: err = %v, want ErrLocked", err)
	}
	// A session with its own state folder, same destination.
	s3, _, _ := testSession(t, srv, Options{})
	other, err := s3.Start(Request{URL: srv.FileURL(), Dest: dest})
	if err == nil {
		err = wait(t, other)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("other state folder: err = %v, want ErrLocked", err)
	}
	// The same session, another URL to the same file: refused at once.
	_, err = s1.Start(Request{URL: srv.FileURL() + "?other", Dest: dest})
	if inUse := (*DestinationInUseError)(nil); !errors.As(err, &inUse) || !errors.Is(err, ErrLocked) ||
		inUse.TaskID != task.ID() || inUse.Path != dest || inUse.URL != srv.FileURL() {
		t.Errorf("same session, another URL: err = %v, want a DestinationInUseError naming the first task", err)
	}
	if _, err := task.Pause(); err != nil {
		t.Fatal(err)
	}
	// Once the first is paused, the file is free for another download.
	again, err := s1.Start(Request{URL: srv.FileURL() + "?other", Dest: dest})
	if err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	again.Pause()
}

// Two downloads into one folder whose names are the same, from their URLs
// or from the server's Content-Disposition: the second finds the first's
// partial file, and fails with a DestinationInUseError naming the first
// (not as if another process held it); the first completes. A download to
// that file by name is then refused at once.
func TestSameNameInOneFolder(t *testing.T) {
	for _, tc := range []struct {
		name, path1, path2, file string
		opts                     []durltest.Option
	}{
		{"from the URLs", "/file", "/file?v=2", "file", nil},
		{"from Content-Disposition", "/a", "/b", "same.bin",
			[]durltest.Option{durltest.WithContentDisposition(`attachment; filename="same.bin"`)}},
	} {
		// A small file without a record or syncing is written without a
		// name (openUnnamed): no partial file's lock stops the second.
		for _, size := range []int64{2 * mib, 48 * kib} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, size), func(t *testing.T) {
				sameNameInOneFolder(t, size, tc.path1, tc.path2, tc.file, tc.opts)
			})
		}
	}
}

func sameNameInOneFolder(t *testing.T, size int64, path1, path2, file string, srvOpts []durltest.Option) {
	opts := append([]durltest.Option{durltest.WithContent(1, size), durltest.WithRate(size)}, srvOpts...)
	srv := durltest.NewServer(opts...)
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{NoSync: size <= recordStep, LazyRecords: size <= recordStep})
	first, err := s.Start(Request{URL: srv.URL + path1, Dest: dir, DestIsDir: true})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, first, 1)
	dest := filepath.Join(dir, file)
	wantInUse := func(what string, err error) {
		t.Helper()
		var inUse *DestinationInUseError
		if !errors.As(err, &inUse) || !errors.Is(err, ErrLocked) || inUse.TaskID != first.ID() || inUse.Path != dest {
			t.Errorf("%s: err = %v, want a DestinationInUseError naming task %s and %s", what, err, first.ID(), dest)
		}
	}
	second, err := s.Start(Request{URL: srv.URL + path2, Dest: dir, DestIsDir: true})
	if err == nil {
		err = wait(t, second)
	}
	wantInUse("the same name in the folder", err)
	_, err = s.Start(Request{URL: srv.URL + "/c", Dest: dest})
	wantInUse("that file by name", err)
	if err := wait(t, first); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 1, size)
}

// D8: resume data that is tampered with, truncated, from another session
// or from a newer format is refused with ErrInvalidResumeData.
func TestResumeDataIsChecked(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(1, 2*mib), durltest.WithRate(4*mib))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "f")})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 256*kib)
	rd, err := task.Pause()
	if err != nil {
		t.Fatal(err)
	}
	flipped := append(ResumeData(nil), rd...)
	flipped[len(flipped)/2] ^= 0x20
	newer := append(ResumeData(nil), rd...)
	newer[6] = resumedata.Version + 1
	other, _, _ := testSession(t, srv, Options{})
	for name, c := range map[string]struct {
		s    *Session
		data ResumeData
	}{
		"tampered":      {s, flipped},
		"truncated":     {s, rd[:len(rd)-10]},
		"empty":         {s, nil},
		"newer format":  {s, newer},
		"other session": {other, rd},
	} {
		if _, err := c.s.Resume(c.data); !errors.Is(err, ErrInvalidResumeData) {
			t.Errorf("%s: err = %v, want ErrInvalidResumeData", name, err)
		}
	}
	// The genuine data resumes.
	resumed, err := s.Resume(rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, resumed); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "f"), 1, 2*mib)
}

// D9: a full disk is found before the transfer (space is reserved), and
// an I/O error mid-transfer stops the task with resume data; after the disk
// is fixed, resuming completes the download.
func TestDiskFullAndIOErrors(t *testing.T) {
	const size = 2 * mib
	srv := durltest.NewServer(durltest.WithContent(3, size))
	defer srv.Close()

	quota := errfs.WithQuota(memfs.New(), 1*mib)
	s, task := startOn(t, quota, crashOptions(srv), srv)
	err := wait(t, task)
	var de *DiskError
	var te *TaskError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &te) || te.ResumeData == nil {
		t.Fatalf("err = %v, want a DiskError for ENOSPC with resume data", err)
	}
	// What to do is for the program or the command line to say.
	if msg := de.Error(); !strings.HasSuffix(msg, ": no space left on device)") || !strings.Contains(msg, ": the disk is full (") {
		t.Errorf("the error says %q, want what happened only", msg)
	}
	if task.Progress().Written != 0 {
		t.Errorf("%d bytes written before the full disk was found", task.Progress().Written)
	}
	quota.SetQuota(64 * mib)
	resumed, err := s.Resume(te.ResumeData)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, resumed); err != nil {
		t.Fatal(err)
	}

	// A file system that cannot reserve space (no fallocate): durl looks
	// at its free space instead, still before the first byte.
	noFallocate := errfs.Wrap(errfs.WithQuota(memfs.New(), 1*mib),
		errfs.FailOn(errfs.OpAllocate, PartialSuffix, errors.ErrUnsupported, 0))
	_, task = startOn(t, noFallocate, crashOptions(srv), srv)
	if err := wait(t, task); !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("without fallocate: err = %v, want a DiskError for ENOSPC", err)
	}
	if task.Progress().Written != 0 {
		t.Errorf("without fallocate: %d bytes written before the full disk was found", task.Progress().Written)
	}

	// An EIO on the first sync of the partial file, then a repaired disk.
	faulty := errfs.Wrap(memfs.New(), errfs.FailOn(errfs.OpSync, PartialSuffix, syscall.EIO, 0))
	s2, task := startOn(t, faulty, crashOptions(srv), srv)
	if err := wait(t, task); !errors.Is(err, syscall.EIO) || !errors.As(err, &te) || te.ResumeData == nil {
		t.Fatalf("err = %v, want EIO with resume data", err)
	}
	faulty.SetInjector(nil)
	resumed, err = s2.Resume(te.ResumeData)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, resumed); err != nil {
		t.Fatal(err)
	}
}

// A lazy task whose record cannot be created fails with a DiskError, from
// whichever of its connection and its checkpointer tries first (the other
// must not count on a task file that does not exist); once the disk is
// repaired, resuming the task completes it.
func TestLazyRecordCreateFails(t *testing.T) {
	const size = 1 * mib
	srv := durltest.NewServer(durltest.WithContent(4, size))
	defer srv.Close()
	mem := memfs.New()
	faulty := errfs.Wrap(mem, errfs.FailOn(errfs.OpOpen, taskSuffix, syscall.EIO, 0))
	opts := crashOptions(srv)
	opts.LazyRecords = true
	_, task := startOn(t, faulty, opts, srv)
	var de *DiskError
	if err := wait(t, task); !errors.As(err, &de) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want a DiskError for EIO", err)
	}
	faulty.SetInjector(nil)
	if err := task.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	if got, _ := mem.ReadFile(crashDest); !bytes.Equal(got, durltest.Content(4, size)) {
		t.Fatal("wrong content after the resume")
	}
}

// Pause hands back resume data; Resume continues from where it stopped,
// and Cancel removes the partial data.
func TestPauseResumeCancel(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(5, 3*mib), durltest.WithRate(6*mib))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, _ := s.Start(Request{URL: srv.FileURL(), Dest: dest})
	waitWritten(t, task, 1*mib)
	rd, err := task.Pause()
	if err != nil || rd == nil {
		t.Fatalf("Pause = %v, %v", rd, err)
	}
	if task.State() != Paused || !errors.Is(task.Err(), ErrPaused) {
		t.Fatalf("state %s, err %v after Pause", task.State(), task.Err())
	}
	written := task.Progress().Written
	requestsBefore := len(srv.Requests())
	if _, err := s.Resume(rd); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 5, 3*mib)
	if again := bodyBytesSince(srv, requestsBefore); again != 3*mib-written {
		t.Errorf("resume downloaded %d bytes, want %d", again, 3*mib-written)
	}
	if !log.waitFor(EventCompleted, 1) {
		t.Error("no completed event")
	}

	task, _ = s.Start(Request{URL: srv.FileURL(), Dest: dest + "2"})
	waitWritten(t, task, 1)
	if err := task.Cancel(); err != nil {
		t.Fatal(err)
	}
	if task.State() != Cancelled {
		t.Errorf("state %s after Cancel", task.State())
	}
	if _, ok := s.Task(task.ID()); ok {
		t.Error("a cancelled task is still listed")
	}
	if _, err := filepath.Glob(dest + "2*"); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(dest + "2*"); len(m) != 0 {
		t.Errorf("files left after Cancel: %v", m)
	}
}

// A run that finds the task locked by another process must not write the
// task's record: it is not its own.
func TestLockedRunLeavesTheRecordAlone(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(1, 4*mib), durltest.WithRate(2*mib))
	defer srv.Close()
	s1, _, dir := testSession(t, srv, Options{})
	owner, err := s1.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "f")})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, owner, 1)
	s2, _, _ := testSession(t, srv, Options{StateDir: filepath.Join(dir, "state")})
	other, ok := s2.Task(owner.ID())
	if !ok {
		t.Fatal("the second session does not list the task")
	}
	if err := other.start(); err != nil { // as if the lock was free a moment ago
		t.Fatal(err)
	}
	if err := wait(t, other); !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	rec, err := s2.loadRecord(owner.ID())
	if err != nil || rec.State != recActive {
		t.Fatalf("record state %q (%v) after a locked run; want it left active", rec.State, err)
	}
	owner.Pause()
}
