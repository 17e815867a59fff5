package main

// End-to-end tests: they build the durl binary once and run it against
// servers on 127.0.0.1.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durl-dev/durl/client"
)

// runTimeout bounds every run of the binary.
const runTimeout = 30 * time.Second

var (
	binDir    string // holds the binary; removed by TestMain
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "durl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// durlBinary builds the binary on first use and returns its path. It is
// built lazily so that the unit tests run even when it cannot be built.
func durlBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "durl")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// result is how a run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
}

// durlProc is a running durl.
type durlProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	res            result
}

// childEnv is the environment of the binary: no proxy and no state
// folder from the outside, a home folder of its own.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "DURL_STATE", "XDG_STATE_HOME", "HOME", "TERM":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "TERM=dumb")
}

// startDurl starts the binary in folder dir (a temporary folder when "")
// with stdin as its standard input. It is killed, by its PID, after
// runTimeout or when the test ends.
func startDurl(t *testing.T, dir, stdin string, args ...string) *durlProc {
	t.Helper()
	bin := durlBinary(t)
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	p := &durlProc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = childEnv(t.TempDir())
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer cancel()
		err := p.cmd.Wait()
		p.res = result{code: p.cmd.ProcessState.ExitCode(), stdout: p.stdout.String(), stderr: p.stderr.String()}
		if ctx.Err() != nil {
			p.res.code = -1
			p.res.stderr += "\n(killed after " + runTimeout.String() + ")"
		} else if err != nil && !errors.As(err, new(*exec.ExitError)) {
			p.res.stderr += "\n(" + err.Error() + ")"
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // by PID
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit.
func (p *durlProc) wait() result {
	<-p.done
	return p.res
}

// runDurl runs the binary to its end in folder dir (a temporary folder when
// "").
func runDurl(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return startDurl(t, dir, "", args...).wait()
}

// testServer serves a deterministic body, with ranges and an ETag.
type testServer struct {
	*httptest.Server
	body   []byte
	sum    string // hex SHA-256 of body
	delay  atomic.Int64
	sent   atomic.Int64 // body bytes written, all requests together
	mu     sync.Mutex
	ranges []string // Range headers received
}

// chunk is how many bytes the server writes at a time.
const chunk = 16 << 10

// newTestServer starts a server of a body of size bytes, over TLS if tls is
// set. Paths:
//
//	/files/NAME  the body
//	/cd/NAME     the body, with Content-Disposition: attachment; filename="report.bin"
//	/missing     404
//
// With a delay set, the body is sent in 16 KiB chunks, delay apart.
func newTestServer(t *testing.T, size int, tls bool) *testServer {
	t.Helper()
	s := &testServer{body: make([]byte, size)}
	rng := rand.NewChaCha8([32]byte{'d', 'u', 'r', 'l'})
	rng.Read(s.body)
	sum := sha256.Sum256(s.body)
	s.sum = hex.EncodeToString(sum[:])
	modTime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "" {
			s.mu.Lock()
			s.ranges = append(s.ranges, rg)
			s.mu.Unlock()
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/files/"):
		case strings.HasPrefix(r.URL.Path, "/cd/"):
			w.Header().Set("Content-Disposition", `attachment; filename="report.bin"`)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+s.sum[:16]+`"`)
		sw := &slowWriter{ResponseWriter: w, s: s, ctx: r.Context()}
		http.ServeContent(sw, r, "", modTime, bytes.NewReader(s.body))
	})
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // a refused certificate is expected
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// rangeRequests returns the Range headers the server received.
func (s *testServer) rangeRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// slowWriter writes in chunks, the server's delay apart, and counts bytes.
type slowWriter struct {
	http.ResponseWriter
	s   *testServer
	ctx context.Context
}

func (w *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if d := time.Duration(w.s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-w.ctx.Done():
				return n, w.ctx.Err()
			}
		}
		c := min(len(p), chunk)
		m, err := w.ResponseWriter.Write(p[:c])
		n += m
		w.s.sent.Add(int64(m))
		if err != nil {
			return n, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok && w.s.delay.Load() > 0 {
			f.Flush()
		}
		p = p[c:]
	}
	return n, nil
}

// waitFor polls cond every 10 ms for at most 15 s, while p runs.
func waitFor(t *testing.T, p *durlProc, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("durl exited before %s: exit %d, stderr %q", what, p.res.code, p.res.stderr)
		default:
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// fileSum returns the hex SHA-256 of a file.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// wantExit fails the test unless r exited with code.
func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

// checkNoControl fails the test if out holds a control character other
// than a newline.
func checkNoControl(t *testing.T, name, out string) {
	t.Helper()
	for i, c := range []byte(out) {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Fatalf("%s holds control character %#x at %d: %q", name, c, i, out)
		}
	}
}

func TestE2EPlainDownload(t *testing.T) {
	srv := newTestServer(t, 1<<20, false)
	dir, state := t.TempDir(), t.TempDir()
	dest := filepath.Join(dir, "out.bin")
	r := runDurl(t, "", "--state", state, "get", "-o", dest, srv.URL+"/files/data.bin")
	wantExit(t, r, 0)
	if got := fileSum(t, dest); got != srv.sum {
		t.Fatalf("SHA-256 %s, want %s", got, srv.sum)
	}
	checkNoControl(t, "stderr", r.stderr)
	checkNoControl(t, "stdout", r.stdout)
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.Contains(r.stderr, "durl: saved "+dest+" (1.0 MiB, ") {
		t.Errorf("no saved line in stderr: %q", r.stderr)
	}
	if _, err := os.Stat(dest + ".durl-part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left behind: %v", err)
	}

	// Run again: the server says the file is unchanged, and it is kept.
	r = runDurl(t, "", "--state", state, "get", "-o", dest, srv.URL+"/files/data.bin")
	wantExit(t, r, 0)
	if want := "durl: kept " + dest + " (1.0 MiB): unchanged on the server"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if got := fileSum(t, dest); got != srv.sum {
		t.Fatalf("SHA-256 %s after the rerun, want %s", got, srv.sum)
	}
}

func TestE2ENamesInCurrentFolderAndDir(t *testing.T) {
	srv := newTestServer(t, 64<<10, false)
	state := t.TempDir()

	cwd := t.TempDir()
	wantExit(t, runDurl(t, cwd, "--state", state, "get", "-q", srv.URL+"/files/from-url.bin"), 0)
	if got := fileSum(t, filepath.Join(cwd, "from-url.bin")); got != srv.sum {
		t.Errorf("from-url.bin: wrong SHA-256")
	}

	out := filepath.Join(t.TempDir(), "new", "folder")
	wantExit(t, runDurl(t, cwd, "--state", state, "get", "-q", "-d", out, srv.URL+"/cd/ignored.bin"), 0)
	if got := fileSum(t, filepath.Join(out, "report.bin")); got != srv.sum {
		t.Errorf("report.bin (from Content-Disposition): wrong SHA-256")
	}
	if _, err := os.Stat(filepath.Join(out, "ignored.bin")); err == nil {
		t.Errorf("named from the URL despite Content-Disposition")
	}
}

func TestE2EInputFileAndJobs(t *testing.T) {
	srv := newTestServer(t, 256<<10, false)
	dir, state := t.TempDir(), t.TempDir()
	list := filepath.Join(t.TempDir(), "urls.txt")
	content := "# files to fetch\n" + srv.URL + "/files/a.bin\n\n  " + srv.URL + "/files/b.bin  \n#" + srv.URL + "/files/skipped.bin\n" + srv.URL + "/files/c.bin\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runDurl(t, "", "--state", state, "get", "-i", list, "-j", "2", "-d", dir)
	wantExit(t, r, 0)
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		if got := fileSum(t, filepath.Join(dir, name)); got != srv.sum {
			t.Errorf("%s: wrong SHA-256", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "skipped.bin")); err == nil {
		t.Errorf("a commented-out URL was downloaded")
	}
	if n := strings.Count(r.stderr, "durl: saved "); n != 3 {
		t.Errorf("%d saved lines, want 3: %q", n, r.stderr)
	}

	// The list from stdin.
	dir2 := t.TempDir()
	p := startDurl(t, "", srv.URL+"/files/d.bin\n", "--state", state, "get", "-q", "-i", "-", "-d", dir2)
	wantExit(t, p.wait(), 0)
	if got := fileSum(t, filepath.Join(dir2, "d.bin")); got != srv.sum {
		t.Errorf("d.bin: wrong SHA-256")
	}
}

// A list long enough that durl get lists the folder once (scanMin): a
// rerun still finds every file in place and keeps it.
func TestE2ELongListRerun(t *testing.T) {
	srv := newTestServer(t, 4<<10, false)
	dir, state := t.TempDir(), t.TempDir()
	list := filepath.Join(t.TempDir(), "urls.txt")
	var urls strings.Builder
	for i := range scanMin {
		fmt.Fprintf(&urls, "%s/files/f%d.bin\n", srv.URL, i)
	}
	if err := os.WriteFile(list, []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runDurl(t, "", "--state", state, "get", "-i", list, "-d", dir)
	wantExit(t, r, 0)
	if n := strings.Count(r.stderr, "durl: saved "); n != scanMin {
		t.Errorf("%d saved lines, want %d", n, scanMin)
	}
	r = runDurl(t, "", "--state", state, "get", "-i", list, "-d", dir)
	wantExit(t, r, 0)
	if n := strings.Count(r.stderr, "durl: kept "); n != scanMin {
		t.Errorf("the rerun kept %d files, want %d: %q", n, scanMin, r.stderr)
	}
}

func TestE2EChecksum(t *testing.T) {
	srv := newTestServer(t, 128<<10, false)
	state, dir := t.TempDir(), t.TempDir()

	good := filepath.Join(dir, "good.bin")
	wantExit(t, runDurl(t, "", "--state", state, "get", "--checksum", "sha256:"+srv.sum, "-o", good, srv.URL+"/files/g.bin"), 0)
	if got := fileSum(t, good); got != srv.sum {
		t.Errorf("wrong SHA-256")
	}

	bad := filepath.Join(dir, "bad.bin")
	wrong := strings.Repeat("0", 64)
	r := runDurl(t, "", "--state", state, "get", "-q", "--checksum", "sha256:"+wrong, "-o", bad, srv.URL+"/files/b.bin")
	wantExit(t, r, exitChecksum)
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("a file that failed its checksum is at the destination")
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "checksum") {
		t.Errorf("stderr %q: want one line about the checksum", r.stderr)
	}
}

func TestE2ENotFound(t *testing.T) {
	srv := newTestServer(t, 1024, false)
	u := srv.URL + "/missing"
	want := "durl: " + u + ": the server answered 404 Not Found; check the URL\n"

	r := runDurl(t, "", "--state", t.TempDir(), "get", "-q", "-o", filepath.Join(t.TempDir(), "x"), u)
	wantExit(t, r, exitNetwork)
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}

	// Without -q the line is there too, among the progress lines.
	r = runDurl(t, "", "--state", t.TempDir(), "get", "-o", filepath.Join(t.TempDir(), "x"), u)
	wantExit(t, r, exitNetwork)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not hold %q", r.stderr, want)
	}
}

func TestE2EFirstFailureInInputOrder(t *testing.T) {
	srv := newTestServer(t, 1024, false)
	dir := t.TempDir()
	r := runDurl(t, "", "--state", t.TempDir(), "get", "-q", "-d", dir,
		srv.URL+"/files/ok.bin", srv.URL+"/missing", srv.URL+"/files/ok2.bin")
	wantExit(t, r, exitNetwork)
	for _, name := range []string{"ok.bin", "ok2.bin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v (the other downloads must complete)", name, err)
		}
	}
}

func TestE2ELocked(t *testing.T) {
	srv := newTestServer(t, 2<<20, false)
	srv.delay.Store(int64(100 * time.Millisecond)) // 160 KiB/s: 13 s for the body
	state, dest := t.TempDir(), filepath.Join(t.TempDir(), "big.bin")
	args := []string{"--state", state, "get", "-q", "-o", dest, srv.URL + "/files/big.bin"}

	first := startDurl(t, "", "", args...)
	waitFor(t, first, "the first durl to receive data", func() bool { return srv.sent.Load() >= 2*chunk })

	r := runDurl(t, "", args...)
	wantExit(t, r, exitLocked)
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "another durl is already downloading") {
		t.Errorf("stderr %q: want one line saying another durl is downloading", r.stderr)
	}

	first.cmd.Process.Kill() // kill -9, by PID
	first.wait()
}

func TestE2EInterruptAndContinue(t *testing.T) {
	srv := newTestServer(t, 2<<20, false)
	srv.delay.Store(int64(20 * time.Millisecond)) // 800 KiB/s
	state, dest := t.TempDir(), filepath.Join(t.TempDir(), "big.bin")
	args := []string{"--state", state, "get", "-o", dest, srv.URL + "/files/big.bin"}

	p := startDurl(t, "", "", args...)
	waitFor(t, p, "256 KiB sent", func() bool { return srv.sent.Load() >= 256<<10 })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	wantExit(t, r, exitInterrupted)
	if !strings.HasSuffix(r.stderr, "durl: paused; run the same command again to continue\n") {
		t.Errorf("stderr %q: want the pause line last", r.stderr)
	}
	checkNoControl(t, "stderr", r.stderr)
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("the destination exists after an interruption")
	}

	srv.delay.Store(0)
	r = runDurl(t, "", args...)
	wantExit(t, r, 0)
	if got := fileSum(t, dest); got != srv.sum {
		t.Fatalf("SHA-256 %s, want %s", got, srv.sum)
	}
	resumed := false
	for _, rg := range srv.rangeRequests() {
		resumed = resumed || strings.HasPrefix(rg, "bytes=") && !strings.HasPrefix(rg, "bytes=0-")
	}
	if !resumed {
		t.Errorf("no Range request continuing the download; ranges: %q", srv.rangeRequests())
	}
}

func TestE2EJSON(t *testing.T) {
	srv := newTestServer(t, 300<<10, false)
	dest := filepath.Join(t.TempDir(), "j.bin")
	r := runDurl(t, "", "--state", t.TempDir(), "get", "--json", "-o", dest, srv.URL+"/files/j.bin")
	wantExit(t, r, 0)
	checkNoControl(t, "stdout", r.stdout)
	completed := false
	var lastSeq float64
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, k := range []string{"seq", "time", "event", "task", "url", "path", "state", "written", "total", "rate"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("line %q has no %q", line, k)
			}
		}
		if seq, _ := ev["seq"].(float64); seq <= lastSeq && lastSeq != 0 {
			t.Errorf("seq %v after %v", seq, lastSeq)
		} else {
			lastSeq = seq
		}
		if ev["event"] == "completed" {
			completed = true
			if ev["path"] != dest || ev["written"] != float64(len(srv.body)) || ev["state"] != "completed" {
				t.Errorf("completed event %q", line)
			}
		}
	}
	if !completed {
		t.Errorf("no completed event in %q", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q, want nothing with --json", r.stderr)
	}
}

func TestE2ECACert(t *testing.T) {
	srv := newTestServer(t, 64<<10, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	dest := filepath.Join(t.TempDir(), "tls.bin")

	r := runDurl(t, "", "--state", state, "get", "-q", "--retries", "1", "-o", dest, srv.URL+"/files/tls.bin")
	wantExit(t, r, exitNetwork)
	if !strings.Contains(r.stderr, "--cacert") {
		t.Errorf("stderr %q: want advice to use --cacert", r.stderr)
	}

	r = runDurl(t, "", "--state", state, "get", "-q", "--cacert", ca, "-o", dest, srv.URL+"/files/tls.bin")
	wantExit(t, r, 0)
	if got := fileSum(t, dest); got != srv.sum {
		t.Errorf("wrong SHA-256")
	}
}

func TestE2EUsageExit2(t *testing.T) {
	r := runDurl(t, "", "get", "--no-such-flag", "http://127.0.0.1:1/x")
	wantExit(t, r, exitUsage)
	if strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
		t.Errorf("stdout %q, stderr %q: want one line on stderr", r.stdout, r.stderr)
	}
}

// TestE2EWaitOutlivesDaemonKill: a durl wait that waits when the daemon is
// SIGKILLed goes on waiting, and exits 0 once the restarted daemon has
// finished the download.
func TestE2EWaitOutlivesDaemonKill(t *testing.T) {
	srv := newTestServer(t, 4<<20, false)
	srv.delay.Store(int64(8 * time.Millisecond)) // about 2 s for the file
	state, downloads := serveDirs(t)
	daemon := startServeProc(t, state, downloads)
	r := runDurl(t, "", "--state", state, "add", "-d", downloads, srv.URL+"/files/w.bin")
	wantExit(t, r, exitOK)
	id := strings.TrimSpace(r.stdout)

	waiter := startDurl(t, "", "", "--state", state, "wait", id)
	waitFor(t, waiter, "durl wait to follow the events", func() bool {
		c, err := client.Dial(state)
		if err != nil {
			return false
		}
		st, err := c.Stats(context.Background())
		return err == nil && st.EventClients > 0
	})
	waitFor(t, daemon, "512 KiB sent", func() bool { return srv.sent.Load() > 512<<10 })
	kill9(t, daemon)
	if srv.sent.Load() >= 4<<20 {
		t.Fatal("the download finished before the daemon was killed; slow the server down")
	}

	srv.delay.Store(0)
	daemon = startServeProc(t, state, downloads)
	res := waiter.wait()
	wantExit(t, res, exitOK)
	if want := id + ": completed " + filepath.Join(downloads, "w.bin"); !strings.HasPrefix(res.stdout, want) {
		t.Errorf("durl wait printed %q, want %q…", res.stdout, want)
	}
	if got := fileSum(t, filepath.Join(downloads, "w.bin")); got != srv.sum {
		t.Fatalf("SHA-256 %s, want %s", got, srv.sum)
	}
	daemon.cmd.Process.Signal(syscall.SIGTERM)
	wantExit(t, daemon.wait(), exitOK)
}
