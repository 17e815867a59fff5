package eventlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
)

// testTimeout bounds every wait of a test.
const testTimeout = 20 * time.Second

func openT(t testing.TB, path string, opts Options) *Log {
	t.Helper()
	opts.NoSync = true
	l, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "events.db")
}

func flushT(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func nextT(t testing.TB, s *Subscription) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

// expectIDs reads events from s and checks they are from..to in order, each
// as appendN made it.
func expectIDs(t testing.TB, s *Subscription, from, to uint64) {
	t.Helper()
	for id := from; id <= to; id++ {
		e := nextT(t, s)
		if e.ID != id || e.Kind != api.EventProgress || e.Written != int64(id) {
			t.Fatalf("got event %+v, want progress event %d", e, id)
		}
	}
}

// appendN appends n progress events whose Written is the ID they will get,
// which holds when the log has no other appender.
func appendN(l *Log, n int) {
	first := l.assignedID() + 1
	for i := range n {
		l.Append(api.Event{Kind: api.EventProgress, TaskID: "t", Written: int64(first) + int64(i)})
	}
}

func (l *Log) assignedID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.assigned
}

// polled calls Next with a done context: it returns a ready event, or the
// context's error when none is ready.
func polled(s *Subscription) (api.Event, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Next(ctx)
}

func TestIDsContinueAcrossReopen(t *testing.T) {
	path := tempPath(t)
	l, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.LastID() != 0 || l.FirstID() != 0 {
		t.Fatalf("new log: LastID %d FirstID %d, want 0 0", l.LastID(), l.FirstID())
	}
	appendN(l, 5)
	if err := l.Close(); err != nil { // Close commits the queue
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, want 0600", fi.Mode().Perm())
	}

	l = openT(t, path, Options{})
	if l.LastID() != 5 || l.FirstID() != 1 {
		t.Fatalf("reopened: LastID %d FirstID %d, want 5 1", l.LastID(), l.FirstID())
	}
	appendN(l, 1)
	flushT(t, l)
	if l.LastID() != 6 {
		t.Fatalf("LastID %d, want 6", l.LastID())
	}
	expectIDs(t, l.Subscribe(3), 4, 6)
}

func TestIDsContinueWhenAllTrimmed(t *testing.T) {
	path := tempPath(t)
	l, err := Open(path, Options{NoSync: true, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for range 3 {
		l.Append(api.Event{Kind: api.EventProgress, Time: old})
	}
	flushT(t, l)
	if l.LastID() != 3 || l.FirstID() != 0 {
		t.Fatalf("LastID %d FirstID %d, want 3 0 (all trimmed by age)", l.LastID(), l.FirstID())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, path, Options{MaxAge: time.Hour})
	if l.LastID() != 3 || l.FirstID() != 0 {
		t.Fatalf("reopened: LastID %d FirstID %d, want 3 0", l.LastID(), l.FirstID())
	}
	s := l.Subscribe(1) // events 2 and 3 are gone
	appendN(l, 1)
	flushT(t, l)
	if e := nextT(t, s); e.Kind != api.EventGap || e.FirstKept != 4 || e.ID != 3 {
		t.Fatalf("got %+v, want gap with FirstKept 4", e)
	}
	expectIDs(t, s, 4, 4)
}

func TestTrimByAgeKeepsNewer(t *testing.T) {
	l := openT(t, tempPath(t), Options{MaxAge: time.Hour})
	old := time.Now().Add(-2 * time.Hour)
	l.Append(api.Event{Kind: api.EventAdded, Time: old})
	l.Append(api.Event{Kind: api.EventAdded, Time: old})
	appendN(l, 3)
	flushT(t, l)
	if l.FirstID() != 3 || l.LastID() != 5 {
		t.Fatalf("FirstID %d LastID %d, want 3 5", l.FirstID(), l.LastID())
	}
}

func TestReplayThenLive(t *testing.T) {
	l := openT(t, tempPath(t), Options{CommitInterval: time.Millisecond})
	appendN(l, 10)
	flushT(t, l)
	s := l.Subscribe(4)
	defer s.Close()
	expectIDs(t, s, 5, 10)
	appendN(l, 5) // committed by the committer on its own, no Flush
	expectIDs(t, s, 11, 15)
}

func TestNewClientGetsLiveOnly(t *testing.T) {
	l := openT(t, tempPath(t), Options{})
	appendN(l, 3)
	flushT(t, l)
	s := l.Subscribe(0)
	appendN(l, 1)
	flushT(t, l)
	expectIDs(t, s, 4, 4)
}

func TestGapWhenTrimmed(t *testing.T) {
	l := openT(t, tempPath(t), Options{MaxEvents: 10})
	appendN(l, 50)
	flushT(t, l)
	if l.FirstID() != 41 || l.LastID() != 50 {
		t.Fatalf("FirstID %d LastID %d, want 41 50", l.FirstID(), l.LastID())
	}
	for _, after := range []uint64{5, 39} {
		s := l.Subscribe(after)
		e := nextT(t, s)
		if e.Kind != api.EventGap || e.FirstKept != 41 || e.ID != 40 || e.Time.IsZero() {
			t.Fatalf("after %d: first event %+v, want gap with FirstKept 41, ID 40", after, e)
		}
		expectIDs(t, s, 41, 50)
	}
	// Nothing was missed: no gap.
	expectIDs(t, l.Subscribe(40), 41, 50)
}

func TestGapWhenAfterBeyondLast(t *testing.T) {
	l := openT(t, tempPath(t), Options{})
	appendN(l, 5)
	flushT(t, l)
	s := l.Subscribe(100)
	if e := nextT(t, s); e.Kind != api.EventGap || e.FirstKept != 1 || e.ID != 0 {
		t.Fatalf("got %+v, want gap with FirstKept 1", e)
	}
	expectIDs(t, s, 1, 5)
}

func TestSlowSubscriberReadsFromDisk(t *testing.T) {
	l := openT(t, tempPath(t), Options{tailSize: 16})
	s := l.Subscribe(0)
	for range 10 {
		appendN(l, 100)
		flushT(t, l)
	}
	expectIDs(t, s, 1, 1000)
	l.mu.Lock()
	reads := l.diskReads
	l.mu.Unlock()
	if reads < 1000/pageSize {
		t.Fatalf("%d pages read from disk, want at least %d", reads, 1000/pageSize)
	}
	// Caught up: the next events come live.
	appendN(l, 3)
	expectIDs(t, s, 1001, 1003)
}

func TestSubscriberTrimmedWhileBehind(t *testing.T) {
	l := openT(t, tempPath(t), Options{MaxEvents: 100, tailSize: 16})
	s := l.Subscribe(0)
	appendN(l, 1000)
	flushT(t, l)
	if e := nextT(t, s); e.Kind != api.EventGap || e.FirstKept != 901 {
		t.Fatalf("got %+v, want gap with FirstKept 901", e)
	}
	expectIDs(t, s, 901, 1000)
}

func TestVisibleOnlyAfterCommit(t *testing.T) {
	// With an hour-long commit interval only Flush commits.
	l := openT(t, tempPath(t), Options{CommitInterval: time.Hour})
	s := l.Subscribe(0)
	appendN(l, 2)
	if l.LastID() != 0 {
		t.Fatalf("LastID %d before commit, want 0", l.LastID())
	}
	if e, err := polled(s); !errors.Is(err, context.Canceled) {
		t.Fatalf("before commit: got %+v, %v; want no event", e, err)
	}
	flushT(t, l)
	if l.LastID() != 2 {
		t.Fatalf("LastID %d after Flush, want 2", l.LastID())
	}
	for id := uint64(1); id <= 2; id++ {
		e, err := polled(s)
		if err != nil || e.ID != id {
			t.Fatalf("after Flush: got %+v, %v; want event %d", e, err, id)
		}
	}
}

func TestCloseWakesNext(t *testing.T) {
	l, err := Open(tempPath(t), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := l.Subscribe(0)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_, err := s.Next(ctx)
		errc <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next: %v, want ErrClosed", err)
	}
	select {
	case <-l.done:
	default:
		t.Fatal("committer still running after Close")
	}
	if _, err := polled(l.Subscribe(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on a closed log: %v, want ErrClosed", err)
	}
	l.Append(api.Event{Kind: api.EventAdded}) // dropped
	if err := l.Flush(); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
	if l.LastID() != 0 {
		t.Fatalf("LastID %d after Append on a closed log, want 0", l.LastID())
	}
}

func TestSubscriptionCloseAndContext(t *testing.T) {
	l := openT(t, tempPath(t), Options{})
	s := l.Subscribe(0)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next: %v, want ErrClosed", err)
	}

	s = l.Subscribe(0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := s.Next(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next: %v, want context.Canceled", err)
	}
}

func TestConcurrentAppendersAndSubscribers(t *testing.T) {
	const appenders, each, subscribers = 8, 300, 4
	const total = appenders * each
	l := openT(t, tempPath(t), Options{CommitInterval: time.Millisecond, tailSize: 64})
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		subs[i] = l.Subscribe(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, appenders+subscribers+1)
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				l.Append(api.Event{Kind: api.EventProgress, TaskID: strconv.Itoa(a), Written: int64(i)})
				if i%50 == 0 {
					if err := l.Flush(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	read := func(s *Subscription, from uint64) error {
		defer s.Close()
		seen := make(map[string]int64)
		for id := from; id <= total; id++ {
			e, err := s.Next(ctx)
			if err != nil {
				return fmt.Errorf("waiting for event %d: %w", id, err)
			}
			if e.ID != id {
				return fmt.Errorf("got event %d, want %d", e.ID, id)
			}
			if prev, ok := seen[e.TaskID]; ok && e.Written != prev+1 {
				return fmt.Errorf("appender %s: event %d after %d", e.TaskID, e.Written, prev)
			}
			seen[e.TaskID] = e.Written
		}
		return nil
	}
	for _, s := range subs {
		wg.Go(func() {
			if err := read(s, 1); err != nil {
				errs <- err
			}
		})
	}
	// A client reconnecting mid-way with a Last-Event-ID.
	wg.Go(func() {
		for l.LastID() < total/2 {
			if err := l.Flush(); err != nil {
				errs <- err
				return
			}
			select {
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			case <-time.After(time.Millisecond):
			}
		}
		after := l.LastID() / 2
		if err := read(l.Subscribe(after), after+1); err != nil {
			errs <- fmt.Errorf("late subscriber: %w", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	flushT(t, l)
	if l.LastID() != total {
		t.Fatalf("LastID %d, want %d", l.LastID(), total)
	}
}

func TestTrimBacklogInBoundedSteps(t *testing.T) {
	path := tempPath(t)
	l, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*maxTrim + 500
	appendN(l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openT(t, path, Options{MaxEvents: 10})
	appendN(l, 1) // appends go on while the backlog is trimmed
	flushT(t, l)
	if l.LastID() != n+1 {
		t.Fatalf("LastID %d, want %d", l.LastID(), n+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for l.FirstID() != n+1-9 {
		select {
		case <-ctx.Done():
			t.Fatalf("FirstID %d, want %d", l.FirstID(), n+1-9)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestCrashChild is the child process of TestCrashRecovery: it appends,
// flushes, tells the parent, and goes on appending until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("EVENTLOG_CRASH_CHILD")
	if path == "" {
		t.Skip("only run by TestCrashRecovery")
	}
	l, err := Open(path, Options{CommitInterval: time.Millisecond})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	appendN(l, 100)
	if err := l.Flush(); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("flushed", l.LastID())
	deadline := time.Now().Add(testTimeout) // the parent kills it long before
	for time.Now().Before(deadline) {
		appendN(l, 10)
		if err := l.Flush(); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("flushed", l.LastID())
	}
	os.Exit(3) // never Close
}

func TestCrashRecovery(t *testing.T) {
	path := tempPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EVENTLOG_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it (kill -9) after some flushes, while it appends and commits.
	sc := bufio.NewScanner(out)
	var flushes int
	var flushed uint64
	for flushes < 20 && sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "flushed %d", &flushed); err != nil {
			t.Logf("child: %s", sc.Text())
			continue
		}
		flushes++
	}
	cmd.Process.Kill()
	cmd.Wait()
	if flushes < 20 {
		t.Fatalf("child flushed %d times, want 20", flushes)
	}

	l := openT(t, path, Options{})
	last := l.LastID()
	t.Logf("after the crash: LastID %d, %d flushed", last, flushed)
	if last < flushed || l.FirstID() != 1 {
		t.Fatalf("after the crash: FirstID %d LastID %d, want 1 and at least %d", l.FirstID(), last, flushed)
	}
	s := l.Subscribe(last + 1) // unknown ID: gap, then everything kept
	if e := nextT(t, s); e.Kind != api.EventGap || e.FirstKept != 1 {
		t.Fatalf("got %+v, want gap with FirstKept 1", e)
	}
	expectIDs(t, s, 1, last)
	appendN(l, 1)
	flushT(t, l)
	expectIDs(t, s, last+1, last+1)
}

func BenchmarkAppend(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoSync=%v", noSync), func(b *testing.B) {
			l, err := Open(tempPath(b), Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			e := api.Event{Kind: api.EventProgress, TaskID: "0123456789abcdef", Written: 1 << 20, Total: 1 << 30, Rate: 1e6}
			b.ResetTimer()
			for range b.N {
				l.Append(e)
			}
			if err := l.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAppendFlush measures one durable commit per event: the latency
// of Append followed by Flush.
func BenchmarkAppendFlush(b *testing.B) {
	l, err := Open(tempPath(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := api.Event{Kind: api.EventProgress, TaskID: "0123456789abcdef", Written: 1 << 20}
	b.ResetTimer()
	for range b.N {
		l.Append(e)
		if err := l.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestCommitFailure(t *testing.T) {
	l, err := Open(tempPath(t), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 1)
	flushT(t, l)
	l.db.Close() // every later commit fails
	appendN(l, 1)
	if err := l.Flush(); err == nil {
		t.Fatal("Flush succeeded with the file closed")
	}
	if l.LastID() != 1 {
		t.Fatalf("LastID %d, want 1", l.LastID())
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close succeeded with an event it could not commit")
	} else {
		t.Logf("Close: %v", err)
	}
}
