package durl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/durl-dev/durl/durltest"
)

func TestGateOrder(t *testing.T) {
	g := newGate(1)
	if err := g.acquire(context.Background(), func() int { return 0 }); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	priorities := make([]atomic.Int64, 6)
	for i, p := range []int64{1, 5, 3, 5, 0, 2} {
		priorities[i].Store(p)
	}
	// Waiter 5 gives up while waiting.
	ctx5, cancel5 := context.WithCancel(context.Background())
	for i := range priorities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i == 5 {
				ctx = ctx5
			}
			if g.acquire(ctx, func() int { return int(priorities[i].Load()) }) != nil {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			g.release()
		}()
		waitUntil(t, func() bool { return g.waiting() == i+1 })
	}
	cancel5()
	waitUntil(t, func() bool { return g.waiting() == 5 })
	priorities[4].Store(4) // raised while waiting: counts once the gate reorders
	g.reorder()
	g.release()
	wg.Wait()
	want := []int{1, 3, 4, 2, 0} // highest first; equal ones in arrival order
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("let through in order %v, want %v", order, want)
		}
	}
}

func TestGateLimitChangesAndGivingUp(t *testing.T) {
	g := newGate(1)
	zero := func() int { return 0 }
	g.acquire(context.Background(), zero)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- g.acquire(ctx, zero) }()
	waitUntil(t, func() bool { return g.waiting() == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire after cancel: %v", err)
	}
	if g.waiting() != 0 {
		t.Fatal("a waiter that gave up is still waiting")
	}
	through := make(chan struct{})
	go func() { g.acquire(context.Background(), zero); close(through) }()
	waitUntil(t, func() bool { return g.waiting() == 1 })
	g.setLimit(2)
	select {
	case <-through:
	case <-time.After(10 * time.Second):
		t.Fatal("raising the limit let no waiter through")
	}
	g.setLimit(0) // no limit
	if err := g.acquire(context.Background(), zero); err != nil {
		t.Fatal(err)
	}
}

// TestQueueByPriority: with MaxActive 1, queued tasks start highest
// priority first, a priority changed while queued counts, and raising
// MaxActive starts the others at once.
func TestQueueByPriority(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(1, 64<<10), durltest.WithRate(256<<10))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{MaxActive: 1})
	first, err := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "f0")})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return first.State() == Running })
	var queued []*Task
	for i, p := range []int{0, 1, 2} {
		task, err := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "q", string(rune('a'+i))), Priority: p})
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, task)
	}
	if err := queued[0].SetPriority(9); err != nil {
		t.Fatal(err)
	}
	for _, task := range append(queued, first) {
		if err := wait(t, task); err != nil {
			t.Fatal(err)
		}
	}
	var started []string
	for _, e := range log.snapshot() {
		if e.Kind == EventStarted {
			started = append(started, e.TaskID)
		}
	}
	want := []string{first.ID(), queued[0].ID(), queued[2].ID(), queued[1].ID()}
	for i := range want {
		if started[i] != want[i] {
			t.Fatalf("started in order %v, want %v", started, want)
		}
	}
	rec, err := s.loadRecord(queued[0].ID())
	if err != nil || rec.Request.Priority != 9 {
		t.Fatalf("saved priority %d (%v), want 9", rec.Request.Priority, err)
	}

	// Raising the limit lets every queued task run at once.
	s.SetLimits(Limits{MaxActive: 1})
	blocker, _ := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "b")})
	waitUntil(t, func() bool { return blocker.State() == Running })
	other, _ := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "o")})
	if other.State() != Queued {
		t.Fatalf("second task is %s with MaxActive 1", other.State())
	}
	s.SetLimits(Limits{MaxActive: 2})
	waitUntil(t, func() bool { return other.State() != Queued })
	if got := s.Limits(); got.MaxActive != 2 || got.MaxConnsPerHost != 16 || got.RateLimit != 0 {
		t.Fatalf("Limits() = %+v", got)
	}
	wait(t, blocker)
	wait(t, other)
}

// TestRateLimitsChangeWhileRunning: a task limited to a crawl speeds up
// when its limit is lifted, and the new limit is saved.
func TestRateLimitsChangeWhileRunning(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(2, 4<<20))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "f"), RateLimit: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 1)
	if task.RateLimit() != 64<<10 {
		t.Fatalf("RateLimit() = %d", task.RateLimit())
	}
	if err := task.SetRateLimit(0); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil { // 4 MiB at 64 KiB/s would take a minute
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "f"), 2, 4<<20)
	if rec := task.savedRecord(); rec.Request.RateLimit != 0 {
		t.Fatalf("saved rate limit %d after lifting it", rec.Request.RateLimit)
	}

	// The session-wide limit applies the same way.
	s.SetLimits(Limits{RateLimit: 64 << 10})
	slow, _ := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "g")})
	waitWritten(t, slow, 1)
	s.SetLimits(Limits{})
	if err := wait(t, slow); err != nil {
		t.Fatal(err)
	}
	if err := task.SetPriority(3); !errors.Is(err, ErrNotResumable) {
		t.Fatalf("SetPriority of a completed task: %v", err)
	}
}

// A rate limit lets at most a tenth of a second's worth through at once,
// and never less than one read: the first second runs at the limit, not
// at twice it.
func TestRateLimitBurst(t *testing.T) {
	for _, bytesPerSecond := range []int64{10 << 20, 64 << 10} {
		want := max(bufferSize, int(bytesPerSecond/10))
		started := newLimiter(bytesPerSecond)
		changed := newLimiter(0)
		setRate(changed, bytesPerSecond)
		for name, l := range map[string]*rate.Limiter{"new": started, "changed": changed} {
			if l.Burst() != want || l.TokensAt(time.Now()) > float64(want) {
				t.Errorf("%d B/s, %s limiter: burst %d with %.0f tokens, want %d", bytesPerSecond, name, l.Burst(), l.TokensAt(time.Now()), want)
			}
		}
	}
}

func TestRemove(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(3, 1<<20), durltest.WithRate(256<<10))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{})
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	// An unfinished task, removed without its data: the partial file stays.
	a, _ := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "a")})
	waitWritten(t, a, 1)
	if err := a.Remove(false); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Task(a.ID()); ok || exists(s.taskPath(a.ID())) {
		t.Fatal("removed task is still known")
	}
	if !exists(filepath.Join(dir, "a"+PartialSuffix)) {
		t.Fatal("Remove(false) deleted the partial file")
	}

	// With its data: the partial file goes too.
	b, _ := s.Start(Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "b")})
	waitWritten(t, b, 1)
	if err := b.Remove(true); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "b"+PartialSuffix)) {
		t.Fatal("Remove(true) left the partial file")
	}

	// A completed task: the file stays without deleteData, goes with it.
	fast := durltest.NewServer(durltest.WithContent(3, 1<<20)) // not throttled
	defer fast.Close()
	c, err := get(t, s, fast.FileURL(), filepath.Join(dir, "c"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := get(t, s, fast.FileURL(), filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	c.Remove(false)
	d.Remove(true)
	if !exists(filepath.Join(dir, "c")) || exists(filepath.Join(dir, "d")) {
		t.Fatal("Remove of completed tasks: wrong files left")
	}
	if n := len(s.Tasks()); n != 0 {
		t.Fatalf("%d tasks left after removing all", n)
	}
	s.Close() // delivers the events
	if n := log.count(EventRemoved); n != 4 {
		t.Fatalf("%d removed events, want 4", n)
	}
	for _, e := range log.of(c.ID()) {
		if e.Kind == EventRemoved && e.State != Completed {
			t.Fatalf("removed event of a completed task says %s", e.State)
		}
	}
}

func TestPrune(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(4, 1024))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{KeepCompleted: time.Hour})
	old, _ := get(t, s, srv.FileURL(), filepath.Join(dir, "old"))
	recent, _ := get(t, s, srv.FileURL(), filepath.Join(dir, "new"))
	rec := old.savedRecord()
	rec.Updated = time.Now().Add(-2 * time.Hour)
	old.mu.Lock()
	old.rec = rec
	old.mu.Unlock()
	if ids := s.Prune(); len(ids) != 1 || ids[0] != old.ID() {
		t.Fatalf("Prune removed %v, want [%s]", ids, old.ID())
	}
	if _, ok := s.Task(old.ID()); ok {
		t.Fatal("the old completed task is still listed")
	}
	if _, ok := s.Task(recent.ID()); !ok {
		t.Fatal("the recent completed task was pruned")
	}
	checkFile(t, filepath.Join(dir, "old"), 4, 1024)
	s.Close()
	if n := log.count(EventRemoved); n != 1 {
		t.Fatalf("%d removed events, want 1", n)
	}

	// Open prunes too, and says so.
	time.Sleep(5 * time.Millisecond)
	_, log, _ = testSession(t, srv, Options{StateDir: s.opts.StateDir, KeepCompleted: time.Millisecond})
	log.waitFor(EventRemoved, 1)
	if n := log.count(EventRemoved); n != 1 || log.of(recent.ID())[0].State != Completed {
		t.Fatalf("Open sent %d removed events (%+v), want 1 for the completed task", n, log.of(recent.ID()))
	}
	checkFile(t, filepath.Join(dir, "new"), 4, 1024)
}

// TestAllowedDirs: destinations that escape the allowed folders by "..",
// by a symbolic link (also one under a folder that does not exist yet) or
// by an absolute path are refused before anything is created.
func TestAllowedDirs(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(5, 1024))
	defer srv.Close()
	root := t.TempDir()
	allowed := filepath.Join(root, "downloads")
	outside := filepath.Join(root, "outside")
	os.MkdirAll(allowed, 0o755)
	os.MkdirAll(outside, 0o755)
	for link, target := range map[string]string{"link": outside, "evil": filepath.Join(outside, "f"), "dangling": filepath.Join(outside, "none")} {
		if err := os.Symlink(target, filepath.Join(allowed, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, _, _ := testSession(t, srv, Options{AllowedDirs: []string{allowed}})
	for _, dest := range []string{
		filepath.Join(allowed, "..", "outside", "f"),
		filepath.Join(allowed, "link", "f"),
		filepath.Join(allowed, "link", "new", "deeper", "f"),
		filepath.Join(allowed, "evil"),
		filepath.Join(allowed, "dangling", "f"),
		filepath.Join(outside, "f"),
		"/f",
	} {
		if _, err := s.Start(Request{URL: srv.FileURL(), Dest: dest}); !errors.Is(err, ErrOutsideAllowedDirs) {
			t.Errorf("Start to %s: %v, want ErrOutsideAllowedDirs", dest, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("refused downloads created %d entries outside", len(entries))
	}
	if _, err := get(t, s, srv.FileURL(), filepath.Join(allowed, "new", "f")); err != nil {
		t.Fatalf("a new folder inside the allowed one: %v", err)
	}

	// A symbolic link planted at the partial file's name is not followed.
	if err := os.Symlink(filepath.Join(outside, "planted"), filepath.Join(allowed, "g"+PartialSuffix)); err != nil {
		t.Fatal(err)
	}
	var disk *DiskError
	if _, err := get(t, s, srv.FileURL(), filepath.Join(allowed, "g")); !errors.As(err, &disk) {
		t.Fatalf("download through a planted link: %v, want a DiskError", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("the download wrote through the planted link")
	}
}

// waitUntil waits (at most 10 s) until cond holds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	if !pollUntil(cond) {
		t.Fatal("condition not met in 10 s")
	}
}

// TestFailureKindSurvivesReopen: a failed task loaded by a later session
// still answers errors.Is and errors.As as the error it failed with did.
func TestFailureKindSurvivesReopen(t *testing.T) {
	srv := durltest.NewServer(durltest.WithStatusSequence(404))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	task, err := get(t, s, srv.FileURL(), filepath.Join(dir, "f"))
	if err == nil {
		t.Fatal("the 404 did not fail")
	}
	s.Close()
	s2, err := Open(context.Background(), Options{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, ok := s2.Task(task.ID())
	if !ok || again.State() != Failed {
		t.Fatalf("reopened: found %t, state %v", ok, again.State())
	}
	var se *StatusError
	if err := again.Err(); !errors.As(err, &se) || se.StatusCode != 404 || err.Error() == "" {
		t.Fatalf("reopened error %v, want a 404 StatusError", err)
	}
	for _, err := range []error{ErrChecksumMismatch, ErrRemoteChanged, ErrLocked} {
		if back := restoreError(errorKind(fmt.Errorf("x: %w", err)), "m"); !errors.Is(back, err) {
			t.Errorf("%v restored as %v", err, back)
		}
	}
	var disk *DiskError
	if back := restoreError(errorKind(&DiskError{Op: "write", Err: errors.New("full")}), "m"); !errors.As(back, &disk) {
		t.Errorf("a DiskError restored as %T", back)
	}
}

// TestAddWithoutStarting: Add makes a paused task that sends no request,
// stays paused across a reopen, and downloads when resumed.
func TestAddWithoutStarting(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(6, 4096))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, err := s.Add(Request{URL: srv.FileURL(), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	if task.State() != Paused || len(srv.Requests()) != 0 {
		t.Fatalf("added task is %s after %d requests", task.State(), len(srv.Requests()))
	}
	if again, _ := s.Add(Request{URL: srv.FileURL(), Dest: dest}); again != task {
		t.Fatal("adding the same download again made a new task")
	}
	s.Close()
	s2, err := Open(context.Background(), Options{StateDir: filepath.Join(dir, "state"), Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	reopened, ok := s2.Task(task.ID())
	if !ok || reopened.State() != Paused || len(srv.Requests()) != 0 {
		t.Fatalf("reopened: found %t, state %v, %d requests", ok, reopened.State(), len(srv.Requests()))
	}
	if err := reopened.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, reopened); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 6, 4096)
}
