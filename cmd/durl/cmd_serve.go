package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/durl-dev/durl/internal/daemon"
	"github.com/spf13/cobra"
)

// defaultMaxActive is the default of durl serve --max-active: as many
// downloads at once as durl get -j, for the same reasons.
const defaultMaxActive = defaultJobs

// serveOptions are the flags of durl serve.
type serveOptions struct {
	dirs            []string      // -d
	listen          string        // --listen
	token           string        // --token
	maxActive       int           // --max-active
	maxConnsPerHost int           // --max-conns-per-host
	limitRate       string        // --limit-rate
	keepCompleted   time.Duration // --keep-completed
	noSync          bool          // --no-sync
}

// serveCmd builds durl serve.
func (a *app) serveCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the durl daemon: downloads added through its API survive restarts",
		Long: "Run one durl session over the state folder, driven through an HTTP+JSON API on the\n" +
			"Unix socket durl.sock in the state folder (readable by you only). Stopped by Ctrl-C\n" +
			"or SIGTERM, it checkpoints every download; started again, even after kill -9 or a\n" +
			"power loss, it resumes them.\n\n" +
			"Files are written only inside the download folders (-d, repeatable; the first is\n" +
			"where a download goes when the client names no destination).\n" +
			"--listen adds a TCP listener; its clients must send a bearer token, --token or the\n" +
			"one generated into the file 'token' in the state folder.",
		Example: "  durl serve\n" +
			"  durl serve -d ~/Downloads -d /srv/isos --max-active 8 --limit-rate 20M\n" +
			"  durl serve --listen 127.0.0.1:7411",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.ran = true
			return a.runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringArrayVarP(&o.dirs, "dir", "d", nil, "allow downloads into folder `DIR`, created if needed (repeatable; the first is the default; default: $XDG_DOWNLOAD_DIR, else ~/Downloads)")
	f.StringVar(&o.listen, "listen", "", "also serve the API on TCP `ADDR` (such as 127.0.0.1:7411), behind a bearer token")
	f.StringVar(&o.token, "token", "", fmt.Sprintf("the bearer `TOKEN` of --listen, at least %d characters (default: generated into the state folder's file 'token')", daemon.MinTokenLength))
	f.IntVar(&o.maxActive, "max-active", defaultMaxActive, "run at most `N` downloads at once; more wait in the queue (0: no limit)")
	f.IntVar(&o.maxConnsPerHost, "max-conns-per-host", 0, "open at most `N` connections to one host across all downloads (0: 16)")
	f.StringVar(&o.limitRate, "limit-rate", "", "limit the total speed to `RATE` bytes per second, such as 10M (K, M, G: powers of 1024)")
	f.DurationVar(&o.keepCompleted, "keep-completed", daemon.DefaultKeepCompleted, "list completed downloads for `DURATION` (such as 24h), then forget them; their files stay")
	f.BoolVar(&o.noSync, "no-sync", false, "never fsync: faster, but a power loss may corrupt the downloads (scratch data only)")
	return cmd
}

// runServe runs durl serve until ctx is cancelled (Ctrl-C or SIGTERM), then
// stops gracefully.
func (a *app) runServe(ctx context.Context, o *serveOptions) error {
	cfg, err := o.config(a)
	if err != nil {
		return err
	}
	if !o.noSync {
		ensureSyncProcs(a.env.getenv)
	}
	srv, err := daemon.New(ctx, cfg)
	if err != nil {
		return a.serveFailed(err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return a.serveFailed(err)
	}
	fmt.Fprintln(a.env.stderr, listeningLine(srv, cfg))
	if err := srv.Serve(ctx); err != nil {
		return a.serveFailed(err)
	}
	return nil
}

// config checks the flags and returns the daemon's configuration. Errors
// are *usageError.
func (o *serveOptions) config(a *app) (daemon.Config, error) {
	cfg := daemon.Config{
		Listen:          o.listen,
		Token:           o.token,
		MaxActive:       o.maxActive,
		MaxConnsPerHost: o.maxConnsPerHost,
		KeepCompleted:   o.keepCompleted,
		NoSync:          o.noSync,
	}
	switch {
	case o.maxActive < 0:
		return cfg, usageErrorf("--max-active must be 0 (no limit) or more")
	case o.maxConnsPerHost < 0:
		return cfg, usageErrorf("--max-conns-per-host must be 0 (the default, 16) or more")
	case o.keepCompleted <= 0:
		return cfg, usageErrorf("--keep-completed must be more than 0, such as 24h")
	case o.token != "" && o.listen == "":
		return cfg, usageErrorf("--token is for --listen; give --listen ADDR too")
	case o.token != "" && len(o.token) < daemon.MinTokenLength:
		return cfg, usageErrorf("--token must be at least %d characters", daemon.MinTokenLength)
	}
	if o.limitRate != "" {
		rate, err := parseByteSize(o.limitRate)
		if err != nil {
			return cfg, usageErrorf("--limit-rate: %v", err)
		}
		cfg.RateLimit = rate
	}
	var err error
	if cfg.StateDir, err = a.resolveStateDir(); err != nil {
		return cfg, err
	}
	if cfg.DownloadDirs, err = o.downloadDirs(a.env); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// downloadDirs returns the absolute download folders, creating them: -d,
// else $XDG_DOWNLOAD_DIR when absolute, else ~/Downloads.
func (o *serveOptions) downloadDirs(e *env) ([]string, error) {
	dirs := o.dirs
	if len(dirs) == 0 {
		dir := e.getenv("XDG_DOWNLOAD_DIR")
		if !filepath.IsAbs(dir) {
			home := e.getenv("HOME")
			if home == "" {
				h, err := os.UserHomeDir()
				if err != nil {
					return nil, usageErrorf("cannot find the download folder: no home folder; use -d DIR")
				}
				home = h
			}
			dir = filepath.Join(home, "Downloads")
		}
		dirs = []string{dir}
	}
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if d == "" {
			return nil, usageErrorf("-d needs a folder")
		}
		abs, err := absPath(e, d)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the download folder: %w", err)
		}
		out = append(out, abs)
	}
	return out, nil
}

// listeningLine is the one line durl serve prints once it listens.
func listeningLine(srv *daemon.Server, cfg daemon.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "durl serve: listening on %s", srv.SocketPath())
	if addr := srv.TCPAddr(); addr != nil {
		fmt.Fprintf(&b, " and http://%s", addr)
		if p := srv.TokenPath(); p != "" {
			fmt.Fprintf(&b, " (bearer token in %s)", p)
		}
	}
	fmt.Fprintf(&b, "; downloads go to %s", strings.Join(cfg.DownloadDirs, ", "))
	return b.String()
}

// serveFailed prints why the daemon could not start or stopped, on one
// line, and returns the exit status: exitLocked when another daemon runs on
// the state folder, else exitError.
func (a *app) serveFailed(err error) error {
	fmt.Fprintln(a.env.stderr, clean(oneLine("durl: "+trimPrefix(err.Error()))))
	if errors.Is(err, daemon.ErrRunning) {
		return &exitStatus{code: exitLocked}
	}
	return &exitStatus{code: exitError}
}
