package vfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempSuffix marks the temporary files of WriteFileAtomic; SweepTemp removes
// the ones a crash left behind.
const TempSuffix = ".durl-tmp"

// WriteFileAtomic durably replaces path with data: it writes a temporary
// file beside path, syncs it, renames it over path and syncs the folder. A
// crash at any point leaves either the old content or the new one. durl
// uses it for files written once, like the session key; task records are
// rewritten in place, in slots (see record.go).
func WriteFileAtomic(fsys FS, path string, data []byte, perm os.FileMode) (err error) {
	tmp := path + TempSuffix
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fsys.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, path); err != nil {
		return err
	}
	return fsys.SyncDir(filepath.Dir(path))
}

// SweepTemp removes the temporary files that WriteFileAtomic left in dir
// when a crash interrupted it.
func SweepTemp(fsys FS, dir string) error {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasSuffix(name, TempSuffix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// ReadFile reads the whole of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, info.Size())
	n, err := f.ReadAt(buf, 0)
	if n == len(buf) {
		err = nil
	}
	return buf[:n], err
}

// MkdirAllDurable creates a folder and its missing parents, like MkdirAll,
// and makes each new folder's entry durable by syncing the folder that
// holds it: a power loss then cannot take a folder that records count on.
func MkdirAllDurable(fsys FS, dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	existing := dir
	for {
		if _, err := fsys.Stat(existing); err == nil || filepath.Dir(existing) == existing {
			break
		}
		existing = filepath.Dir(existing)
	}
	if existing == dir {
		return nil
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := dir; d != existing; d = filepath.Dir(d) {
		if err := fsys.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}
