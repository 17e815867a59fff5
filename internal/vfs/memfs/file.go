package memfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"

	"github.com/durl-dev/durl/internal/vfs"
)

var (
	errNegativeOffset = errors.New("negative offset")
	errWriteAtAppend  = errors.New("os: invalid use of WriteAt on file opened with O_APPEND")
)

// File is an open file of an FS. Like the FS, it is safe for concurrent
// use. It keeps working on its inode after the file is renamed or removed.
type File struct {
	fs     *FS
	n      *inode
	name   string
	flag   int
	off    int64
	closed bool
}

var _ vfs.File = (*File)(nil)

// begin checks that op may run on f: the FS has not crashed, f is open and
// its access mode allows reading or writing. Callers hold f.fs.mu.
func (f *File) begin(op string, read, write bool) error {
	if err := f.fs.check(op, f.name); err != nil {
		return err
	}
	fail := func(errno error) error { return &fs.PathError{Op: op, Path: f.name, Err: errno} }
	if f.closed {
		return fail(os.ErrClosed)
	}
	acc := f.flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	if read && acc == os.O_WRONLY || write && acc == os.O_RDONLY {
		return fail(syscall.EBADF)
	}
	if (read || write) && f.n.dir {
		return fail(syscall.EISDIR)
	}
	return nil
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

func (f *File) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("read", true, false); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if f.off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.off:])
	f.off += int64(n)
	return n, nil
}

func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("read", true, false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	n := 0
	if off < int64(len(f.n.data)) {
		n = copy(p, f.n.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *File) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("write", false, true); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		f.off = int64(len(f.n.data))
	}
	f.write(p, f.off)
	f.off += int64(len(p))
	return len(p), nil
}

func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("write", false, true); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		return 0, errWriteAtAppend
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errNegativeOffset}
	}
	f.write(p, off)
	return len(p), nil
}

// write writes p at off, extending the file with zeros as needed, and counts
// the operation. Callers hold f.fs.mu.
func (f *File) write(p []byte, off int64) {
	f.n.resize(max(int64(len(f.n.data)), off+int64(len(p))))
	copy(f.n.data[off:], p)
	f.n.markDirty(off, off+int64(len(p)))
	f.n.mtime = f.fs.now()
	f.fs.done()
}

// resize truncates or zero-extends the current content to size.
func (n *inode) resize(size int64) {
	old := int64(len(n.data))
	n.markDirty(old, size) // the zeros of an extension are new content
	switch {
	case size <= old:
		n.data = n.data[:size]
	case size <= int64(cap(n.data)):
		n.data = n.data[:size]
		clear(n.data[old:])
	default:
		data := make([]byte, size, max(size, 2*int64(cap(n.data))))
		copy(data, n.data)
		n.data = data
	}
}

// Stat describes the open file; its Name is the base of the name the file
// was opened with.
func (f *File) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("stat", false, false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(f.name)), nil
}

// Sync makes the file's current content durable; on a folder it makes the
// folder's entries durable, like SyncDir.
func (f *File) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("sync", false, false); err != nil {
		return err
	}
	f.n.sync()
	f.fs.done()
	return nil
}

func (f *File) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("truncate", false, false); err != nil {
		return err
	}
	if size < 0 || f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.n.resize(size)
	f.n.mtime = f.fs.now()
	f.fs.done()
	return nil
}

// Allocate records a reservation of size bytes; it changes neither the
// content nor the size. Like fallocate, it refuses a size that is not
// positive.
func (f *File) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("fallocate", false, true); err != nil {
		return err
	}
	if size <= 0 {
		return &fs.PathError{Op: "fallocate", Path: f.name, Err: syscall.EINVAL}
	}
	f.n.alloc = max(f.n.alloc, size)
	f.fs.done()
	return nil
}

// StartWriteback does nothing and is not an operation.
func (f *File) StartWriteback(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.begin("sync_file_range", false, false)
}

// WriteError reports no error (a memfs write cannot fail after it
// returned) and is not an operation.
func (f *File) WriteError() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.begin("sync_file_range", false, false)
}

// Lock takes the inode's exclusive lock for f, returning vfs.ErrLocked if
// another File holds it. Locking twice through one File succeeds. Locking is
// not an operation.
func (f *File) Lock() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("flock", false, false); err != nil {
		return err
	}
	if f.n.lock != nil && f.n.lock != f {
		return vfs.ErrLocked
	}
	f.n.lock = f
	return nil
}

// SetAttr stores value under name, or removes name when value is nil. It
// is an operation.
func (f *File) SetAttr(name string, value []byte) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("setxattr", false, false); err != nil {
		return err
	}
	if value == nil {
		delete(f.n.attrs, name)
	} else {
		if f.n.attrs == nil {
			f.n.attrs = map[string][]byte{}
		}
		f.n.attrs[name] = slices.Clone(value)
	}
	f.fs.done()
	return nil
}

// Attr returns the value stored under name; it is not an operation.
func (f *File) Attr(name string) ([]byte, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("getxattr", false, false); err != nil {
		return nil, err
	}
	v, ok := f.n.attrs[name]
	if !ok {
		return nil, &fs.PathError{Op: "getxattr", Path: f.name, Err: fs.ErrNotExist}
	}
	return slices.Clone(v), nil
}

// Link gives the file the name newname too, like linkat(2).
func (f *File) Link(newname string) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	fail := func(errno error) error {
		return &os.LinkError{Op: "link", Old: f.name, New: newname, Err: errno}
	}
	if f.fs.crashed {
		return fail(ErrCrashed)
	}
	if f.closed {
		return fail(os.ErrClosed)
	}
	if f.n.dir {
		return fail(syscall.EPERM)
	}
	parent, base, err := f.fs.lookupParent(clean(newname))
	if err != nil {
		return fail(err)
	}
	if parent.children[base] != nil {
		return fail(syscall.EEXIST)
	}
	parent.children[base] = f.n
	parent.mtime = f.fs.now()
	f.fs.done()
	return nil
}

// Close closes the file and releases its lock.
func (f *File) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin("close", false, false); err != nil {
		return err
	}
	f.closed = true
	if f.n.lock == f {
		f.n.lock = nil
	}
	return nil
}
