// Command durl downloads files over HTTP so that a download survives kill -9,
// Ctrl-C, power loss and network faults: run the same command again and it
// continues where it stopped, never mixing two versions of the remote file.
//
//	durl get https://example.com/big.iso
//
// The exit codes are listed in docs/exit-codes.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/durl-dev/durl/internal/vfs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes; docs/exit-codes.md explains each. They are all distinct and
// below 126, so that a shell never confuses them with its own.
const (
	exitOK            = 0 // success
	exitError         = 1 // internal or other error
	exitUsage         = 2 // bad flags or arguments
	exitNetwork       = 3 // network or HTTP failure, after retries
	exitRemoteChanged = 4 // the remote file changed and the download could not restart
	exitChecksum      = 5 // the file does not match --checksum
	exitDisk          = 6 // local disk or file-system failure
	exitInterrupted   = 7 // Ctrl-C or SIGTERM: paused, run again to continue
	exitLocked        = 8 // another durl is downloading the same file
)

func main() {
	ctx, stop := interruptContext(os.Stderr)
	code := run(ctx, os.Args[1:], newEnv())
	stop()
	os.Exit(code)
}

// env is what the commands see of the outside world, so that tests can
// replace it.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	getwd    func() (string, error)
	terminal bool   // stderr is a terminal bars can be drawn on
	fs       vfs.FS // where the CLI creates folders (the library's session uses the OS)
}

// newEnv returns the process's real environment.
func newEnv() *env {
	return &env{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		getwd:    os.Getwd,
		terminal: drawable(int(os.Stderr.Fd()), os.Getenv("TERM")),
		fs:       vfs.OS,
	}
}

// drawable reports whether progress bars can be drawn on fd: a terminal,
// not a dumb one, that knows its width. A terminal that reports no width
// (a pseudo-terminal nobody sized, as some CI runners and editors open)
// would get bars of no columns, which show nothing, not even errors; it
// gets lines instead.
func drawable(fd int, termName string) bool {
	if !term.IsTerminal(fd) || termName == "dumb" {
		return false
	}
	width, _, err := term.GetSize(fd)
	return err == nil && width > 0
}

// interruptContext returns a context cancelled by the first SIGINT or
// SIGTERM; the commands then pause their downloads and exit. A second signal
// exits at once: every download is durable at all times, so this is no worse
// than kill -9.
func interruptContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-ch; !ok {
			return
		}
		cancel()
		if _, ok := <-ch; !ok {
			return
		}
		fmt.Fprintln(stderr, "durl: stopped at once; run the same command again to continue")
		os.Exit(exitInterrupted)
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// app holds the global flags and what the commands share.
type app struct {
	env      *env
	stateDir string // --state
	ran      bool   // a command's RunE was reached: its errors are not usage errors

	// getHook, set by tests, replaces runGet.
	getHook func(o *getOptions, args []string) error
}

// run executes the command line args and returns the exit code. Every error
// is printed on one line to stderr.
func run(ctx context.Context, args []string, e *env) int {
	return (&app{env: e}).run(ctx, args)
}

// run executes the command line args and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	e := a.env
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var done *exitStatus
	if errors.As(err, &done) {
		return done.code // already reported
	}
	var usage *usageError
	if !a.ran || errors.As(err, &usage) {
		fmt.Fprintln(e.stderr, usageLine(err, root, args))
		return exitUsage
	}
	fmt.Fprintln(e.stderr, describe(err))
	return exitCode(err)
}

// rootCmd builds the command tree.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "durl",
		Short: "Downloads that survive kill -9, Ctrl-C, power loss and network faults",
		Long: "durl downloads files over HTTP. A download survives kill -9, Ctrl-C, power loss\n" +
			"and network faults: run the same command again and it continues where it\n" +
			"stopped, and it never mixes two versions of a remote file.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(a.env.stdin)
	root.SetOut(a.env.stdout)
	root.SetErr(a.env.stderr)
	root.PersistentFlags().StringVar(&a.stateDir, "state", "",
		"state folder `DIR` (default $DURL_STATE, else $XDG_STATE_HOME/durl, else ~/.local/state/durl)")
	root.AddCommand(a.getCmd(), a.versionCmd(), a.serveCmd())
	root.AddCommand(a.clientCmds()...)
	return root
}

// resolveStateDir returns the absolute state folder: --state, else
// $DURL_STATE, else $XDG_STATE_HOME/durl (when absolute, as the XDG spec
// requires), else ~/.local/state/durl.
func (a *app) resolveStateDir() (string, error) {
	dir := a.stateDir
	if dir == "" {
		dir = a.env.getenv("DURL_STATE")
	}
	if dir == "" {
		if x := a.env.getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
			dir = filepath.Join(x, "durl")
		}
	}
	if dir == "" {
		home := a.env.getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", usageErrorf("cannot find the state folder: no home folder; use --state DIR or DURL_STATE")
			}
			home = h
		}
		dir = filepath.Join(home, ".local", "state", "durl")
	}
	return absPath(a.env, dir)
}

// absPath makes p absolute against the working folder of e.
func absPath(e *env, p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	wd, err := e.getwd()
	if err != nil {
		return "", fmt.Errorf("cannot find the current folder: %w", err)
	}
	return filepath.Join(wd, p), nil
}

// usageError is a bad flag or argument: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a *usageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus is returned by a command that has already reported what went
// wrong; run only exits with its code.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageLine formats a usage error as one line that points at the help of
// the command the user ran.
func usageLine(err error, root *cobra.Command, args []string) string {
	help := "durl --help"
	if cmd, _, ferr := root.Find(args); ferr == nil && cmd != root {
		help = cmd.CommandPath() + " --help"
	}
	return "durl: " + oneLine(trimPrefix(err.Error())) + " (see '" + help + "')"
}
