package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockName is the file in the state folder that a running daemon holds an
// OS lock on, so that two daemons never share a state folder.
const LockName = "daemon.lock"

// ErrRunning is wrapped by the error of New or Listen when another daemon
// runs on the state folder.
var ErrRunning = errors.New("another durl serve is running on the state folder")

// lockStateDir takes the daemon lock of the state folder dir. The lock is
// released when the returned file is closed, or when the process dies.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w %s; stop it first, or give this one another --state", ErrRunning, dir)
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	return f, nil
}
