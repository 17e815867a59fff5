package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"time"
)

// Defaults of Config.
const (
	// DefaultKeepCompleted is how long finished tasks are listed.
	DefaultKeepCompleted = 7 * 24 * time.Hour
	// DefaultEventMax and DefaultEventMaxAge bound the event log: a client
	// reconnecting after longer than this gets a gap event.
	DefaultEventMax    = 100_000
	DefaultEventMaxAge = 24 * time.Hour
	// DefaultProgressInterval is the least time between two progress
	// events of a task.
	DefaultProgressInterval = time.Second
	// DefaultPruneInterval is how often finished tasks older than
	// KeepCompleted are forgotten.
	DefaultPruneInterval = time.Hour
)

// Config configures a Server. Only StateDir and DownloadDirs are required.
type Config struct {
	// StateDir is the state folder: the session's records, the event log,
	// the socket, the lock and the token live here. Absolute.
	StateDir string

	// DownloadDirs are the only folders files may be written to. The
	// first is where downloads go when a request names no destination.
	// Absolute; each must exist.
	DownloadDirs []string

	// Listen, if set, is a TCP address (host:port) to serve on besides the
	// Unix socket. Clients there must send the bearer token.
	Listen string

	// Token is the bearer token of the TCP listener. Empty: it is read
	// from <state>/token, generated there first if missing.
	Token string

	// Queue settings; each can be changed while running (PATCH
	// /v1/limits). Zero MaxActive and RateLimit mean no limit; zero
	// MaxConnsPerHost means the library's default.
	MaxActive       int
	MaxConnsPerHost int
	RateLimit       int64

	// KeepCompleted is how long completed tasks are kept before they are
	// forgotten. Default DefaultKeepCompleted.
	KeepCompleted time.Duration

	// NoSync turns off fsync in the session and the event log: for
	// scratch data only.
	NoSync bool

	// EventMax and EventMaxAge bound the event log kept on disk. Defaults
	// DefaultEventMax and DefaultEventMaxAge.
	EventMax    int
	EventMaxAge time.Duration

	// ProgressInterval is the least time between two progress events of a
	// task. Default DefaultProgressInterval.
	ProgressInterval time.Duration

	// PruneInterval is how often old completed tasks are forgotten.
	// Default DefaultPruneInterval.
	PruneInterval time.Duration

	// Client makes the downloads' HTTP requests. Default: the library's.
	Client *http.Client
}

// check validates c and fills in the defaults.
func (c *Config) check() error {
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return errors.New("the state folder must be an absolute path")
	}
	c.StateDir = filepath.Clean(c.StateDir)
	if len(c.DownloadDirs) == 0 {
		return errors.New("no download folder given; pass -d DIR")
	}
	c.DownloadDirs = slices.Clone(c.DownloadDirs)
	for i, d := range c.DownloadDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("the download folder %q must be an absolute path", d)
		}
		c.DownloadDirs[i] = filepath.Clean(d)
	}
	switch {
	case c.MaxActive < 0:
		return errors.New("the most active downloads must be 0 (no limit) or more")
	case c.MaxConnsPerHost < 0:
		return errors.New("the most connections per host must be 0 (default) or more")
	case c.RateLimit < 0:
		return errors.New("the rate limit must be 0 (no limit) or more")
	}
	if c.KeepCompleted <= 0 {
		c.KeepCompleted = DefaultKeepCompleted
	}
	if c.EventMax <= 0 {
		c.EventMax = DefaultEventMax
	}
	if c.EventMaxAge <= 0 {
		c.EventMaxAge = DefaultEventMaxAge
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = DefaultPruneInterval
	}
	return nil
}
