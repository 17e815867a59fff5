package durl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/durl-dev/durl/internal/vfs"
)

// errAlreadyRunning: Resume of a task that runs in this session.
var errAlreadyRunning = errors.New("durl: task is already running")

// errCancelled stops a run that Cancel ends.
var errCancelled = errors.New("durl: cancelled")

// Task is one download. Its methods are safe for concurrent use.
//
// A task runs on a goroutine of its own. Each run ends in Paused,
// Completed, Failed or Cancelled and closes the channel Done returned during
// that run; Resume starts a new run.
type Task struct {
	s  *Session
	id string

	mu        sync.Mutex
	rec       taskRecord // the persistent record, as last saved (or set)
	state     State
	err       error
	elsewhere bool // running in another process
	done      chan struct{}
	cancel    context.CancelCauseFunc // stops the current run
	written   int64
	rate      float64
	resume    ResumeData // resume data made when the last run ended
	note      string     // the Reason of the event that ends the current run

	saveMu     sync.Mutex    // serialises saves of rec, guards held, slot, seq and unrecorded
	unrecorded bool          // no task file yet: the first save creates it (Options.LazyRecords)
	held       vfs.File      // the task file, while this process holds its lock for a run
	slot       int           // with held: the record slot of the newest record
	seq        uint64        // and its sequence number
	priority   atomic.Int64  // rec.Request.Priority, read by the session's gates
	limiter    *rate.Limiter // rec.Request.RateLimit
}

func newTask(s *Session, rec taskRecord) *Task {
	done := make(chan struct{})
	close(done)
	t := &Task{s: s, id: rec.ID, rec: rec, done: done, written: -1, limiter: newLimiter(rec.Request.RateLimit)}
	t.priority.Store(int64(rec.Request.Priority))
	return t
}

// ID is the task's stable identifier.
func (t *Task) ID() string { return t.id }

// Request is what the task downloads.
func (t *Task) Request() Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec.Request.request()
}

// State is the task's current state.
func (t *Task) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// Progress is a snapshot of the transfer.
func (t *Task) Progress() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progressLocked()
}

func (t *Task) progressLocked() Progress {
	p := Progress{Written: max(t.written, 0), Total: t.rec.Total, Rate: t.rate}
	if t.state == Completed {
		p.Written = max(t.rec.Total, p.Written)
	}
	return p
}

// Path is the destination file, "" until known (a download into a folder
// learns its name from the server's first answer).
func (t *Task) Path() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec.Path
}

// Done is closed when the current run of the task ends.
func (t *Task) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

// Err is nil while the task runs and after it completed; otherwise the
// *TaskError it stopped with.
func (t *Task) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Wait blocks until the current run ends (or ctx is done) and returns Err.
func (t *Task) Wait(ctx context.Context) error {
	select {
	case <-t.Done():
		return t.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause stops the task, makes its progress durable and returns its resume
// data. A paused task is not resumed by the next Open; Resume or
// Session.Resume continues it.
func (t *Task) Pause() (ResumeData, error) {
	t.mu.Lock()
	switch {
	case t.elsewhere:
		t.mu.Unlock()
		return nil, ErrLocked
	case t.state.Final():
		t.mu.Unlock()
		return nil, ErrNotResumable
	case t.state.Active():
		t.mu.Unlock()
		t.stop(ErrPaused)
		return t.ResumeData()
	}
	t.mu.Unlock()
	return t.ResumeData()
}

// Resume continues a paused, interrupted or failed task. It returns an error
// wrapping ErrLocked if another process runs it, and ErrNotResumable if it
// completed or was cancelled.
func (t *Task) Resume() error {
	t.mu.Lock()
	if t.state.Active() && !t.elsewhere {
		t.mu.Unlock()
		return errAlreadyRunning
	}
	t.mu.Unlock()
	if !t.recorded() { // a lazy task with no record yet: nothing to read back
		if t.State().Final() {
			return ErrNotResumable
		}
		return t.start()
	}
	if t.s.lockedElsewhere(t.id) {
		return fmt.Errorf("%w (task %s)", ErrLocked, t.id)
	}
	// Another process may have moved the task on since this session read
	// its record.
	rec, err := t.s.loadRecord(t.id)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotResumable
	}
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.rec = rec
	t.elsewhere = false
	t.mu.Unlock()
	if rec.State == recCompleted {
		t.setState(Completed)
		return ErrNotResumable
	}
	return t.start()
}

// Cancel stops the task and removes its partial data and its record.
func (t *Task) Cancel() error {
	if err := t.discard(true, false); err != nil {
		return err
	}
	t.setState(Cancelled)
	t.s.emit(t, EventCancelled, "", nil)
	return nil
}

// Remove stops the task if it runs and removes its record: the session no
// longer lists it. With deleteData it also removes the task's data: the
// partial file of an unfinished download, the downloaded file of a
// completed one. Without, the data stays where it is. The task keeps the
// state it had (a running task is stopped: Cancelled), and the session
// sends EventRemoved.
func (t *Task) Remove(deleteData bool) error {
	if err := t.discard(deleteData, deleteData); err != nil {
		return err
	}
	reason := "removed; its data was kept"
	if deleteData {
		reason = "removed with its data"
	}
	t.s.emit(t, EventRemoved, reason, nil)
	return nil
}

// discard stops the task, removes the data asked for and its record, and
// forgets it.
func (t *Task) discard(deletePartial, deleteFile bool) error {
	t.mu.Lock()
	elsewhere := t.elsewhere
	t.mu.Unlock()
	if elsewhere {
		return fmt.Errorf("%w (task %s)", ErrLocked, t.id)
	}
	t.stop(errCancelled)
	rec := t.savedRecord()
	var data string
	switch {
	case rec.Path == "":
	case rec.State != recCompleted && deletePartial:
		data = partialPath(rec.Path)
	case rec.State == recCompleted && deleteFile:
		data = rec.Path
	}
	if data != "" {
		if err := t.s.fs.Remove(data); err != nil && !os.IsNotExist(err) {
			return &DiskError{Op: "remove", Path: data, Err: err}
		}
	}
	if err := t.s.removeTaskFiles(t.id); err != nil {
		return err
	}
	t.s.forget(t)
	return nil
}

// ResumeData returns resume data for the task's current state: after a run
// ended, what that run left; for a task found interrupted, what its records
// say.
func (t *Task) ResumeData() (ResumeData, error) {
	t.mu.Lock()
	rd, state := t.resume, t.state
	t.mu.Unlock()
	if state.Final() {
		return nil, ErrNotResumable
	}
	if rd != nil {
		return rd, nil
	}
	return t.s.resumeDataFor(t)
}

// continues reports whether Start(req) should continue this task: same URL
// and destination, not finished.
func (t *Task) continues(req Request) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec.Request.sameTarget(req) && !t.state.Final()
}

// start begins a run on a new goroutine.
func (t *Task) start() error {
	s := t.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	ctx, cancel := context.WithCancelCause(context.Background())
	t.mu.Lock()
	t.cancel = cancel
	t.done = make(chan struct{})
	t.err = nil
	t.resume = nil
	t.mu.Unlock()
	t.setState(Queued)
	go func() {
		defer s.wg.Done()
		err := t.run(ctx)
		t.finish(ctx, err)
	}()
	return nil
}

// stop ends the current run, if any, with cause, and waits for it.
func (t *Task) stop(cause error) {
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
	<-done
}

// outcome says how a run that returned err ended: the error (the run's
// cause when it was stopped), the task's state and the event to send.
func outcome(ctx context.Context, err error) (error, State, EventKind) {
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	switch {
	case err == nil:
		return nil, Completed, EventCompleted
	case errors.Is(err, ErrPaused), errors.Is(err, ErrSessionClosed):
		return err, Paused, EventPaused
	case errors.Is(err, errCancelled):
		return err, Cancelled, EventCancelled
	}
	return err, Failed, EventFailed
}

// saveOutcome keeps the record's intent when a run stops: an explicit pause
// or a failure is not resumed by the next Open; a closed session's tasks
// are. The run calls it while it still holds the task's lock.
func (t *Task) saveOutcome(ctx context.Context, err error) {
	err, state, _ := outcome(ctx, err)
	t.mu.Lock()
	active := t.rec.State == recActive
	t.mu.Unlock()
	if !active || !(state == Failed || errors.Is(err, ErrPaused)) {
		return
	}
	t.saveRecord(func() taskRecord {
		rec := t.savedRecord()
		if state == Failed {
			rec.State, rec.Error, rec.ErrorKind = recFailed, err.Error(), errorKind(err)
		} else {
			rec.State = recPaused
		}
		return rec
	}, true)
}

// saveRecord writes the record that next returns, with the task's current
// priority and rate limit, and makes it the task's saved record. Saves of
// a task are serialised, so next sees the record of the previous save.
func (t *Task) saveRecord(next func() taskRecord, durable bool) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	rec := next()
	rec.Request.Priority = t.Priority()
	rec.Request.RateLimit = t.RateLimit()
	switch {
	case t.unrecorded:
		f, err := t.s.createRecord(&rec)
		if err != nil {
			return err
		}
		t.unrecorded = false
		if !t.State().Active() {
			f.Close()
			break
		}
		// A run holds the file it created (a new file: only a failing
		// disk refuses the lock).
		if err := f.Lock(); err != nil {
			f.Close()
			return lockError(err, t.s.taskPath(t.id))
		}
		t.held, t.slot, t.seq = f, 0, 1
	case t.held == nil:
		if err := t.s.writeRecord(&rec, durable); err != nil {
			return err
		}
	default:
		if err := writeRecordSlot(t.held, &rec, 1-t.slot, t.seq+1, durable); err != nil {
			return &DiskError{Op: "save task record", Path: t.s.taskPath(t.id), Err: err}
		}
		t.slot, t.seq = 1-t.slot, t.seq+1
	}
	t.mu.Lock()
	t.rec = rec
	t.mu.Unlock()
	return nil
}

// keepTaskFile makes f, the task file that Start just created and locked,
// the file of the run it begins, with the record it wrote (slot 0,
// sequence 1).
func (t *Task) keepTaskFile(f vfs.File) {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.held, t.slot, t.seq = f, 0, 1
}

// lockTaskFile makes the run hold the task file, locked (D6): the one
// Start kept, else the file opened and locked now; nothing if the task has
// none yet. Until releaseTaskFile, saves write through it: no other
// process writes the record meanwhile, so the newest slot is known without
// reading it back.
func (t *Task) lockTaskFile() error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	if t.held != nil || t.unrecorded {
		return nil
	}
	path := t.s.taskPath(t.id)
	f, err := t.s.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return &DiskError{Op: "open task file", Path: path, Err: err}
	}
	if err := f.Lock(); err != nil {
		f.Close()
		return lockError(err, path)
	}
	_, t.slot, t.seq = readRecordSlots(f)
	t.held = f
	return nil
}

// taskFile returns the task file the run holds, nil if it has none yet.
func (t *Task) taskFile() vfs.File {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	return t.held
}

// recorded reports whether the task has a record in the state folder.
func (t *Task) recorded() bool {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	return !t.unrecorded
}

// releaseTaskFile closes the task file of a run, which releases its lock.
func (t *Task) releaseTaskFile() {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	if t.held != nil {
		t.held.Close()
		t.held = nil
	}
}

// setRecord makes rec the task's record in memory only, until a save
// writes it.
func (t *Task) setRecord(rec taskRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rec = rec
}

// savedRecord returns the record as last saved.
func (t *Task) savedRecord() taskRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec
}

// Created is when the task was created.
func (t *Task) Created() time.Time { return t.savedRecord().Created }

// Priority is the task's priority (Request.Priority, as last set).
func (t *Task) Priority() int { return int(t.priority.Load()) }

// RateLimit is the task's limit in bytes per second, 0 for none.
func (t *Task) RateLimit() int64 {
	if l := t.limiter.Limit(); l != rate.Inf {
		return int64(l)
	}
	return 0
}

// SetPriority changes the task's priority, at once for the queue, and
// saves it in the task's record.
func (t *Task) SetPriority(p int) error {
	return t.changeSetting(func() {
		t.priority.Store(int64(p))
		t.s.reorderQueues()
	})
}

// SetRateLimit changes the task's limit in bytes per second (0 removes
// it), at once for a running download, and saves it in the task's record.
func (t *Task) SetRateLimit(bytesPerSecond int64) error {
	return t.changeSetting(func() { setRate(t.limiter, max(bytesPerSecond, 0)) })
}

// changeSetting applies change and saves the task's record with it.
func (t *Task) changeSetting(change func()) error {
	t.mu.Lock()
	elsewhere, final := t.elsewhere, t.state.Final()
	t.mu.Unlock()
	switch {
	case elsewhere:
		return fmt.Errorf("%w (task %s)", ErrLocked, t.id)
	case final:
		return ErrNotResumable
	}
	change()
	return t.saveRecord(t.savedRecord, true)
}

// finish records how a run ended in memory and wakes its waiters.
func (t *Task) finish(ctx context.Context, err error) {
	err, state, kind := outcome(ctx, err)
	var taskErr *TaskError
	if err != nil {
		taskErr = &TaskError{TaskID: t.id, URL: t.Request().URL, Err: err}
		if state != Cancelled && !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrLocked) {
			if rd, rerr := t.s.resumeDataFor(t); rerr == nil {
				taskErr.ResumeData = rd
			}
		}
	}
	t.mu.Lock()
	t.err = nil
	t.resume = nil
	if taskErr != nil {
		t.err = taskErr
		t.resume = taskErr.ResumeData
	}
	t.cancel = nil
	t.rate = 0
	note := t.note
	t.note = ""
	t.mu.Unlock()
	t.setState(state)
	if state != Cancelled {
		t.s.emit(t, kind, note, err)
	}
	t.mu.Lock()
	close(t.done)
	t.mu.Unlock()
}

// keptNote is the Reason of the EventCompleted of a download whose file in
// place was kept: the server said it had not changed.
const keptNote = "unchanged on the server since it was downloaded"

// setNote sets the Reason of the event that ends the current run.
func (t *Task) setNote(note string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.note = note
}

// setState is the one place a task's state changes.
func (t *Task) setState(to State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state = to
}

// noteProgress records the bytes written and sends a progress event if the
// interval has passed since the last one, updating the rate.
func (t *Task) noteProgress(written int64, now time.Time, last *progressMark) {
	t.mu.Lock()
	t.written = max(t.written, written)
	dt := now.Sub(last.at)
	due := dt >= t.s.opts.ProgressInterval
	switch {
	case last.at.IsZero(): // the run's first progress: no rate yet
		*last = progressMark{at: now, written: written}
	case due:
		inst := float64(written-last.written) / dt.Seconds()
		if t.rate == 0 {
			t.rate = inst
		} else {
			t.rate = 0.7*t.rate + 0.3*inst
		}
		*last = progressMark{at: now, written: written}
	}
	t.mu.Unlock()
	if due {
		t.s.emit(t, EventProgress, "", nil)
	}
}

type progressMark struct {
	at      time.Time
	written int64
}
