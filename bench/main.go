// Command bench is durl's benchmark suite: it serves generated files from a
// real nginx on 127.0.0.1 and runs durl and its peers (curl, wget, aria2c)
// through a set of scenarios, then prints a markdown report and writes it
// to docs/benchmarks.md.
//
//	go run ./bench [--quick] [--out docs/benchmarks.md] [--only 1,6] [--reps N]
//
// bench/run installs the Debian packages it needs first. See
// docs/benchmarks.md for what each scenario measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durl-dev/durl/internal/nginxtest"
)

// config is the size of everything, set by the mode.
type config struct {
	quick       bool
	reps        int // repetitions of the timed scenarios 1 and 6 (5: s5Reps)
	only        map[int]bool
	seed        uint64
	out         string
	durlPath    string
	requireDurl bool

	rate      string  // nginx limit_rate of the throttled locations
	rateBytes float64 // the same in bytes per second

	s1Size  int64 // throughput
	s2Size  int64 // kill and resume (throttled)
	s2Kills int
	s3Size  int64 // remote changed (throttled)
	s4Size  int64 // ranges ignored (throttled, no ranges)
	s5Size  int64 // many connections (throttled)
	s5Reps  int
	s5X     []int
	s6Files int // many files
	s6Size  int64

	// 8. the daemon at scale
	s8Tasks    int           // small files added through the API
	s8Size     int64         // their size
	s8Batch    int           // downloads per add request
	s8Adders   int           // add requests at once
	s8Active   int           // durl serve --max-active (and --max-conns-per-host)
	s8Queued   int           // memory part: tasks queued behind the active ones
	s8BigSize  int64         // memory part: the file they download
	s8Rate     string        // memory part: limit_rate of the slow nginx
	s8Sample   time.Duration // memory part: how long VmRSS is sampled
	s8Restarts int           // restarts timed
}

const (
	kiB = 1 << 10
	miB = 1 << 20
	giB = 1 << 30
)

func fullConfig() config {
	return config{
		reps: 5, rate: "20m", rateBytes: 20 * miB,
		s1Size: 1 * giB,
		s2Size: 1 * giB, s2Kills: 3,
		s3Size: 64 * miB,
		s4Size: 64 * miB,
		s5Size: 512 * miB, s5Reps: 3, s5X: []int{1, 4, 8, 16},
		s6Files: 2000, s6Size: 64 * kiB,
		s8Tasks: 10_000, s8Size: 16 * kiB, s8Batch: 500, s8Adders: 4, s8Active: 50,
		s8Queued: 1000, s8BigSize: 4 * miB, s8Rate: "64k", s8Sample: 5 * time.Second, s8Restarts: 3,
	}
}

func quickConfig() config {
	return config{
		quick: true, reps: 1, rate: "4m", rateBytes: 4 * miB,
		s1Size: 32 * miB,
		s2Size: 8 * miB, s2Kills: 3,
		s3Size: 8 * miB,
		s4Size: 8 * miB,
		s5Size: 8 * miB, s5Reps: 1, s5X: []int{1, 4, 8, 16},
		s6Files: 200, s6Size: 64 * kiB,
		s8Tasks: 300, s8Size: 16 * kiB, s8Batch: 100, s8Adders: 3, s8Active: 5,
		s8Queued: 100, s8BigSize: 1 * miB, s8Rate: "64k", s8Sample: time.Second, s8Restarts: 1,
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	quick := flag.Bool("quick", false, "smoke test of the suite: small files, 1 repetition, checks every file's SHA-256")
	out := flag.String("out", "", "markdown report to write (default docs/benchmarks.md in full mode, none with --quick; \"-\" for none)")
	only := flag.String("only", "", "comma-separated scenario numbers to run (default all)")
	reps := flag.Int("reps", 0, "repetitions of the timed scenarios 1, 5, 6 (default 5 for 1 and 6, 3 for 5; 1 with --quick)")
	seed := flag.Uint64("seed", 1, "seed of the file contents and of the kill moments")
	durlPath := flag.String("durl", "", "use this durl binary instead of building ./cmd/durl")
	requireDurl := flag.Bool("require-durl", false, "fail when durl cannot be built (default: its rows say \"durl not built\")")
	floor := flag.Bool(floorFlag, false, "internal: copy the files of folder ARG1 into folder ARG2 durably (scenario 6's floor)")
	flag.Parse()
	if *floor {
		if err := durableCopies(flag.Arg(0), flag.Arg(1)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}

	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	if *reps > 0 {
		cfg.reps = *reps
		cfg.s5Reps = *reps
	}
	cfg.seed = *seed
	cfg.durlPath = *durlPath
	cfg.requireDurl = *requireDurl
	cfg.out = *out
	if cfg.out == "" && !cfg.quick {
		cfg.out = filepath.Join("docs", "benchmarks.md")
	}
	if cfg.out == "-" {
		cfg.out = ""
	}
	if *only != "" {
		cfg.only = map[int]bool{}
		for _, f := range strings.Split(*only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 8 {
				fmt.Fprintf(os.Stderr, "bench: bad --only %q\n", *only)
				return 2
			}
			cfg.only[n] = true
		}
	}

	// Everything bounded: a hard deadline for the whole suite, and Ctrl-C
	// cancels the context, which kills running tools by PID.
	limit := 40 * time.Minute
	if cfg.quick {
		limit = 5 * time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	b, err := setup(ctx, cfg)
	if b != nil {
		defer b.close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	scenarios := []struct {
		n  int
		fn func() section
	}{
		{1, b.scenarioThroughput},
		{2, b.scenarioKillResume},
		{3, b.scenarioRemoteChanged},
		{4, b.scenarioRangesIgnored},
		{5, b.scenarioManyConnections},
		{6, b.scenarioManyFiles},
	}
	var sections []section
	for _, s := range scenarios {
		if cfg.only != nil && !cfg.only[s.n] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		sec := s.fn()
		sec.took = time.Since(t0)
		b.logf("scenario %d done in %s", s.n, sec.took.Round(time.Second))
		sections = append(sections, sec)
	}
	if ctx.Err() == nil {
		if cfg.only == nil || cfg.only[7] {
			sections = append(sections, b.scenarioMemory())
		}
		if cfg.only == nil || cfg.only[8] {
			t0 := time.Now()
			sec := b.scenarioDaemon()
			sec.took = time.Since(t0)
			b.logf("scenario 8 done in %s", sec.took.Round(time.Second))
			sections = append(sections, sec)
		}
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			b.fail("suite", fmt.Sprintf("the suite ran out of its %v limit", limit))
		} else {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
			return 130
		}
	}
	b.total = time.Since(b.started)

	report := b.report(sections)
	fmt.Print(report)
	if cfg.out != "" {
		err := os.MkdirAll(filepath.Dir(cfg.out), 0o755)
		if err == nil {
			err = os.WriteFile(cfg.out, []byte(report), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: write report:", err)
			return 1
		}
		b.logf("report written to %s", cfg.out)
	}
	if len(b.failures) > 0 {
		fmt.Fprintf(os.Stderr, "\nbench: %d failure(s):\n", len(b.failures))
		for _, f := range b.failures {
			fmt.Fprintln(os.Stderr, "  -", f)
		}
		return 1
	}
	b.logf("all checks passed (%s)", b.total.Round(time.Second))
	return 0
}

// bench is the state of one suite run.
type bench struct {
	cfg     config
	ctx     context.Context
	started time.Time
	total   time.Duration

	repo string // module root
	tmp  string // everything the suite writes: served files, outputs, states
	root string // folder nginx serves
	outs string // tools' outputs
	srv  *nginxtest.Server

	tools    toolSet
	mu       sync.Mutex // guards failures, findings, mem (the kill scenarios run tools in parallel)
	failures []string
	findings []string
	mem      map[string]map[int]int64 // tool -> scenario -> peak RSS KiB
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) fail(where, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := where + ": " + msg
	b.failures = append(b.failures, m)
	b.logf("FAIL %s", m)
}

func (b *bench) finding(where, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.findings = append(b.findings, where+": "+msg)
}

func (b *bench) noteMem(tool string, scenario int, kib int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mem == nil {
		b.mem = map[string]map[int]int64{}
	}
	if b.mem[tool] == nil {
		b.mem[tool] = map[int]int64{}
	}
	if kib > b.mem[tool][scenario] {
		b.mem[tool][scenario] = kib
	}
}

func setup(ctx context.Context, cfg config) (*bench, error) {
	b := &bench{cfg: cfg, ctx: ctx, started: time.Now()}
	repo, err := findRepo()
	if err != nil {
		return nil, err
	}
	b.repo = repo
	if err := nginxtest.Ensure(); err != nil {
		return nil, err
	}
	// The served files, the outputs and the tools' states share one temp
	// folder, so one disk; the report names its filesystem.
	b.tmp, err = os.MkdirTemp("", "durl-bench-")
	if err != nil {
		return nil, err
	}
	b.root = filepath.Join(b.tmp, "www")
	b.outs = filepath.Join(b.tmp, "out")
	for _, d := range []string{b.root, b.outs, filepath.Join(b.tmp, "keep"), filepath.Join(b.tmp, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return b, err
		}
	}
	b.logf("mode %s; work folder on %s", map[bool]string{true: "quick", false: "full"}[cfg.quick], fsType(b.tmp))
	b.tools = findTools(ctx, b)
	for _, t := range b.tools.missing {
		return b, fmt.Errorf("%s not installed (bench/run installs it)", t)
	}
	if cfg.requireDurl && b.tools.durl == "" {
		return b, fmt.Errorf("durl: %s", b.tools.durlSkip)
	}
	srv, err := nginxtest.Start(nginxtest.Options{Root: b.root, LimitRate: cfg.rate})
	if err != nil {
		return b, err
	}
	b.srv = srv
	b.logf("nginx on 127.0.0.1 (pid %d), throttled locations at %s per connection", srv.PID(), cfg.rate)
	return b, nil
}

func (b *bench) close() {
	if b.srv != nil {
		if err := b.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

// findRepo walks up from the working folder to durl's go.mod.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if mod, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.Contains(string(mod), "module github.com/durl-dev/durl") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("run the suite inside the durl module (go.mod not found)")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
