// Package vfs is the small file-system interface through which durl does all
// of its disk access. The real implementation is OS; tests use the crashable
// in-memory implementation in package memfs and the error-injecting wrapper
// in package errfs, so that every durability rule can be proven by crashing
// at every write.
package vfs

import (
	"errors"
	"io"
	"os"
)

// ErrLocked is returned by File.Lock when another holder has the lock.
var ErrLocked = errors.New("vfs: file is locked by another process")

// ErrBusy is FS.SyncFileSystem's refusal to sync when the system holds
// much data waiting to be written, most likely of other programs: the
// sweep would wait for all of it, where a sync of each file waits for its
// own data only.
var ErrBusy = errors.New("vfs: much data of other files waits to be written; sync each file by itself")

// FS is the subset of file-system operations durl needs. Implementations
// must be safe for concurrent use.
type FS interface {
	// OpenFile opens name with os.O_* flags, like os.OpenFile. With
	// unix.O_TMPFILE (and O_RDWR), name is a folder, and the file is
	// created in it without a name: File.Link names it, else it vanishes
	// when closed or at a crash. An FS without such files refuses the
	// flag with an error.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename atomically replaces newname with oldname, like rename(2).
	Rename(oldname, newname string) error
	// Remove removes a file or an empty folder, like os.Remove.
	Remove(name string) error
	// MkdirAll creates a folder and its parents, like os.MkdirAll.
	MkdirAll(path string, perm os.FileMode) error
	// Stat describes name, like os.Stat.
	Stat(name string) (os.FileInfo, error)
	// ReadDir lists the names in a folder, sorted.
	ReadDir(name string) ([]string, error)
	// SyncDir makes the folder's entries (creations, renames, removals)
	// durable, like fsync on the folder.
	SyncDir(name string) error
	// SyncFileSystem makes everything written to the file system that
	// holds the folder dir durable, every file's data and every folder's
	// entries, in one sweep (syncfs). It returns errors.ErrUnsupported where it cannot
	// promise that, and ErrBusy, syncing nothing, when the sweep would
	// wait for much data of other files. Its error may come from any file
	// on the file system; a file learns of its own with File.WriteError.
	SyncFileSystem(dir string) error
	// Available returns how many bytes an unprivileged writer may still
	// write to the file system that holds the folder dir, like statfs's
	// f_bavail, or errors.ErrUnsupported where that is unknown.
	Available(dir string) (int64, error)
}

// File is an open file. A File is safe for concurrent ReadAt and WriteAt at
// distinct offsets; other methods must not race with each other.
type File interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Name is the path the file was opened with.
	Name() string
	// Stat describes the open file.
	Stat() (os.FileInfo, error)
	// Sync makes the file's data durable (fdatasync).
	Sync() error
	// WriteError waits for writes of the file's data to disk already under
	// way, starting none, and reports an error of writing its data since
	// the file was opened (or the error was last reported): after
	// FS.SyncFileSystem, whether this file's data made it.
	WriteError() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Allocate reserves space for the first size bytes without changing
	// what reads return, so a full disk is found before writing. It returns
	// errors.ErrUnsupported where the file system cannot reserve space.
	Allocate(size int64) error
	// StartWriteback asks the OS to begin writing [off, off+n) to disk
	// without waiting, so a later Sync is short. It is only a hint.
	StartWriteback(off, n int64) error
	// Lock takes an exclusive advisory lock on the file without waiting,
	// returning ErrLocked if another open file holds it. Close releases it.
	Lock() error
	// SetAttr stores a small value under name with the file (an extended
	// attribute of the user namespace), replacing any; a nil value removes
	// it. It returns errors.ErrUnsupported where the file system keeps
	// no such attributes. Like the file's size, the attribute is durable
	// only after FS.SyncFileSystem (Sync, an fdatasync, may skip it).
	SetAttr(name string, value []byte) error
	// Attr returns the value stored under name, or an error wrapping
	// fs.ErrNotExist if there is none.
	Attr(name string) ([]byte, error)
	// Link gives the file the name newname too, like linkat(2) of the
	// open file: the way a file opened with O_TMPFILE gets its name. It
	// fails with an error wrapping fs.ErrExist if newname exists. Like a
	// created file's name, the new name is durable only after FS.SyncDir
	// of its folder.
	Link(newname string) error
}
