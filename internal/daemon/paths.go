package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// inside reports whether the absolute, clean path lies inside one of the
// folders allowed (themselves resolved), once its symbolic links are
// resolved. Parts of the path that do not exist yet are taken as they are:
// they will be created as plain folders. It fails when the path cannot be
// resolved, such as through a dangling symbolic link.
func inside(path string, allowed []string) (bool, error) {
	real, err := resolve(path)
	if err != nil {
		return false, err
	}
	for _, a := range allowed {
		if real == a || strings.HasPrefix(real, a+string(filepath.Separator)) {
			return true, nil
		}
	}
	return false, nil
}

// resolve returns path with the symbolic links of its longest existing
// prefix resolved, and the rest appended.
func resolve(path string) (string, error) {
	var rest []string
	p := path
	for {
		_, err := os.Lstat(p)
		if err == nil {
			real, err := filepath.EvalSymlinks(p) // fails for a dangling link
			if err != nil {
				return "", err
			}
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
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
