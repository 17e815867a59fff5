package durl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/errfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// waiting returns how many callers wait for the round after the running
// one.
func (g *groupSync) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == nil {
		return 0
	}
	return g.next.members
}

// pollUntil polls cond every millisecond until it holds, for at most 10 s,
// and reports whether it held. Unlike waitUntil it may run on any
// goroutine.
func pollUntil(cond func() bool) bool {
	for range 10_000 {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

// A lone caller syncs alone; callers that come while a sync runs share the
// next one, and each gets the error of the sync that covered it.
func TestGroupSyncRounds(t *testing.T) {
	var g groupSync
	var alone, together atomic.Int32
	ok := func() error { alone.Add(1); return nil }
	if shared, err := g.sync(ok, nil); shared || err != nil || alone.Load() != 1 {
		t.Fatalf("a lone caller: shared %t, err %v, %d syncs alone", shared, err, alone.Load())
	}

	// The first caller's sync blocks; three more come meanwhile.
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := g.sync(func() error { <-release; return nil }, nil)
		first <- err
	}()
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.running != nil })
	errDisk := errors.New("disk error")
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			shared, err := g.sync(nil, func() error { together.Add(1); return errDisk })
			if !shared {
				err = fmt.Errorf("not shared: %v", err)
			}
			results <- err
		})
	}
	waitUntil(t, func() bool { return g.waiting() == 3 })
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first caller got %v, the error of a later sync", err)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != errDisk {
			t.Errorf("a caller of the shared round got %v, want its error", err)
		}
	}
	if together.Load() != 1 {
		t.Errorf("the three callers ran %d shared syncs, want 1", together.Load())
	}

	// The next round is not told the failed round's error.
	if _, err := g.sync(ok, nil); err != nil {
		t.Errorf("a later round got %v", err)
	}
}

// finishTogether is a workload of n small downloads from srv into /dl that
// finish together: the first file's sync is held (inject blocks it) until
// the n-1 others wait to share the next one.
type finishTogether struct {
	n    int
	srv  *durltest.Server
	opts Options
	// fail, if set, decides the fate of the operations the hold lets run.
	fail errfs.Injector

	mu     sync.Mutex
	s      *Session
	held   bool
	counts map[errfs.Op]int
}

func newFinishTogether(n int, srv *durltest.Server) *finishTogether {
	return &finishTogether{n: n, srv: srv, opts: smallFileOptions(srv)}
}

// smallFileOptions are the options of durl get's small files: no record
// until there is progress worth keeping, and no checkpoint before they
// complete.
func smallFileOptions(srv *durltest.Server) Options {
	opts := crashOptions(srv)
	opts.CheckpointInterval = time.Hour
	opts.LazyRecords = true
	return opts
}

func (w *finishTogether) dest(i int) string { return fmt.Sprintf("/dl/f%d", i) }

// inject holds the first sync of a partial file until the others wait for
// the next round (or the file system crashed, or 10 s passed), counts the
// operations on the partial files and passes them to w.fail.
func (w *finishTogether) inject(mem *memfs.FS) errfs.Injector {
	return func(op errfs.Op, path string) error {
		if op != errfs.OpSyncFileSystem && !strings.HasSuffix(path, PartialSuffix) {
			return nil
		}
		w.mu.Lock()
		hold := op == errfs.OpSync && !w.held
		w.held = w.held || hold
		s := w.s
		if w.counts == nil {
			w.counts = map[errfs.Op]int{}
		}
		w.counts[op]++
		fail := w.fail
		w.mu.Unlock()
		if hold {
			g := s.syncGroup("/dl", true)
			pollUntil(func() bool { return g.waiting() == w.n-1 || mem.Crashed() })
		}
		if fail != nil {
			return fail(op, path)
		}
		return nil
	}
}

// start opens a session on fsys and starts the n downloads.
func (w *finishTogether) start(t *testing.T, fsys vfs.FS, boot [16]byte) (*Session, []*Task, error) {
	s, err := open(context.Background(), w.opts, fsys, boot)
	if err != nil {
		return nil, nil, err
	}
	w.mu.Lock()
	w.s, w.held, w.counts = s, false, nil
	w.mu.Unlock()
	var tasks []*Task
	for i := range w.n {
		task, err := s.Start(Request{URL: w.srv.FileURL(), Dest: w.dest(i)})
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		tasks = append(tasks, task)
	}
	return s, tasks, nil
}

func (w *finishTogether) count(op errfs.Op) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[op]
}

// Files finishing together into one folder share one sync of the file
// system, then each asks whether its own data made it (D3 without a sync
// each); a file whose data did not make it fails with a DiskError and
// stays out of place (D9); where the shared sync fails or is unsupported,
// each file is synced by itself.
func TestFilesFinishingTogetherShareASync(t *testing.T) {
	const n, size = 4, 40 * kib
	srv := durltest.NewServer(durltest.WithContent(21, size))
	defer srv.Close()
	want := durltest.Content(21, size)
	// failFirst fails the first WriteError of a partial file: of a file
	// that shared the sync (the first one synced alone does not ask).
	var failedPath atomic.Value
	failFirst := func(op errfs.Op, path string) error {
		if op == errfs.OpWriteError && failedPath.CompareAndSwap(nil, path) {
			return syscall.EIO
		}
		return nil
	}
	for _, c := range []struct {
		name            string
		fail            errfs.Injector
		oneFails        bool // a download is told its data did not make it
		syncfs, ownSync int  // the operations on the partial files
		unsupported     bool // the shared sync is unsupported
	}{
		{"shared", nil, false, 1, 1, false},
		{"one file's data did not make it", failFirst, true, 1, 1, false},
		{"the shared sync failed", errfs.FailOn(errfs.OpSyncFileSystem, "", syscall.EIO, 0), false, 1, n, false},
		{"the shared sync is unsupported", errfs.FailOn(errfs.OpSyncFileSystem, "", errors.ErrUnsupported, 0), false, 1, n, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := memfs.New()
			w := newFinishTogether(n, srv)
			w.fail = c.fail
			fsys := errfs.Wrap(mem, w.inject(mem))
			s, tasks, err := w.start(t, fsys, bootA)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			errs := make([]error, n)
			for i, task := range tasks {
				errs[i] = wait(t, task)
			}
			failed := -1
			for i := range n {
				if c.oneFails && failedPath.Load() == partialPath(w.dest(i)) {
					failed = i
				}
			}
			if c.oneFails && failed < 0 {
				t.Fatal("no download was told its data did not make it")
			}
			for i, err := range errs {
				got, _ := mem.ReadFile(w.dest(i))
				var de *DiskError
				switch {
				case i != failed && err != nil:
					t.Errorf("download %d: %v", i, err)
				case i != failed && !bytes.Equal(got, want):
					t.Errorf("download %d completed with a wrong file (%d bytes)", i, len(got))
				case i == failed && (!errors.As(err, &de) || !errors.Is(err, syscall.EIO)):
					t.Errorf("download %d: err = %v, want a DiskError for EIO", i, err)
				case i == failed && got != nil:
					t.Errorf("download %d failed, yet its destination holds %d bytes", i, len(got))
				}
			}
			if got := w.count(errfs.OpSyncFileSystem); got != c.syncfs {
				t.Errorf("%d syncs of the file system, want %d", got, c.syncfs)
			}
			if got := w.count(errfs.OpSync); got != c.ownSync {
				t.Errorf("%d syncs of a partial file, want %d", got, c.ownSync)
			}
			if got := s.syncGroup("/dl", true).perFile.Load(); got != c.unsupported {
				t.Errorf("per-file syncs from now on: %t", got)
			}
			if failed < 0 {
				return
			}
			w.fail = nil
			if err := tasks[failed].Resume(); err != nil {
				t.Fatal(err)
			}
			if err := wait(t, tasks[failed]); err != nil {
				t.Fatal(err)
			}
			if got, _ := mem.ReadFile(w.dest(failed)); !bytes.Equal(got, want) {
				t.Fatal("wrong file after the resume")
			}
		})
	}
}

// TestCrashAtEveryWriteFinishingTogether crashes downloads that finish
// together, sharing a sync of the file system, at every write operation,
// as a kill and as a power loss: each destination holds nothing or the
// whole right file (D3), and running them again completes them all.
func TestCrashAtEveryWriteFinishingTogether(t *testing.T) {
	const n, size = 3, 40 * kib
	srv := durltest.NewServer(durltest.WithContent(22, size))
	defer srv.Close()
	want := durltest.Content(22, size)
	w := newFinishTogether(n, srv)
	run := func(fsys vfs.FS, boot [16]byte) error {
		s, tasks, err := w.start(t, fsys, boot)
		if err != nil {
			return err
		}
		defer s.Close()
		for _, task := range tasks {
			if err := wait(t, task); err != nil {
				return err
			}
		}
		return nil
	}
	clean := memfs.New()
	if err := run(errfs.Wrap(clean, w.inject(clean)), bootA); err != nil {
		t.Fatal(err)
	}
	if w.count(errfs.OpSyncFileSystem) != 1 {
		t.Fatalf("%d syncs of the file system in a clean run, want 1", w.count(errfs.OpSyncFileSystem))
	}
	total := clean.Ops()
	for k := 0; k <= total+2; k++ {
		mem := memfs.New()
		mem.CrashAfter(k)
		run(errfs.Wrap(mem, w.inject(mem)), bootA)
		if !mem.Crashed() {
			continue
		}
		for _, mode := range []memfs.CrashMode{memfs.ProcessKill, memfs.PowerLoss} {
			t.Run(fmt.Sprintf("k=%d/%s", k, mode), func(t *testing.T) {
				after := mem.Crash(mode)
				for i := range n {
					if got, err := after.ReadFile(w.dest(i)); err == nil && !bytes.Equal(got, want) {
						t.Fatalf("D3: destination %d holds %d bytes that are not the file", i, len(got))
					}
				}
				boot := bootA
				if mode == memfs.PowerLoss {
					boot = bootB
				}
				if err := run(after, boot); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				for i := range n {
					if got, _ := after.ReadFile(w.dest(i)); !bytes.Equal(got, want) {
						t.Fatalf("the rerun left a wrong file at destination %d", i)
					}
				}
			})
		}
	}
}

// A download whose bytes are all written leaves its place among the
// MaxActive transfers while its file is flushed, so the next one transfers
// meanwhile; at most MaxActive downloads finish so, the others keep their
// place to the end.
func TestFinishingLeavesItsPlace(t *testing.T) {
	const size = 40 * kib
	srv := durltest.NewServer(durltest.WithContent(23, size))
	defer srv.Close()
	opts := smallFileOptions(srv)
	opts.MaxActive = 1
	var s *Session
	var tasks []*Task
	var held atomic.Bool
	queuedWhileHeld := make(chan int, 1)
	hold := func(op errfs.Op, path string) error {
		if op != errfs.OpSync || !strings.HasSuffix(path, PartialSuffix) || held.Swap(true) {
			return nil
		}
		// The first file's flush: the next download transfers and
		// waits for the next flush; it may not leave its place (one
		// download finishes so at a time), so the last stays queued.
		g := s.syncGroup("/dl", true)
		pollUntil(func() bool { return g.waiting() == 1 })
		queued := func() (n int) {
			for _, task := range tasks {
				if task.State() == Queued {
					n++
				}
			}
			return n
		}
		// Give a download wrongly let through the time to start.
		for i := 0; i < 100 && queued() > 0; i++ {
			time.Sleep(time.Millisecond)
		}
		queuedWhileHeld <- queued()
		return nil
	}
	s, err := open(context.Background(), opts, errfs.Wrap(memfs.New(), hold), bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		task, err := s.Add(Request{URL: srv.FileURL(), Dest: fmt.Sprintf("/dl/f%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	for _, task := range tasks {
		if err := task.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	for _, task := range tasks {
		if err := wait(t, task); err != nil {
			t.Fatal(err)
		}
	}
	if g := s.syncGroup("/dl", true); g.waiting() != 0 {
		t.Fatal("callers left waiting")
	}
	select {
	case queued := <-queuedWhileHeld:
		if queued != 1 {
			t.Errorf("while the first file was flushed, %d downloads were queued, want 1", queued)
		}
	default:
		t.Fatal("the first file was never flushed by itself")
	}
}

// A recorded download records its last bytes before it leaves its place to
// finish: killed while its file is flushed, it is not downloaded again (D5).
func TestFinishingRecordsItsLastBytes(t *testing.T) {
	const size = 300 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	opts := crashOptions(srv)
	// Killed as the file is flushed.
	after := crashAtPartial(t, opts, Request{URL: srv.FileURL(), Dest: crashDest}, errfs.OpSync, memfs.ProcessKill)
	before := len(srv.Requests())
	if err := runRequestOn(t, after, bootA, opts, Request{URL: srv.FileURL(), Dest: crashDest}); err != nil {
		t.Fatal(err)
	}
	if again := bodyBytesSince(srv, before); again != 0 {
		t.Errorf("%d bytes downloaded again after a kill during the flush, want 0", again)
	}
	wantRerunFile(t, after, size)
}

// Only a download that a kill during its flush costs little leaves its
// place early (D5): one without a record, larger than recordStep, keeps
// it. No server can make a whole file of that size arrive before its
// first record every time, so this calls leaveActiveEarly directly.
func TestOnlySmallUnrecordedFilesLeaveTheirPlace(t *testing.T) {
	s, err := open(context.Background(), Options{StateDir: crashState, MaxActive: 4}, memfs.New(), bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var finishing int32
	for _, c := range []struct {
		total int64
		leave bool
	}{{recordStep + 1, false}, {recordStep, true}} {
		left := false
		d := &download{s: s, t: &Task{unrecorded: true}, leaveActive: func() { left = true }}
		d.prog.Total = c.total
		if err := d.leaveActiveEarly(); err != nil {
			t.Fatal(err)
		}
		if left != c.leave || d.leftActive != c.leave {
			t.Errorf("a %d-byte download without a record: left its place %v (marked %v), want %v",
				c.total, left, d.leftActive, c.leave)
		}
		if c.leave {
			finishing++
		}
		if n := s.finishing.Load(); n != finishing {
			t.Errorf("after the %d-byte download, %d finishing, want %d", c.total, n, finishing)
		}
	}
}

// After a round that several callers shared, the next round's first caller
// waits (gather) and those who come meanwhile join its round; after a round
// alone, nobody waits.
func TestGroupSyncGathersAfterASharedRound(t *testing.T) {
	gathering, proceed := make(chan struct{}, 1), make(chan struct{})
	var gathers atomic.Int32
	g := groupSync{gather: func() {
		gathers.Add(1)
		gathering <- struct{}{}
		<-proceed
	}}
	var together atomic.Int32
	alone := func() error { return nil }
	shared := func() error { together.Add(1); return nil }
	waitGathering := func() bool {
		select {
		case <-gathering:
			return true
		case <-time.After(10 * time.Second):
			return false
		}
	}
	wantGathers := func(n int32, when string) {
		t.Helper()
		if got := gathers.Load(); got != n {
			t.Fatalf("%s: %d waits for callers, want %d", when, got, n)
		}
	}

	// A shared round: two callers come while a sync runs.
	release := make(chan struct{})
	first := make(chan struct{})
	go func() { g.sync(func() error { <-release; return nil }, nil); close(first) }()
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.running != nil })
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { g.sync(alone, shared) })
	}
	waitUntil(t, func() bool { return g.waiting() == 2 })
	close(release)
	<-first
	wg.Wait()
	wantGathers(0, "after a round alone")

	// The next caller waits for others; one comes and shares its sync.
	before := together.Load()
	results := make(chan bool, 2)
	go func() { s, _ := g.sync(alone, shared); results <- s }()
	if !waitGathering() {
		t.Fatal("after a shared round, the next caller did not wait for others")
	}
	go func() { s, _ := g.sync(alone, shared); results <- s }()
	waitUntil(t, func() bool { return g.waiting() == 2 })
	proceed <- struct{}{}
	synced1, synced2 := <-results, <-results
	if !synced1 || !synced2 || together.Load() != before+1 {
		t.Fatalf("the callers that came while the first waited did not share one sync (%d syncs)", together.Load()-before)
	}
	wantGathers(1, "after a shared round")

	// Nobody comes: the caller syncs alone, and the next one does not wait.
	go func() {
		if waitGathering() {
			proceed <- struct{}{}
		}
	}()
	if s, err := g.sync(alone, shared); s || err != nil {
		t.Fatalf("a caller that waited in vain: shared %t, err %v", s, err)
	}
	wantGathers(2, "after waiting in vain")
	if s, err := g.sync(alone, shared); s || err != nil {
		t.Fatalf("a lone caller: shared %t, err %v", s, err)
	}
	wantGathers(2, "after a round alone")
}

// Without syncs there is nothing to gather for: NoSync rounds never wait.
func TestNoSyncRoundsDoNotGather(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		s, err := open(context.Background(), Options{StateDir: crashState, NoSync: noSync}, memfs.New(), bootA)
		if err != nil {
			t.Fatal(err)
		}
		if gathers := s.syncGroup("/dl", true).gather != nil; gathers == noSync {
			t.Errorf("NoSync %t: rounds wait for callers: %t", noSync, gathers)
		}
		s.Close()
	}
}
