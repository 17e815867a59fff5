package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// toolSet is where the tools are and what they are.
type toolSet struct {
	durl     string // built binary, "" if not built
	durlSkip string // why not, for the table rows
	durlHasX bool   // durl get knows -x (connections per download)
	versions []toolVersion
	missing  []string
}

type toolVersion struct{ name, version string }

// findTools builds durl (or takes --durl) and records every tool's version.
func findTools(ctx context.Context, b *bench) toolSet {
	var ts toolSet
	for _, name := range []string{"curl", "wget", "aria2c", "nginx"} {
		p, err := exec.LookPath(name)
		if name == "nginx" {
			p, err = nginxBinary()
		}
		if err != nil {
			ts.missing = append(ts.missing, name)
			continue
		}
		var out string
		switch name {
		case "nginx":
			out = capture(ctx, p, "-v") // prints to stderr
		default:
			out = capture(ctx, p, "--version")
		}
		ts.versions = append(ts.versions, toolVersion{name, firstLine(out)})
	}

	switch {
	case b.cfg.durlPath != "":
		p, err := filepath.Abs(b.cfg.durlPath)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			ts.durlSkip = "durl not built"
			b.logf("durl: --durl: %v", err)
		} else {
			ts.durl = p
		}
	default:
		if _, err := os.Stat(filepath.Join(b.repo, "cmd", "durl")); err != nil {
			ts.durlSkip = "durl not built"
			b.logf("durl: no ./cmd/durl yet; durl rows say %q", ts.durlSkip)
			break
		}
		bin := filepath.Join(b.tmp, "durl")
		b.logf("building durl (go build ./cmd/durl)")
		r := execute(ctx, 5*time.Minute, b.repo, []string{"go", "build", "-o", bin, "./cmd/durl"}, nil)
		if !r.OK() {
			ts.durlSkip = "durl not built"
			b.logf("durl: build failed (%s): %s", r.describe(), tailLines(r.Output, 10))
		} else {
			ts.durl = bin
		}
	}
	ver := "not built"
	if ts.durl != "" {
		help := capture(ctx, ts.durl, "get", "--help")
		ts.durlHasX = regexp.MustCompile(`(^|[\s,])-x([\s,=]|$)`).MatchString(help)
		ver = gitVersion(ctx, b.repo)
	}
	ts.versions = append([]toolVersion{{"durl", ver}}, ts.versions...)
	return ts
}

func nginxBinary() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if q, err := exec.LookPath(p); err == nil {
			return q, nil
		}
	}
	return "", errors.New("nginx not found")
}

// gitVersion describes the durl sources: git describe, or the commit, or
// "uncommitted".
func gitVersion(ctx context.Context, repo string) string {
	for _, args := range [][]string{
		{"git", "-C", repo, "describe", "--tags", "--always", "--dirty"},
		{"git", "-C", repo, "rev-parse", "--short", "HEAD"},
	} {
		r := execute(ctx, 10*time.Second, repo, args, nil)
		if r.OK() && strings.TrimSpace(r.Output) != "" {
			return "git " + firstLine(r.Output)
		}
	}
	return "uncommitted working tree"
}

// capture runs a short command and returns its combined output.
func capture(ctx context.Context, argv ...string) string {
	r := execute(ctx, 20*time.Second, "", argv, nil)
	return r.Output
}

// Run is one process run: wall time, CPU time (user+sys) and peak RSS from
// the child's rusage.
type Run struct {
	Wall     time.Duration
	CPU      time.Duration
	MaxRSS   int64 // KiB, rusage ru_maxrss
	Exit     int   // exit code; -1 if ended by a signal or not started
	Killed   bool  // SIGKILLed by the harness on purpose
	TimedOut bool
	Err      error // could not start
	Output   string
}

// OK reports an exit code 0.
func (r Run) OK() bool { return r.Err == nil && r.Exit == 0 && !r.Killed && !r.TimedOut }

func (r Run) describe() string {
	switch {
	case r.Err != nil:
		return "not started: " + r.Err.Error()
	case r.TimedOut:
		return "timed out"
	case r.Killed:
		return "killed"
	case r.Exit == -1:
		return "ended by a signal"
	default:
		return fmt.Sprintf("exit %d", r.Exit)
	}
}

// add accumulates a sequence of runs (e.g. curl then sync).
func (r *Run) add(o Run) {
	r.Wall += o.Wall
	r.CPU += o.CPU
	r.MaxRSS = max(r.MaxRSS, o.MaxRSS)
	r.Exit, r.Killed, r.TimedOut, r.Err = o.Exit, o.Killed, o.TimedOut, o.Err
	r.Output += o.Output
}

type tailBuf struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuf) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuf) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}

// execute runs argv with a timeout. If kill is not nil it is polled every
// 20 ms and the process is SIGKILLed (by its PID) once it returns true.
// On timeout or cancellation the process group the child leads is
// SIGKILLed (its id is the child's PID).
func execute(ctx context.Context, timeout time.Duration, dir string, argv []string, kill func() bool) Run {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	out := &tailBuf{max: 16 * 1024}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a terminal's Ctrl-C reaches only the suite, which
	// kills the children itself; Pdeathsig if the suite dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 3 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Run{Exit: -1, Err: err}
	}
	// One watcher: samples the peak RSS (every 2 ms for the first 100 ms,
	// where most programs reach their peak, then every 20 ms) and kills
	// on demand (polled every 20 ms).
	var killed atomic.Bool
	var hwm atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pid := cmd.Process.Pid
		for i := 0; ; i++ {
			if v := vmHWM(pid); v > hwm.Load() {
				hwm.Store(v)
			}
			d := 20 * time.Millisecond
			if i < 50 {
				d = 2 * time.Millisecond
			}
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
			if kill != nil && (i >= 50 || i%10 == 9) && !killed.Load() && kill() {
				killed.Store(true)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}()
	err := cmd.Wait()
	r := Run{Wall: time.Since(start), Exit: -1, Output: out.String()}
	close(stop)
	wg.Wait()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			r.MaxRSS = ru.Maxrss
			// ru_maxrss of a child started by os/exec (vfork) includes
			// the suite's own RSS at the start: Linux keeps the old mm's
			// high-water mark across exec. The sampled VmHWM of the new
			// program is the truth; ru_maxrss is only the fallback for
			// runs too short to be sampled.
			if h := hwm.Load(); h > 0 {
				r.MaxRSS = min(h, ru.Maxrss)
			}
		}
		ws, _ := ps.Sys().(syscall.WaitStatus)
		switch {
		case ws.Exited():
			r.Exit = ws.ExitStatus()
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && ctx.Err() != nil:
			r.TimedOut = true
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && killed.Load():
			r.Killed = true
		}
	} else if err != nil {
		r.Err = err
	}
	return r
}

// vmHWM reads the peak resident set size (KiB) of a running process from
// /proc/PID/status; 0 if unknown.
func vmHWM(pid int) int64 { return procStatusKiB(pid, "VmHWM") }

// vmRSS reads the resident set size (KiB) of a running process; 0 if
// unknown.
func vmRSS(pid int) int64 { return procStatusKiB(pid, "VmRSS") }

// procStatusKiB reads the field key (such as VmHWM) of /proc/PID/status,
// in KiB; 0 if unknown.
func procStatusKiB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}

// childEnv is the suite's environment without proxies (everything goes to
// 127.0.0.1) and with stable messages.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy", "lc_all", "lang":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "NO_PROXY=*", "no_proxy=*")
}

// progress is how far a download has got: see dataFile.
func progress(dest, stateDir string) int64 {
	_, n := dataFile(dest, stateDir)
	return n
}

// dataFile returns the file a download writes its data to, and how much it
// holds: the largest of dest, files named dest* beside it (partial files:
// .durl-part, .aria2, ...) and files in the tool's state folder, each
// counted as min(size, bytes of data) so that neither holes nor
// preallocated space count. It returns "", 0 if there is none.
func dataFile(dest, stateDir string) (path string, n int64) {
	consider := func(p string) {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return
		}
		if d := min(st.Size, dataBytes(p)); d > n || path == "" {
			path, n = p, d
		}
	}
	matches, _ := filepath.Glob(globEscape(dest) + "*")
	for _, m := range matches {
		consider(m)
	}
	if stateDir != "" {
		filepath.WalkDir(stateDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				consider(p)
			}
			return nil
		})
	}
	return path, n
}

// dataBytes counts the bytes of path that hold data, skipping holes and
// space reserved but never written (SEEK_DATA, SEEK_HOLE): a file
// preallocated whole, or written by several connections at once, counts
// only what was written.
func dataBytes(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var n, off int64
	for {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			return n // ENXIO: no data past off
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return n
		}
		n += end - start
		off = end
	}
}

func globEscape(s string) string {
	return regexp.MustCompile(`([*?\[\\])`).ReplaceAllString(s, `\$1`)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- command lines ----
//
// Every download tool gets a fresh output folder per run, and the file
// name from the URL, so that all of them write the same path.

// single is one single-file download command.
type single struct {
	name   string // row label
	tool   string // tool key for the memory table
	isDurl bool
	skip   string // if set, the row has no result
	cmd    func(dest, url, state string) [][]string
	synced bool // the data is on disk (fsynced) when the command ends
}

func (b *bench) durlRow(name string, args func(dest, url, state string) [][]string, synced bool) single {
	s := single{name: name, tool: "durl", isDurl: true, cmd: args, synced: synced}
	if b.tools.durl == "" {
		s.skip = b.tools.durlSkip
	}
	return s
}

// durlGet: durl --state S get [extra] -o DEST URL
func (b *bench) durlGet(extra ...string) func(dest, url, state string) [][]string {
	return func(dest, url, state string) [][]string {
		a := []string{b.tools.durl, "--state", state, "get"}
		a = append(a, extra...)
		return [][]string{append(a, "-o", dest, url)}
	}
}

func curlGet(resume bool) func(dest, url, state string) [][]string {
	return func(dest, url, state string) [][]string {
		a := []string{"curl", "-q", "-sS", "-f"}
		if resume {
			a = append(a, "-C", "-")
		}
		return [][]string{append(a, "-o", dest, url)}
	}
}

func wgetGet(resume bool) func(dest, url, state string) [][]string {
	return func(dest, url, state string) [][]string {
		a := []string{"wget", "--no-config", "-nv"}
		if resume {
			a = append(a, "-c")
		}
		return [][]string{append(a, "-P", filepath.Dir(dest), url)}
	}
}

// aria2Opts: quiet, no config file, no preallocation (the file grows as
// data arrives, so a partial download can be measured and resumed like the
// others'), splits as small as 1 MiB so that -s N is honoured on small files.
var aria2Opts = []string{"--no-conf", "--console-log-level=error", "--summary-interval=0",
	"--download-result=hide", "--file-allocation=none", "--min-split-size=1M"}

func aria2Get(x int, resume bool) func(dest, url, state string) [][]string {
	return func(dest, url, state string) [][]string {
		a := append([]string{"aria2c"}, aria2Opts...)
		a = append(a, fmt.Sprintf("--max-connection-per-server=%d", x), fmt.Sprintf("--split=%d", x))
		if resume {
			a = append(a, "--continue=true")
		}
		return [][]string{append(a, "-d", filepath.Dir(dest), "-o", filepath.Base(dest), url)}
	}
}

// resumeRows are the tools of the kill scenarios 2, 3 and 4.
func (b *bench) resumeRows() []single {
	return []single{
		b.durlRow("durl", b.durlGet(), true),
		{name: "curl -C -", tool: "curl", cmd: curlGet(true)},
		{name: "wget -c", tool: "wget", cmd: wgetGet(true)},
		{name: "aria2c -c -x1", tool: "aria2c", cmd: aria2Get(1, true)},
	}
}

// runSteps runs a row's commands in sequence and sums them; kill applies to
// the first command (the download).
func (b *bench) runSteps(steps [][]string, timeout time.Duration, kill func() bool) Run {
	var total Run
	for i, argv := range steps {
		k := kill
		if i > 0 {
			k = nil
		}
		r := execute(b.ctx, timeout, b.tmp, argv, k)
		total.add(r)
		if !r.OK() {
			break
		}
	}
	return total
}

// sanitize removes this machine's paths from text meant for the report.
func (b *bench) sanitize(s string) string {
	for _, p := range []string{b.tmp, b.repo, os.TempDir()} {
		if p != "" && p != "/" {
			s = strings.ReplaceAll(s, p, "…")
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "/" {
		s = strings.ReplaceAll(s, home, "~")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return strings.ReplaceAll(s, "|", "/")
}
