package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		defer lockFolder(name)()
	}
	f, err := openFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// openFile is os.OpenFile for regular files and folders, without the four
// system calls os.OpenFile spends trying to add every file to Go's network
// poller (which refuses regular files): a download opens several files.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	var fd int
	err := ignoreEINTR(func() (err error) {
		fd, err = unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Rename is rename(2) itself: os.Rename first looks newname up, to refuse
// to move a folder onto an empty one, which durl never renames; for a
// file, rename(2) refuses a folder at newname by itself.
func (osFS) Rename(oldname, newname string) error {
	defer lockFolder(newname)()
	err := ignoreEINTR(func() error { return unix.Rename(oldname, newname) })
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

// folderLocks make this process's calls that add entries to a folder
// (creating or renaming a file) take turns. The kernel serialises them
// too, with a lock of its own on the folder; but a thread waiting for
// that lock spins on its CPU, and many small downloads finishing into one
// folder spent about 15 % of their CPU time spinning. Waiting here parks
// the goroutine instead. A folder hashes to one of the locks, so that
// their number stays fixed.
var folderLocks [64]sync.Mutex

var folderSeed = maphash.MakeSeed()

// lockFolder locks the folder of name and returns its unlock.
func lockFolder(name string) func() {
	mu := &folderLocks[maphash.String(folderSeed, filepath.Dir(name))%uint64(len(folderLocks))]
	mu.Lock()
	return mu.Unlock
}

func (osFS) ReadDir(name string) ([]string, error) {
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) SyncDir(name string) error {
	d, err := openFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncFileSystem runs syncfs(2) on the file system holding dir, where
// canSyncFileSystem says syncfs is a full sync.
func (osFS) SyncFileSystem(dir string) error {
	d, err := openFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	var st unix.Statfs_t
	if err := ignoreEINTR(func() error { return unix.Fstatfs(int(d.Fd()), &st) }); err != nil {
		return &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	if !canSyncFileSystem(int64(st.Type)) {
		return errors.ErrUnsupported
	}
	if dirty, ok := systemDirty.bytes(); ok && dirty > busyDirty {
		return ErrBusy
	}
	if err := ignoreEINTR(func() error { return unix.Syncfs(int(d.Fd())) }); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// fullSyncFS are the file systems whose syncfs writes and waits for every
// file's data and metadata and then flushes the disk's cache: ext4 (and
// ext2/3 through its driver), XFS, Btrfs. Elsewhere (FUSE, network file
// systems) syncfs may do less than fsync of each file would.
var fullSyncFS = map[int64]bool{0xEF53: true, 0x58465342: true, 0x9123683E: true}

// busyDirty is how much data waiting to be written SyncFileSystem accepts
// to wait for: far more than files finishing together hold, far less than
// a program copying gigabytes leaves behind it.
const busyDirty = 64 << 20

// systemDirty tells how many bytes the system holds waiting to be written.
var systemDirty = &dirtyGauge{read: func() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseDirty(b)
}}

// dirtyGauge keeps a reading of read for 50 ms: reading /proc/meminfo takes
// tens of microseconds, files finishing together sync every few
// milliseconds, and a busy system stays busy for much longer than that.
type dirtyGauge struct {
	read func() (int64, bool)

	mu    sync.Mutex
	at    time.Time
	dirty int64
	known bool
}

// bytes returns how many bytes wait to be written, false if unknown.
func (g *dirtyGauge) bytes() (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.at.IsZero() || time.Since(g.at) > 50*time.Millisecond {
		g.dirty, g.known = g.read()
		g.at = time.Now()
	}
	return g.dirty, g.known
}

// parseDirty returns the sum of /proc/meminfo's Dirty and Writeback: the
// data written but not yet on disk, and the data being written.
func parseDirty(meminfo []byte) (int64, bool) {
	var total int64
	found := 0
	for line := range bytes.Lines(meminfo) {
		name, rest, _ := bytes.Cut(line, []byte(":"))
		if string(name) != "Dirty" && string(name) != "Writeback" {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		total += n << 10
		found++
	}
	return total, found == 2
}

// canSyncFileSystem reports whether syncfs on a file system of type fsType
// is a full sync that reports write errors: one of fullSyncFS on Linux
// 5.8 or later (before 5.8 syncfs did not report write errors).
func canSyncFileSystem(fsType int64) bool {
	return fullSyncFS[fsType] && kernelAtLeast(5, 8)
}

// kernelAtLeast reports whether the running kernel's version is at least
// major.minor.
var kernelAtLeast = func() func(major, minor int) bool {
	var uts unix.Utsname
	var maj, min int
	if unix.Uname(&uts) == nil {
		fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &maj, &min)
	}
	return func(major, minor int) bool { return maj > major || maj == major && min >= minor }
}()

func (osFS) Available(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := ignoreEINTR(func() error { return unix.Statfs(dir, &st) }); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

type osFile struct{ *os.File }

func (f osFile) Sync() error {
	return ignoreEINTR(func() error { return unix.Fdatasync(int(f.Fd())) })
}

// WriteError is sync_file_range with SYNC_FILE_RANGE_WAIT_AFTER over the
// whole file: it waits for writeback under way and reports the file's
// write error (errseq) without starting any write.
func (f osFile) WriteError() error {
	return ignoreEINTR(func() error {
		return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WAIT_AFTER)
	})
}

func (f osFile) Allocate(size int64) error {
	err := ignoreEINTR(func() error { return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size) })
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errors.ErrUnsupported
	}
	return err
}

func (f osFile) StartWriteback(off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

func (f osFile) Lock() error {
	err := ignoreEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

// attrPrefix puts durl's attributes in the namespace any file owner may
// write.
const attrPrefix = "user."

func (f osFile) SetAttr(name string, value []byte) error {
	err := ignoreEINTR(func() error {
		if value == nil {
			return unix.Fremovexattr(int(f.Fd()), attrPrefix+name)
		}
		return unix.Fsetxattr(int(f.Fd()), attrPrefix+name, value, 0)
	})
	switch {
	case value == nil && errors.Is(err, unix.ENODATA):
		return nil
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
		return errors.ErrUnsupported
	case err != nil:
		return &os.PathError{Op: "setxattr", Path: f.Name(), Err: err}
	}
	return nil
}

func (f osFile) Link(newname string) error {
	defer lockFolder(newname)()
	fd := int(f.Fd())
	err := ignoreEINTR(func() error { return unix.Linkat(fd, "", unix.AT_FDCWD, newname, unix.AT_EMPTY_PATH) })
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
		err = linkByProc(fd, newname)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: newname, Err: err}
	}
	return nil
}

// linkByProc links the open file fd at newname through its name in /proc:
// before Linux 6.10, linking a descriptor itself (AT_EMPTY_PATH) needs a
// privilege, and fails with ENOENT without it.
func linkByProc(fd int, newname string) error {
	return ignoreEINTR(func() error {
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, newname, unix.AT_SYMLINK_FOLLOW)
	})
}

// maxAttr is the largest attribute value Attr reads: far more than durl
// stores.
const maxAttr = 4 << 10

func (f osFile) Attr(name string) ([]byte, error) {
	buf := make([]byte, maxAttr)
	var n int
	err := ignoreEINTR(func() (err error) {
		n, err = unix.Fgetxattr(int(f.Fd()), attrPrefix+name, buf)
		return err
	})
	switch {
	case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP):
		return nil, &os.PathError{Op: "getxattr", Path: f.Name(), Err: fs.ErrNotExist}
	case err != nil:
		return nil, &os.PathError{Op: "getxattr", Path: f.Name(), Err: err}
	}
	return buf[:n], nil
}

func ignoreEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
