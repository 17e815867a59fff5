package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
	"github.com/spf13/cobra"
)

// clientFlags are the flags of the commands that talk to durl serve.
type clientFlags struct {
	server string // --server
	token  string // --token
}

// clientCmds builds the commands that talk to durl serve: add, ls, pause,
// resume, cancel, rm, watch and wait.
func (a *app) clientCmds() []*cobra.Command {
	cf := &clientFlags{}
	cmds := []*cobra.Command{
		a.addCmd(cf),
		a.lsCmd(cf),
		a.taskActionCmd(cf, "pause", "Pause tasks of the daemon; durl resume continues them", "paused", (*client.Client).Pause, (*client.Client).PauseAll),
		a.taskActionCmd(cf, "resume", "Resume paused, failed or interrupted tasks of the daemon", "resumed", (*client.Client).Resume, (*client.Client).ResumeAll),
		a.taskActionCmd(cf, "cancel", "Cancel tasks of the daemon, deleting their partial data", "cancelled", (*client.Client).Cancel, nil),
		a.rmCmd(cf),
		a.watchCmd(cf),
		a.waitCmd(cf),
	}
	for _, cmd := range cmds {
		f := cmd.PersistentFlags()
		f.StringVar(&cf.server, "server", "",
			"talk to the daemon at `URL` over TCP (default $DURL_SERVER; else the daemon of the state folder, through its socket)")
		f.StringVar(&cf.token, "token", "",
			"send the bearer `TOKEN` to --server (default $DURL_TOKEN, else, for a local server, the state folder's token file)")
	}
	return cmds
}

// dial returns the client of the daemon the flags name: --server, else
// $DURL_SERVER, else the daemon of the state folder.
func (a *app) dial(cf *clientFlags) (*client.Client, error) {
	server := cf.server
	if server == "" {
		server = a.env.getenv("DURL_SERVER")
	}
	if server == "" {
		dir, err := a.resolveStateDir()
		if err != nil {
			return nil, err
		}
		return client.Dial(dir)
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--server %q: want a URL such as http://127.0.0.1:7777", server)
	}
	token := cf.token
	if token == "" {
		token = a.env.getenv("DURL_TOKEN")
	}
	if token == "" && isLoopback(u.Hostname()) {
		token = a.stateToken()
	}
	return client.New(server, token), nil
}

// isLoopback reports whether host is this machine, so that the state
// folder's token may be sent to it.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stateToken returns the token the daemon of the state folder wrote, or ""
// when there is none.
func (a *app) stateToken() string {
	dir, err := a.resolveStateDir()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, api.TokenName))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// clientRunE returns the RunE of a client command: it dials the daemon
// and runs f, and reports f's failure as one line.
func (a *app) clientRunE(cf *clientFlags, f func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		c, err := a.dial(cf)
		if err == nil {
			err = f(cmd.Context(), c, args)
		}
		return a.reportClientError(err)
	}
}

// reportClientError prints err as one line and returns the *exitStatus to
// exit with. Usage errors and *exitStatus are returned as they are.
func (a *app) reportClientError(err error) error {
	var (
		usage *usageError
		done  *exitStatus
	)
	if err == nil || errors.As(err, &usage) || errors.As(err, &done) {
		return err
	}
	fmt.Fprintln(a.env.stderr, clientErrorLine("", err))
	if errors.Is(err, context.Canceled) {
		return &exitStatus{code: exitInterrupted}
	}
	return &exitStatus{code: exitError}
}

// clientErrorLine is the line that reports err, about the task id when
// not "": what happened and what to do.
func clientErrorLine(id string, err error) string {
	prefix := "durl: "
	if id != "" {
		prefix += id + ": "
	}
	var ae *client.Error
	switch {
	case errors.Is(err, client.ErrNoDaemon):
		return clean(oneLine(prefix + err.Error()))
	case errors.As(err, &ae):
		msg := trimPrefix(ae.Message)
		if !strings.Contains(msg, "; ") { // the daemon's message may already say what to do
			msg += "; " + apiAdvice(ae.Code)
		}
		return clean(oneLine(prefix + msg))
	case errors.Is(err, context.Canceled):
		return clean(prefix + "stopped")
	}
	return clean(oneLine(prefix + errText(err) + "; check that durl serve is running, and --server, --token or --state"))
}

// apiAdvice says what to do about an error answer with code.
func apiAdvice(code string) string {
	switch code {
	case api.CodeUnauthorized:
		return "check --token or $DURL_TOKEN"
	case api.CodeNotFound:
		return "list the tasks with: durl ls"
	case api.CodeForbidden:
		return "choose a destination (-o, -d) inside the daemon's download folders"
	case api.CodeConflict:
		return "see the task's state with: durl ls"
	case api.CodeBadRequest:
		return "check the command's arguments"
	case api.CodeTooLarge:
		return "add fewer downloads at once"
	case api.CodeUnavailable:
		return "the daemon is stopping; run the command again once it is back"
	}
	return "run the same command again; if it keeps failing, see the daemon's log"
}

// printJSONLine writes v as one line of JSON on stdout, as every --json
// of durl does.
func (a *app) printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = a.env.stdout.Write(append(b, '\n'))
	return err
}

// printTasksJSON writes each task as one line of JSON on stdout.
func (a *app) printTasksJSON(tasks []api.Task) error {
	for _, t := range tasks {
		if err := a.printJSONLine(t); err != nil {
			return err
		}
	}
	return nil
}

// addOptions are the flags of durl add.
type addOptions struct {
	output    string   // -o
	dir       string   // -d
	priority  int      // --priority
	conns     int      // -x
	checksum  string   // --checksum
	headers   []string // -H
	mirrors   []string // --mirror
	limitRate string   // --limit-rate
	paused    bool     // --paused
	json      bool     // --json
}

// addCmd builds durl add.
func (a *app) addCmd(cf *clientFlags) *cobra.Command {
	o := &addOptions{}
	cmd := &cobra.Command{
		Use:   "add [flags] URL [URL...]",
		Short: "Add downloads to the daemon (durl serve) and print their task IDs",
		Long: "Add each URL to the daemon's queue and print the new task IDs, one per line.\n" +
			"Relative -o and -d are taken from the current folder; without them the files go\n" +
			"to the daemon's download folder. Either all URLs are added or none.",
		Example: "  durl add https://example.com/big.iso\n" +
			"  durl add -d ~/Downloads --priority 10 https://example.com/a.iso https://example.com/b.iso\n" +
			"  id=$(durl add -o disk.img https://example.com/download?id=7) && durl wait $id",
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		a.ran = true
		cwd, err := a.env.getwd()
		if err != nil {
			return fmt.Errorf("cannot find the current folder: %w", err)
		}
		downloads, err := o.downloads(args, cwd)
		if err != nil {
			return err
		}
		return a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
			return a.runAdd(ctx, c, o, downloads)
		})(cmd, args)
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&o.output, "output", "o", "", "save to `FILE` (one URL only)")
	f.StringVarP(&o.dir, "dir", "d", "", "save in folder `DIR` (default: the daemon's download folder)")
	f.IntVar(&o.priority, "priority", 0, "queue priority `P`, from -1000 to 1000: higher runs first")
	f.IntVarP(&o.conns, "connections", "x", 0, "use up to `N` connections per file (0: automatic)")
	f.StringVar(&o.checksum, "checksum", "", "verify the file against `ALGO:HEX` (sha256, sha512, sha1 or md5; one URL only)")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "send the header `'Name: value'` (repeatable)")
	f.StringArrayVar(&o.mirrors, "mirror", nil, "another `URL` of the same file (repeatable; one URL only)")
	f.StringVar(&o.limitRate, "limit-rate", "", "limit each file's speed to `RATE` bytes per second, such as 10M (K, M, G: powers of 1024)")
	f.BoolVar(&o.paused, "paused", false, "add the downloads paused; durl resume starts them")
	f.BoolVar(&o.json, "json", false, "print each new task as a line of JSON")
	return cmd
}

// downloads checks the flags and arguments of durl add and returns the
// downloads to add, with -o and -d made absolute against cwd. Errors are
// *usageError.
func (o *addOptions) downloads(args []string, cwd string) ([]api.Download, error) {
	urls := dedupe(append([]string(nil), args...))
	if err := checkTargets(urls, o.output, o.checksum, o.mirrors, o.conns); err != nil {
		return nil, err
	}
	if o.priority < api.MinPriority || o.priority > api.MaxPriority {
		return nil, usageErrorf("--priority must be from %d to %d", api.MinPriority, api.MaxPriority)
	}
	d := api.Download{Mirrors: o.mirrors, Connections: o.conns, Priority: o.priority, Paused: o.paused}
	if err := o.fill(&d, cwd); err != nil {
		return nil, err
	}
	downloads := make([]api.Download, len(urls))
	for i, u := range urls {
		downloads[i] = d
		downloads[i].URL = u
	}
	return downloads, nil
}

// fill sets the headers, checksum, rate limit and destination of d.
func (o *addOptions) fill(d *api.Download, cwd string) error {
	if _, err := parseHeaders(o.headers); err != nil {
		return err
	}
	for _, h := range o.headers {
		name, value, _ := strings.Cut(h, ":")
		d.Headers = append(d.Headers, strings.TrimSpace(name)+": "+strings.TrimSpace(value))
	}
	checksum, err := parseChecksum(o.checksum)
	if err != nil {
		return err
	}
	d.Checksum = checksum
	if o.limitRate != "" {
		rate, err := parseByteSize(o.limitRate)
		if err != nil {
			return usageErrorf("--limit-rate: %v", err)
		}
		d.RateLimit = rate
	}
	if o.output == "" && o.dir == "" {
		return nil // the daemon's download folder
	}
	dest, isDir, err := (&getOptions{output: o.output, dir: o.dir}).destination(cwd)
	if err != nil {
		return err
	}
	if isDir {
		d.Dir = dest
	} else {
		d.Output = dest
	}
	return nil
}

// runAdd adds the downloads and prints their IDs.
func (a *app) runAdd(ctx context.Context, c *client.Client, o *addOptions, downloads []api.Download) error {
	tasks, err := c.Add(ctx, downloads...)
	if err != nil {
		return err
	}
	if o.json {
		return a.printTasksJSON(tasks)
	}
	for _, t := range tasks {
		fmt.Fprintln(a.env.stdout, clean(t.ID))
	}
	return nil
}

// taskStates are the states durl ls --only accepts.
var taskStates = []string{api.StateQueued, api.StateRunning, api.StatePaused, api.StateInterrupted,
	api.StateCompleted, api.StateFailed, api.StateCancelled}

// lsCmd builds durl ls.
func (a *app) lsCmd(cf *clientFlags) *cobra.Command {
	var (
		only   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ls [flags]",
		Short: "List the daemon's tasks",
		Long: "List the tasks of the daemon (durl serve), oldest first: ID, state, progress,\n" +
			"size, speed and file name.",
		Example: "  durl ls\n  durl ls --only running,queued\n  durl ls --json",
		Args:    cobra.NoArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		a.ran = true
		states, err := parseStates(only)
		if err != nil {
			return err
		}
		return a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
			tasks, err := listAll(ctx, c, states)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printTasksJSON(tasks)
			}
			return writeTable(a.env.stdout, taskRows(tasks))
		})(cmd, args)
	}
	cmd.Flags().StringVar(&only, "only", "", "list only the tasks in these `STATES`, comma-separated: "+strings.Join(taskStates, ", "))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each task as a line of JSON")
	return cmd
}

// parseStates checks a --only value and returns it without spaces.
func parseStates(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	var states []string
	for _, st := range strings.Split(s, ",") {
		st = strings.ToLower(strings.TrimSpace(st))
		if !slices.Contains(taskStates, st) {
			return "", usageErrorf("--only %q: %q is not a state; want some of %s", s, st, strings.Join(taskStates, ", "))
		}
		states = append(states, st)
	}
	return strings.Join(states, ","), nil
}

// listPageSize is how many tasks listAll asks for at once: the most the
// daemon gives in one page.
const listPageSize = 1000

// listAll reads every page of the tasks in states ("" for all).
func listAll(ctx context.Context, c *client.Client, states string) ([]api.Task, error) {
	var (
		tasks []api.Task
		q     = api.ListQuery{State: states, Limit: listPageSize}
	)
	for {
		page, err := c.List(ctx, q)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, page.Tasks...)
		if page.Next == "" || page.Next == q.After {
			return tasks, nil
		}
		q.After = page.Next
	}
}

// taskActionCmd builds durl pause, resume or cancel: do for each ID,
// printing "ID: done"; with doAll, the flag --all does it to every task.
func (a *app) taskActionCmd(cf *clientFlags, name, short, done string,
	do func(*client.Client, context.Context, string) (api.Task, error),
	doAll func(*client.Client, context.Context) (api.Stats, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name + " [flags] ID [ID...]",
		Short: short,
		Long: short + ".\nIt prints one line per task; the exit code is 1 if any of them failed.\n" +
			"durl ls lists the task IDs.",
	}
	each := a.eachTaskRunE(cf, func(ctx context.Context, c *client.Client, id string) (string, error) {
		if _, err := do(c, ctx, id); err != nil {
			return "", err
		}
		return done, nil
	})
	cmd.RunE = each
	if doAll == nil {
		return cmd
	}
	all := cmd.Flags().Bool("all", false, "do it to every task of the daemon")
	cmd.Use = name + " [flags] ID [ID...] | --all"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !*all {
			return each(cmd, args)
		}
		a.ran = true
		if len(args) > 0 {
			return usageErrorf("give task IDs or --all, not both")
		}
		return a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
			if _, err := doAll(c, ctx); err != nil {
				return err
			}
			fmt.Fprintln(a.env.stdout, "all tasks "+done)
			return nil
		})(cmd, args)
	}
	return cmd
}

// rmCmd builds durl rm.
func (a *app) rmCmd(cf *clientFlags) *cobra.Command {
	var deleteData bool
	cmd := &cobra.Command{
		Use:   "rm [flags] ID [ID...]",
		Short: "Remove tasks from the daemon",
		Long: "Remove tasks from the daemon. Their files stay unless --delete-data is given.\n" +
			"It prints one line per task; the exit code is 1 if any of them failed.",
	}
	cmd.RunE = a.eachTaskRunE(cf, func(ctx context.Context, c *client.Client, id string) (string, error) {
		if _, err := c.Remove(ctx, id, deleteData); err != nil {
			return "", err
		}
		if deleteData {
			return "removed, data deleted", nil
		}
		return "removed", nil
	})
	cmd.Flags().BoolVar(&deleteData, "delete-data", false, "also delete the task's file, partial or complete")
	return cmd
}

// eachTaskRunE returns the RunE of a command that does something to each
// task ID of its arguments: it runs do for each and prints "ID: what" on
// stdout, or the failure on stderr. It stops at a failure that is not the
// daemon's answer about one task (no daemon, network); it exits with 1 if
// anything failed.
func (a *app) eachTaskRunE(cf *clientFlags, do func(ctx context.Context, c *client.Client, id string) (string, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		ids := dedupe(append([]string(nil), args...))
		if len(ids) == 0 {
			return usageErrorf("no task ID given")
		}
		return a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
			failed := false
			for _, id := range ids {
				what, err := do(ctx, c, id)
				var ae *client.Error
				switch {
				case err == nil:
					fmt.Fprintln(a.env.stdout, clean(id+": "+what))
				case errors.As(err, &ae):
					fmt.Fprintln(a.env.stderr, clientErrorLine(id, err))
					failed = true
				default:
					return err
				}
			}
			if failed {
				return &exitStatus{code: exitError}
			}
			return nil
		})(cmd, args)
	}
}

// waitCmd builds durl wait.
func (a *app) waitCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wait [flags] ID [ID...]",
		Short: "Wait until tasks of the daemon end; the exit code tells how",
		Long: "Wait until each task has ended: completed, failed, cancelled, paused or\n" +
			"interrupted. It prints one line per task saying how it ended: on stdout when it\n" +
			"completed, else on stderr. The exit code is 0 if all completed, else that of the\n" +
			"first one, in the order given, that did not (see docs/exit-codes.md).",
		Example: "  durl wait t1 t2 && echo all done",
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		a.ran = true
		ids := dedupe(append([]string(nil), args...))
		if len(ids) == 0 {
			return usageErrorf("no task ID given")
		}
		return a.clientRunE(cf, func(ctx context.Context, c *client.Client, _ []string) error {
			return a.runWait(ctx, c, ids)
		})(cmd, args)
	}
	return cmd
}

// runWait waits for the tasks ids and reports how each ended.
func (a *app) runWait(ctx context.Context, c *client.Client, ids []string) error {
	tasks, err := c.Wait(ctx, ids...)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(a.env.stderr, "durl: stopped waiting; the downloads go on in the daemon (see durl ls)")
			return &exitStatus{code: exitInterrupted}
		}
		return err
	}
	code := exitOK
	for _, id := range ids {
		t := tasks[id]
		if t.State == api.StateCompleted {
			fmt.Fprintln(a.env.stdout, clean(completedLine(t)))
			continue
		}
		fmt.Fprintln(a.env.stderr, endLine(t))
		if code == exitOK {
			code = endExitCode(t)
		}
	}
	if code != exitOK {
		return &exitStatus{code: code}
	}
	return nil
}

// completedLine says that t completed, such as "t1: completed
// /home/me/x.iso (1.0 GiB)".
func completedLine(t api.Task) string {
	where := t.Path
	if where == "" {
		where = redactURL(t.URL)
	}
	return fmt.Sprintf("%s: completed %s (%s)", t.ID, where, formatSize(max(t.Total, t.Written)))
}

// endLine says how t ended, when it did not complete, and what to do.
func endLine(t api.Task) string {
	what, advice := "", ""
	resume := "durl resume " + t.ID
	switch t.State {
	case api.StatePaused:
		what, advice = "paused", "continue it with: "+resume
	case api.StateInterrupted:
		what, advice = "interrupted: the daemon stopped during the download", "continue it with: "+resume
	case api.StateCancelled:
		what, advice = "cancelled", "add it again with: durl add URL"
	case client.StateRemoved:
		what, advice = "removed while waiting", "add it again with: durl add URL"
	default:
		what, advice = "failed", "retry with: "+resume
		if t.Error != nil {
			what = trimPrefix(t.Error.Message)
			advice = failureAdvice(t.Error.Code, resume)
		}
	}
	return clean(oneLine("durl: " + t.ID + ": " + redactURL(t.URL) + ": " + what + "; " + advice))
}

// failureAdvice says what to do about a task that failed with code.
func failureAdvice(code, resume string) string {
	switch code {
	case api.CodeNetwork:
		return "check the URL and the network, then retry with: " + resume
	case api.CodeRemoteChanged:
		return "download the new version from the start with: " + resume
	case api.CodeChecksum:
		return "check the checksum and the URL"
	case api.CodeDisk:
		return "free some space or fix the folder, then continue with: " + resume
	case api.CodeLocked:
		return "wait for the other durl to finish, then continue with: " + resume
	}
	return "retry with: " + resume
}

// endExitCode is the exit code of durl wait for a task that did not
// complete (docs/exit-codes.md).
func endExitCode(t api.Task) int {
	switch t.State {
	case api.StatePaused, api.StateInterrupted:
		return exitInterrupted
	case api.StateFailed:
		if t.Error == nil {
			return exitError
		}
		switch t.Error.Code {
		case api.CodeNetwork:
			return exitNetwork
		case api.CodeRemoteChanged:
			return exitRemoteChanged
		case api.CodeChecksum:
			return exitChecksum
		case api.CodeDisk:
			return exitDisk
		case api.CodeLocked:
			return exitLocked
		}
	}
	return exitError
}
