// Package nginxtest starts a real nginx on 127.0.0.1 for tests and benchmarks.
//
// The server serves one folder (Options.Root) under four locations:
//
//	/plain/              the files as they are (Range honoured, 206)
//	/throttled/          the same, limited per connection to Options.LimitRate
//	/norange/            Range ignored (max_ranges 0): always 200 with the whole file
//	/throttled-norange/  Range ignored and limited per connection, so that a
//	                     download from a server without ranges can be killed mid-way
//
// nginx's limit_rate lets a connection send rate*(seconds since the
// request began + 1) bytes, so the first second's worth goes out at once:
// throttle files several times larger than LimitRate.
//
// Everything nginx writes (config, pid file, error log, access log, temp
// folders) lives in a temp folder of its own, removed by Stop. nginx runs in
// the foreground (daemon off) as a child of the caller and is stopped by its
// PID.
//
// Access log and pending lines: nginx writes a request's log line when the
// request ends, unbuffered (no buffer= or flush= on access_log), including
// requests whose client died mid-transfer (status 200/206 with a partial
// $body_bytes_sent). nginx only notices a dead client on its next write,
// which for a throttled location can be a moment later. AccessLog therefore
// first waits (bounded, see WaitIdle) until nginx reports no connection but
// the one asking, via a stub_status location that only this package uses and
// that is not logged.
package nginxtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durl-dev/durl/internal/spans"
)

// Options configures Start.
type Options struct {
	Root      string // folder of files to serve (required)
	LimitRate string // nginx limit_rate per connection for the throttled locations; default "20m"
}

// Server is a running nginx.
type Server struct {
	URL string // http://127.0.0.1:PORT

	dir     string // nginx's own temp folder
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been waited for
	waitErr error
	stopMu  sync.Mutex
	stopped bool
	lastLog []byte // the access log as it was when Stop removed the folder
}

// LogEntry is one parsed access log line.
type LogEntry struct {
	Method        string
	URI           string
	Range         string // the request's Range header, "" if none
	Status        int
	BytesSent     int64 // headers and body
	BodyBytesSent int64
	RequestTime   float64   // seconds
	Connection    int64     // nginx connection serial number
	End           time.Time // when nginx logged it, to the millisecond
}

// Start returns when the request began, to a few milliseconds: its End
// less its RequestTime.
func (e LogEntry) Start() time.Time {
	return e.End.Add(-time.Duration(e.RequestTime * float64(time.Second)))
}

// Body returns the bytes of the file the response's body carried: from N
// of a 206's "bytes=N-…" (0 for any other status), BodyBytesSent long.
func (e LogEntry) Body() spans.Span {
	var from int64
	if e.Status == http.StatusPartialContent {
		from = spans.Asked(e.Range, 0).From
	}
	return spans.Span{From: from, To: from + e.BodyBytesSent}
}

// Binary returns the path of the nginx executable.
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("nginx not found (PATH, /usr/sbin/nginx); install the Debian package nginx")
}

// Ensure installs nginx with apt-get if it is missing.
func Ensure() error {
	if _, err := Binary(); err == nil {
		return nil
	}
	apt := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, tail(string(out), 500))
		}
		return nil
	}
	if err := apt("install", "-y", "nginx"); err != nil {
		if err2 := apt("update"); err2 != nil {
			return fmt.Errorf("%v; then %v", err, err2)
		}
		if err := apt("install", "-y", "nginx"); err != nil {
			return err
		}
	}
	_, err := Binary()
	return err
}

const logFormat = `'$request_method $uri "$http_range" $status $bytes_sent $body_bytes_sent $request_time $connection $msec'`

const statusPath = "/__nginxtest_status"

func config(dir, root, rate string, port int) string {
	root = strings.TrimRight(root, "/") + "/"
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody and could not read a
		// 0700 temp folder of root's.
		user = "user root;\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `%sdaemon off;
master_process on;
worker_processes 1;
pid %s;
error_log %s warn;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    types { }
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 65s;
    server_tokens off;
    log_format bench %s;
    access_log %s bench;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    server {
        listen 127.0.0.1:%d;
        server_name localhost;
        location /plain/ { alias %s; }
        location /throttled/ { alias %s; limit_rate %s; }
        location /norange/ { alias %s; max_ranges 0; }
        location /throttled-norange/ { alias %s; max_ranges 0; limit_rate %s; }
        location = %s { stub_status; access_log off; }
    }
}
`, user, q(filepath.Join(dir, "nginx.pid")), q(filepath.Join(dir, "error.log")),
		logFormat, q(filepath.Join(dir, "access.log")),
		q(filepath.Join(dir, "tmp", "body")), q(filepath.Join(dir, "tmp", "proxy")),
		q(filepath.Join(dir, "tmp", "fastcgi")), q(filepath.Join(dir, "tmp", "uwsgi")),
		q(filepath.Join(dir, "tmp", "scgi")),
		port, q(root), q(root), rate, q(root), q(root), rate, statusPath)
	return b.String()
}

// q quotes a path for the nginx config.
func q(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start writes a config into a new temp folder and starts nginx on a free
// port of 127.0.0.1. It returns once the port answers.
func Start(opts Options) (*Server, error) {
	if opts.Root == "" {
		return nil, errors.New("nginxtest: Options.Root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("nginxtest: root %q is not a folder", opts.Root)
	}
	rate := opts.LimitRate
	if rate == "" {
		rate = "20m"
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken in between
		s, err := start(bin, root, rate)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin, root, rate string) (*Server, error) {
	dir, err := os.MkdirTemp("", "nginxtest-")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, "tmp", d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(config(dir, root, rate, port)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", errLog)
	cmd.Dir = dir
	cmd.Stdin = nil
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	// Own process group (a terminal's Ctrl-C goes to the caller, which
	// stops nginx itself); killed if the caller dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		stderr.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nginxtest: start nginx: %w", err)
	}
	stderr.Close()
	s := &Server{
		URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
		dir:     dir,
		logPath: filepath.Join(dir, "access.log"),
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			msg := readTail(errLog) + readTail(filepath.Join(dir, "stderr.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("nginxtest: nginx exited at start (%v): %s", s.waitErr, msg)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("nginxtest: nginx did not answer on %s within 10s: %s", addr, readTail(errLog))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID returns the nginx master's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM to nginx's PID (the master, which stops its workers
// and waits for them), waits up to 5 s, then SIGKILLs the process group
// the master leads (master and workers; its id is the master's PID). It removes nginx's own temp folder
// (config and logs), never the served Root; the access log is kept in
// memory, so AccessLog still works after Stop (and then waits for nothing).
// Stop is idempotent.
func (s *Server) Stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	pid := s.cmd.Process.Pid
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group nginx leads (Setpgid)
		_ = s.cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			err = fmt.Errorf("nginxtest: nginx (pid %d) did not exit after SIGKILL", pid)
		}
		if err == nil {
			err = fmt.Errorf("nginxtest: nginx (pid %d) ignored SIGTERM for 5s; killed", pid)
		}
	}
	// On SIGTERM the master exits after its workers ("fast shutdown").
	s.lastLog, _ = os.ReadFile(s.logPath)
	os.RemoveAll(s.dir)
	return err
}

// ActiveConnections asks nginx's stub_status how many client connections
// are open, the asking one included.
func (s *Server) ActiveConnections() (int, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(s.URL + statusPath)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	// "Active connections: 1 \nserver accepts handled requests\n ..."
	f := strings.Fields(string(b))
	if len(f) < 3 || f[0] != "Active" {
		return 0, fmt.Errorf("nginxtest: unexpected stub_status %q", string(b))
	}
	return strconv.Atoi(f[2])
}

// WaitIdle waits until nginx has no client connection but the asking one,
// so that every finished or aborted request has been logged, at most
// timeout. It returns an error if connections are still open then (for
// example a client that is still downloading).
func (s *Server) WaitIdle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := s.ActiveConnections()
		if err == nil && n <= 1 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("nginxtest: %d connection(s) still open after %v", n-1, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AccessLog waits up to 3 s for open connections to end (see WaitIdle; a
// timeout is not an error, the lines written so far are returned) and
// returns the parsed access log.
func (s *Server) AccessLog() ([]LogEntry, error) {
	var r io.Reader
	s.stopMu.Lock()
	stopped := s.stopped
	if stopped {
		r = bytes.NewReader(s.lastLog)
	}
	s.stopMu.Unlock()
	if !stopped {
		_ = s.WaitIdle(3 * time.Second)
		f, err := os.Open(s.logPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []LogEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if e, ok := parseLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// ClearAccessLog waits like AccessLog, then empties the access log (nginx
// appends to it, so later lines start at the beginning again).
func (s *Server) ClearAccessLog() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		s.lastLog = nil
		return nil
	}
	_ = s.WaitIdle(3 * time.Second)
	err := os.Truncate(s.logPath, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// BodyBytesSent sums $body_bytes_sent over the access log entries whose URI
// ends with uriSuffix (waiting like AccessLog). It returns 0 if the log
// cannot be read.
func (s *Server) BodyBytesSent(uriSuffix string) int64 {
	entries, _ := s.AccessLog()
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.URI, uriSuffix) {
			n += e.BodyBytesSent
		}
	}
	return n
}

// parseLine parses: METHOD URI "RANGE" STATUS BYTES BODY TIME CONN MSEC
func parseLine(line string) (LogEntry, bool) {
	var e LogEntry
	i := strings.Index(line, ` "`)
	if i < 0 {
		return e, false
	}
	head := line[:i]
	rest := line[i+2:]
	k := strings.IndexByte(head, ' ')
	j := strings.LastIndex(rest, `" `)
	if k <= 0 || j < 0 {
		return e, false
	}
	e.Method, e.URI = head[:k], head[k+1:]
	e.Range = rest[:j]
	if e.Range == "-" {
		e.Range = ""
	}
	f := strings.Fields(rest[j+2:])
	if len(f) != 6 {
		return e, false
	}
	var err error
	if e.Status, err = strconv.Atoi(f[0]); err != nil {
		return e, false
	}
	if e.BytesSent, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return e, false
	}
	if e.BodyBytesSent, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return e, false
	}
	e.RequestTime, _ = strconv.ParseFloat(f[3], 64)
	e.Connection, _ = strconv.ParseInt(f[4], 10, 64)
	msec, err := strconv.ParseFloat(f[5], 64)
	if err != nil {
		return e, false
	}
	e.End = time.UnixMilli(int64(math.Round(msec * 1000)))
	return e, true
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), 800)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
