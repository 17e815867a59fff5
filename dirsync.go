package durl

import (
	"sync"

	"github.com/durl-dev/durl/internal/vfs"
)

// dirSyncer shares the syncs of one folder among concurrent callers (a
// group commit): a caller returns once a sync that started after its call
// has finished, so many downloads finishing into one folder pay for a few
// syncs, not one each.
type dirSyncer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	wanted  uint64 // calls so far
	done    uint64 // calls covered by a finished sync
	syncing bool
	err     error
}

func (g *dirSyncer) sync(fsys vfs.FS, dir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.wanted++
	mine := g.wanted
	for g.done < mine {
		if g.syncing {
			g.cond.Wait()
			continue
		}
		g.syncing = true
		upTo := g.wanted
		g.mu.Unlock()
		err := fsys.SyncDir(dir)
		g.mu.Lock()
		g.syncing = false
		g.done, g.err = upTo, err
		g.cond.Broadcast()
	}
	return g.err
}

// syncDir makes dir's entries durable, sharing the sync with concurrent
// callers.
func (s *Session) syncDir(dir string) error {
	s.dirMu.Lock()
	g, ok := s.dirSyncers[dir]
	if !ok {
		if s.dirSyncers == nil {
			s.dirSyncers = map[string]*dirSyncer{}
		}
		g = &dirSyncer{}
		s.dirSyncers[dir] = g
	}
	s.dirMu.Unlock()
	return g.sync(s.fs, dir)
}
