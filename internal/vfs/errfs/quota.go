package errfs

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/durl-dev/durl/internal/vfs"
)

// QuotaFS is a vfs.FS on a disk of limited size: writes that would grow
// the files beyond the quota fail with an error satisfying errors.Is(err,
// syscall.ENOSPC), after writing the bytes that still fit, as write(2)
// does. Allocate and Truncate beyond the quota fail the same way, without
// changing anything. SetQuota raises (or lowers) the quota later, the
// "free some space and resume" of a test.
//
// Used counts the bytes by which files opened through the QuotaFS grew (by
// Write, WriteAt, Truncate or Allocate beyond their size and reservation),
// less what truncating, replacing or removing those files gave back. Bytes
// a file held before the QuotaFS first saw it were never counted and are
// never given back. Files are known by filepath.Clean of their names, so
// spell each file one way. Sparse files are not modelled: extending a file
// with Truncate counts like writing.
//
// A QuotaFS is safe for concurrent use; it serializes writes, truncations
// and namespace changes. Put it under Wrap, not over it, so that injected
// Stat errors do not disturb its bookkeeping.
type QuotaFS struct {
	inner vfs.FS

	mu    sync.Mutex
	quota int64
	used  int64
	nodes map[string]*quotaNode // by clean name
}

var _ vfs.FS = (*QuotaFS)(nil)

// quotaNode is what the QuotaFS knows of a file.
type quotaNode struct {
	charged int64 // bytes of the footprint counted in used
	alloc   int64 // reservation made by Allocate
}

// WithQuota returns inner with room for bytes more bytes.
func WithQuota(inner vfs.FS, bytes int64) *QuotaFS {
	return &QuotaFS{inner: inner, quota: bytes, nodes: map[string]*quotaNode{}}
}

// SetQuota changes the quota; operations after it see the new one.
func (q *QuotaFS) SetQuota(bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.quota = bytes
}

// Used returns the bytes counted against the quota.
func (q *QuotaFS) Used() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used
}

// room returns how many more bytes the files may grow by. Callers hold mu.
func (q *QuotaFS) room() int64 { return max(0, q.quota-q.used) }

// resize accounts for a file's footprint changing from old to new bytes.
// Callers hold mu.
func (q *QuotaFS) resize(n *quotaNode, old, new int64) {
	d := new - old
	if d < 0 {
		d = -min(n.charged, -d)
	}
	n.charged += d
	q.used += d
}

// forget gives back what the file called key was charged. Callers hold mu.
func (q *QuotaFS) forget(key string) {
	if n := q.nodes[key]; n != nil {
		q.used -= n.charged
		n.charged, n.alloc = 0, 0
		delete(q.nodes, key)
	}
}

func enospc(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
}

// OpenFile refuses unix.O_TMPFILE: the QuotaFS knows files by name.
func (q *QuotaFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if flag&unix.O_TMPFILE == unix.O_TMPFILE {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EOPNOTSUPP}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	f, err := q.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	key := filepath.Clean(name)
	n := q.nodes[key]
	if n == nil {
		n = &quotaNode{}
		q.nodes[key] = n
	}
	if flag&os.O_TRUNC != 0 {
		q.used -= n.charged
		n.charged, n.alloc = 0, 0
	}
	return &quotaFile{File: f, q: q, n: n, append: flag&os.O_APPEND != 0}, nil
}

func (q *QuotaFS) Rename(oldname, newname string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.inner.Rename(oldname, newname); err != nil {
		return err
	}
	ko, kn := filepath.Clean(oldname), filepath.Clean(newname)
	if ko == kn {
		return nil
	}
	q.forget(kn)
	for _, k := range slices.Collect(maps.Keys(q.nodes)) {
		if k == ko || strings.HasPrefix(k, ko+string(filepath.Separator)) {
			q.nodes[kn+k[len(ko):]] = q.nodes[k]
			delete(q.nodes, k)
		}
	}
	return nil
}

func (q *QuotaFS) Remove(name string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.inner.Remove(name); err != nil {
		return err
	}
	q.forget(filepath.Clean(name))
	return nil
}

func (q *QuotaFS) MkdirAll(path string, perm os.FileMode) error {
	return q.inner.MkdirAll(path, perm)
}
func (q *QuotaFS) Stat(name string) (os.FileInfo, error) { return q.inner.Stat(name) }
func (q *QuotaFS) ReadDir(name string) ([]string, error) { return q.inner.ReadDir(name) }
func (q *QuotaFS) SyncDir(name string) error             { return q.inner.SyncDir(name) }
func (q *QuotaFS) SyncFileSystem(dir string) error       { return q.inner.SyncFileSystem(dir) }

// Available is what the quota leaves, or the inner FS's room if that is
// less.
func (q *QuotaFS) Available(dir string) (int64, error) {
	q.mu.Lock()
	left := max(q.quota-q.used, 0)
	q.mu.Unlock()
	if inner, err := q.inner.Available(dir); err == nil {
		left = min(left, inner)
	}
	return left, nil
}

// quotaFile is a File of a QuotaFS. It tracks the file offset itself, which
// only Read and Write move, to know where Write writes.
type quotaFile struct {
	vfs.File
	q      *QuotaFS
	n      *quotaNode
	append bool
	off    int64 // guarded by q.mu
}

func (f *quotaFile) size() (int64, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f *quotaFile) Read(p []byte) (int, error) {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	n, err := f.File.Read(p)
	f.off += int64(n)
	return n, err
}

func (f *quotaFile) Write(p []byte) (int, error) {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	off := f.off
	if f.append {
		size, err := f.size()
		if err != nil {
			return 0, err
		}
		off = size
	}
	n, err := f.write(p, off, f.File.Write)
	f.off = off + int64(n)
	return n, err
}

func (f *quotaFile) WriteAt(p []byte, off int64) (int, error) {
	if f.append || off < 0 {
		return f.File.WriteAt(p, off) // an error, as the inner FS words it
	}
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	return f.write(p, off, func(p []byte) (int, error) { return f.File.WriteAt(p, off) })
}

// write writes what fits of p at off with write, and accounts for it.
// Callers hold q.mu.
func (f *quotaFile) write(p []byte, off int64, write func([]byte) (int, error)) (int, error) {
	size, err := f.size()
	if err != nil {
		return 0, err
	}
	foot := max(size, f.n.alloc)
	full := false
	if limit := foot + f.q.room(); len(p) > 0 && off+int64(len(p)) > limit {
		p = p[:max(0, min(int64(len(p)), limit-off))]
		full = true
		if len(p) == 0 {
			return 0, enospc("write", f.Name())
		}
	}
	n, err := write(p)
	f.q.resize(f.n, foot, max(foot, off+int64(n)))
	if err == nil && full {
		err = enospc("write", f.Name())
	}
	return n, err
}

func (f *quotaFile) Truncate(size int64) error {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	cur, err := f.size()
	if err != nil {
		return err
	}
	foot := max(cur, f.n.alloc)
	alloc := f.n.alloc
	if size < cur {
		alloc = min(alloc, size) // truncation frees reserved blocks too
	}
	newFoot := max(size, alloc)
	if newFoot-foot > f.q.room() {
		return enospc("truncate", f.Name())
	}
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.n.alloc = alloc
	f.q.resize(f.n, foot, newFoot)
	return nil
}

func (f *quotaFile) Allocate(size int64) error {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	cur, err := f.size()
	if err != nil {
		return err
	}
	foot := max(cur, f.n.alloc)
	newFoot := max(foot, size)
	if newFoot-foot > f.q.room() {
		return enospc("fallocate", f.Name())
	}
	if err := f.File.Allocate(size); err != nil {
		return err
	}
	f.n.alloc = max(f.n.alloc, size)
	f.q.resize(f.n, foot, newFoot)
	return nil
}
