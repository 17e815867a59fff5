package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/durl-dev/durl"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// renderer shows what happens to the downloads of a command.
type renderer interface {
	// event receives every event of the session (Options.OnEvent): it
	// returns quickly.
	event(durl.Event)
	// errorLine prints one line about a failure; it is shown even with -q.
	errorLine(line string)
	// finish stops the renderer; later events are ignored.
	finish()
}

// outputMode chooses a renderer.
type outputMode int

const (
	outputLines outputMode = iota // one line per start, restart, retry and completion, on stderr
	outputBars                    // progress bars on stderr (a terminal)
	outputJSON                    // the downloads' events as JSON lines on stdout
	outputQuiet                   // only errors
)

// newRenderer returns the renderer for mode.
func newRenderer(mode outputMode, stdout, stderr io.Writer) renderer {
	switch mode {
	case outputBars:
		return newBarRenderer(stderr)
	case outputJSON:
		return &jsonRenderer{out: stdout, lines: lineWriter{w: stderr}}
	case outputQuiet:
		return &lineRenderer{lineWriter: lineWriter{w: stderr}, quiet: true}
	}
	return &lineRenderer{lineWriter: lineWriter{w: stderr}}
}

// lineWriter writes whole lines, one at a time, without control characters.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// errorLine prints line.
func (l *lineWriter) errorLine(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, clean(line))
}

// jsonEvent is the JSON form of a durl.Event, one per line with --json.
type jsonEvent struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Task    string    `json:"task"`
	URL     string    `json:"url"`
	Path    string    `json:"path"`
	State   string    `json:"state"`
	Written int64     `json:"written"`
	Total   int64     `json:"total"`
	Rate    float64   `json:"rate"`
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// encodeEvent returns ev as one line of JSON, newline included.
func encodeEvent(ev durl.Event) []byte {
	rate := ev.Progress.Rate
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0 {
		rate = 0
	}
	j := jsonEvent{
		Seq:     ev.Seq,
		Time:    ev.Time.UTC(),
		Event:   ev.Kind.String(),
		Task:    ev.TaskID,
		URL:     redactURL(ev.URL),
		Path:    ev.Path,
		State:   ev.State.String(),
		Written: ev.Progress.Written,
		Total:   ev.Progress.Total,
		Rate:    math.Round(rate),
		Reason:  ev.Reason,
	}
	if ev.Err != nil {
		j.Error = trimPrefix(ev.Err.Error())
	}
	b, err := json.Marshal(j)
	if err != nil { // cannot happen: every field is encodable
		b = []byte(`{"event":"error"}`)
	}
	return append(b, '\n')
}

// jsonRenderer writes the events of the command's downloads as JSON lines
// to out, and errors to stderr. It leaves out what opening the state folder
// says about other downloads in it: interrupted ones (durl get does not
// resume them) and old completed ones it forgot (removed).
type jsonRenderer struct {
	mu    sync.Mutex
	out   io.Writer
	done  bool
	lines lineWriter
}

func (r *jsonRenderer) event(ev durl.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done && ev.Kind != durl.EventInterrupted && ev.Kind != durl.EventRemoved {
		r.out.Write(encodeEvent(ev))
	}
}

func (r *jsonRenderer) errorLine(line string) { r.lines.errorLine(line) }

func (r *jsonRenderer) finish() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

// taskView is what a renderer remembers of one task.
type taskView struct {
	started      bool
	startTime    time.Time // first start in this process
	startWritten int64     // bytes already there at that start
}

// lineRenderer prints one line per download when it starts, restarts,
// retries and completes, to stderr, with no control characters. Failures
// are printed by the command, through errorLine.
type lineRenderer struct {
	lineWriter
	quiet bool
	tasks map[string]*taskView
	done  bool
}

func (r *lineRenderer) event(ev durl.Event) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	if r.tasks == nil {
		r.tasks = make(map[string]*taskView)
	}
	v := r.tasks[ev.TaskID]
	if v == nil {
		v = &taskView{}
		r.tasks[ev.TaskID] = v
	}
	if line := v.line(ev); line != "" {
		fmt.Fprintln(r.w, clean(line))
	}
}

func (r *lineRenderer) finish() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

// line updates v with ev and returns the line to print for it, or "".
func (v *taskView) line(ev durl.Event) string {
	u := redactURL(ev.URL)
	switch ev.Kind {
	case durl.EventStarted:
		if v.started {
			return ""
		}
		v.started, v.startTime, v.startWritten = true, ev.Time, ev.Progress.Written
		to := ""
		if ev.Path != "" {
			to = " to " + ev.Path
		}
		if ev.Progress.Written > 0 {
			return fmt.Sprintf("durl: continuing %s%s from %s%s", u, to, formatSize(ev.Progress.Written), ofTotal(ev.Progress.Total))
		}
		return "durl: downloading " + u + to
	case durl.EventRestarted:
		v.startWritten = 0
		why := ""
		if ev.Reason != "" {
			why = ": " + ev.Reason
		}
		return "durl: " + u + ": starting over from zero" + why
	case durl.EventRetrying:
		why := ""
		if ev.Err != nil {
			why = " (" + errText(ev.Err) + ")"
		}
		return "durl: " + u + ": retrying" + why
	case durl.EventWarning:
		return "durl: " + u + ": " + ev.Reason
	case durl.EventCompleted:
		return savedLine(ev, v)
	}
	return ""
}

// ofTotal returns " of SIZE" for a known total, else "".
func ofTotal(total int64) string {
	if total < 0 {
		return ""
	}
	return " of " + formatSize(total)
}

// savedLine is the line printed when a download completes, such as
// "durl: saved /path/file (1.0 GiB, 12.3 s, 85.2 MiB/s)", or "durl: kept
// /path/file (1.0 GiB): REASON" when the file in place was kept.
func savedLine(ev durl.Event, v *taskView) string {
	size := ev.Progress.Written
	if ev.Progress.Total > size {
		size = ev.Progress.Total
	}
	name := ev.Path
	if name == "" {
		name = redactURL(ev.URL)
	}
	if ev.Reason != "" {
		return fmt.Sprintf("durl: kept %s (%s): %s", name, formatSize(size), ev.Reason)
	}
	if !v.started || ev.Time.IsZero() || v.startTime.IsZero() {
		return fmt.Sprintf("durl: saved %s (%s)", name, formatSize(size))
	}
	elapsed := ev.Time.Sub(v.startTime)
	transferred := size - v.startWritten
	if elapsed <= 0 || transferred < 0 {
		return fmt.Sprintf("durl: saved %s (%s, %s)", name, formatSize(size), formatDuration(elapsed))
	}
	return fmt.Sprintf("durl: saved %s (%s, %s, %s)", name, formatSize(size), formatDuration(elapsed),
		formatRate(float64(transferred)/elapsed.Seconds()))
}

// barRenderer draws a progress bar per download on a terminal.
type barRenderer struct {
	mu      sync.Mutex
	p       *mpb.Progress
	redraw  chan any      // asks the bars to draw now (mpb.WithManualRefresh)
	stopped chan struct{} // closed by finish: no more drawing
	lines   lineWriter    // for lines after the bars are gone
	bars    map[string]*taskBar
	done    bool
}

// barRefresh is how often the bars are drawn.
const barRefresh = 200 * time.Millisecond

// taskBar is one download's bar and the numbers its decorators show.
type taskBar struct {
	mu       sync.Mutex
	bar      *mpb.Bar
	name     string
	written  int64
	total    int64
	rate     float64
	finished bool
	outcome  string // "failed", "paused" or "stopped", shown where the ETA was
}

// newBarRenderer returns a barRenderer drawing on w, a terminal. It draws
// on any writer: it asks for each drawing itself.
func newBarRenderer(w io.Writer) *barRenderer {
	redraw := make(chan any)
	r := &barRenderer{
		p:       mpb.New(mpb.WithOutput(w), mpb.WithWidth(100), mpb.WithManualRefresh(redraw)),
		redraw:  redraw,
		stopped: make(chan struct{}),
		lines:   lineWriter{w: w},
		bars:    make(map[string]*taskBar),
	}
	go r.tick()
	return r
}

// tick has the bars drawn every barRefresh until finish.
func (r *barRenderer) tick() {
	ticker := time.NewTicker(barRefresh)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			select {
			case r.redraw <- nil:
			case <-r.stopped:
				return
			}
		case <-r.stopped:
			return
		}
	}
}

func (r *barRenderer) event(ev durl.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	tb := r.bars[ev.TaskID]
	switch ev.Kind {
	case durl.EventInterrupted, durl.EventAdded, durl.EventCancelled:
		return
	case durl.EventStarted, durl.EventProgress, durl.EventRestarted, durl.EventRetrying, durl.EventRecovered:
		if tb == nil {
			tb = r.addBar(ev)
		}
	case durl.EventCompleted:
		if tb == nil {
			tb = r.addBar(ev)
		}
		tb.update(ev)
		tb.finish("")
		return
	case durl.EventFailed:
		if tb != nil {
			tb.finish("failed")
		}
		return
	case durl.EventPaused:
		if tb != nil {
			tb.finish("paused")
		}
		return
	}
	if tb != nil {
		tb.update(ev)
	}
}

// addBar adds the bar of the task of ev.
func (r *barRenderer) addBar(ev durl.Event) *taskBar {
	tb := &taskBar{name: barName(ev), total: -1}
	tb.bar = r.p.AddBar(0,
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string { return tb.show(func() string { return tb.name }) }, decor.WC{W: 24, C: decor.DindentRight | decor.DextraSpace}),
			decor.Any(func(decor.Statistics) string { return tb.show(tb.sizes) }, decor.WC{W: 22, C: decor.DindentRight}),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string { return tb.show(tb.percent) }, decor.WC{W: 5}),
			decor.Any(func(decor.Statistics) string { return tb.show(tb.speed) }, decor.WC{W: 12, C: decor.DextraSpace}),
			decor.Any(func(decor.Statistics) string { return tb.show(tb.eta) }, decor.WC{W: 11, C: decor.DextraSpace}),
		),
	)
	r.bars[ev.TaskID] = tb
	return tb
}

// barName is the short name a bar shows: the file's name, else the URL's
// last path segment.
func barName(ev durl.Event) string {
	name := ""
	if ev.Path != "" {
		name = path.Base(strings.ReplaceAll(ev.Path, "\\", "/"))
	} else if u, err := url.Parse(ev.URL); err == nil {
		name = path.Base(u.Path)
	}
	if name == "" || name == "." || name == "/" {
		name = "download"
	}
	name = clean(name)
	if r := []rune(name); len(r) > 23 {
		name = string(r[:22]) + "…"
	}
	return name
}

// update takes the numbers of ev.
func (tb *taskBar) update(ev durl.Event) {
	tb.mu.Lock()
	if ev.Path != "" {
		tb.name = barName(ev)
	}
	tb.written, tb.total, tb.rate = ev.Progress.Written, ev.Progress.Total, ev.Progress.Rate
	written, total := tb.written, tb.total
	tb.mu.Unlock()
	if total >= 0 {
		tb.bar.SetTotal(total, false)
	}
	tb.bar.SetCurrent(written)
}

// finish completes the bar, or, given the outcome of a download that did
// not complete, aborts it leaving it on screen with that word.
func (tb *taskBar) finish(outcome string) {
	tb.mu.Lock()
	if tb.finished {
		tb.mu.Unlock()
		return
	}
	tb.finished, tb.outcome = true, outcome
	tb.rate = 0
	tb.mu.Unlock()
	if outcome == "" {
		tb.bar.SetTotal(-1, true)
	} else {
		tb.bar.Abort(false)
	}
}

// show calls f with tb locked.
func (tb *taskBar) show(f func() string) string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return f()
}

func (tb *taskBar) sizes() string {
	if tb.total < 0 {
		return formatSize(tb.written)
	}
	return formatSize(tb.written) + " / " + formatSize(tb.total)
}

func (tb *taskBar) percent() string {
	if tb.total <= 0 {
		return ""
	}
	return fmt.Sprintf("%d%%", min(100, tb.written*100/tb.total))
}

func (tb *taskBar) speed() string {
	if tb.finished || tb.rate <= 0 {
		return ""
	}
	return formatRate(tb.rate)
}

func (tb *taskBar) eta() string {
	if tb.outcome != "" {
		return tb.outcome
	}
	if tb.finished || tb.rate <= 0 || tb.total < 0 || tb.written >= tb.total {
		return ""
	}
	left := time.Duration(float64(tb.total-tb.written) / tb.rate * float64(time.Second))
	return "ETA " + formatETA(left)
}

// formatETA formats a time left to the second: "7s", "2m05s", "1h02m".
func formatETA(d time.Duration) string {
	if d = d.Round(time.Second); d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return formatDuration(d)
}

func (r *barRenderer) errorLine(line string) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if !done {
		if _, err := fmt.Fprintln(r.p, clean(line)); err == nil {
			return
		}
	}
	r.lines.errorLine(line) // the bars are gone
}

// finish aborts the bars still running and waits for the last drawing.
func (r *barRenderer) finish() {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done = true
	bars := make([]*taskBar, 0, len(r.bars))
	for _, tb := range r.bars {
		bars = append(bars, tb)
	}
	r.mu.Unlock()
	for _, tb := range bars {
		tb.finish("stopped") // does nothing to a bar that finished
	}
	// A line printed above the bars waits in their writer until they are
	// next drawn, which mpb does not do when it stops: draw once more, so
	// that the last error lines are not lost. (The wait is bounded in case
	// mpb stopped drawing after an error of its own.)
	select {
	case r.redraw <- nil:
	case <-time.After(time.Second):
	}
	close(r.stopped)
	r.p.Wait()
}
