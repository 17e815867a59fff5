package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/durl-dev/durl/api"
)

// maxSocketPath is the longest Unix socket path every Unix accepts (macOS
// allows 104 bytes with the terminating zero, Linux 108).
const maxSocketPath = 103

// shutdownTimeout bounds how long Serve waits for requests in progress
// when it stops.
const shutdownTimeout = 10 * time.Second

// SocketPath is the daemon's Unix socket.
func (s *Server) SocketPath() string {
	return filepath.Join(s.cfg.StateDir, api.SocketName)
}

// TCPAddr is the address of the TCP listener, once Listen has opened it;
// nil without one.
func (s *Server) TCPAddr() net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// TokenPath is the file the TCP token was read from or generated into; ""
// when there is no TCP listener or the token was given.
func (s *Server) TokenPath() string {
	if s.cfg.Listen == "" || s.cfg.Token != "" {
		return ""
	}
	return filepath.Join(s.cfg.StateDir, api.TokenName)
}

// Listen opens the Unix socket (mode 0600) and, with Config.Listen, the
// TCP listener. A socket left by a daemon that died is replaced; one that
// answers is another daemon's, and Listen refuses. Serve calls Listen if
// it was not called before.
func (s *Server) Listen() error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.unixLn != nil {
		return nil
	}
	if s.isStopping() {
		return errors.New("the daemon is stopping")
	}
	unixLn, err := listenUnix(s.SocketPath())
	if err != nil {
		return err
	}
	if s.cfg.Listen != "" {
		tcpLn, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("cannot listen on %s: %w; choose another --listen address", s.cfg.Listen, err)
		}
		s.tcpLn = tcpLn
	}
	s.unixLn = unixLn
	return nil
}

// listenUnix listens on the Unix socket path, readable and writable only by
// the user.
func listenUnix(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("the socket path %s is too long for a Unix socket (at most %d bytes); use a shorter --state", path, maxSocketPath)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", path, err)
	}
	// The state folder is 0700 already; the socket is 0600 besides, in case
	// the folder's mode is loosened.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot protect the socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStaleSocket removes the socket at path if nothing answers on it.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot check the socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; move it away", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%w (it answers on %s); stop it first, or give this one another --state", ErrRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot check the socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot remove the stale socket %s: %w", path, err)
	}
	return nil
}

// closeListeners closes the listeners, which removes the socket.
func (s *Server) closeListeners() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.unixLn != nil {
		s.unixLn.Close()
		os.Remove(s.SocketPath())
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
}

// Serve answers the API on the listeners (opening them first if Listen was
// not called) until ctx is done or a listener fails, then stops
// gracefully: it stops accepting, ends the event streams, waits for the
// requests in progress, and closes the Server (see Close). It returns nil
// after a stop asked by ctx.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		s.Close()
		return err
	}
	s.listenMu.Lock()
	unixLn, tcpLn := s.unixLn, s.tcpLn
	s.listenMu.Unlock()

	var servers []*http.Server
	errc := make(chan error, 2)
	start := func(ln net.Listener, h http.Handler) {
		srv := newHTTPServer(h)
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	start(unixLn, s.handler)
	if tcpLn != nil {
		start(tcpLn, s.tcpHandler)
	}

	pruneCtx, stopPrune := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.pruneLoop(pruneCtx) })

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.beginStop()
	stopPrune()
	wg.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx)
	}
	closeErr := s.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("the API stopped serving: %w", serveErr)
	}
	return closeErr
}

// newHTTPServer returns an http.Server for h with timeouts that bound slow
// clients. There is no WriteTimeout, which would cut the event stream; the
// handlers set their own deadlines.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}
