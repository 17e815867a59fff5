package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durl-dev/durl/internal/nginxtest"
	"github.com/durl-dev/durl/internal/spans"
)

// rowStats is what the timed scenarios keep per row.
type rowStats struct {
	single
	group string // rows compare (ratio) with durl's row of the same group
	runs  []Run
	bad   []string // failed checks
}

func (s rowStats) medianWall() time.Duration {
	return median(s.runs, func(r Run) time.Duration { return r.Wall })
}
func (s rowStats) medianCPU() time.Duration {
	return median(s.runs, func(r Run) time.Duration { return r.CPU })
}
func (s rowStats) peakRSS() int64 {
	var m int64
	for _, r := range s.runs {
		m = max(m, r.MaxRSS)
	}
	return m
}

func median(runs []Run, f func(Run) time.Duration) time.Duration {
	if len(runs) == 0 {
		return 0
	}
	v := make([]time.Duration, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// freshDirs returns a new empty output folder and a new state folder.
func (b *bench) freshDirs(tag string) (out, state string) {
	out, _ = os.MkdirTemp(b.outs, tag+"-")
	state, _ = os.MkdirTemp(filepath.Join(b.tmp, "state"), tag+"-")
	return out, state
}

func (b *bench) clean(dirs ...string) {
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}

// emptyPageCache flushes what earlier runs wrote and, where the suite may
// (as root), empties the page cache, then reads the files of folder warm
// back in, so that the server reads none from the disk. It reports whether
// the cache was emptied.
//
// Without it, a run into new folders writes into memory the page cache
// never used before; on a virtual machine that copy can take twice as
// long per byte (in perf, the kernel's copy into the page cache), which
// slows a tool that writes from one thread more than one that writes from
// several, and makes a run's speed depend on how much the runs before it
// wrote. It also ends ext4's slow phase after deletes (see scenario 6): an
// inode whose block of the inode table is no longer cached counts as
// written back, free to reuse.
func (b *bench) emptyPageCache(warm string) bool {
	syscall.Sync()
	if os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0) != nil {
		return false
	}
	entries, _ := os.ReadDir(warm)
	for _, e := range entries {
		os.ReadFile(filepath.Join(warm, e.Name()))
	}
	return true
}

// timedSingle runs every row reps times, alternating rows (the order
// rotates each repetition), each run into a fresh folder after a sync so
// that one run's dirty pages do not slow the next; checks the SHA-256.
func (b *bench) timedSingle(scn int, rows []rowStats, f served, url string, timeout time.Duration) []rowStats {
	reps := b.cfg.reps
	if scn == 5 {
		reps = b.cfg.s5Reps
	}
	for rep := 0; rep < reps; rep++ {
		for k := range rows {
			i := (k + rep) % len(rows)
			row := &rows[i]
			if row.skip != "" || b.ctx.Err() != nil {
				continue
			}
			out, state := b.freshDirs(fmt.Sprintf("s%d", scn))
			dest := filepath.Join(out, filepath.Base(f.name))
			syscall.Sync()
			r := b.runSteps(row.cmd(dest, url, state), timeout, nil)
			check := ""
			if !r.OK() {
				check = r.describe() + ": " + b.sanitize(tailLines(r.Output, 2))
			} else if c := checkFile(dest, f.sha, f.size); c != "" {
				check = c
			}
			b.clean(out, state)
			row.runs = append(row.runs, r)
			b.noteMem(row.tool, scn, r.MaxRSS)
			b.logf("s%d %-28s rep %d/%d: %6.2fs cpu %5.2fs rss %4d MiB %s", scn, row.name, rep+1, reps,
				r.Wall.Seconds(), r.CPU.Seconds(), r.MaxRSS/1024, okStr(check))
			if check != "" {
				row.bad = append(row.bad, check)
				// In these scenarios every tool must produce the file:
				// a peer's failure means the suite itself is broken.
				b.fail(fmt.Sprintf("scenario %d, %s", scn, row.name), check)
			}
		}
	}
	return rows
}

func okStr(check string) string {
	if check == "" {
		return "ok"
	}
	return "WRONG: " + check
}

// throttledTimeout is a bound for one download of size bytes from a
// throttled location over n connections.
func (b *bench) throttledTimeout(size int64, n int) time.Duration {
	return time.Duration(float64(size)/b.cfg.rateBytes/float64(n)*2.5*float64(time.Second)) + 60*time.Second
}

// ---- 1. Throughput ----

func (b *bench) scenarioThroughput() section {
	sec := section{n: 1, title: "Throughput"}
	b.logf("scenario 1: generating %s", sizeStr(b.cfg.s1Size))
	f, err := b.serve("s1.bin", 1, b.cfg.s1Size)
	if err != nil {
		b.fail("scenario 1", err.Error())
		return sec
	}
	defer os.Remove(f.path)
	url := b.url("plain", f.name)
	src := f.path
	rows := []rowStats{
		// durl -x 1 first: the ratios compare with the last durl row of a
		// group, the automatic default, which must be at least as fast.
		{single: b.durlRow("durl -x 1", b.durlGet("-x", "1"), true), group: "synced"},
		{single: b.durlRow("durl", b.durlGet(), true), group: "synced"},
		{single: single{name: "curl -o F URL && sync F", tool: "curl", synced: true, cmd: func(dest, url, state string) [][]string {
			return [][]string{curlGet(false)(dest, url, state)[0], {"sync", dest}}
		}}, group: "synced"},
		{single: single{name: "dd bs=4M conv=fdatasync (plain copy)", tool: "dd", synced: true, cmd: func(dest, url, state string) [][]string {
			return [][]string{{"dd", "if=" + src, "of=" + dest, "bs=4M", "conv=fdatasync", "status=none"}}
		}}, group: "synced"},
		{single: b.durlRow("durl --no-sync", b.durlGet("--no-sync"), false), group: "not synced"},
		{single: single{name: "curl", tool: "curl", cmd: curlGet(false)}, group: "not synced"},
		{single: single{name: "wget", tool: "wget", cmd: wgetGet(false)}, group: "not synced"},
		{single: single{name: "aria2c -x1", tool: "aria2c", cmd: aria2Get(1, false)}, group: "not synced"},
		{single: single{name: "cp (plain copy)", tool: "cp", cmd: func(dest, url, state string) [][]string {
			return [][]string{{"cp", src, dest}}
		}}, group: "not synced"},
	}
	timeout := time.Duration(float64(f.size)/(10*miB)*float64(time.Second)) + 60*time.Second
	rows = b.timedSingle(1, rows, f, url, timeout)
	sec.intro = fmt.Sprintf("One %s file from the plain location over one connection into a fresh folder on the same disk "+
		"as the served file (which is in the page cache: written just before, plenty of RAM). `sync` runs before every run. "+
		"Rows \"synced\" end with the data on disk (durl's default, curl followed by `sync F`, `dd conv=fdatasync`); "+
		"rows \"not synced\" leave it in the page cache. The ratio compares with durl's row of the same kind "+
		"(time ÷ durl's time: above 1 means durl is faster). `cp` and `dd` copy the served file onto the same disk, the "+
		"limit without a network: `cp` copies inside the kernel (copy_file_range), `dd` through its own buffer with read/write.",
		sizeStr(f.size))
	sec.tables = append(sec.tables, b.timedTable(rows, f.size, 0))
	return sec
}

// timedTable renders rows with medians and ratios; files>0 adds files/s.
func (b *bench) timedTable(rows []rowStats, bytesPerRun int64, files int) table {
	t := table{header: []string{"tool", "kind", "median s", "MB/s", "CPU s", "peak RSS MiB", "time ÷ durl", "right file"}}
	if files > 0 {
		t.header = []string{"tool", "kind", "median s", "files/s", "MB/s", "CPU s", "peak RSS MiB", "time ÷ durl", "right files"}
	}
	durlTime := map[string]time.Duration{}
	for _, r := range rows {
		if r.isDurl && r.skip == "" && len(r.runs) > 0 && len(r.bad) == 0 {
			durlTime[r.group] = r.medianWall()
		}
	}
	for _, r := range rows {
		if r.skip != "" {
			row := []string{r.name, r.group, r.skip, "", "", "", "", ""}
			if files > 0 {
				row = []string{r.name, r.group, r.skip, "", "", "", "", "", ""}
			}
			t.rows = append(t.rows, row)
			continue
		}
		if len(r.runs) == 0 {
			continue
		}
		w := r.medianWall()
		ratio := "–"
		if d, ok := durlTime[r.group]; ok && d > 0 {
			ratio = fmt.Sprintf("%.2f", w.Seconds()/d.Seconds())
		}
		right := fmt.Sprintf("%d/%d", len(r.runs)-len(r.bad), len(r.runs))
		mbs := fmt.Sprintf("%.0f", float64(bytesPerRun)/1e6/w.Seconds())
		row := []string{r.name, r.group, secs(w), mbs, secs(r.medianCPU()), mib(r.peakRSS()), ratio, right}
		if files > 0 {
			row = []string{r.name, r.group, secs(w), fmt.Sprintf("%.0f", float64(files)/w.Seconds()), mbs,
				secs(r.medianCPU()), mib(r.peakRSS()), ratio, right}
		}
		t.rows = append(t.rows, row)
	}
	return t
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
func mib(kib int64) string        { return fmt.Sprintf("%.1f", float64(kib)/1024) }

// ---- kill and resume machinery (2, 3, 4) ----

// krResult is one tool's run through killResume.
type krResult struct {
	attempts  int
	killedAt  []int64     // progress (bytes) when each kill happened
	notKilled int         // kill moments the tool finished before
	total     Run         // all attempts summed (time, CPU; peak RSS is the max)
	final     Run         // the last attempt
	starts    []time.Time // when each attempt started
}

// killResume runs the row's command; attempt i (i < len(fractions)) is
// SIGKILLed once the download's progress (see progress) passes
// fractions[i] of size; after each killed or failed attempt, between(i)
// runs (may be nil) and the same command is run again. The attempt after
// the last kill runs to its end.
func (b *bench) killResume(row single, url, dest, state string, size int64, fractions []float64, timeout time.Duration, between func(i int)) krResult {
	var res krResult
	for i := 0; i <= len(fractions) && b.ctx.Err() == nil; i++ {
		var kill func() bool
		if i < len(fractions) {
			target := int64(fractions[i] * float64(size))
			kill = func() bool { return progress(dest, state) >= target }
		}
		res.starts = append(res.starts, time.Now())
		r := b.runSteps(row.cmd(dest, url, state), timeout, kill)
		res.attempts++
		res.total.add(r)
		res.final = r
		if r.Killed {
			res.killedAt = append(res.killedAt, progress(dest, state))
		}
		if i == len(fractions) || r.TimedOut || (!r.Killed && r.OK()) {
			res.notKilled = len(fractions) - len(res.killedAt)
			break
		}
		if between != nil {
			between(i)
		}
	}
	return res
}

// killFractions returns n kill moments, one in each of n equal slices of
// [lo, hi], from a RNG seeded by the suite's seed and the scenario.
func (b *bench) killFractions(stream uint64, n int, lo, hi float64) []float64 {
	rng := rand.New(rand.NewPCG(b.cfg.seed, stream))
	out := make([]float64, n)
	w := (hi - lo) / float64(n)
	for i := range out {
		out[i] = lo + w*float64(i) + rng.Float64()*w
	}
	return out
}

func pct(n, size int64) string { return fmt.Sprintf("%.0f%%", float64(n)*100/float64(size)) }

func killedAtStr(k krResult, size int64) string {
	var p []string
	for _, n := range k.killedAt {
		p = append(p, pct(n, size))
	}
	s := strings.Join(p, ", ")
	if s == "" {
		s = "none"
	}
	if k.notKilled > 0 {
		s += fmt.Sprintf(" (%d: finished first)", k.notKilled)
	}
	return s
}

// parallel runs fn for every row without skip at the same time and waits.
// The kill scenarios run their tools in parallel: each on its own
// connection to its own URL, throttled, so they do not compete for the
// bandwidth, and the outcome, not the time, is what they measure.
func (b *bench) parallel(rows []single, fn func(i int, row single)) {
	var wg sync.WaitGroup
	for i, row := range rows {
		if row.skip != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, row)
		}()
	}
	wg.Wait()
}

// toolLink gives tool i its own name (a hard link) for a served file, so
// that its requests have their own lines in the access log.
func (b *bench) toolLink(f served, i int) (string, error) {
	ext := filepath.Ext(f.name)
	name := fmt.Sprintf("%s-%d%s", strings.TrimSuffix(f.name, ext), i, ext)
	return name, linkInto(f.path, filepath.Join(b.root, name))
}

// ---- 2. Kill and resume ----

func (b *bench) scenarioKillResume() section {
	sec := section{n: 2, title: "Kill and resume"}
	size := b.cfg.s2Size
	b.logf("scenario 2: generating %s", sizeStr(size))
	f, err := b.serve("s2.bin", 1, size) // same content as scenario 1's file
	if err != nil {
		b.fail("scenario 2", err.Error())
		return sec
	}
	defer os.Remove(f.path)
	fr := b.killFractions(2, b.cfg.s2Kills, 0.1, 0.9)
	var moments []string
	for _, x := range fr {
		moments = append(moments, fmt.Sprintf("%.0f%%", x*100))
	}
	sec.intro = fmt.Sprintf("One %s file from the throttled location (%s per connection). Each tool is SIGKILLed when its "+
		"file (the destination, `<dest>*` beside it, or its state folder; whichever holds most data, counting neither "+
		"holes nor space reserved but unwritten) passes %s of the size, "+
		"and rerun with the same command after each kill. \"Written, fetched again\" is the tool's own loss: the bytes "+
		"its file held after a kill (read once the tool was dead, compared with the served file) that the server then "+
		"sent again. D5 bounds it for durl at 256 KiB a connection per kill; durl runs with its defaults, here 4 "+
		"connections, the peers with 1. \"Sent twice\" is what nginx's access log says it sent (sum of "+
		"$body_bytes_sent) minus the file size: it adds what was still in the kernel's socket buffers at a kill, never "+
		"read by the tool, and what nginx writes to a killed tool's socket before it notices the tool is gone (up to "+
		"one 2 MiB `sendfile` chunk), costs that grow with the connections. One run per tool; the tools run at the "+
		"same time, each on its own throttled connection(s).", sizeStr(size), b.cfg.rate, strings.Join(moments, ", "))
	t := table{header: []string{"tool", "killed at", "attempts", "last exit", "right file", "server sent MiB",
		"written, fetched again KiB", "sent twice MiB", "total s", "CPU s", "peak RSS MiB"}}
	rows := b.resumeRows()
	t.rows = make([][]string, len(rows))
	for i, row := range rows {
		t.rows[i] = []string{row.name, row.skip}
	}
	type result struct {
		name    string
		k       krResult
		check   string
		written [][]spans.Span // what the tool's file held after each attempt but the last
	}
	res := make([]*result, len(rows))
	b.parallel(rows, func(i int, row single) {
		name, err := b.toolLink(f, i)
		if err != nil {
			b.fail("scenario 2", err.Error())
			return
		}
		out, state := b.freshDirs("s2")
		dest := filepath.Join(out, name)
		var written [][]spans.Span
		between := func(int) { written = append(written, b.writtenSpans(dest, state, f.path)) }
		k := b.killResume(row, b.url("throttled", name), dest, state, size, fr, b.throttledTimeout(size, 1), between)
		check := checkFile(dest, f.sha, size)
		if !k.final.OK() && check == "" {
			check = "right bytes but " + k.final.describe()
		}
		b.clean(out, state)
		b.logf("s2 %-16s killed at %s, %d attempts, %s, %s", row.name, killedAtStr(k, size), k.attempts,
			k.final.describe(), okStr(check))
		res[i] = &result{name, k, check, written}
	})
	// The access log once every tool is done (AccessLog waits for idle).
	entries, err := b.srv.AccessLog()
	if err != nil {
		b.fail("scenario 2", "access log: "+err.Error())
	}
	for i, row := range rows {
		r := res[i]
		if r == nil {
			continue
		}
		os.Remove(filepath.Join(b.root, r.name))
		var sent int64
		var bodies [][]spans.Span // per attempt
		for _, e := range entries {
			if !strings.HasSuffix(e.URI, "/"+r.name) {
				continue
			}
			sent += e.BodyBytesSent
			if a := attemptOf(e, r.k.starts); a >= 0 {
				for len(bodies) <= a {
					bodies = append(bodies, nil)
				}
				bodies[a] = append(bodies[a], e.Body())
			}
		}
		var again int64
		for a, held := range r.written {
			if a+1 < len(bodies) {
				again += spans.Overlap(held, bodies[a+1])
			}
		}
		b.noteMem(row.tool, 2, r.k.total.MaxRSS)
		right := "yes"
		if r.check != "" {
			right = "NO: " + r.check
			if row.isDurl {
				b.fail("scenario 2, durl", r.check)
			} else {
				b.finding("scenario 2, "+row.name, r.check)
			}
		}
		perAttempt := make([]int, len(bodies))
		for a, bs := range bodies {
			perAttempt[a] = len(bs)
		}
		b.logf("s2 %-16s server sent %.1f MiB (responses per attempt %v), %.1f MiB twice, %.1f KiB of them written before a kill",
			row.name, float64(sent)/miB, perAttempt, float64(sent-size)/miB, float64(again)/1024)
		t.rows[i] = []string{row.name, killedAtStr(r.k, size), fmt.Sprint(r.k.attempts), r.k.final.describe(), right,
			fmt.Sprintf("%.1f", float64(sent)/miB), fmt.Sprintf("%.0f", float64(again)/1024), fmt.Sprintf("%.1f", float64(sent-size)/miB),
			secs(r.k.total.Wall), secs(r.k.total.CPU), mib(r.k.total.MaxRSS)}
	}
	sec.tables = append(sec.tables, t)
	return sec
}

// writtenSpans returns what a download's file holds of the served file
// want (see spans.Written), or nothing if it cannot be read.
func (b *bench) writtenSpans(dest, state, want string) []spans.Span {
	path, _ := dataFile(dest, state)
	if path == "" {
		return nil
	}
	w, err := os.Open(want)
	if err != nil {
		b.logf("written spans: %v", err)
		return nil
	}
	defer w.Close()
	written, err := spans.Written(path, w)
	if err != nil {
		b.logf("written spans: %v", err)
	}
	return written
}

// attemptOf returns which attempt (by their start times) sent the logged
// response, -1 if it began before the first. nginx logs to the
// millisecond, and a request begins well after its process does.
func attemptOf(e nginxtest.LogEntry, starts []time.Time) int {
	began := e.Start().Add(10 * time.Millisecond)
	a := -1
	for i, s := range starts {
		if !s.After(began) {
			a = i
		}
	}
	return a
}

// ---- 3. Remote changed ----

type change struct {
	name   string
	size   func(int64) int64
	lo, hi float64 // kill moment range (fraction of the old size)
}

func (b *bench) scenarioRemoteChanged() section {
	sec := section{n: 3, title: "Remote changed between attempts"}
	size := b.cfg.s3Size
	changes := []change{
		{"same size", func(n int64) int64 { return n }, 0.2, 0.8},
		{"larger (×1.5)", func(n int64) int64 { return n * 3 / 2 }, 0.2, 0.8},
		{"smaller (×0.75), resume point inside", func(n int64) int64 { return n * 3 / 4 }, 0.35, 0.65},
		{"smaller (×0.25), resume point past the end", func(n int64) int64 { return n / 4 }, 0.4, 0.8},
	}
	keep := filepath.Join(b.tmp, "keep")
	old := filepath.Join(keep, "s3-old.bin")
	b.logf("scenario 3: generating %s and its replacements", sizeStr(size))
	oldTime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if _, err := genFile(old, b.cfg.seed*1_000_003+30, size, oldTime); err != nil {
		b.fail("scenario 3", err.Error())
		return sec
	}
	rows := b.resumeRows()
	t := table{header: []string{"tool"}}
	for _, c := range changes {
		t.header = append(t.header, c.name)
	}
	t.rows = make([][]string, len(rows))
	for i, row := range rows {
		t.rows[i] = []string{row.name}
	}
	for ci, c := range changes {
		if b.ctx.Err() != nil {
			break
		}
		newPath := filepath.Join(keep, fmt.Sprintf("s3-new-%d.bin", ci))
		newSize := c.size(size)
		// A later mtime: nginx's ETag is mtime-size, Last-Modified the mtime.
		if _, err := genFile(newPath, b.cfg.seed*1_000_003+31+uint64(ci), newSize, oldTime.Add(time.Hour)); err != nil {
			b.fail("scenario 3", err.Error())
			return sec
		}
		fr := b.killFractions(30+uint64(ci), 1, c.lo, c.hi)
		cells := make([]string, len(rows))
		notes := make([]string, len(rows))
		for i, row := range rows {
			cells[i] = row.skip
		}
		b.parallel(rows, func(ri int, row single) {
			name := fmt.Sprintf("s3-%d-%d.bin", ci, ri)
			served := filepath.Join(b.root, name)
			if err := linkInto(old, served); err != nil {
				b.fail("scenario 3", err.Error())
				return
			}
			defer os.Remove(served)
			out, state := b.freshDirs("s3")
			dest := filepath.Join(out, name)
			k := b.killResume(row, b.url("throttled", name), dest, state, size, fr, b.throttledTimeout(size*2, 1),
				func(int) {
					if err := linkInto(newPath, served); err != nil {
						b.fail("scenario 3", err.Error())
					}
				})
			what := compareVersions(dest, old, newPath)
			b.clean(out, state)
			b.noteMem(row.tool, 3, k.total.MaxRSS)
			outcome := what
			if !k.final.OK() {
				outcome = fmt.Sprintf("error (%s), file: %s", k.final.describe(), what)
				notes[ri] = fmt.Sprintf("%s, %s: %s", row.name, c.name, b.sanitize(errorLine(k.final.Output)))
			}
			if len(k.killedAt) == 0 {
				outcome += "; not killed (finished first)"
			}
			mark := ""
			switch {
			case what == "new" && k.final.OK():
				mark = "✓ "
			case strings.HasPrefix(what, "mix") || strings.HasPrefix(what, "neither") || (k.final.OK() && what != "new"):
				mark = "✗ "
			}
			cells[ri] = mark + outcome
			b.logf("s3 %-16s %-44s killed at %s: %s", row.name, c.name, killedAtStr(k, size), outcome)
			// durl must end with the new file; for the peers it is a finding.
			if row.isDurl {
				if what != "new" || !k.final.OK() {
					b.fail("scenario 3, durl, "+c.name, outcome)
				}
			} else if what != "new" || !k.final.OK() {
				b.finding("scenario 3, "+row.name+", "+c.name, outcome)
			}
		})
		for i := range rows {
			t.rows[i] = append(t.rows[i], cells[i])
			if notes[i] != "" {
				sec.notes = append(sec.notes, notes[i])
			}
		}
	}
	sec.intro = fmt.Sprintf("A %s file from the throttled location; the tool is SIGKILLed once past a random moment, the file "+
		"on the server is replaced (atomically, with a later mtime, so a new ETag and Last-Modified) and the same command is "+
		"rerun. The final file is compared with both versions: ✓ the new one; ✗ a wrong file reported as success "+
		"(old, partial, or a mix of both versions); an error is described with the file it left. "+
		"The tools run at the same time, each on its own URL.", sizeStr(size))
	sec.tables = append(sec.tables, t)
	return sec
}

var (
	ansiRE     = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	loopbackRE = regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+`)
)

// errorLine picks the most telling line of a tool's output: aria2c's
// "Exception:" line, else the first line that mentions an error, else the
// last line.
func errorLine(out string) string {
	out = loopbackRE.ReplaceAllString(ansiRE.ReplaceAllString(out, ""), "")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- { // aria2c: the innermost cause
		if j := strings.Index(lines[i], "errorCode="); j >= 0 {
			return "aria2c: " + lines[i][j:]
		}
	}
	for _, l := range lines {
		if ll := strings.ToLower(l); strings.Contains(ll, "error") && !strings.Contains(ll, "if there are any errors") {
			return l
		}
	}
	return lines[len(lines)-1]
}

// linkInto makes dst a hard link of src, atomically replacing dst.
func linkInto(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".link")
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// ---- 4. Ranges ignored ----

func (b *bench) scenarioRangesIgnored() section {
	sec := section{n: 4, title: "Ranges ignored by the server"}
	size := b.cfg.s4Size
	f, err := b.serve("s4.bin", 4, size)
	if err != nil {
		b.fail("scenario 4", err.Error())
		return sec
	}
	defer os.Remove(f.path)
	fr := b.killFractions(4, 1, 0.3, 0.7)
	sec.intro = fmt.Sprintf("A %s file from a location that ignores Range (nginx `max_ranges 0`: always 200 and the whole "+
		"file), throttled to %s per connection; the tool is SIGKILLed past %.0f%% and rerun. "+
		"The tools run at the same time, each on its own URL.", sizeStr(size), b.cfg.rate, fr[0]*100)
	t := table{header: []string{"tool", "killed at", "last exit", "outcome", "server sent MiB", "total s", "CPU s", "peak RSS MiB"}}
	rows := b.resumeRows()
	t.rows = make([][]string, len(rows))
	for i, row := range rows {
		t.rows[i] = []string{row.name, row.skip}
	}
	type result struct {
		name  string
		k     krResult
		check string
	}
	res := make([]*result, len(rows))
	b.parallel(rows, func(i int, row single) {
		name, err := b.toolLink(f, i)
		if err != nil {
			b.fail("scenario 4", err.Error())
			return
		}
		out, state := b.freshDirs("s4")
		dest := filepath.Join(out, name)
		k := b.killResume(row, b.url("throttled-norange", name), dest, state, size, fr, b.throttledTimeout(size*2, 1), nil)
		check := checkFile(dest, f.sha, size)
		b.clean(out, state)
		res[i] = &result{name, k, check}
	})
	for i, row := range rows {
		r := res[i]
		if r == nil {
			continue
		}
		os.Remove(filepath.Join(b.root, r.name))
		k, check := r.k, r.check
		sent := b.srv.BodyBytesSent("/" + r.name)
		b.noteMem(row.tool, 4, k.total.MaxRSS)
		outcome := "✓ right file"
		switch {
		case check != "" && k.final.OK():
			outcome = "✗ " + check + ", reported as success"
		case check != "":
			outcome = "error, " + check
		case !k.final.OK():
			outcome = "right bytes, but " + k.final.describe()
		}
		if check != "" || !k.final.OK() {
			if row.isDurl {
				b.fail("scenario 4, durl", outcome)
			} else {
				b.finding("scenario 4, "+row.name, outcome)
			}
			if k.final.Output != "" {
				sec.notes = append(sec.notes, fmt.Sprintf("%s: %s", row.name, b.sanitize(errorLine(k.final.Output))))
			}
		}
		b.logf("s4 %-16s killed at %s: %s, %s; server sent %.1f MiB", row.name, killedAtStr(k, size), k.final.describe(), outcome, float64(sent)/miB)
		t.rows[i] = []string{row.name, killedAtStr(k, size), k.final.describe(), outcome,
			fmt.Sprintf("%.1f", float64(sent)/miB), secs(k.total.Wall), secs(k.total.CPU), mib(k.total.MaxRSS)}
	}
	sec.tables = append(sec.tables, t)
	return sec
}

// ---- 5. Many connections ----

func (b *bench) scenarioManyConnections() section {
	sec := section{n: 5, title: "Many connections"}
	size := b.cfg.s5Size
	b.logf("scenario 5: generating %s", sizeStr(size))
	f, err := b.serve("s5.bin", 5, size)
	if err != nil {
		b.fail("scenario 5", err.Error())
		return sec
	}
	defer os.Remove(f.path)
	url := b.url("throttled", f.name)
	var rows []rowStats
	for _, x := range b.cfg.s5X {
		d := b.durlRow(fmt.Sprintf("durl -x %d", x), b.durlGet("-x", fmt.Sprint(x)), true)
		if d.skip == "" && !b.tools.durlHasX {
			d.skip = "not implemented yet"
		}
		g := fmt.Sprintf("x%d", x)
		rows = append(rows,
			rowStats{single: d, group: g},
			rowStats{single: single{name: fmt.Sprintf("aria2c -x %d -s %d", x, x), tool: "aria2c", cmd: aria2Get(x, false)}, group: g})
	}
	// Each row has its own timeout: x1 is the slowest.
	timeout := b.throttledTimeout(size, 1)
	rows = b.timedSingle(5, rows, f, url, timeout)
	sec.intro = fmt.Sprintf("One %s file from the throttled location (%s per connection, so more connections help) "+
		"with N connections; durl `-x N` against aria2c `-x N -s N`. The ratio compares with durl at the same N.",
		sizeStr(size), b.cfg.rate)
	tb := b.timedTable(rows, size, 0)
	tb.header[1] = "connections"
	sec.tables = append(sec.tables, tb)
	return sec
}

// ---- 6. Many files ----

func (b *bench) scenarioManyFiles() section {
	sec := section{n: 6, title: "Many files"}
	n, size := b.cfg.s6Files, b.cfg.s6Size
	b.logf("scenario 6: generating %d files of %s", n, sizeStr(size))
	shas := make(map[string]string, n)
	var urls []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%05d", i)
		f, err := b.serve("many/"+name, 600_000+uint64(i), size)
		if err != nil {
			b.fail("scenario 6", err.Error())
			return sec
		}
		shas[name] = f.sha
		urls = append(urls, b.url("plain", "many/"+name))
	}
	defer os.RemoveAll(filepath.Join(b.root, "many"))
	list := filepath.Join(b.tmp, "s6-urls.txt")
	curlCfg := filepath.Join(b.tmp, "s6-curl.cfg")
	var cfg strings.Builder
	for _, u := range urls {
		fmt.Fprintf(&cfg, "url = \"%s\"\n", u)
	}
	if err := os.WriteFile(list, []byte(strings.Join(urls, "\n")+"\n"), 0o644); err != nil {
		b.fail("scenario 6", err.Error())
		return sec
	}
	if err := os.WriteFile(curlCfg, []byte(cfg.String()), 0o644); err != nil {
		b.fail("scenario 6", err.Error())
		return sec
	}
	type many struct {
		rowStats
		steps func(dir, state string) [][]string
	}
	durl := b.durlRow("durl -j 16", nil, true)
	scratch := b.durlRow("durl -j 16 --no-sync", nil, false)
	self, err := os.Executable()
	if err != nil {
		b.fail("scenario 6", err.Error())
		return sec
	}
	// Ratios compare with durl's row of the same kind: the peers sync
	// nothing, like durl --no-sync, unless followed by a sync.
	const synced, notSynced = "synced", "not synced"
	const curl, curlSynced = "curl --parallel --parallel-max 16", "curl --parallel --parallel-max 16 && sync -f DIR"
	curlArgv := func(dir string) []string {
		return []string{"curl", "-q", "-sS", "-f", "--parallel", "--parallel-max", "16", "--remote-name-all",
			"--output-dir", dir, "-K", curlCfg}
	}
	rows := []many{
		{rowStats{single: durl, group: synced}, func(dir, state string) [][]string {
			return [][]string{{b.tools.durl, "--state", state, "get", "-q", "-j", "16", "-d", dir, "-i", list}}
		}},
		{rowStats{single: single{name: "durable copy, no network (the disk's floor)"}, group: synced}, func(dir, state string) [][]string {
			return [][]string{{self, "-" + floorFlag, filepath.Join(b.root, "many"), dir}}
		}},
		{rowStats{single: single{name: curlSynced, tool: "curl", synced: true}, group: synced}, func(dir, state string) [][]string {
			// sync -f is one syncfs(2) of the folder's file system, the
			// flush durl shares among files finishing together.
			return [][]string{curlArgv(dir), {"sync", "-f", dir}}
		}},
		{rowStats{single: scratch, group: notSynced}, func(dir, state string) [][]string {
			return [][]string{{b.tools.durl, "--state", state, "get", "-q", "--no-sync", "-j", "16", "-d", dir, "-i", list}}
		}},
		{rowStats{single: single{name: "aria2c -j 16", tool: "aria2c"}, group: notSynced}, func(dir, state string) [][]string {
			return [][]string{append(append([]string{"aria2c"}, aria2Opts...), "-j", "16", "-d", dir, "-i", list)}
		}},
		{rowStats{single: single{name: "wget -i", tool: "wget"}, group: notSynced}, func(dir, state string) [][]string {
			return [][]string{{"wget", "--no-config", "-nv", "-P", dir, "-i", list}}
		}},
		{rowStats{single: single{name: curl, tool: "curl"}, group: notSynced}, func(dir, state string) [][]string {
			return [][]string{curlArgv(dir)}
		}},
	}
	timeout := 5 * time.Minute
	if b.cfg.quick {
		timeout = time.Minute
	}
	// Every run writes into folders of its own, all removed only at the
	// end: ext4 without a journal takes several times longer to create
	// files for up to six minutes after many were deleted, which would
	// slow whichever tool ran next. It skips each free inode deleted in
	// the last minute, or in the last six while the block of the inode
	// table holding it is not yet written back (creating files dirties
	// it again), and checking costs a lookup per inode.
	var used []string
	dropped := false
	defer func() {
		b.clean(used...)
		syscall.Sync()
	}()
	for rep := 0; rep < b.cfg.reps; rep++ {
		for k := range rows {
			row := &rows[(k+rep)%len(rows)]
			if row.skip != "" || b.ctx.Err() != nil {
				continue
			}
			out, state := b.freshDirs("s6")
			if b.cfg.quick {
				syscall.Sync() // a smoke test: leave the cache to the other programs running
			} else {
				dropped = b.emptyPageCache(filepath.Join(b.root, "many"))
			}
			r := b.runSteps(row.steps(out, state), timeout, nil)
			check := ""
			if !r.OK() {
				check = r.describe() + ": " + b.sanitize(tailLines(r.Output, 2))
			}
			wrong := 0
			for name, sha := range shas {
				if checkFile(filepath.Join(out, name), sha, size) != "" {
					wrong++
				}
			}
			if wrong > 0 {
				check = strings.TrimPrefix(check+fmt.Sprintf("; %d of %d files missing or wrong", wrong, n), "; ")
			}
			used = append(used, out, state)
			row.runs = append(row.runs, r)
			if row.tool != "" {
				b.noteMem(row.tool, 6, r.MaxRSS)
			}
			b.logf("s6 %-34s rep %d/%d: %6.2fs cpu %5.2fs rss %4d MiB %s", row.name, rep+1, b.cfg.reps,
				r.Wall.Seconds(), r.CPU.Seconds(), r.MaxRSS/1024, okStr(check))
			if check != "" {
				row.bad = append(row.bad, check)
				b.fail("scenario 6, "+row.name, check)
			}
		}
	}
	var stats []rowStats
	for _, r := range rows {
		stats = append(stats, r.rowStats)
	}
	emptied := ""
	switch {
	case b.cfg.quick:
	case !dropped:
		emptied = " (the suite could not empty the page cache: that needs root)"
	default:
		emptied = ", then the page cache is emptied and the served files read back in, so that every run " +
			"writes into memory the cache used before (a run writing into memory never used since the machine " +
			"started copied up to twice as slowly, which slowed curl's one thread more than durl's several)"
	}
	sec.intro = fmt.Sprintf("%d files of %s from the plain location into one folder, names from the URLs. "+
		"durl `-j 16`, aria2c `-j 16`, `wget -i` (one at a time, one kept-alive connection), "+
		"`curl --parallel --parallel-max 16`. durl makes every file durable by default (its data flushed before it "+
		"is renamed into place, the folder flushed after: D3); the files that finish together share their flushes "+
		"(one `syncfs` for their data, one folder fsync for their renames; see docs/durability.md). The peers sync "+
		"nothing, so `durl --no-sync` is the like-for-like row; curl followed by `sync -f` (one `syncfs` of the folder's "+
		"file system, after the last file) is the like-for-like row of durable durl, though a kill before its sync "+
		"could leave any file short or empty. The floor row is what durable files cost this disk "+
		"with no network at all: the suite itself copies the %d served files, 16 at once, each written, flushed, "+
		"renamed and its folder flushed the same way, sharing flushes as durl does. Every run writes into new folders, all "+
		"removed at the end of the scenario (ext4 without a journal creates files several times slower for up to "+
		"six minutes after many were deleted, which would slow whichever tool ran next); `sync` runs before each run%s. "+
		"The second table compares durl with curl repetition by repetition, each kind with its own (rows take "+
		"turns, so the two ran close together in each).",
		n, sizeStr(size), n, emptied)
	sec.tables = append(sec.tables, b.timedTable(stats, int64(n)*size, n))
	runsOf := func(name string) []Run {
		for _, r := range rows {
			if r.name == name {
				return r.runs
			}
		}
		return nil
	}
	if t, ok := pairedRatios("curl's time ÷ durl --no-sync's, run by run (the same repetition)",
		runsOf(curl), runsOf(scratch.name)); ok {
		if synced, ok := pairedRatios("curl && sync's time ÷ durl's (durable)", runsOf(curlSynced), runsOf(durl.name)); ok {
			t.rows = append(t.rows, synced.rows...)
		}
		sec.tables = append(sec.tables, t)
	}
	return sec
}

// pairedRatios returns a one-row table of peer's wall time divided by
// durl's, repetition by repetition: two rows' medians hide how often each
// was ahead when their medians are close.
func pairedRatios(label string, peer, durl []Run) (table, bool) {
	if len(peer) == 0 || len(peer) != len(durl) {
		return table{}, false
	}
	t := table{header: []string{""}, rows: [][]string{{label}}}
	for i := range peer {
		t.header = append(t.header, fmt.Sprintf("rep %d", i+1))
		t.rows[0] = append(t.rows[0], fmt.Sprintf("%.2f", peer[i].Wall.Seconds()/durl[i].Wall.Seconds()))
	}
	return t, true
}

// ---- 7. Memory ----

func (b *bench) scenarioMemory() section {
	sec := section{n: 7, title: "Memory"}
	sec.intro = "Peak RSS (MiB) of each tool, the largest over its runs in each scenario above; for `curl && sync` " +
		"the larger of the two. It is the process's VmHWM, read from /proc/PID/status every 2 ms for its first 100 ms " +
		"and every 20 ms after, capped by the rusage ru_maxrss of the child (os/exec's ProcessState.SysUsage). " +
		"ru_maxrss alone is not usable: os/exec starts children with vfork, and Linux keeps the parent's " +
		"high-water mark across exec, so every child's ru_maxrss is at least the suite's own RSS."
	var cols []int
	for _, m := range b.mem {
		for s := range m {
			if !slices.Contains(cols, s) {
				cols = append(cols, s)
			}
		}
	}
	slices.Sort(cols)
	t := table{header: []string{"tool"}}
	for _, c := range cols {
		t.header = append(t.header, fmt.Sprintf("scenario %d", c))
	}
	order := []string{"durl", "curl", "wget", "aria2c", "cp", "dd"}
	for _, k := range sortedKeys(b.mem) {
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	for _, tool := range order {
		m, ok := b.mem[tool]
		if !ok {
			if tool == "durl" {
				t.rows = append(t.rows, append([]string{"durl"}, b.tools.durlSkip))
			}
			continue
		}
		row := []string{tool}
		for _, c := range cols {
			if v, ok := m[c]; ok {
				row = append(row, mib(v))
			} else {
				row = append(row, "")
			}
		}
		t.rows = append(t.rows, row)
	}
	sec.tables = append(sec.tables, t)
	return sec
}
