package durl

import (
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durl-dev/durl/internal/vfs"
)

// groupSync shares syncs among concurrent callers (a group commit). Callers
// that come while a sync runs form the next round; when the running sync
// ends, the round's first caller runs one sync for all of them. Many
// downloads finishing into one folder so pay for a few syncs, not one each.
// After a round that several callers shared, the next round's first
// caller first waits for more to join it (gather), so that a stream of
// files finishing makes fewer, larger rounds; a caller that syncs alone
// never waits.
type groupSync struct {
	mu         sync.Mutex
	running    *syncRound // the round whose sync runs, if any
	next       *syncRound // the round callers join, if any
	lastShared bool       // the last round had several callers

	gather func() // waits for callers to join a round; nil: no wait

	perFile atomic.Bool // syncData: the shared sync is unsupported here
}

// gatherWindow is how long a round waits for callers after a shared round.
// With 2,000 files of 64 KiB finishing over 16 connections, 5 ms cut the
// flushes from about 714 (syncfs, fdatasync and folder fsync) to about
// 125, and on ext4 with a journal the time by a fifth (docs/durability.md).
// Each file finishing in such a stream is so reported up to 5 ms later.
const gatherWindow = 5 * time.Millisecond

// syncRound is one sync and the callers it covers.
type syncRound struct {
	members int
	shared  bool // the sync ran for several callers
	err     error
	done    chan struct{}
}

// sync returns once a sync that started after the call has ended, with
// that sync's error. The sync is alone() when the caller is the round's
// only member, else together() (and shared is true).
func (g *groupSync) sync(alone, together func() error) (shared bool, err error) {
	g.mu.Lock()
	r := g.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		g.next = r
	}
	r.members++
	lead, prev := r.members == 1, g.running
	g.mu.Unlock()
	if !lead {
		<-r.done
		return r.shared, r.err
	}
	if prev != nil {
		<-prev.done
	}
	g.mu.Lock()
	gather := g.lastShared && g.gather != nil
	g.mu.Unlock()
	if gather {
		g.gather() // callers meanwhile join r
	}
	g.mu.Lock()
	g.running, g.next = r, nil // later callers form the round after this one
	r.shared = r.members > 1
	g.mu.Unlock()
	if r.shared {
		r.err = together()
	} else {
		r.err = alone()
	}
	g.mu.Lock()
	g.lastShared = r.shared
	if g.running == r {
		g.running = nil
	}
	g.mu.Unlock()
	close(r.done)
	return r.shared, r.err
}

// syncGroup returns the session's group commit of one kind for dir.
func (s *Session) syncGroup(dir string, data bool) *groupSync {
	key := syncKey{dir, data}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	g, ok := s.syncs[key]
	if !ok {
		if s.syncs == nil {
			s.syncs = map[syncKey]*groupSync{}
		}
		g = &groupSync{}
		if !s.opts.NoSync { // without syncs, nothing to gather for
			g.gather = func() { time.Sleep(gatherWindow) }
		}
		s.syncs[key] = g
	}
	return g
}

// syncKey names a group commit: the syncs of a folder's entries, or of the
// data of the files finishing into it.
type syncKey struct {
	dir  string
	data bool
}

// syncDir makes dir's entries durable, sharing the sync with concurrent
// callers.
func (s *Session) syncDir(dir string) error {
	syncDir := func() error { return s.fs.SyncDir(dir) }
	_, err := s.syncGroup(dir, false).sync(syncDir, syncDir)
	return err
}

// syncData makes the data of f, a partial file written in full, durable
// before it is renamed into place (D3). Files finishing together into one
// folder share one sync of their file system, which writes them all in one
// sweep (much faster than a sync each), then each asks whether its own
// data made it. A file finishing alone, or where that sync is unsupported,
// refused (vfs.ErrBusy: much other data waits to be written) or failed
// (perhaps for another file), is synced by itself.
func (s *Session) syncData(f vfs.File) error {
	dir := filepath.Dir(f.Name())
	g := s.syncGroup(dir, true)
	if g.perFile.Load() {
		return f.Sync()
	}
	shared, err := g.sync(f.Sync, func() error { return s.fs.SyncFileSystem(dir) })
	switch {
	case !shared:
		return err
	case errors.Is(err, errors.ErrUnsupported):
		g.perFile.Store(true)
		return f.Sync()
	case err != nil:
		return f.Sync()
	default:
		return f.WriteError()
	}
}
