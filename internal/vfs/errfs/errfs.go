// Package errfs wraps a vfs.FS to inject errors, for proving that full
// disks, I/O errors and vanished folders stop durl cleanly instead of
// corrupting anything.
//
// Wrap calls an Injector before every operation and fails the operation
// with the error it returns, without running it. WithQuota models a disk of
// limited size that fails writes with ENOSPC. The two compose, with each
// other and with memfs:
//
//	mem := memfs.New()
//	q := errfs.WithQuota(mem, 1<<20)
//	fsys := errfs.Wrap(q, errfs.FailOn(errfs.OpSync, "state", syscall.EIO, 3))
package errfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/durl-dev/durl/internal/vfs"
)

// Op names a kind of operation, for Injectors.
type Op int

const (
	OpOpen           Op = iota // FS.OpenFile
	OpWrite                    // File.Write, File.WriteAt
	OpRead                     // File.Read, File.ReadAt
	OpSync                     // File.Sync
	OpTruncate                 // File.Truncate
	OpAllocate                 // File.Allocate
	OpRename                   // FS.Rename; the path is the old name
	OpRemove                   // FS.Remove
	OpMkdir                    // FS.MkdirAll
	OpStat                     // FS.Stat, File.Stat
	OpReadDir                  // FS.ReadDir
	OpSyncDir                  // FS.SyncDir
	OpClose                    // File.Close
	OpLock                     // File.Lock
	OpStartWriteback           // File.StartWriteback
	OpSyncFileSystem           // FS.SyncFileSystem
	OpWriteError               // File.WriteError
	OpSetAttr                  // File.SetAttr
	OpAttr                     // File.Attr
	OpLink                     // File.Link; the path is the new name
	// OpAny is not an operation: given to FailOn, it matches every one.
	OpAny Op = -1
)

var opNames = [...]string{"open", "write", "read", "sync", "truncate", "allocate", "rename",
	"remove", "mkdir", "stat", "readdir", "syncdir", "close", "lock", "writeback", "syncfs", "writeerror",
	"setattr", "attr", "link"}

func (o Op) String() string {
	if o == OpAny {
		return "any"
	}
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Injector decides the fate of an operation on path (for File methods, the
// File's Name): nil lets it run, an error fails it without running it. An
// Injector may be called from many goroutines at once.
type Injector func(op Op, path string) error

// FailOn returns an Injector that lets the first after operations of kind op
// (or of any kind, for OpAny) on paths containing pathContains run, and
// fails every later one with err (syscall.EIO if err is nil).
func FailOn(op Op, pathContains string, err error, after int) Injector {
	if err == nil {
		err = syscall.EIO
	}
	var seen atomic.Int64
	return func(o Op, path string) error {
		if op != OpAny && o != op || !strings.Contains(path, pathContains) {
			return nil
		}
		if seen.Add(1) <= int64(after) {
			return nil
		}
		return err
	}
}

// Chain returns an Injector that asks each of injs in turn and fails the
// operation with the first error; the later ones are not asked.
func Chain(injs ...Injector) Injector {
	return func(op Op, path string) error {
		for _, inj := range injs {
			if inj == nil {
				continue
			}
			if err := inj(op, path); err != nil {
				return err
			}
		}
		return nil
	}
}

// FS is an error-injecting vfs.FS. It is safe for concurrent use if the
// inner FS and the Injector are.
type FS struct {
	inner vfs.FS
	inj   atomic.Pointer[Injector]
}

var _ vfs.FS = (*FS)(nil)

// Wrap returns inner with inj consulted before every operation. A nil inj
// lets everything through. An injected error that is not already an
// *fs.PathError or *os.LinkError is wrapped in an *fs.PathError, so
// errors.Is sees through it (inject syscall.EIO, get errors.Is(err,
// syscall.EIO)).
func Wrap(inner vfs.FS, inj Injector) *FS {
	f := &FS{inner: inner}
	f.SetInjector(inj)
	return f
}

// SetInjector replaces the Injector, for example with nil once a test wants
// the "disk" repaired.
func (f *FS) SetInjector(inj Injector) { f.inj.Store(&inj) }

// injected asks the Injector about op on path and returns its raw answer.
func (f *FS) injected(op Op, path string) error {
	if inj := *f.inj.Load(); inj != nil {
		return inj(op, path)
	}
	return nil
}

// inject is injected with the error wrapped in an *fs.PathError.
func (f *FS) inject(op Op, path string) error {
	err := f.injected(op, path)
	if err == nil || isPathError(err) {
		return err
	}
	return &fs.PathError{Op: op.String(), Path: path, Err: err}
}

func isPathError(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	return errors.As(err, &pe) || errors.As(err, &le)
}

func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if err := f.inject(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errFile{File: file, fs: f}, nil
}

func (f *FS) Rename(oldname, newname string) error {
	if err := f.injected(OpRename, oldname); err != nil {
		if !isPathError(err) {
			err = &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
		}
		return err
	}
	return f.inner.Rename(oldname, newname)
}

func (f *FS) Remove(name string) error {
	if err := f.inject(OpRemove, name); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

func (f *FS) MkdirAll(path string, perm os.FileMode) error {
	if err := f.inject(OpMkdir, path); err != nil {
		return err
	}
	return f.inner.MkdirAll(path, perm)
}

func (f *FS) Stat(name string) (os.FileInfo, error) {
	if err := f.inject(OpStat, name); err != nil {
		return nil, err
	}
	return f.inner.Stat(name)
}

// Available is the inner FS's, behind an OpStat injection.
func (f *FS) Available(dir string) (int64, error) {
	if err := f.inject(OpStat, dir); err != nil {
		return 0, err
	}
	return f.inner.Available(dir)
}

func (f *FS) ReadDir(name string) ([]string, error) {
	if err := f.inject(OpReadDir, name); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(name)
}

func (f *FS) SyncDir(name string) error {
	if err := f.inject(OpSyncDir, name); err != nil {
		return err
	}
	return f.inner.SyncDir(name)
}

func (f *FS) SyncFileSystem(dir string) error {
	if err := f.inject(OpSyncFileSystem, dir); err != nil {
		return err
	}
	return f.inner.SyncFileSystem(dir)
}

// errFile is a File of an FS; the embedded File supplies Name.
type errFile struct {
	vfs.File
	fs *FS
}

func (f *errFile) inject(op Op) error { return f.fs.inject(op, f.Name()) }

func (f *errFile) Read(p []byte) (int, error) {
	if err := f.inject(OpRead); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *errFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.inject(OpRead); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *errFile) Write(p []byte) (int, error) {
	if err := f.inject(OpWrite); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *errFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.inject(OpWrite); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *errFile) Stat() (os.FileInfo, error) {
	if err := f.inject(OpStat); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *errFile) Sync() error {
	if err := f.inject(OpSync); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errFile) WriteError() error {
	if err := f.inject(OpWriteError); err != nil {
		return err
	}
	return f.File.WriteError()
}

func (f *errFile) Truncate(size int64) error {
	if err := f.inject(OpTruncate); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *errFile) Allocate(size int64) error {
	if err := f.inject(OpAllocate); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

func (f *errFile) StartWriteback(off, n int64) error {
	if err := f.inject(OpStartWriteback); err != nil {
		return err
	}
	return f.File.StartWriteback(off, n)
}

func (f *errFile) Lock() error {
	if err := f.inject(OpLock); err != nil {
		return err
	}
	return f.File.Lock()
}

func (f *errFile) SetAttr(name string, value []byte) error {
	if err := f.inject(OpSetAttr); err != nil {
		return err
	}
	return f.File.SetAttr(name, value)
}

func (f *errFile) Attr(name string) ([]byte, error) {
	if err := f.inject(OpAttr); err != nil {
		return nil, err
	}
	return f.File.Attr(name)
}

func (f *errFile) Link(newname string) error {
	if err := f.fs.injected(OpLink, newname); err != nil {
		if !isPathError(err) {
			err = &os.LinkError{Op: "link", Old: f.Name(), New: newname, Err: err}
		}
		return err
	}
	return f.File.Link(newname)
}

// Close closes the inner file even when an error is injected, as close(2)
// releases the descriptor even when it reports an error.
func (f *errFile) Close() error {
	injected := f.inject(OpClose)
	err := f.File.Close()
	if injected != nil {
		return injected
	}
	return err
}
