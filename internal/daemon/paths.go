package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// resolveDirs returns the download folders with symbolic links resolved.
// Each must exist and be a folder.
func resolveDirs(dirs []string) ([]string, error) {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil, fmt.Errorf("the download folder %s: %w; create it or pass another -d", d, unwrapPath(err))
		}
		fi, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("the download folder %s: %w", d, unwrapPath(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("the download folder %s is not a folder; pass another -d", d)
		}
		out[i] = real
	}
	return out, nil
}

// unwrapPath turns "lstat /a/b: no such file or directory" into "no such
// file or directory": the messages name the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
