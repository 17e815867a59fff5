package vfs

import "os"

// NoSync wraps fsys so that Sync, SyncDir and SyncFileSystem do nothing
// and WriteError reports nothing: what is written is then only as safe as
// the page cache. durl uses it when syncing is turned off for scratch data.
func NoSync(fsys FS) FS { return noSyncFS{fsys} }

type noSyncFS struct{ FS }

func (n noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := n.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error        { return nil }
func (noSyncFS) SyncFileSystem(string) error { return nil }

type noSyncFile struct{ File }

func (noSyncFile) Sync() error       { return nil }
func (noSyncFile) WriteError() error { return nil }
