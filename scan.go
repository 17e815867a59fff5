package durl

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// A folderScan is the listing of a folder that ScanFolder took, shared by
// the callers that asked for it.
type folderScan struct {
	names map[string]bool
	users int
}

// ScanFolder lists the folder dir once, for the downloads into it that
// start before release is called: they look in the listing for what an
// earlier run left there (a partial file to resume, a finished file to
// keep) instead of asking the file system twice each. That saves time when
// one command starts many downloads into one folder, as durl get -i does.
//
// A file that another program puts in dir after the scan is not seen: a
// download then starts afresh where it could have resumed, or downloads a
// file again where it could have kept it, but never takes a wrong file.
// A folder that does not exist yet lists as empty.
func (s *Session) ScanFolder(dir string) (release func(), err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	names, err := s.fs.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &DiskError{Op: "list", Path: dir, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scans == nil {
		s.scans = map[string]*folderScan{}
	}
	scan := s.scans[dir]
	if scan == nil {
		scan = &folderScan{names: make(map[string]bool, len(names))}
		for _, name := range names {
			scan.names[name] = true
		}
		s.scans[dir] = scan
	}
	scan.users++
	var released bool
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if released {
			return
		}
		released = true
		if scan.users--; scan.users == 0 {
			delete(s.scans, dir)
		}
	}, nil
}

// mayExist reports whether a file may be at path: false only when a scan
// of its folder (ScanFolder) did not list it.
func (s *Session) mayExist(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	scan := s.scans[filepath.Dir(path)]
	return scan == nil || scan.names[filepath.Base(path)]
}
