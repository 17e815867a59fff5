package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
	"github.com/spf13/cobra"
)

// watchMaxRows is the most tasks durl watch shows on a terminal, so that
// its table fits on the screen.
const watchMaxRows = 20

// watchCmd builds durl watch.
func (a *app) watchCmd(cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch [flags]",
		Short: "Show the daemon's tasks live, until Ctrl-C",
		Long: "Show what the daemon's tasks do, until Ctrl-C (exit code 0). On a terminal, a\n" +
			"table of the tasks is redrawn every second (on stderr); otherwise one line is\n" +
			"printed per event on stdout: the task ID, the event and details.",
		Args: cobra.NoArgs,
	}
	cmd.RunE = a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
		err := a.runWatch(ctx, c, asJSON)
		if ctx.Err() != nil {
			return nil // Ctrl-C: the normal end
		}
		return err
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as a line of JSON")
	return cmd
}

// runWatch shows the tasks and their events until ctx is done.
func (a *app) runWatch(ctx context.Context, c *client.Client, asJSON bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe from the newest event before reading the tasks, so that
	// no change between the two is lost.
	st, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	stream := c.Events(ctx, st.LastID)
	defer stream.Close()
	if err := stream.Connect(); err != nil {
		return err
	}
	tasks, err := listAll(ctx, c, "")
	if err != nil {
		return err
	}
	v := newWatchView(tasks)
	events, errc := readEvents(ctx, stream)

	var (
		draw  = a.env.terminal && !asJSON
		frame = &frameWriter{w: a.env.stderr}
		tick  <-chan time.Time
	)
	if draw {
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		tick = ticker.C
		frame.draw(v.frame())
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-tick:
			frame.draw(v.frame())
		case ev := <-events:
			if ev.Kind == api.EventGap {
				tasks, err := listAll(ctx, c, "")
				if err != nil {
					return err
				}
				v = newWatchView(tasks)
			} else {
				v.apply(ev)
			}
			if !draw {
				a.printEvent(ev, v, asJSON)
			}
		}
	}
}

// readEvents reads the events of s in a goroutine, until ctx is done or
// the stream fails.
func readEvents(ctx context.Context, s *client.EventStream) (<-chan api.Event, <-chan error) {
	events := make(chan api.Event, 64)
	errc := make(chan error, 1)
	go func() {
		for {
			ev, err := s.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return events, errc
}

// printEvent prints ev as one line on stdout: JSON, or text.
func (a *app) printEvent(ev api.Event, v *watchView, asJSON bool) {
	if asJSON {
		a.printJSONLine(ev)
		return
	}
	fmt.Fprintln(a.env.stdout, eventLine(ev, v.tasks[ev.TaskID]))
}

// eventLine is the line of text for ev, about the task t (nil if unknown),
// such as "t1 progress big.iso 1.0 MiB of 10.0 MiB (10%), 2.0 MiB/s".
func eventLine(ev api.Event, t *api.Task) string {
	if ev.Kind == api.EventGap {
		return "gap: some events were missed; the tasks were read again"
	}
	if t == nil {
		t = &api.Task{ID: ev.TaskID, URL: ev.URL, Path: ev.Path}
	}
	id := ev.TaskID
	if id == "" {
		id = "-"
	}
	line := id + " " + ev.Kind
	switch ev.Kind {
	case api.EventAdded:
		line += " " + redactURL(t.URL)
	case api.EventCompleted:
		if t.Path != "" {
			line += " " + t.Path
		} else {
			line += " " + taskName(*t)
		}
	case api.EventProgress:
		line += " " + taskName(*t) + " " + progressText(ev)
	default:
		if ev.TaskID != "" {
			line += " " + taskName(*t)
		}
	}
	if ev.Reason != "" {
		line += ": " + trimPrefix(ev.Reason)
	}
	if ev.Error != nil {
		line += ": " + trimPrefix(ev.Error.Message)
	}
	return clean(oneLine(line))
}

// progressText is the progress of a progress event, such as "1.0 MiB of
// 10.0 MiB (10%), 2.0 MiB/s".
func progressText(ev api.Event) string {
	s := formatSize(ev.Written)
	if ev.Total > 0 {
		s += " of " + formatSize(ev.Total) + " (" + strconv.FormatInt(min(ev.Written*100/ev.Total, 100), 10) + "%)"
	}
	return s + ", " + formatRate(ev.Rate)
}

// watchView is what durl watch knows of the tasks.
type watchView struct {
	order []string // task IDs, oldest first
	tasks map[string]*api.Task
}

// newWatchView returns the view of tasks.
func newWatchView(tasks []api.Task) *watchView {
	v := &watchView{tasks: make(map[string]*api.Task, len(tasks))}
	for _, t := range tasks {
		v.add(t)
	}
	return v
}

// add adds t, unless it is known.
func (v *watchView) add(t api.Task) *api.Task {
	if p := v.tasks[t.ID]; p != nil {
		return p
	}
	p := &t
	v.tasks[t.ID] = p
	v.order = append(v.order, t.ID)
	return p
}

// stateOfKind is the state a task is in after an event of a kind, when
// the event does not say.
var stateOfKind = map[string]string{
	api.EventStarted:     api.StateRunning,
	api.EventRestarted:   api.StateRunning,
	api.EventRecovered:   api.StateRunning,
	api.EventResumed:     api.StateQueued,
	api.EventPaused:      api.StatePaused,
	api.EventInterrupted: api.StateInterrupted,
	api.EventCompleted:   api.StateCompleted,
	api.EventFailed:      api.StateFailed,
	api.EventCancelled:   api.StateCancelled,
}

// apply updates the view with ev.
func (v *watchView) apply(ev api.Event) {
	if ev.TaskID == "" {
		return
	}
	if ev.Kind == api.EventRemoved {
		delete(v.tasks, ev.TaskID)
		v.order = slices.DeleteFunc(v.order, func(id string) bool { return id == ev.TaskID })
		return
	}
	t := v.add(api.Task{ID: ev.TaskID, URL: ev.URL, State: api.StateQueued, Total: -1, Created: ev.Time})
	if ev.URL != "" {
		t.URL = ev.URL
	}
	if ev.Path != "" {
		t.Path = ev.Path
	}
	switch {
	case ev.State != "":
		t.State = ev.State
	case stateOfKind[ev.Kind] != "":
		t.State = stateOfKind[ev.Kind]
	}
	if ev.Kind == api.EventProgress || ev.Written > 0 {
		t.Written, t.Rate = ev.Written, ev.Rate
	}
	if ev.Total != 0 {
		t.Total = ev.Total
	}
	if ev.Error != nil {
		t.Error = ev.Error
	}
}

// stateRank orders the tasks durl watch shows: the active ones first.
var stateRank = map[string]int{
	api.StateRunning: 0, api.StateQueued: 1, api.StatePaused: 2, api.StateInterrupted: 3,
	api.StateFailed: 4, api.StateCompleted: 5, api.StateCancelled: 6,
}

// frame returns the lines of the table durl watch draws: a summary, then
// the tasks, the active ones first.
func (v *watchView) frame() []string {
	tasks := make([]api.Task, 0, len(v.order))
	var rate float64
	counts := map[string]int{}
	for _, id := range v.order {
		t := *v.tasks[id]
		tasks = append(tasks, t)
		counts[t.State]++
		if t.State == api.StateRunning {
			rate += t.Rate
		}
	}
	slices.SortStableFunc(tasks, func(x, y api.Task) int { return stateRank[x.State] - stateRank[y.State] })
	summary := fmt.Sprintf("%d tasks", len(tasks))
	if len(tasks) == 1 {
		summary = "1 task"
	}
	for _, st := range taskStates {
		if counts[st] > 0 {
			summary += fmt.Sprintf(", %d %s", counts[st], st)
		}
	}
	summary += "; " + formatRate(rate)
	more := len(tasks) - watchMaxRows
	if more > 0 {
		tasks = tasks[:watchMaxRows]
	}
	var b bytes.Buffer
	writeTable(&b, taskRows(tasks))
	lines := append([]string{summary}, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	if more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more (durl ls lists them all)", more))
	}
	return lines
}

// frameWriter redraws a block of lines in place on a terminal.
type frameWriter struct {
	w     io.Writer
	lines int // the lines drawn last
}

// draw replaces the lines drawn last with lines. Line wrapping is turned
// off while drawing, so that a long line cannot push the block down.
func (f *frameWriter) draw(lines []string) {
	var b strings.Builder
	b.WriteString("\x1b[?7l")
	if f.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", f.lines)
	}
	b.WriteString("\r\x1b[J")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
	b.WriteString("\x1b[?7h")
	io.WriteString(f.w, b.String())
	f.lines = len(lines)
}
