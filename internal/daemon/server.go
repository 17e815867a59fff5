package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/internal/eventlog"
)

// EventLogName is the event log's file in the state folder.
const EventLogName = "events.db"

// Server is durl serve: a session over one state folder and the API that
// drives it. Its methods are safe for concurrent use. Create it with New;
// Serve (or Close, when Serve is never called) releases it.
type Server struct {
	cfg     Config
	allowed []string // cfg.DownloadDirs with symbolic links resolved
	token   string   // bearer token of the TCP listener; "" without one
	started time.Time

	lock    *os.File // holds the state folder's daemon lock
	log     *eventlog.Log
	session *durl.Session

	handler    http.Handler // the API as served on the Unix socket
	tcpHandler http.Handler // the API as served on TCP: behind the token
	requests   requestCounter
	clients    atomic.Int64   // clients reading the event stream
	streams    sync.WaitGroup // event streams being served
	streamMu   sync.Mutex     // orders streams.Add before the streams.Wait of Close

	limitsMu sync.Mutex // makes each PATCH of the limits a read-modify-write of its own

	stopping  chan struct{} // closed when the server begins to stop
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error

	listenMu sync.Mutex
	unixLn   net.Listener
	tcpLn    net.Listener
}

// New opens the daemon over cfg.StateDir: it takes the state folder's
// lock (one daemon per folder), opens the event log and the session, which
// resumes every task a previous daemon left in flight. Nothing listens
// until Listen or Serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the state folder: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, lock: lock, started: time.Now(), stopping: make(chan struct{})}
	if err := s.open(ctx); err != nil {
		if s.log != nil {
			s.log.Close()
		}
		lock.Close()
		return nil, err
	}
	mux := s.routes()
	s.handler = s.instrument(mux)
	s.tcpHandler = s.instrument(requireToken(s.token, mux))
	return s, nil
}

// open does the work of New once the lock is held: the download folders,
// the token, the event log and the session.
func (s *Server) open(ctx context.Context) error {
	cfg := s.cfg
	var err error
	if s.allowed, err = resolveDirs(cfg.DownloadDirs); err != nil {
		return err
	}
	if cfg.Listen != "" {
		if s.token, err = loadToken(cfg.StateDir, cfg.Token); err != nil {
			return err
		}
	}
	s.log, err = eventlog.Open(filepath.Join(cfg.StateDir, EventLogName), eventlog.Options{
		MaxEvents: cfg.EventMax,
		MaxAge:    cfg.EventMaxAge,
		NoSync:    cfg.NoSync,
	})
	if err != nil {
		return fmt.Errorf("cannot open the event log: %w", err)
	}
	s.session, err = durl.Open(ctx, durl.Options{
		StateDir:         cfg.StateDir,
		Recovery:         durl.ResumeInterrupted,
		OnEvent:          s.onEvent,
		ProgressInterval: cfg.ProgressInterval,
		Client:           cfg.Client,
		MaxActive:        cfg.MaxActive,
		MaxConnsPerHost:  cfg.MaxConnsPerHost,
		RateLimit:        cfg.RateLimit,
		KeepCompleted:    cfg.KeepCompleted,
		AllowedDirs:      s.allowed,
		NoSync:           cfg.NoSync,
	})
	if err != nil {
		return fmt.Errorf("cannot open the session: %w", err)
	}
	return nil
}

// Handler returns the API as served on the Unix socket: without a token.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the daemon without waiting for requests in progress (Serve
// does): it ends the event streams, closes the session (every running task
// is checkpointed and resumes on the next start), flushes and closes the
// event log and releases the state folder. Serve calls it when it returns;
// it is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.beginStop()
		s.streams.Wait()
		errSession := s.session.Close()
		errFlush := s.log.Flush()
		errLog := s.log.Close()
		s.closeListeners()
		s.lock.Close() // releases the lock
		s.closeErr = errors.Join(errSession, errFlush, errLog)
	})
	return s.closeErr
}

// beginStop tells the event streams and new requests that the daemon is
// stopping.
func (s *Server) beginStop() {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	s.stopOnce.Do(func() { close(s.stopping) })
}

// enterStream counts an event stream in s.streams, which Close waits for,
// unless the daemon is stopping.
func (s *Server) enterStream() bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.isStopping() {
		return false
	}
	s.streams.Add(1)
	return true
}

// isStopping reports whether the daemon is stopping.
func (s *Server) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// pruneLoop forgets old completed tasks every cfg.PruneInterval until ctx
// is done; the session logs a "removed" event for each.
func (s *Server) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.session.Prune()
		}
	}
}
