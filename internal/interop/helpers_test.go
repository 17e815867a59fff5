package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/nginxtest"
)

const (
	// runTimeout bounds every run of a binary (durl or curl).
	runTimeout = 60 * time.Second
	// growTimeout bounds the wait for a partial file to grow past a target.
	growTimeout = 20 * time.Second
	// pollEvery is how often the partial file's size is looked at.
	pollEvery = 10 * time.Millisecond
	// lossPerKill is the most a kill may cost (D5): 256 KiB per connection.
	lossPerKill = 256 << 10
	// partSuffix is where durl keeps an unfinished download (durl.PartialSuffix).
	partSuffix = ".durl-part"
)

// durlBin is the binary built by TestMain.
var durlBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "durl-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "interop: cannot find the module root (go env GOMOD: %q, %v)\n", gomod, err)
		return 1
	}
	durlBin = filepath.Join(dir, "durl")
	build := exec.CommandContext(ctx, "go", "build", "-o", durlBin, "./cmd/durl")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "interop: go build ./cmd/durl: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a running durl or curl.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer // stdout and stderr
	done chan struct{}
	code int // exit code; -1 if killed by a signal or the timeout
	err  error
}

// start starts bin with args in dir, with a clean environment (no proxy, a
// home folder of its own). The run is bounded by runTimeout, and the process
// is killed, by its PID, when the test ends.
func start(t *testing.T, dir, bin string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	p := &proc{name: filepath.Base(bin), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...) // cancelled: Process.Kill, by PID
	p.cmd.Dir = dir
	p.cmd.Env = childEnv(t.TempDir())
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		defer close(p.done)
		defer cancel()
		p.err = p.cmd.Wait()
		p.code = -1
		if p.cmd.ProcessState != nil {
			p.code = p.cmd.ProcessState.ExitCode()
		}
		if ctx.Err() != nil {
			p.err = fmt.Errorf("%s killed after %v", p.name, runTimeout)
		}
	}()
	t.Cleanup(p.kill)
	return p
}

// childEnv is the environment of a child: no proxy, no state folder from
// outside, its own home folder.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "DURL_STATE", "XDG_STATE_HOME", "HOME", "TERM", "CURL_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "TERM=dumb")
}

// wait waits for the process to end and returns its exit code.
func (p *proc) wait() int {
	<-p.done
	return p.code
}

// kill sends SIGKILL to the process, by its PID, if it is still running,
// and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// output returns what the process printed, at most the last 2000 bytes.
func (p *proc) output() string {
	<-p.done
	s := strings.TrimSpace(p.out.String())
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// startDurl starts `durl --state STATE get [FLAGS] -o DEST URL` in the
// folder of DEST.
func startDurl(t *testing.T, state, dest, url string, flags ...string) *proc {
	t.Helper()
	args := append([]string{"--state", state, "get"}, flags...)
	return start(t, filepath.Dir(dest), durlBin, append(args, "-o", dest, url)...)
}

// runDurl runs durl get to its end and fails the test unless it exits 0.
func runDurl(t *testing.T, state, dest, url string, flags ...string) *proc {
	t.Helper()
	p := startDurl(t, state, dest, url, flags...)
	if code := p.wait(); code != 0 {
		t.Fatalf("durl get exited %d (%v):\n%s", code, p.err, p.output())
	}
	return p
}

// killWhenGrown kills p (SIGKILL, by PID) once file has grown past target
// bytes and returns the size of file once p is dead; see killWhenPast.
func killWhenGrown(t *testing.T, p *proc, file string, target int64, quiet, delay time.Duration) int64 {
	t.Helper()
	size := func() (int64, bool) {
		st, err := os.Stat(file)
		if err != nil {
			return 0, false
		}
		return st.Size(), true
	}
	return killWhenPast(t, p, filepath.Base(file), size, target, quiet, delay)
}

// killWhenPast kills p (SIGKILL, by PID) once measure, what the test
// watches of it (named what), has passed target bytes, polling every
// pollEvery for at most growTimeout, and returns the measure once p is
// dead. With quiet > 0 it then also waits until the measure has not
// changed for quiet (a burst of data has been read), and then it waits
// delay. It fails the test if p exits by itself first or the measure does
// not pass target in time.
func killWhenPast(t *testing.T, p *proc, what string, measure func() (int64, bool), target int64, quiet, delay time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(growTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last int64 = -1
	var lastGrew time.Time
	for {
		if n, ok := measure(); ok {
			if n != last {
				last, lastGrew = n, time.Now()
			}
			if last > target && time.Since(lastGrew) >= quiet {
				break
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s ended (exit %d) before %s passed %d bytes (last %d):\n%s", p.name, p.code, what, target, last, p.output())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("%s did not pass %d bytes within %v (last %d):\n%s", what, target, growTimeout, last, p.output())
		}
	}
	time.Sleep(delay)
	p.kill()
	if p.code == 0 {
		t.Fatalf("%s finished before it could be killed", p.name)
	}
	n, ok := measure()
	if !ok {
		t.Fatalf("%s is gone after the kill", what)
	}
	return n
}

// killTargets returns n sizes, increasing and at least gap apart, in the
// middle 90 % of size: the moments to kill a download at.
func killTargets(r *rand.Rand, n int, size, gap int64) []int64 {
	lo, hi := size/20, size-size/20-int64(n)*gap
	out := make([]int64, n)
	for i := range out {
		out[i] = lo + r.Int64N(hi-lo)
	}
	slices.Sort(out)
	for i := range out {
		out[i] += int64(i) * gap
	}
	return out
}

// sha returns the SHA-256 of the file at path.
func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// checkFile fails the test unless path holds exactly the content (seed,
// size), and says where it differs.
func checkFile(t *testing.T, path string, seed uint64, size int64) {
	t.Helper()
	if got, want := sha(t, path), durltest.Digest(seed, size); got != want {
		t.Fatalf("%s: SHA-256 %x, want %x: %v", filepath.Base(path), got, want, durltest.VerifyFile(path, seed, size))
	}
	if err := durltest.VerifyFile(path, seed, size); err != nil {
		t.Fatal(err)
	}
}

// writeContent writes the content (seed, size) to path (through a temp file
// and a rename, as a deployment would) and sets its modification time.
func writeContent(t *testing.T, path string, seed uint64, size int64, mtime time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, durltest.NewReader(seed, size)); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// transfer is one response body as a server logged it.
type transfer struct {
	rng    string // the request's Range header
	status int
	from   int64 // first byte of the body: Range's N for a 206, else 0
	sent   int64 // body bytes the server wrote to the socket
}

// lossPerRun returns, for each response but the last, how many of the bytes
// the server sent were asked for again by the next request: what each kill
// cost.
func lossPerRun(ts []transfer) []int64 {
	var out []int64
	for i := 0; i+1 < len(ts); i++ {
		out = append(out, ts[i].from+ts[i].sent-ts[i+1].from)
	}
	return out
}

// kib formats n bytes in KiB.
func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

// kibs formats a list of byte counts in KiB.
func kibs(ns []int64) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, strconv.FormatFloat(float64(n)/1024, 'f', 1, 64))
	}
	return "[" + strings.Join(parts, " ") + "] KiB"
}

var ensureOnce = sync.OnceValue(nginxtest.Ensure)

// needNginx installs nginx if it is missing. When it cannot be had, the
// test fails if the environment variable CI is set, and is skipped
// otherwise.
func needNginx(t *testing.T) {
	t.Helper()
	if err := ensureOnce(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nginx is required in CI: %v", err)
		}
		t.Skipf("nginx is not available: %v", err)
	}
}

// startNginx starts nginx serving root, limited per connection to rate on
// the throttled locations, and stops it when the test ends.
func startNginx(t *testing.T, root, rate string) *nginxtest.Server {
	t.Helper()
	needNginx(t)
	srv, err := nginxtest.Start(nginxtest.Options{Root: root, LimitRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// nginxTransfers returns the GET responses with a body logged for uri, in
// order.
func nginxTransfers(t *testing.T, srv *nginxtest.Server, uri string) []transfer {
	t.Helper()
	entries, err := srv.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	var ts []transfer
	for _, e := range entries {
		if e.Method == "GET" && e.URI == uri && (e.Status == 200 || e.Status == 206) {
			ts = append(ts, transfer{rng: e.Range, status: e.Status, from: e.Body().From, sent: e.BodyBytesSent})
		}
	}
	return ts
}

// etag returns the ETag nginx sends for url.
func etag(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("ETag")
}
