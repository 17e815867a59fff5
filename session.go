package durl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// Session is a set of downloads bound to a state folder. It is safe for
// concurrent use. Several processes may open sessions on the same state
// folder: a task runs in one of them at a time (each running task holds an
// OS lock), and the others see it as running elsewhere.
type Session struct {
	opts     Options
	fs       vfs.FS
	tasksDir string
	key      []byte   // signs resume data
	id       [16]byte // this state folder's identity
	bootID   [16]byte
	client   *http.Client
	events   *dispatcher

	limitsMu sync.Mutex
	limits   Limits
	limiter  *rate.Limiter // all tasks together; rate.Inf: no limit
	active   *gate         // tasks transferring at once, MaxActive

	finishing atomic.Int32 // tasks that left active to finish (see leaveActiveEarly)

	hostMu sync.Mutex
	hosts  map[string]*gate // connections per host, at most MaxConnsPerHost

	syncMu sync.Mutex
	syncs  map[syncKey]*groupSync // group commits, by folder

	mu          sync.Mutex
	tasks       map[string]*Task
	byTarget    map[string]*Task       // the latest task of each URL and destination
	byDest      map[string]*Task       // the latest task of each destination file (of a folder's, once it holds its file)
	scans       map[string]*folderScan // listings of folders, by path (ScanFolder)
	order       []*Task
	interrupted []*Task
	closed      bool
	wg          sync.WaitGroup // running tasks
}

// Open opens (creating if needed) the session in opts.StateDir. It finds
// every task a previous process left in flight and, by opts.Recovery,
// resumes it or reports it as interrupted; tasks running in another live
// process are left to it.
func Open(ctx context.Context, opts Options) (*Session, error) {
	return open(ctx, opts, vfs.OS, progress.BootID())
}

// open is Open with the file system and boot id given, for tests.
func open(ctx context.Context, opts Options, fsys vfs.FS, bootID [16]byte) (*Session, error) {
	if opts.StateDir == "" {
		return nil, errors.New("durl: no state folder given")
	}
	opts.setDefaults()
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	opts.StateDir = dir
	if opts.NoSync {
		fsys = vfs.NoSync(fsys)
	}
	s := &Session{
		opts:     opts,
		fs:       fsys,
		tasksDir: filepath.Join(dir, "tasks"),
		bootID:   bootID,
		tasks:    map[string]*Task{},
		byTarget: map[string]*Task{},
		byDest:   map[string]*Task{},
		client:   httpClient(opts),
	}
	s.limits = Limits{MaxActive: opts.MaxActive, MaxConnsPerHost: opts.MaxConnsPerHost, RateLimit: opts.RateLimit}
	s.limiter = newLimiter(opts.RateLimit)
	s.active = newGate(opts.MaxActive)
	if err := vfs.MkdirAllDurable(fsys, s.tasksDir, 0o700); err != nil {
		return nil, &DiskError{Op: "create state folder", Path: s.tasksDir, Err: err}
	}
	if err := vfs.SweepTemp(fsys, s.tasksDir); err != nil {
		return nil, &DiskError{Op: "clean state folder", Path: s.tasksDir, Err: err}
	}
	if err := s.loadKey(); err != nil {
		return nil, err
	}
	s.events = newDispatcher(opts.OnEvent)
	if err := s.recover(ctx); err != nil {
		s.events.close()
		return nil, err
	}
	return s, nil
}

// loadKey reads the session's identity and signing key, creating them on
// first use.
func (s *Session) loadKey() error {
	path := filepath.Join(s.opts.StateDir, "session.key")
	b, err := vfs.ReadFile(s.fs, path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 48)
		rand.Read(b)
		err = vfs.WriteFileAtomic(s.fs, path, b, 0o600)
	}
	if err != nil {
		return &DiskError{Op: "read session key", Path: path, Err: err}
	}
	if len(b) != 48 {
		return fmt.Errorf("durl: %s is damaged (%d bytes); remove it to start a new session (resume data of the old one will be refused)", path, len(b))
	}
	copy(s.id[:], b[:16])
	s.key = b[16:]
	return nil
}

// recover loads every task record and deals with the ones left in flight.
func (s *Session) recover(ctx context.Context) error {
	names, err := s.fs.ReadDir(s.tasksDir)
	if err != nil {
		return &DiskError{Op: "list tasks", Path: s.tasksDir, Err: err}
	}
	var recs []taskRecord
	for _, name := range names {
		if id, ok := strings.CutSuffix(name, ".json"); ok { // format 1
			if err := s.migrateV1(id); err != nil {
				return fmt.Errorf("durl: cannot convert task %s of an older durl: %w", id, err)
			}
			name = id + taskSuffix
			if slices.Contains(names, name) {
				continue
			}
		}
		id, ok := strings.CutSuffix(name, taskSuffix)
		if !ok {
			continue
		}
		rec, err := s.loadRecord(id)
		if errors.Is(err, errNoRecord) {
			// Created but never written: Start crashed before it returned.
			s.fs.Remove(s.taskPath(id))
			continue
		}
		if err != nil {
			return fmt.Errorf("durl: cannot read the state folder: %w", err)
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	for _, rec := range recs {
		t := newTask(s, rec)
		if rec.State == recCompleted && time.Since(rec.Updated) > s.opts.KeepCompleted {
			if s.removeTaskFiles(rec.ID) == nil {
				t.state = Completed
				s.emit(t, EventRemoved, expiredReason, nil)
			}
			continue
		}
		switch rec.State {
		case recCompleted:
			t.state = Completed
		case recPaused:
			t.state = Paused
		case recFailed:
			t.state = Failed
			t.err = &TaskError{TaskID: rec.ID, URL: rec.Request.URL, Err: restoreError(rec.ErrorKind, rec.Error)}
		case recActive, recFinishing:
			if s.lockedElsewhere(rec.ID) {
				t.state = Running
				t.elsewhere = true
				break
			}
			if s.opts.Recovery == ReportInterrupted {
				t.state = Interrupted
				s.interrupted = append(s.interrupted, t)
			} else {
				t.state = Queued // started below
			}
		}
		s.add(t)
	}
	for _, t := range s.order {
		switch {
		case t.state == Interrupted:
			s.emit(t, EventInterrupted, "found in flight when the session was opened", nil)
		case t.rec.State == recActive || t.rec.State == recFinishing:
			if !t.elsewhere {
				s.emit(t, EventRecovered, "found in flight when the session was opened", nil)
				if err := t.start(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// lockedElsewhere reports whether another process runs the task now.
func (s *Session) lockedElsewhere(id string) bool {
	f, err := s.fs.OpenFile(s.taskPath(id), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(f.Lock(), vfs.ErrLocked)
}

// Close stops every running task with a durable checkpoint and waits for
// them. The tasks that were running stay in flight in the state folder: the
// next Open resumes them (or reports them, with ReportInterrupted).
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	tasks := append([]*Task(nil), s.order...)
	s.mu.Unlock()
	for _, t := range tasks {
		t.stop(ErrSessionClosed)
	}
	s.wg.Wait()
	s.events.close()
	return nil
}

// Start begins a download. If the session holds an unfinished task for the
// same URL and destination, Start continues that task instead, as rerunning
// `durl get` does. It returns an error wrapping ErrLocked if that download
// is running in another process.
//
// A file that an earlier download of the same URL put at the destination,
// untouched since, is not fetched again blindly: durl marked it (an
// extended attribute) when it moved it into place, and the first request
// asks for the file only if it changed. On 304 Not Modified the task
// completes at once, keeping the file, and its EventCompleted has a
// Reason; any other answer replaces the file as usual.
func (s *Session) Start(req Request) (*Task, error) { return s.create(req, true) }

// Add creates a download without starting it: the task is Paused until
// Task.Resume. If the session holds an unfinished task for the same URL and
// destination, Add returns that task as it is.
func (s *Session) Add(req Request) (*Task, error) { return s.create(req, false) }

// create makes a new task for req, or finds the unfinished one of the same
// download, and with start runs it.
func (s *Session) create(req Request, start bool) (*Task, error) {
	req, err := s.checkRequest(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSessionClosed
	}
	existing := s.byTarget[targetKey(req)]
	s.mu.Unlock()
	if existing != nil && !existing.continues(req) {
		existing = nil
	}
	if existing != nil && !start {
		return existing, nil
	}
	if existing != nil {
		switch err := existing.Resume(); {
		case err == nil, errors.Is(err, errAlreadyRunning):
			return existing, nil
		case !errors.Is(err, ErrNotResumable):
			return nil, err
		}
	}
	now := time.Now().UTC()
	rec := taskRecord{
		ID:    newID(),
		State: recPaused,
		Request: storedRequest{URL: req.URL, Dest: req.Dest, DestIsDir: req.DestIsDir,
			Header: req.Header, Checksum: req.Checksum, RateLimit: req.RateLimit, Connections: req.Connections,
			Mirrors: req.Mirrors, Priority: req.Priority},
		Mirrors: make([]mirrorState, len(req.Mirrors)),
		Total:   -1,
		Created: now,
	}
	if !req.DestIsDir {
		rec.Path = req.Dest
	}
	if start {
		rec.State = recActive
	}
	t := newTask(s, rec)
	t.state = Paused
	if start {
		t.state = Queued
	}
	if err := s.claimDest(t); err != nil {
		return nil, err
	}
	var f vfs.File
	if start && s.opts.LazyRecords {
		t.unrecorded = true
	} else if f, err = s.createRecord(&rec); err != nil {
		s.forget(t)
		return nil, err
	}
	switch {
	case f == nil:
	case start && s.active.hasRoom() && f.Lock() == nil:
		// The run starting now uses the file as it is: it need not open
		// it again nor read back what was just written. A queued task
		// holds no file open.
		t.keepTaskFile(f)
	default:
		f.Close()
	}
	s.mu.Lock()
	s.add(t)
	s.mu.Unlock()
	s.emit(t, EventAdded, "", nil)
	if start {
		if err := t.start(); err != nil {
			t.releaseTaskFile()
			return nil, err
		}
	}
	return t, nil
}

// claimDest makes a new task the latest of its destination file, unless
// another task is queued or running to it: two downloads at once to one
// file are refused at once (D6), not left to fail on the partial file's
// lock. A download into a folder learns its file name later.
func (s *Session) claimDest(t *Task) error {
	req := t.rec.Request
	if req.DestIsDir {
		return nil
	}
	return s.holdDest(t, req.Dest)
}

// destInUseLocked returns a *DestinationInUseError if a task other than t
// is queued or running to dest. s.mu is held.
func (s *Session) destInUseLocked(t *Task, dest string) error {
	if other := s.byDest[dest]; other != nil && other != t && other.State().Active() {
		return &DestinationInUseError{Path: dest, TaskID: other.id, URL: other.Request().URL}
	}
	return nil
}

// holdDest records that t now writes the file dest, unless another task
// is queued or running to it. A download into a folder calls it once it
// learns its file's name: a partial file's lock does not stop a task of
// the session that writes a file without a name (openUnnamed).
func (s *Session) holdDest(t *Task, dest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.destInUseLocked(t, dest); err != nil {
		return err
	}
	s.byDest[dest] = t
	return nil
}

// lockError is the error of failing to lock the partial file of dest: a
// *DestinationInUseError when a task of this session holds it.
func (s *Session) lockError(t *Task, err error, dest string) error {
	if errors.Is(err, vfs.ErrLocked) {
		s.mu.Lock()
		inUse := s.destInUseLocked(t, dest)
		s.mu.Unlock()
		if inUse != nil {
			return inUse
		}
	}
	return lockError(err, partialPath(dest))
}

// checkRequest validates req and makes its destination absolute.
func (s *Session) checkRequest(req Request) (Request, error) {
	if req.Dest == "" {
		return req, errors.New("durl: the request has no destination")
	}
	for _, u := range append([]string{req.URL}, req.Mirrors...) {
		if err := checkURL(u); err != nil {
			return req, err
		}
	}
	if req.Checksum != "" {
		if _, err := parseChecksum(req.Checksum); err != nil {
			return req, err
		}
	}
	for name := range req.Header {
		switch http.CanonicalHeaderKey(name) {
		case "Range", "If-Range", "Accept-Encoding":
			return req, fmt.Errorf("durl: the %s header is durl's to set", name)
		}
	}
	dest, err := filepath.Abs(req.Dest)
	if err != nil {
		return req, err
	}
	req.Dest = dest
	// The destination itself, not only its folder: a file there that is
	// a symbolic link must lead inside too.
	if err := s.checkAllowed(dest); err != nil {
		return req, err
	}
	return req, nil
}

// checkAllowed refuses a folder outside Options.AllowedDirs, judged by
// where it really is: symbolic links resolved in the part of the path that
// exists (downloads create the rest as plain folders). A path through a
// dangling link is refused: where it leads is not known yet.
func (s *Session) checkAllowed(dir string) error {
	if len(s.opts.AllowedDirs) == 0 {
		return nil
	}
	real, err := resolvePath(dir)
	if err != nil {
		return fmt.Errorf("%w: %s cannot be resolved (%v)", ErrOutsideAllowedDirs, dir, err)
	}
	for _, allowed := range s.opts.AllowedDirs {
		a, err := resolvePath(allowed)
		if err == nil && (real == a || strings.HasPrefix(real, a+string(filepath.Separator))) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrOutsideAllowedDirs, dir)
}

// resolvePath resolves the symbolic links of the longest part of the
// absolute, clean path p that exists, and appends the rest.
func resolvePath(p string) (string, error) {
	var rest []string
	for dir := filepath.Clean(p); ; dir = filepath.Dir(dir) {
		_, err := os.Lstat(dir)
		if err == nil {
			real, err := filepath.EvalSymlinks(dir) // fails for a dangling link
			if err != nil {
				return "", err
			}
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			return "", err
		}
		rest = append([]string{filepath.Base(dir)}, rest...)
	}
}

// Check validates req as Start would (its URLs, checksum, headers and
// destination, Options.AllowedDirs included) without creating anything.
func (s *Session) Check(req Request) error {
	_, err := s.checkRequest(req)
	return err
}

// Resume continues a download from resume data this session made. If the
// task is still known, it is resumed from its own record; otherwise it is
// recreated from the data.
func (s *Session) Resume(data ResumeData) (*Task, error) {
	p, err := s.openResumeData(data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	t, ok := s.tasks[p.Task.ID]
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrSessionClosed
	}
	if !ok {
		if t, err = s.adoptResumeData(p); err != nil {
			return nil, err
		}
	}
	if err := t.Resume(); err != nil && !errors.Is(err, errAlreadyRunning) {
		return nil, err
	}
	return t, nil
}

// Tasks returns every task the session knows, oldest first.
func (s *Session) Tasks() []*Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Task(nil), s.order...)
}

// Task returns the task with the given ID.
func (s *Session) Task(id string) (*Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	return t, ok
}

// Interrupted returns the tasks Open found in flight and, with
// ReportInterrupted, did not resume. Each has ResumeData.
func (s *Session) Interrupted() []*Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Task(nil), s.interrupted...)
}

// Prune removes the completed tasks whose records are older than
// Options.KeepCompleted (Open does the same), sends EventRemoved for each
// and returns their IDs. Their files stay.
func (s *Session) Prune() []string {
	var removed []string
	for _, t := range s.Tasks() {
		rec := t.savedRecord()
		if t.State() == Completed && time.Since(rec.Updated) > s.opts.KeepCompleted && t.discard(false, false) == nil {
			s.emit(t, EventRemoved, expiredReason, nil)
			removed = append(removed, t.id)
		}
	}
	return removed
}

// expiredReason is the Reason of EventRemoved for a pruned task.
const expiredReason = "completed longer ago than the retention period (KeepCompleted); its file was kept"

// removeTaskFiles removes a task's file from the state folder.
func (s *Session) removeTaskFiles(id string) error {
	if err := s.fs.Remove(s.taskPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &DiskError{Op: "remove", Path: s.taskPath(id), Err: err}
	}
	return nil
}

// add registers a task. s.mu is held (or the session is not shared yet).
func (s *Session) add(t *Task) {
	s.tasks[t.id] = t
	s.order = append(s.order, t)
	s.byTarget[targetKey(t.rec.Request.request())] = t
	if !t.rec.Request.DestIsDir {
		s.byDest[t.rec.Request.Dest] = t
	}
}

// targetKey identifies what a request downloads, for Start to find an
// unfinished task of the same download.
func targetKey(r Request) string {
	return strconv.FormatBool(r.DestIsDir) + "\x00" + r.Dest + "\x00" + r.URL
}

func (s *Session) forget(t *Task) {
	path := t.savedRecord().Path // the file a download into a folder learnt
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, t.id)
	if key := targetKey(t.rec.Request.request()); s.byTarget[key] == t {
		delete(s.byTarget, key)
	}
	for _, dest := range []string{t.rec.Request.Dest, path} {
		if s.byDest[dest] == t {
			delete(s.byDest, dest)
		}
	}
	for i, o := range s.order {
		if o == t {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
}

// reorderQueues makes the session's queues read the priorities of the
// tasks waiting in them again: one changed.
func (s *Session) reorderQueues() {
	s.active.reorder()
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	for _, g := range s.hosts {
		g.reorder()
	}
}

// hostSlot waits for a free connection to host, under the limit
// MaxConnsPerHost across all the session's tasks (the task's priority
// decides who goes first), and returns the function that frees it.
func (s *Session) hostSlot(ctx context.Context, t *Task, host string) (func(), error) {
	s.hostMu.Lock()
	if s.hosts == nil {
		s.hosts = map[string]*gate{}
	}
	g, ok := s.hosts[host]
	if !ok {
		g = newGate(s.Limits().MaxConnsPerHost)
		s.hosts[host] = g
	}
	s.hostMu.Unlock()
	if err := g.acquire(ctx, t.Priority); err != nil {
		return nil, err
	}
	return g.release, nil
}

// Limits are the limits of a session that can change while it runs.
type Limits struct {
	// MaxActive is the number of tasks that run at once; 0 is no limit.
	MaxActive int
	// MaxConnsPerHost caps the connections to one host across all tasks;
	// 0 means the default, 16.
	MaxConnsPerHost int
	// RateLimit caps the bytes per second of all tasks together; 0 is no
	// limit.
	RateLimit int64
}

// Limits returns the session's current limits.
func (s *Session) Limits() Limits {
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	return s.limits
}

// SetLimits changes the session's limits at once: running tasks are not
// stopped when MaxActive shrinks, but no queued task starts until fewer
// run than the new limit; the queue goes by priority.
func (s *Session) SetLimits(l Limits) {
	l.MaxActive, l.RateLimit = max(l.MaxActive, 0), max(l.RateLimit, 0)
	if l.MaxConnsPerHost <= 0 {
		l.MaxConnsPerHost = defaultMaxConnsPerHost
	}
	s.limitsMu.Lock()
	s.limits = l
	s.limitsMu.Unlock()
	s.active.setLimit(l.MaxActive)
	setRate(s.limiter, l.RateLimit)
	s.hostMu.Lock()
	for _, g := range s.hosts {
		g.setLimit(l.MaxConnsPerHost)
	}
	s.hostMu.Unlock()
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newLimiter returns a limiter of bytesPerSecond; 0 is no limit.
func newLimiter(bytesPerSecond int64) *rate.Limiter {
	l := rate.NewLimiter(rate.Inf, 0)
	setRate(l, bytesPerSecond)
	return l
}

// setRate changes a limiter made by newLimiter; 0 is no limit. It lets a
// tenth of a second's worth through at once (at least one read, which
// waits for its bytes in one go): a second's worth would let the first
// second run at twice the limit.
func setRate(l *rate.Limiter, bytesPerSecond int64) {
	if bytesPerSecond <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	l.SetBurst(max(bufferSize, int(bytesPerSecond/10)))
	l.SetLimit(rate.Limit(bytesPerSecond))
}
