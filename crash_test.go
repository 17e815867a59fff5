package durl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

var (
	bootA = [16]byte{0xa}
	bootB = [16]byte{0xb}
)

const (
	crashState = "/state"
	crashDest  = "/downloads/file.bin"
)

// crashOptions make checkpoints frequent, so crashes land between them.
func crashOptions(srv *durltest.Server) Options {
	return Options{StateDir: crashState, Client: srv.Client(), CheckpointInterval: 2 * time.Millisecond,
		Retry: RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}}
}

// runRequestOn runs req on fsys until it completes or the FS crashes.
func runRequestOn(t *testing.T, fsys vfs.FS, boot [16]byte, opts Options, req Request) error {
	t.Helper()
	s, err := open(context.Background(), opts, fsys, boot)
	if err != nil {
		return err
	}
	defer s.Close()
	// A task found in flight was resumed by Open (and may even have
	// completed already): wait for it rather than start a new one.
	if tasks := s.Tasks(); len(tasks) > 0 {
		task := tasks[len(tasks)-1]
		if err := wait(t, task); err != nil || task.State() == Completed {
			return err
		}
	}
	task, err := s.Start(req)
	if err != nil {
		return err
	}
	return wait(t, task)
}

// TestCrashAtEveryWrite crashes the first run at its k-th write operation,
// for every k, as a process kill and as a power loss, then checks the
// promises on what survived and finishes the download on it.
func TestCrashAtEveryWrite(t *testing.T) {
	const size = 1*mib + 12345
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	crashSweep(t, srv, sweep{opts: crashOptions(srv), size: size})
}

// TestCrashAtEveryWriteLazy is TestCrashAtEveryWrite for a task whose record
// is written only once it has progress to keep (Options.LazyRecords), over
// an older file of the same size at the destination, which must stay until
// the new one replaces it whole.
func TestCrashAtEveryWriteLazy(t *testing.T) {
	const size = 1*mib + 12345
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	opts := crashOptions(srv)
	opts.LazyRecords = true
	crashSweep(t, srv, sweep{opts: opts, size: size, old: durltest.Content(12, size)})
}

// TestCrashAtEveryWriteSmallFile crashes a download that completes before
// its first progress record and its first checkpoint, with and without a
// record from the start, with and without an older file of the same size
// at the destination.
//
// Into a folder, without a record and without syncing, the small file is
// written without a name (openUnnamed); there the sweep crashes by kills
// only, since NoSync keeps no promise through a power loss.
func TestCrashAtEveryWriteSmallFile(t *testing.T) {
	const size = 50 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	for _, c := range []struct{ lazy, folder, noSync bool }{
		{false, false, false}, {true, false, false}, {true, true, false}, {true, true, true},
	} {
		for _, old := range [][]byte{nil, durltest.Content(12, size)} {
			t.Run(fmt.Sprintf("lazy=%t/folder=%t/nosync=%t/old=%t", c.lazy, c.folder, c.noSync, old != nil), func(t *testing.T) {
				opts := crashOptions(srv)
				opts.CheckpointInterval = time.Hour
				opts.LazyRecords = c.lazy
				opts.NoSync = c.noSync
				crashSweep(t, srv, sweep{opts: opts, size: size, old: old, intoFolder: c.folder, killsOnly: c.noSync})
			})
		}
	}
}

// sweep is a crash sweep's download: of srv's file of size bytes, to
// crashDest (or into its folder, by the name the URL gives, if intoFolder
// is set), over conns connections (0: one), crashing at every step-th
// write (0: every one), by kills only if killsOnly is set. old, if set, is
// at the destination beforehand.
type sweep struct {
	opts                  Options
	size                  int64
	conns, step           int
	old                   []byte
	intoFolder, killsOnly bool
}

// crashSweep runs the download on a memfs that crashes at write k, for
// every step-th k of a clean run, as a kill and as a power loss, and checks:
//   - D1: every byte the trusted progress record claims is on disk and right;
//   - D3: the destination holds what it held before or the complete file;
//   - D5: after a kill, at most 256 KiB per connection is downloaded again;
//   - D2/D3: the rerun ends with the right file.
func crashSweep(t *testing.T, srv *durltest.Server, sw sweep) {
	t.Helper()
	req := Request{URL: srv.FileURL(), Dest: crashDest, Connections: sw.conns}
	if sw.intoFolder {
		req.URL, req.Dest, req.DestIsDir = srv.URL+"/"+path.Base(crashDest), path.Dir(crashDest), true
	}
	conns, step := max(sw.conns, 1), max(sw.step, 1)
	setup := func() *memfs.FS {
		mem := memfs.New()
		if sw.old != nil {
			writeDurably(t, mem, crashDest, sw.old)
		}
		return mem
	}
	clean := setup()
	before := clean.Ops()
	if err := runRequestOn(t, clean, bootA, sw.opts, req); err != nil {
		t.Fatal(err)
	}
	total := clean.Ops() - before
	if total < 5 {
		t.Fatalf("only %d write operations in a run", total)
	}
	for k := 0; k <= total+2; k += step {
		mem := setup()
		mem.CrashAfter(k)
		runRequestOn(t, mem, bootA, sw.opts, req)
		if !mem.Crashed() {
			continue // the run finished in fewer operations this time
		}
		modes := []memfs.CrashMode{memfs.ProcessKill, memfs.PowerLoss}
		if sw.killsOnly {
			modes = modes[:1]
		}
		for _, mode := range modes {
			t.Run(fmt.Sprintf("k=%d/%s", k, mode), func(t *testing.T) {
				after := mem.Crash(mode)
				boot := bootA
				if mode == memfs.PowerLoss {
					boot = bootB
				}
				checkDestination(t, after, sw.size, sw.old)
				claimed := checkProgressTrue(t, after, boot)
				requestsBefore := len(srv.Requests())
				if err := runRequestOn(t, after, boot, sw.opts, req); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				got, _ := after.ReadFile(crashDest)
				if !bytes.Equal(got, durltest.Content(11, sw.size)) {
					t.Fatalf("rerun ended with a wrong file (%d bytes)", len(got))
				}
				again := bodyBytesSince(srv, requestsBefore) - (sw.size - claimed)
				if mode == memfs.ProcessKill && again > int64(conns)*256*kib {
					t.Errorf("after a kill, %d bytes were downloaded again (claimed %d)", again, claimed)
				}
			})
		}
	}
}

// writeDurably writes a file, its folders and its content, durably.
func writeDurably(t *testing.T, fsys *memfs.FS, name string, data []byte) {
	t.Helper()
	dir := path.Dir(name)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for d := dir; ; d = path.Dir(d) {
		if err := fsys.SyncDir(d); err != nil {
			t.Fatal(err)
		}
		if d == "/" {
			return
		}
	}
}

// bodyBytesSince sums the body bytes of the server's requests from index
// first on (bytes still in flight on connections of an earlier run are not
// counted).
func bodyBytesSince(srv *durltest.Server, first int) int64 {
	var n int64
	for _, r := range srv.Requests()[first:] {
		n += r.BodyBytes
	}
	return n
}

// checkDestination checks D3: what was there before (old, or nothing), or
// the whole right file.
func checkDestination(t *testing.T, fsys *memfs.FS, size int64, old []byte) {
	t.Helper()
	got, err := fsys.ReadFile(crashDest)
	switch {
	case err != nil && old == nil:
	case err != nil:
		t.Fatalf("D3: the file that was at the destination is gone: %v", err)
	case old != nil && bytes.Equal(got, old):
	case !bytes.Equal(got, durltest.Content(11, size)):
		t.Fatalf("D3: the destination holds %d bytes that are neither the old file nor the new one", len(got))
	}
}

// checkProgressTrue checks D1 and returns how many bytes the trusted record
// claims.
func checkProgressTrue(t *testing.T, fsys *memfs.FS, boot [16]byte) int64 {
	t.Helper()
	s := &Session{fs: fsys, tasksDir: crashState + "/tasks"}
	names, _ := fsys.ReadDir(s.tasksDir)
	var claimed int64
	for _, name := range names {
		id, ok := cutSuffix(name, taskSuffix)
		if !ok {
			continue
		}
		rec, err := s.loadRecord(id)
		if errors.Is(err, errNoRecord) {
			continue // created but never written: Open removes it
		}
		if err != nil {
			t.Fatalf("a task record is unreadable after the crash: %v", err)
		}
		f, err := fsys.OpenFile(s.taskPath(id), os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := progress.New(f, progressBase, boot).Load(rec.Generation)
		f.Close()
		if err != nil {
			continue // no record to trust: the rerun starts over
		}
		if prog.Written() == 0 || rec.Path == "" {
			continue
		}
		data, _ := fsys.ReadFile(partialPath(rec.Path))
		if rec.State == recCompleted || rec.State == recFinishing {
			continue
		}
		want := durltest.Content(11, rec.Total)
		for _, seg := range prog.Segments {
			end := seg.Start + seg.Written
			if seg.Written == 0 {
				continue
			}
			if int64(len(data)) < end || !bytes.Equal(data[seg.Start:end], want[seg.Start:end]) {
				t.Fatalf("D1: the record claims bytes [%d, %d) that are not on disk (partial has %d bytes)", seg.Start, end, len(data))
			}
		}
		claimed += prog.Written()
	}
	return claimed
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// killMidDownload starts a download of srv's file on a new memfs and kills
// the process (memfs.CrashAfter) once 600 KiB are written.
func killMidDownload(t *testing.T, srv *durltest.Server) (*memfs.FS, *Task) {
	t.Helper()
	mem := memfs.New()
	s, err := open(context.Background(), crashOptions(srv), mem, bootA)
	if err != nil {
		t.Fatal(err)
	}
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: crashDest})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 600*kib)
	mem.CrashAfter(0) // the process dies here
	wait(t, task)
	s.Close()
	return mem, task
}

// D7: by default, a session opened after a crash resumes every task that was
// in flight, from where its record says, and says so.
func TestRecoveryResumesInFlight(t *testing.T) {
	const size = 2 * mib
	srv := durltest.NewServer(durltest.WithContent(11, size), durltest.WithRate(8*mib))
	defer srv.Close()
	mem, task := killMidDownload(t, srv)

	opts := crashOptions(srv)
	log := &eventLog{}
	opts.OnEvent = log.add
	requestsBefore := len(srv.Requests())
	after := mem.Crash(memfs.ProcessKill)
	s2, err := open(context.Background(), opts, after, bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	resumed, ok := s2.Task(task.ID())
	if !ok {
		t.Fatal("the task in flight was not found")
	}
	if err := wait(t, resumed); err != nil {
		t.Fatal(err)
	}
	var recovered []Event
	for _, e := range log.snapshot() {
		if e.Kind == EventRecovered {
			recovered = append(recovered, e)
		}
	}
	if len(recovered) != 1 || recovered[0].TaskID != task.ID() || !recovered[0].State.Active() {
		t.Errorf("recovered events %+v, want one for the task, queued or running", recovered)
	}
	if again := bodyBytesSince(srv, requestsBefore); again > size-600*kib+256*kib {
		t.Errorf("the resumed run downloaded %d bytes, expected about %d", again, size-600*kib)
	}
	got, _ := after.ReadFile(crashDest)
	if !bytes.Equal(got, durltest.Content(11, size)) {
		t.Fatalf("the resumed download ended with a wrong file (%d bytes)", len(got))
	}
}

// D7: a session opened after a crash reports every task that was in flight
// as interrupted, with resume data that continues it.
func TestRecoveryReportsInterrupted(t *testing.T) {
	const size = 2 * mib
	srv := durltest.NewServer(durltest.WithContent(11, size), durltest.WithRate(8*mib))
	defer srv.Close()
	mem, task := killMidDownload(t, srv)

	opts := crashOptions(srv)
	opts.Recovery = ReportInterrupted
	log := &eventLog{}
	opts.OnEvent = log.add
	s2, err := open(context.Background(), opts, mem.Crash(memfs.ProcessKill), bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	found := s2.Interrupted()
	if len(found) != 1 || found[0].ID() != task.ID() || found[0].State() != Interrupted {
		t.Fatalf("Interrupted() = %v, want the one task", found)
	}
	if !log.waitFor(EventInterrupted, 1) {
		t.Errorf("%d interrupted events, want 1", log.count(EventInterrupted))
	}
	rd, err := found[0].ResumeData()
	if err != nil {
		t.Fatal(err)
	}
	requestsBefore := len(srv.Requests())
	resumed, err := s2.Resume(rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, resumed); err != nil {
		t.Fatal(err)
	}
	if again := bodyBytesSince(srv, requestsBefore); again > size-600*kib+256*kib {
		t.Errorf("resume downloaded %d bytes, expected about %d", again, size-600*kib)
	}
	if errors.Is(resumed.Err(), ErrPaused) {
		t.Fatal("still paused")
	}
}

// D5: after a power loss, what is lost is bounded by the checkpoint
// interval: while a download runs for many intervals, durable checkpoints
// (the only progress a power loss keeps) follow it.
func TestCheckpointsWhileRunning(t *testing.T) {
	const size = 4 * mib
	srv := durltest.NewServer(durltest.WithContent(11, size), durltest.WithRate(2*mib))
	defer srv.Close()
	mem := memfs.New()
	opts := crashOptions(srv)
	opts.CheckpointInterval = 20 * time.Millisecond
	s, task := startOn(t, mem, opts, srv)
	// What a power loss would leave (bootB: the volatile slot is not
	// trusted), read while the download goes on.
	durable := func() int64 {
		f, err := mem.OpenFile(s.taskPath(task.ID()), os.O_RDONLY, 0)
		if err != nil {
			return 0
		}
		defer f.Close()
		prog, err := progress.New(f, progressBase, bootB).Load(task.savedRecord().Generation)
		if err != nil {
			return 0
		}
		return prog.Written()
	}
	waitUntil(t, func() bool { return durable() >= mib || task.State() != Running && task.State() != Queued })
	if got := durable(); got < mib || task.State() == Completed {
		t.Fatalf("durable progress %d bytes when the task is %s: checkpoints do not follow the download", got, task.State())
	}
	task.Pause()
}
