package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
	"github.com/durl-dev/durl/internal/nginxtest"
)

// ---- 8. The daemon at scale ----
//
// Three parts, on the daemon (durl serve) driven through its API with the
// client package:
//   - scale: s8Tasks small files added in requests of s8Batch downloads,
//     s8Adders requests at once; time to add them all, to finish them all,
//     peak RSS; every file's SHA-256 checked. aria2c's JSON-RPC does the
//     same as the peer.
//   - restart: the daemon of the scale part, stopped, is started again on
//     its store of s8Tasks completed tasks: time from the process's start
//     to the first answer, and to a full list.
//   - memory: s8Active downloads from a slow nginx and s8Queued more
//     queued; VmRSS sampled every 100 ms for s8Sample.

// s8File is one served file of the scale part.
type s8File struct {
	name, url, sha string
}

// s8Scale is one tool's result in the scale part.
type s8Scale struct {
	ran   bool
	add   time.Duration // first add request sent → last one answered
	done  time.Duration // first add request sent → every task ended
	cpu   time.Duration // the daemon's user+sys over its whole life
	hwm   int64         // KiB, VmHWM read before stopping
	stop  time.Duration // SIGTERM → exit
	right int           // files with the right SHA-256
	check string        // what went wrong; "" if nothing
}

// s8Restart is one timed restart.
type s8Restart struct {
	version time.Duration // process start → first answer of GET /v1/version
	list    time.Duration // process start → every task listed
	hwm     int64
}

// s8Mem is the memory part's result.
type s8Mem struct {
	ran     bool
	maxRSS  int64 // KiB, the largest VmRSS sampled
	samples int
	hwm     int64 // KiB, VmHWM at the end (adding included)
	conns   int   // connections open at the slow nginx (-1: unknown)
	running int   // tasks running and queued at the end of the sampling
	queued  int
	reach   time.Duration
}

func (b *bench) scenarioDaemon() section {
	sec := section{n: 8, title: "The daemon at scale"}
	cfg := b.cfg
	n, act := cfg.s8Tasks, cfg.s8Active
	durlName := fmt.Sprintf("durl serve --max-active %d", act)
	ariaName := fmt.Sprintf("aria2c --enable-rpc -j %d", act)
	sec.intro = fmt.Sprintf("The daemon (`durl serve`, started fresh on an empty state folder, with `--max-active %d "+
		"--max-conns-per-host %d` so that every active download has its connection; fsync on, the default), "+
		"driven through its API on the Unix socket with the Go client package (`client`). "+
		"**Scale:** %s files of %s from the plain location, added in requests of %d downloads (`POST /v1/tasks`), "+
		"%d requests at once, each to its own output file; \"add s\" runs from the first request sent to the last "+
		"one answered, \"all done s\" from the first request to every task completed (`GET /v1/stats` polled every "+
		"100 ms); the peak RSS is the daemon's VmHWM read before it is stopped; every file's SHA-256 is checked. "+
		"The peer is aria2c's JSON-RPC (`aria2c --enable-rpc --max-concurrent-downloads=%d --file-allocation=none`), "+
		"the same downloads added with `system.multicall` of `aria2.addUri` in the same batches, "+
		"finished when `aria2.getGlobalStat` shows nothing active or waiting. "+
		"**Restart:** the daemon of the scale part is stopped (SIGTERM) and started again on its store of %s "+
		"completed tasks, %d time(s) (median shown): the time from the process's start to the first answer of "+
		"`GET /v1/version` (polled every 2 ms) and to a full list of the tasks (`GET /v1/tasks`, pages of 1,000). "+
		"**Memory:** %s downloads of one %s file (%d active, %s queued, distinct output files) from a second nginx "+
		"throttled to %s per connection, so that they stay active; once `GET /v1/stats` shows %d running and %s "+
		"queued, the daemon's VmRSS is read every 100 ms for %s and the largest reported, then every task is "+
		"paused (`POST /v1/pause-all`) and the daemon stopped. The targets are judged in the full run only. "+
		"To run this scenario alone: `bench/run --only 8`.",
		act, act, thousands(n), sizeStr(cfg.s8Size), cfg.s8Batch, cfg.s8Adders, act, thousands(n), cfg.s8Restarts,
		thousands(act+cfg.s8Queued), sizeStr(cfg.s8BigSize), act, thousands(cfg.s8Queued), cfg.s8Rate, act,
		thousands(cfg.s8Queued), cfg.s8Sample)
	scale := table{header: []string{"tool", "tasks", "add s", "tasks added/s", "all done s", "files/s", "CPU s",
		"peak RSS MiB", "time ÷ durl", "right files"}}
	targets := table{header: []string{"measure", "durl serve", "target", "met"}}
	if b.tools.durl == "" {
		scale.rows = append(scale.rows, []string{durlName, b.tools.durlSkip})
		sec.tables = append(sec.tables, scale)
		return sec
	}

	b.logf("scenario 8: generating %d files of %s", n, sizeStr(cfg.s8Size))
	files, err := b.s8Files()
	defer os.RemoveAll(filepath.Join(b.root, "s8"))
	if err != nil {
		b.fail("scenario 8", err.Error())
		return sec
	}

	// Scale, then the restarts on the store it leaves.
	out, state, err := b.s8Dirs()
	if err != nil {
		b.fail("scenario 8", err.Error())
		return sec
	}
	syscall.Sync()
	dr := b.s8DurlScale(files, state, out)
	var restarts []s8Restart
	if dr.check == "" {
		restarts = b.s8Restarts(state, out, n)
	}
	// durl's files stay until aria2c has run: ext4 without a journal is
	// slow to create files for minutes after many were deleted (see
	// scenario 6), which would slow aria2c.
	defer b.clean(out, state)
	b.s8Settle()

	ar := s8Scale{check: "not run"}
	if b.ctx.Err() == nil {
		ar = b.s8Aria2Scale(files)
		b.s8Settle()
	}

	mem := s8Mem{}
	if b.ctx.Err() == nil {
		mem = b.s8Memory()
	}

	// The scale table.
	for _, r := range []struct {
		name   string
		res    s8Scale
		isDurl bool
	}{{durlName, dr, true}, {ariaName, ar, false}} {
		if !r.res.ran {
			scale.rows = append(scale.rows, []string{r.name, r.res.check})
			continue
		}
		ratio := "–"
		if !r.isDurl && dr.ran && dr.check == "" && r.res.check == "" && dr.done > 0 {
			ratio = fmt.Sprintf("%.2f", r.res.done.Seconds()/dr.done.Seconds())
		}
		doneS, filesS := secs(r.res.done), fmt.Sprintf("%.0f", float64(n)/r.res.done.Seconds())
		if r.res.done == 0 {
			doneS, filesS = "–", "–"
		}
		scale.rows = append(scale.rows, []string{r.name, fmt.Sprint(n), secs(r.res.add),
			fmt.Sprintf("%.0f", float64(n)/r.res.add.Seconds()), doneS, filesS, secs(r.res.cpu), mib(r.res.hwm),
			ratio, fmt.Sprintf("%d/%d", r.res.right, n)})
		if r.res.check != "" {
			sec.notes = append(sec.notes, r.name+": "+b.sanitize(r.res.check))
		}
	}
	sec.tables = append(sec.tables, scale)

	// The targets table.
	judge := func(ok bool) string {
		switch {
		case b.cfg.quick:
			return "not judged (quick)"
		case ok:
			return "yes"
		default:
			return "NO"
		}
	}
	if mem.ran {
		targets.rows = append(targets.rows,
			[]string{fmt.Sprintf("RSS with %s queued and %d active: largest VmRSS of %d samples (every 100 ms)",
				thousands(mem.queued), mem.running, mem.samples), mib(mem.maxRSS) + " MiB", "< 100 MiB",
				judge(mem.maxRSS < 100*1024)},
			[]string{"peak RSS of that daemon (VmHWM: the adding included)", mib(mem.hwm) + " MiB", "–", ""},
			[]string{"connections open at the throttled nginx meanwhile", fmt.Sprint(mem.conns), "–", ""},
			[]string{fmt.Sprintf("time until %d running and %s queued, from the first add", act, thousands(cfg.s8Queued)),
				ms(mem.reach), "–", ""})
		if !b.cfg.quick && mem.maxRSS >= 100*1024 {
			b.fail("scenario 8, memory", fmt.Sprintf("VmRSS reached %s MiB with %d queued and %d active, over the 100 MiB target",
				mib(mem.maxRSS), mem.queued, mem.running))
		}
	}
	if len(restarts) > 0 {
		var vs, ls []time.Duration
		var hwm int64
		for _, r := range restarts {
			vs, ls = append(vs, r.version), append(ls, r.list)
			hwm = max(hwm, r.hwm)
		}
		mv, ml := medianDur(vs), medianDur(ls)
		targets.rows = append(targets.rows,
			[]string{fmt.Sprintf("restart with %s completed tasks in the store: process start → first answer "+
				"of GET /v1/version (median of %d: %s)", thousands(n), len(vs), durList(vs)), ms(mv), "< 1 s",
				judge(mv < time.Second)},
			[]string{fmt.Sprintf("restart: process start → all %s tasks listed (pages of 1,000; runs: %s)",
				thousands(n), durList(ls)), ms(ml), "–", ""},
			[]string{"restart: peak RSS once listed (VmHWM)", mib(hwm) + " MiB", "–", ""},
		)
		if !b.cfg.quick && mv >= time.Second {
			b.fail("scenario 8, restart", fmt.Sprintf("the API answered %s s after the start (median), over the 1 s target", secs(mv)))
		}
	}
	if dr.ran && dr.stop > 0 {
		targets.rows = append(targets.rows, []string{fmt.Sprintf("stop of the scale part's daemon (SIGTERM → exit, %s tasks)",
			thousands(n)), ms(dr.stop), "–", ""})
	}
	if len(targets.rows) > 0 {
		sec.tables = append(sec.tables, targets)
	}
	return sec
}

// s8Files generates the scale part's files under the served root.
func (b *bench) s8Files() ([]s8File, error) {
	n := b.cfg.s8Tasks
	files := make([]s8File, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("f%05d", i)
				f, err := b.serve("s8/"+name, 800_000+uint64(i), b.cfg.s8Size)
				files[i], errs[i] = s8File{name: name, url: b.url("plain", "s8/"+name), sha: f.sha}, err
			}
		})
	}
	for i := 0; i < n && b.ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := b.ctx.Err(); err != nil {
		return nil, err
	}
	return files, errors.Join(errs...)
}

// s8Dirs returns a fresh output folder and a fresh state folder whose
// socket path fits a sockaddr_un (108 bytes on Linux): under the suite's
// temp folder, else a short one of its own under the system's temp folder
// (b.clean removes either).
func (b *bench) s8Dirs() (out, state string, err error) {
	out, state = b.freshDirs("s8")
	if out == "" || state == "" {
		return "", "", errors.New("cannot create the output and state folders")
	}
	if len(filepath.Join(state, api.SocketName)) >= 100 {
		os.RemoveAll(state)
		if state, err = os.MkdirTemp("", "durl-b8-"); err != nil {
			return "", "", err
		}
	}
	return out, state, nil
}

// s8Settle flushes what the last run wrote and, in the full run, waits a
// little, so that its write-back does not slow the next run.
func (b *bench) s8Settle() {
	syscall.Sync()
	if b.cfg.quick {
		return
	}
	select {
	case <-time.After(6 * time.Second):
	case <-b.ctx.Done():
	}
}

// s8DurlScale runs the scale part with durl serve on a fresh state
// folder; the daemon is stopped at the end and the state kept.
func (b *bench) s8DurlScale(files []s8File, state, out string) s8Scale {
	var res s8Scale
	n := len(files)
	p, c, err := b.startDaemon(state, out)
	if err != nil {
		res.check = err.Error()
		b.fail("scenario 8, durl serve", res.check)
		return res
	}
	defer p.kill()
	res.ran = true
	ds := make([]api.Download, n)
	for i, f := range files {
		ds[i] = api.Download{URL: f.url, Output: filepath.Join(out, f.name)}
	}
	t0 := time.Now()
	add, tasks, err := b.addAll(c, ds)
	res.add = add
	b.logf("s8 durl serve: %d tasks added in %.2fs", n, add.Seconds())
	var checks []string
	if err != nil {
		checks = append(checks, "add: "+err.Error())
	} else if ids := uniqueIDs(tasks); ids != n {
		checks = append(checks, fmt.Sprintf("add: %d distinct task IDs for %d downloads", ids, n))
	}
	if len(checks) == 0 {
		st, err := b.pollStats(p, c, b.s8Timeout(), func(st api.Stats) bool {
			return st.Tasks[api.StateQueued]+st.Tasks[api.StateRunning] == 0 && sumStates(st) >= n
		})
		res.done = time.Since(t0)
		switch {
		case err != nil:
			checks = append(checks, "finish: "+err.Error())
			res.done = 0
		case st.Tasks[api.StateCompleted] != n:
			checks = append(checks, fmt.Sprintf("%d of %d tasks completed (%s)%s", st.Tasks[api.StateCompleted], n,
				statesStr(st), b.firstFailure(c)))
		}
		b.logf("s8 durl serve: all ended %.2fs after the first add: %s", res.done.Seconds(), statesStr(st))
	}
	res.hwm = vmHWM(p.pid())
	stop, err := p.stop(time.Minute)
	res.stop, res.cpu = stop, p.res.CPU
	if err != nil {
		checks = append(checks, "stop: "+err.Error())
	} else if !p.res.OK() {
		checks = append(checks, fmt.Sprintf("durl serve ended with %s: %s", p.res.describe(), tailLines(p.res.Output, 2)))
	}
	res.right = b.s8Check(files, out)
	if res.right != n {
		checks = append(checks, fmt.Sprintf("%d of %d files missing or wrong", n-res.right, n))
	}
	res.check = strings.Join(checks, "; ")
	b.logf("s8 durl serve: add %.2fs, done %.2fs, cpu %.2fs, peak RSS %s MiB, stop %.2fs, %d/%d right: %s",
		res.add.Seconds(), res.done.Seconds(), res.cpu.Seconds(), mib(res.hwm), res.stop.Seconds(), res.right, n, okStr(res.check))
	if res.check != "" {
		b.fail("scenario 8, durl serve", res.check)
	}
	return res
}

// s8Check counts the files in out with the right SHA-256.
func (b *bench) s8Check(files []s8File, out string) int {
	right := 0
	for _, f := range files {
		if checkFile(filepath.Join(out, f.name), f.sha, b.cfg.s8Size) == "" {
			right++
		}
	}
	return right
}

// s8Timeout bounds the wait for the scale part's downloads to finish.
func (b *bench) s8Timeout() time.Duration {
	if b.cfg.quick {
		return time.Minute
	}
	return 10 * time.Minute
}

// s8Restarts starts the daemon again on state, which holds n completed
// tasks, s8Restarts times: time to the first answer and to a full list.
func (b *bench) s8Restarts(state, out string, n int) []s8Restart {
	var rs []s8Restart
	for i := 0; i < b.cfg.s8Restarts && b.ctx.Err() == nil; i++ {
		p, c, err := b.startDaemon(state, out)
		if err != nil {
			b.fail("scenario 8, restart", err.Error())
			return rs
		}
		// startDaemon returns once GET /v1/version answered, and took
		// its time then.
		r := s8Restart{version: p.ready}
		listed, completed, err := b.listAll(c, n)
		r.list = time.Since(p.started)
		r.hwm = vmHWM(p.pid())
		_, errStop := p.stop(time.Minute)
		p.kill()
		switch {
		case err != nil:
			b.fail("scenario 8, restart", "list: "+err.Error())
		case listed != n || completed != n:
			b.fail("scenario 8, restart", fmt.Sprintf("listed %d tasks, %d completed; want %d completed", listed, completed, n))
		case errStop != nil:
			b.fail("scenario 8, restart", "stop: "+errStop.Error())
		default:
			rs = append(rs, r)
		}
		b.logf("s8 restart %d/%d: API after %.3fs, %d tasks listed after %.3fs, peak RSS %s MiB",
			i+1, b.cfg.s8Restarts, r.version.Seconds(), listed, r.list.Seconds(), mib(r.hwm))
	}
	return rs
}

// listAll lists every task, in pages of 1,000, and counts them and the
// completed ones. At most n/1000+2 pages.
func (b *bench) listAll(c *client.Client, n int) (listed, completed int, err error) {
	after := ""
	for page := 0; page < n/1000+2; page++ {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		l, err := c.List(ctx, api.ListQuery{After: after, Limit: 1000})
		cancel()
		if err != nil {
			return listed, completed, err
		}
		for _, t := range l.Tasks {
			listed++
			if t.State == api.StateCompleted {
				completed++
			}
		}
		if l.Next == "" {
			return listed, completed, nil
		}
		after = l.Next
	}
	return listed, completed, fmt.Errorf("more than %d pages", n/1000+2)
}

// s8Memory runs the memory part: s8Active downloads from a slow nginx and
// s8Queued more queued, VmRSS sampled every 100 ms.
func (b *bench) s8Memory() s8Mem {
	res := s8Mem{conns: -1}
	cfg := b.cfg
	act, total := cfg.s8Active, cfg.s8Active+cfg.s8Queued
	fail := func(msg string) s8Mem {
		b.fail("scenario 8, memory", msg)
		return res
	}
	slow, err := nginxtest.Start(nginxtest.Options{Root: b.root, LimitRate: cfg.s8Rate})
	if err != nil {
		return fail("second nginx: " + err.Error())
	}
	defer func() {
		if err := slow.Stop(); err != nil {
			b.logf("s8 memory: %v", err)
		}
	}()
	b.logf("s8 memory: second nginx (pid %d) throttled to %s per connection; generating %s", slow.PID(), cfg.s8Rate, sizeStr(cfg.s8BigSize))
	f, err := b.serve("s8-big.bin", 8, cfg.s8BigSize)
	defer os.Remove(filepath.Join(b.root, "s8-big.bin"))
	if err != nil {
		return fail(err.Error())
	}
	out, state, err := b.s8Dirs()
	if err != nil {
		return fail(err.Error())
	}
	defer b.clean(out, state)
	p, c, err := b.startDaemon(state, out)
	if err != nil {
		return fail(err.Error())
	}
	defer p.kill()
	url := slow.URL + "/throttled/" + f.name
	ds := make([]api.Download, total)
	for i := range ds {
		ds[i] = api.Download{URL: url, Output: filepath.Join(out, fmt.Sprintf("b%05d.bin", i))}
	}
	t0 := time.Now()
	add, tasks, err := b.addAll(c, ds)
	if err != nil {
		return fail("add: " + err.Error())
	}
	if ids := uniqueIDs(tasks); ids != total {
		return fail(fmt.Sprintf("add: %d distinct task IDs for %d downloads", ids, total))
	}
	st, err := b.pollStats(p, c, time.Minute, func(st api.Stats) bool {
		return st.Tasks[api.StateRunning] == act && st.Tasks[api.StateQueued] == cfg.s8Queued
	})
	if err != nil {
		return fail(fmt.Sprintf("waiting for %d running and %d queued: %v", act, cfg.s8Queued, err))
	}
	res.reach = time.Since(t0)
	b.logf("s8 memory: %d tasks added in %.2fs; %s after %.2fs", total, add.Seconds(), statesStr(st), res.reach.Seconds())
	res.ran = true
	n := int(cfg.s8Sample / (100 * time.Millisecond))
	for i := 0; i < n && b.ctx.Err() == nil; i++ {
		if v := vmRSS(p.pid()); v > 0 {
			res.maxRSS = max(res.maxRSS, v)
			res.samples++
		}
		if i == n/2 {
			if k, err := slow.ActiveConnections(); err == nil {
				res.conns = k - 1 // without the asking one
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-b.ctx.Done():
		}
	}
	res.hwm = vmHWM(p.pid())
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	st, err = c.Stats(ctx)
	cancel()
	if err != nil {
		return fail("stats: " + err.Error())
	}
	res.running, res.queued = st.Tasks[api.StateRunning], st.Tasks[api.StateQueued]
	b.logf("s8 memory: %s at the end of the sampling; VmRSS max %s MiB over %d samples, VmHWM %s MiB, %d connections at nginx",
		statesStr(st), mib(res.maxRSS), res.samples, mib(res.hwm), res.conns)
	if res.running != act || res.queued != cfg.s8Queued {
		b.fail("scenario 8, memory", fmt.Sprintf("the sampling ended with %s, not %d running and %d queued: "+
			"the downloads are not slow enough", statesStr(st), act, cfg.s8Queued))
	}
	ctx, cancel = context.WithTimeout(b.ctx, 30*time.Second)
	_, err = c.PauseAll(ctx)
	cancel()
	if err != nil {
		b.fail("scenario 8, memory", "pause-all: "+err.Error())
	}
	if _, err := p.stop(time.Minute); err != nil {
		b.fail("scenario 8, memory", "stop: "+err.Error())
	}
	return res
}

// ---- the daemon's process ----

// bgProc is a long-running process of the suite (a daemon), in its own
// process group, stopped by its PID (SIGTERM, then SIGKILL to its group).
type bgProc struct {
	cmd     *exec.Cmd
	out     *tailBuf
	started time.Time
	ready   time.Duration // start → first answer, for the daemons that have one
	done    chan struct{} // closed once waited for; res is set then
	res     Run
}

// startBg starts argv in the background. The suite's context kills it.
func (b *bench) startBg(argv []string) (*bgProc, error) {
	cmd := exec.CommandContext(b.ctx, argv[0], argv[1:]...)
	cmd.Dir = b.tmp
	cmd.Env = childEnv()
	out := &tailBuf{max: 16 * kiB}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 3 * time.Second
	p := &bgProc{cmd: cmd, out: out, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := cmd.Wait()
		r := Run{Wall: time.Since(p.started), Exit: -1, Output: out.String()}
		if ps := cmd.ProcessState; ps != nil {
			if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
				r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Exited() {
				r.Exit = ws.ExitStatus()
			}
		} else if err != nil {
			r.Err = err
		}
		p.res = r
		close(p.done)
	}()
	return p, nil
}

func (p *bgProc) pid() int { return p.cmd.Process.Pid }

func (p *bgProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process and waits for it to exit, at most
// timeout, then kills its group. It returns how long the exit took.
func (p *bgProc) stop(timeout time.Duration) (time.Duration, error) {
	if !p.running() {
		return 0, nil
	}
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(t0), nil
	case <-time.After(timeout):
	}
	p.kill()
	return time.Since(t0), fmt.Errorf("still running %v after SIGTERM; killed", timeout)
}

// kill SIGKILLs the process's group if it still runs, and waits for it
// (at most 10 s).
func (p *bgProc) kill() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// startDaemon starts durl serve on state, with downloads allowed into
// out, and waits (at most 30 s) until GET /v1/version answers; p.ready is
// the time from the process's start to that answer.
func (b *bench) startDaemon(state, out string) (*bgProc, *client.Client, error) {
	act := strconv.Itoa(b.cfg.s8Active)
	p, err := b.startBg([]string{b.tools.durl, "--state", state, "serve", "-d", out,
		"--max-active", act, "--max-conns-per-host", act})
	if err != nil {
		return nil, nil, fmt.Errorf("durl serve: %w", err)
	}
	deadline := p.started.Add(30 * time.Second)
	for {
		if !p.running() {
			return nil, nil, fmt.Errorf("durl serve exited (%s): %s", p.res.describe(), b.sanitize(tailLines(p.res.Output, 2)))
		}
		if c, err := client.Dial(state); err == nil {
			ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
			_, err = c.Version(ctx)
			cancel()
			if err == nil {
				p.ready = time.Since(p.started)
				return p, c, nil
			}
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			p.kill()
			return nil, nil, fmt.Errorf("durl serve: the API did not answer within 30 s: %s", b.sanitize(tailLines(p.out.String(), 2)))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// addAll adds ds in requests of s8Batch downloads, s8Adders at once, and
// returns the time from the first request to the last answer, and the
// tasks in the order of ds.
func (b *bench) addAll(c *client.Client, ds []api.Download) (time.Duration, []api.Task, error) {
	return batches(b, len(ds), func(ctx context.Context, lo, hi int) ([]api.Task, error) {
		return c.Add(ctx, ds[lo:hi]...)
	})
}

// batches runs add for [lo, hi) slices of n in requests of s8Batch,
// s8Adders at once, each bounded by 2 minutes.
func batches[T any](b *bench, n int, add func(ctx context.Context, lo, hi int) ([]T, error)) (time.Duration, []T, error) {
	size, workers := b.cfg.s8Batch, b.cfg.s8Adders
	nb := (n + size - 1) / size
	out := make([]T, n)
	errs := make([]error, nb)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(workers, nb) {
		wg.Go(func() {
			for i := range next {
				lo, hi := i*size, min((i+1)*size, n)
				ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
				got, err := add(ctx, lo, hi)
				cancel()
				if err == nil && len(got) != hi-lo {
					err = fmt.Errorf("%d answers for %d downloads", len(got), hi-lo)
				}
				if err != nil {
					errs[i] = fmt.Errorf("request %d: %w", i+1, err)
					continue
				}
				copy(out[lo:hi], got)
			}
		})
	}
	for i := range nb {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return took, out, err // the first, in order
		}
	}
	return took, out, nil
}

// pollStats reads the daemon's stats every 100 ms until done says so, at
// most timeout; it gives up when the daemon exits.
func (b *bench) pollStats(p *bgProc, c *client.Client, timeout time.Duration, done func(api.Stats) bool) (api.Stats, error) {
	const every = 100 * time.Millisecond
	deadline := time.Now().Add(timeout)
	var st api.Stats
	var last error
	for i := 0; i <= int(timeout/every); i++ {
		if !p.running() {
			return st, fmt.Errorf("the daemon exited (%s): %s", p.res.describe(), tailLines(p.res.Output, 2))
		}
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		s, err := c.Stats(ctx)
		cancel()
		if err == nil {
			st = s
			if done(st) {
				return st, nil
			}
		}
		last = err
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(every):
		case <-b.ctx.Done():
		}
	}
	if last != nil {
		return st, fmt.Errorf("not done within %v: %w", timeout, last)
	}
	return st, fmt.Errorf("not done within %v (%s)", timeout, statesStr(st))
}

// firstFailure is "; first failure: MESSAGE" for the first failed task,
// or "".
func (b *bench) firstFailure(c *client.Client) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	l, err := c.List(ctx, api.ListQuery{State: api.StateFailed, Limit: 1})
	if err != nil || len(l.Tasks) == 0 || l.Tasks[0].Error == nil {
		return ""
	}
	return "; first failure: " + l.Tasks[0].Error.Message
}

func sumStates(st api.Stats) int {
	n := 0
	for _, v := range st.Tasks {
		n += v
	}
	return n
}

// statesStr is "completed 9990, failed 10": the non-zero states.
func statesStr(st api.Stats) string {
	var p []string
	for _, k := range sortedKeys(st.Tasks) {
		if v := st.Tasks[k]; v > 0 {
			p = append(p, fmt.Sprintf("%s %d", k, v))
		}
	}
	if len(p) == 0 {
		return "no tasks"
	}
	return strings.Join(p, ", ")
}

func uniqueIDs(tasks []api.Task) int {
	seen := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		if t.ID != "" {
			seen[t.ID] = true
		}
	}
	return len(seen)
}

func medianDur(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func durList(v []time.Duration) string {
	var p []string
	for _, d := range v {
		p = append(p, fmt.Sprintf("%.3f", d.Seconds()))
	}
	return strings.Join(p, ", ") + " s"
}

// ms is d in seconds with 3 decimals and its unit: "0.042 s".
func ms(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// thousands is n with a comma every three digits: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ---- the peer: aria2c's JSON-RPC ----

// aria2RPC calls aria2c's JSON-RPC on 127.0.0.1.
type aria2RPC struct {
	url   string
	token string // "token:SECRET"
	hc    *http.Client
}

func (a *aria2RPC) call(ctx context.Context, method string, params []any, out any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "b", "method": method,
		"params": append([]any{a.token}, params...)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: %w", method, resp.Status, err)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: %d %s", method, r.Error.Code, r.Error.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result, out)
}

// addMany adds files with one system.multicall of aria2.addUri and
// returns their GIDs.
func (a *aria2RPC) addMany(ctx context.Context, files []s8File) ([]string, error) {
	calls := make([]any, len(files))
	for i, f := range files {
		calls[i] = map[string]any{"methodName": "aria2.addUri",
			"params": []any{a.token, []string{f.url}, map[string]string{"out": f.name}}}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "b", "method": "system.multicall",
		"params": []any{calls}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Result []json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("system.multicall: %s: %w", resp.Status, err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("system.multicall: %s", r.Error.Message)
	}
	gids := make([]string, 0, len(r.Result))
	for i, raw := range r.Result {
		var ok []string // a success is [GID]; a fault is {faultCode, faultString}
		if err := json.Unmarshal(raw, &ok); err != nil || len(ok) != 1 {
			return nil, fmt.Errorf("aria2.addUri of %s: %s", files[i].name, string(raw))
		}
		gids = append(gids, ok[0])
	}
	return gids, nil
}

// s8Aria2Scale runs the scale part with aria2c's JSON-RPC.
func (b *bench) s8Aria2Scale(files []s8File) s8Scale {
	var res s8Scale
	n, act := len(files), b.cfg.s8Active
	fail := func(msg string) s8Scale {
		res.check = msg
		b.fail("scenario 8, aria2c", msg)
		return res
	}
	port, err := freePort()
	if err != nil {
		return fail(err.Error())
	}
	var key [16]byte
	rand.Read(key[:])
	secret := hex.EncodeToString(key[:])
	out, err := os.MkdirTemp(b.outs, "s8-aria2-")
	if err != nil {
		return fail(err.Error())
	}
	defer b.clean(out)
	syscall.Sync()
	p, err := b.startBg([]string{"aria2c", "--no-conf", "--enable-rpc", "--rpc-listen-all=false",
		fmt.Sprintf("--rpc-listen-port=%d", port), "--rpc-secret=" + secret, "--rpc-max-request-size=16M",
		fmt.Sprintf("--max-concurrent-downloads=%d", act), "--file-allocation=none", "--auto-file-renaming=false",
		"--console-log-level=warn", "--summary-interval=0", fmt.Sprintf("--stop-with-process=%d", os.Getpid()),
		"--dir=" + out})
	if err != nil {
		return fail("aria2c: " + err.Error())
	}
	defer p.kill()
	a := &aria2RPC{url: fmt.Sprintf("http://127.0.0.1:%d/jsonrpc", port), token: "token:" + secret,
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		err := a.call(ctx, "aria2.getVersion", nil, nil)
		cancel()
		if err == nil {
			break
		}
		if !p.running() || time.Now().After(deadline) || b.ctx.Err() != nil {
			return fail(fmt.Sprintf("the RPC did not answer: %v: %s", err, b.sanitize(tailLines(p.out.String(), 2))))
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.ran = true
	t0 := time.Now()
	add, gids, err := batches(b, n, func(ctx context.Context, lo, hi int) ([]string, error) {
		return a.addMany(ctx, files[lo:hi])
	})
	res.add = add
	var checks []string
	if err != nil {
		checks = append(checks, "add: "+err.Error())
	} else if len(slices.Compact(slices.Sorted(slices.Values(gids)))) != n {
		checks = append(checks, "add: GIDs not distinct")
	}
	if len(checks) == 0 {
		b.logf("s8 aria2c: %d downloads added in %.2fs", n, add.Seconds())
		var gs struct {
			Active       string `json:"numActive"`
			Waiting      string `json:"numWaiting"`
			StoppedTotal string `json:"numStoppedTotal"`
		}
		const every = 100 * time.Millisecond
		timeout := b.s8Timeout()
		ended := false
		for i := 0; i <= int(timeout/every) && p.running() && b.ctx.Err() == nil; i++ {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			err := a.call(ctx, "aria2.getGlobalStat", nil, &gs)
			cancel()
			stopped, _ := strconv.Atoi(gs.StoppedTotal)
			if err == nil && gs.Active == "0" && gs.Waiting == "0" && stopped >= n {
				ended = true
				break
			}
			time.Sleep(every)
		}
		res.done = time.Since(t0)
		if !ended {
			checks = append(checks, fmt.Sprintf("not done within %v (active %s, waiting %s, stopped %s)", timeout,
				gs.Active, gs.Waiting, gs.StoppedTotal))
			res.done = 0
		}
	}
	res.hwm = vmHWM(p.pid())
	stop, err := p.stop(time.Minute)
	res.stop, res.cpu = stop, p.res.CPU
	if err != nil {
		checks = append(checks, "stop: "+err.Error())
	}
	res.right = b.s8Check(files, out)
	if res.right != n {
		checks = append(checks, fmt.Sprintf("%d of %d files missing or wrong", n-res.right, n))
	}
	res.check = strings.Join(checks, "; ")
	b.logf("s8 aria2c: add %.2fs, done %.2fs, cpu %.2fs, peak RSS %s MiB, stop %.2fs, %d/%d right: %s",
		res.add.Seconds(), res.done.Seconds(), res.cpu.Seconds(), mib(res.hwm), res.stop.Seconds(), res.right, n, okStr(res.check))
	if res.check != "" {
		// A peer's failure here means the suite itself is broken, as in
		// scenario 6.
		b.fail("scenario 8, aria2c", res.check)
	}
	return res
}

// freePort returns a free TCP port of 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
