// Package memfs is a crashable in-memory implementation of vfs.FS, for
// proving durl's durability rules: run a workload, crash at its k-th
// mutating operation, keep what such a crash would keep, check, repeat for
// every k.
//
// # Durability model
//
// The model is strict, like ext4 without data=journal:
//
//   - Every file (inode) has its current content and its synced content, the
//     content as of its last Sync (or SyncDir on the file). Sync copies the
//     current content, size included, to the synced one. A file that was never
//     synced survives power loss empty.
//   - Every folder has current entries (name → inode) and durable entries.
//     SyncDir on a folder makes all its current entries durable: creations,
//     removals, and both halves of renames within it. A rename between two
//     folders needs a SyncDir of the destination for the new name to be
//     durable and one of the source for the old name to go durably; with only
//     the destination synced both names survive, as hard links of one inode.
//   - A folder made by MkdirAll is itself an entry of its parent: until the
//     parent is synced, power loss takes the folder and everything under it.
//   - Every file has current and durable extended attributes (SetAttr).
//     Only SyncFileSystem makes them durable: Sync stands for fdatasync,
//     which need not write them.
//   - SyncFileSystem syncs every file and folder. Allocate records the
//     reservation and changes no content. StartWriteback does nothing, and
//     WriteError reports no error.
//
// Crash(ProcessKill) keeps the current namespace and current contents (the
// page cache outlives the process) and also carries the durable state over
// unchanged, so a later Crash(PowerLoss) of the result loses what was never
// synced. Crash(PowerLoss) keeps the namespace reachable from the root
// through durable entries, each file holding its synced content.
//
// # Counting operations
//
// These are the mutating operations, each counted once when it succeeds:
// OpenFile that creates (with or without a name) or truncates a file, Write
// and WriteAt (each call), Truncate, Sync, Allocate, SetAttr, Link, Rename,
// Remove, MkdirAll that creates anything, SyncDir, SyncFileSystem. Ops
// reports how many have succeeded since New; CrashAfter(k) crashes the FS
// just after k more have succeeded, so the (k+1)-th fails with ErrCrashed,
// as does every operation after it, mutating or not, on the FS and its
// open files. A crashed FS stays crashed; Crash may be called
// on it any number of times, in either mode, and sees the same frozen state.
//
// A typical test:
//
//	n := opsOfWorkload()
//	for k := 0; k <= n; k++ {
//		fs := setup()
//		fs.CrashAfter(k)
//		_ = workload(fs) // fails with ErrCrashed unless k == n
//		for _, mode := range []memfs.CrashMode{memfs.ProcessKill, memfs.PowerLoss} {
//			check(fs.Crash(mode))
//		}
//	}
//
// Paths are slash-separated; relative paths are relative to "/". An FS and
// its Files are safe for concurrent use: every operation holds one mutex.
package memfs

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/durl-dev/durl/internal/vfs"
)

// ErrCrashed is the error (wrapped in *fs.PathError or *os.LinkError) of
// every operation on an FS that has crashed, and on its open files.
var ErrCrashed = errors.New("memfs: crashed")

// CrashMode says what kind of crash Crash simulates.
type CrashMode int

const (
	// ProcessKill is the death of the process (kill -9): everything written
	// survives in the page cache; open files and locks are gone.
	ProcessKill CrashMode = iota
	// PowerLoss is the loss of power or an OS crash: only what was synced
	// survives.
	PowerLoss
)

func (m CrashMode) String() string {
	switch m {
	case ProcessKill:
		return "ProcessKill"
	case PowerLoss:
		return "PowerLoss"
	}
	return "CrashMode(?)"
}

// epoch is the fake clock's origin; each mutation advances it by 1 ms.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// FS is a crashable in-memory file system. It implements vfs.FS and is safe
// for concurrent use.
type FS struct {
	mu      sync.Mutex
	root    *inode
	ops     int
	left    int // mutating ops left before the crash; -1: no crash planned
	crashed bool
	clock   time.Duration
}

var _ vfs.FS = (*FS)(nil)

type inode struct {
	dir   bool
	perm  fs.FileMode
	mtime time.Time
	// files
	data, synced []byte
	dirty        []bool // per syncChunk of data: changed since the last sync
	alloc        int64
	lock         *File
	attrs        map[string][]byte // the current extended attributes
	durableAttrs map[string][]byte // as of the last SyncFileSystem
	// folders
	children, durable map[string]*inode
}

// New returns an empty FS holding only the folder "/", which is durable.
func New() *FS {
	root := &inode{dir: true, perm: 0o755, mtime: epoch,
		children: map[string]*inode{}, durable: map[string]*inode{}}
	return &FS{root: root, left: -1}
}

// CrashAfter makes the FS crash just after k more mutating operations have
// succeeded (at once if k is 0). A negative k cancels a planned crash; it
// cannot undo one that happened.
func (fsys *FS) CrashAfter(k int) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if fsys.crashed {
		return
	}
	fsys.left = max(k, -1)
	if k == 0 {
		fsys.crashed = true
	}
}

// Ops returns the number of mutating operations that succeeded since New.
func (fsys *FS) Ops() int {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.ops
}

// Crashed reports whether the FS has crashed.
func (fsys *FS) Crashed() bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.crashed
}

// Crash crashes the FS, if it has not crashed already, and returns a new,
// independent FS holding what survives a crash of the given mode: the disk
// as a rerun of the program would find it. The new FS has no open files, no
// locks and no planned crash.
func (fsys *FS) Crash(mode CrashMode) *FS {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fsys.crashed = true
	copies := map[*inode]*inode{}
	var cp func(n *inode) *inode
	cp = func(n *inode) *inode {
		if c, ok := copies[n]; ok {
			return c // a hard link, or a cycle of half-durable renames
		}
		c := &inode{dir: n.dir, perm: n.perm, mtime: n.mtime, alloc: n.alloc}
		copies[n] = c
		cpMap := func(m map[string]*inode) map[string]*inode {
			out := make(map[string]*inode, len(m))
			for name, child := range m {
				out[name] = cp(child)
			}
			return out
		}
		switch {
		case n.dir && mode == PowerLoss:
			c.children = cpMap(n.durable)
			c.durable = maps.Clone(c.children)
		case n.dir:
			c.children = cpMap(n.children)
			c.durable = cpMap(n.durable)
		case mode == PowerLoss:
			c.data = slices.Clone(n.synced)
			c.synced = slices.Clone(n.synced)
			c.attrs, c.durableAttrs = maps.Clone(n.durableAttrs), maps.Clone(n.durableAttrs)
		default:
			c.data = slices.Clone(n.data)
			c.synced = slices.Clone(n.synced)
			c.dirty = slices.Clone(n.dirty)
			c.attrs, c.durableAttrs = maps.Clone(n.attrs), maps.Clone(n.durableAttrs)
		}
		return c
	}
	return &FS{root: cp(fsys.root), left: -1, clock: fsys.clock}
}

// ReadFile returns the current content of the file name. It is a test
// helper: it is not an operation, and it works on a crashed FS too.
func (fsys *FS) ReadFile(name string) ([]byte, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n, err := fsys.lookup(clean(name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return slices.Clone(n.data), nil
}

// check fails with ErrCrashed once the FS has crashed. Callers hold mu.
func (fsys *FS) check(op, name string) error {
	if fsys.crashed {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	return nil
}

// done counts a mutating operation that succeeded. Callers hold mu.
func (fsys *FS) done() {
	fsys.ops++
	fsys.clock += time.Millisecond
	if fsys.left > 0 {
		fsys.left--
		if fsys.left == 0 {
			fsys.crashed = true
		}
	}
}

func (fsys *FS) now() time.Time { return epoch.Add(fsys.clock) }

func clean(name string) string { return path.Clean("/" + name) }

// lookup finds the inode at the clean path p.
func (fsys *FS) lookup(p string) (*inode, error) {
	if p == "/" {
		return fsys.root, nil
	}
	parent, base, err := fsys.lookupParent(p)
	if err != nil {
		return nil, err
	}
	n := parent.children[base]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return n, nil
}

// lookupParent finds the folder holding the clean path p, which is not "/".
func (fsys *FS) lookupParent(p string) (*inode, string, error) {
	dir, base := path.Split(p)
	n := fsys.root
	for _, name := range strings.Split(dir, "/") {
		if name == "" {
			continue
		}
		n = n.children[name]
		if n == nil {
			return nil, "", syscall.ENOENT
		}
		if !n.dir {
			return nil, "", syscall.ENOTDIR
		}
	}
	return n, base, nil
}

// OpenFile opens name like os.OpenFile. Folders may be opened read-only
// (Sync of such a File is SyncDir). With unix.O_TMPFILE it creates a file
// without a name in the folder name (File.Link names it): no crash keeps
// it unless it was named.
func (fsys *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("open", name); err != nil {
		return nil, err
	}
	fail := func(errno error) (vfs.File, error) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errno}
	}
	if name == "" {
		return fail(syscall.ENOENT)
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable := acc == os.O_WRONLY || acc == os.O_RDWR
	if flag&unix.O_TMPFILE == unix.O_TMPFILE {
		folder, err := fsys.lookup(clean(name))
		switch {
		case err != nil:
			return fail(err)
		case !folder.dir:
			return fail(syscall.ENOTDIR)
		case !writable:
			return fail(syscall.EINVAL)
		}
		n := &inode{perm: perm & fs.ModePerm, mtime: fsys.now()}
		fsys.done()
		return &File{fs: fsys, n: n, name: name, flag: flag &^ unix.O_TMPFILE}, nil
	}
	p := clean(name)
	var n *inode
	var parent *inode
	var base string
	if p == "/" {
		n = fsys.root
	} else {
		var err error
		if parent, base, err = fsys.lookupParent(p); err != nil {
			return fail(err)
		}
		n = parent.children[base]
	}
	mutated := false
	switch {
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return fail(syscall.EEXIST)
	case n != nil && n.dir:
		if writable || flag&os.O_TRUNC != 0 {
			return fail(syscall.EISDIR)
		}
	case n != nil:
		if flag&os.O_TRUNC != 0 {
			n.data = nil
			n.mtime = fsys.now()
			mutated = true
		}
	case flag&os.O_CREATE == 0:
		return fail(syscall.ENOENT)
	default:
		n = &inode{perm: perm & fs.ModePerm, mtime: fsys.now()}
		parent.children[base] = n
		parent.mtime = n.mtime
		mutated = true
	}
	if mutated {
		fsys.done()
	}
	return &File{fs: fsys, n: n, name: name, flag: flag}, nil
}

// Rename renames oldname to newname like rename(2), replacing a file or an
// empty folder at newname atomically.
func (fsys *FS) Rename(oldname, newname string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fail := func(errno error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errno}
	}
	if fsys.crashed {
		return fail(ErrCrashed)
	}
	op, np := clean(oldname), clean(newname)
	if op == "/" || np == "/" {
		return fail(syscall.EBUSY)
	}
	oldParent, oldBase, err := fsys.lookupParent(op)
	if err != nil {
		return fail(err)
	}
	src := oldParent.children[oldBase]
	if src == nil {
		return fail(syscall.ENOENT)
	}
	newParent, newBase, err := fsys.lookupParent(np)
	if err != nil {
		return fail(err)
	}
	dst := newParent.children[newBase]
	switch {
	case dst != nil && dst.dir && !src.dir:
		return fail(syscall.EISDIR)
	case dst != nil && dst.dir && len(dst.children) > 0:
		return fail(syscall.ENOTEMPTY)
	case dst != nil && !dst.dir && src.dir:
		return fail(syscall.ENOTDIR)
	case src.dir && strings.HasPrefix(np, op+"/"):
		return fail(syscall.EINVAL)
	}
	if src != dst {
		delete(oldParent.children, oldBase)
		newParent.children[newBase] = src
		oldParent.mtime, newParent.mtime = fsys.now(), fsys.now()
	}
	fsys.done()
	return nil
}

// Remove removes a file or an empty folder like os.Remove. Open Files of a
// removed file keep working.
func (fsys *FS) Remove(name string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("remove", name); err != nil {
		return err
	}
	fail := func(errno error) error { return &fs.PathError{Op: "remove", Path: name, Err: errno} }
	p := clean(name)
	if p == "/" {
		return fail(syscall.EBUSY)
	}
	parent, base, err := fsys.lookupParent(p)
	if err != nil {
		return fail(err)
	}
	n := parent.children[base]
	switch {
	case n == nil:
		return fail(syscall.ENOENT)
	case n.dir && len(n.children) > 0:
		return fail(syscall.ENOTEMPTY)
	}
	delete(parent.children, base)
	parent.mtime = fsys.now()
	fsys.done()
	return nil
}

// MkdirAll creates a folder and its missing parents like os.MkdirAll. It
// counts as one operation if it creates anything.
func (fsys *FS) MkdirAll(name string, perm os.FileMode) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("mkdir", name); err != nil {
		return err
	}
	p := clean(name)
	n := fsys.root
	created := false
	for i, c := range strings.Split(p, "/") {
		if c == "" {
			continue
		}
		child := n.children[c]
		switch {
		case child == nil:
			child = &inode{dir: true, perm: perm & fs.ModePerm, mtime: fsys.now(),
				children: map[string]*inode{}, durable: map[string]*inode{}}
			n.children[c] = child
			n.mtime = child.mtime
			created = true
		case !child.dir:
			prefix := strings.Join(strings.Split(p, "/")[:i+1], "/")
			return &fs.PathError{Op: "mkdir", Path: prefix, Err: syscall.ENOTDIR}
		}
		n = child
	}
	if created {
		fsys.done()
	}
	return nil
}

// Available reports errors.ErrUnsupported: an FS holds as much as memory
// does (errfs.WithQuota models a full disk).
func (fsys *FS) Available(dir string) (int64, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("statfs", dir); err != nil {
		return 0, err
	}
	return 0, errors.ErrUnsupported
}

// Stat describes name like os.Stat.
func (fsys *FS) Stat(name string) (os.FileInfo, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("stat", name); err != nil {
		return nil, err
	}
	p := clean(name)
	n, err := fsys.lookup(p)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return n.info(path.Base(p)), nil
}

// ReadDir lists the names in the folder name, sorted.
func (fsys *FS) ReadDir(name string) ([]string, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("readdir", name); err != nil {
		return nil, err
	}
	n, err := fsys.lookup(clean(name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdirent", Path: name, Err: syscall.ENOTDIR}
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

// SyncDir makes the current entries of the folder name durable. Like
// vfs.OS, given a file it syncs the file.
func (fsys *FS) SyncDir(name string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("sync", name); err != nil {
		return err
	}
	n, err := fsys.lookup(clean(name))
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n.sync()
	fsys.done()
	return nil
}

// SyncFileSystem makes everything durable, like SyncDir on every folder and
// Sync on every file. It is one operation.
func (fsys *FS) SyncFileSystem(dir string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.check("syncfs", dir); err != nil {
		return err
	}
	if _, err := fsys.lookup(clean(dir)); err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	var syncAll func(n *inode)
	syncAll = func(n *inode) {
		n.sync()
		n.durableAttrs = maps.Clone(n.attrs)
		for _, child := range n.children {
			syncAll(child)
		}
	}
	syncAll(fsys.root)
	fsys.done()
	return nil
}

// syncChunk is the unit in which a file's changes are tracked, so a sync
// copies only what changed since the last one.
const syncChunk = 64 << 10

// markDirty notes that data[from:to] changed since the last sync.
func (n *inode) markDirty(from, to int64) {
	if to <= from {
		return
	}
	last := int((to - 1) / syncChunk)
	if last >= len(n.dirty) {
		n.dirty = append(n.dirty, make([]bool, last+1-len(n.dirty))...)
	}
	for c := int(from / syncChunk); c <= last; c++ {
		n.dirty[c] = true
	}
}

func (n *inode) sync() {
	if n.dir {
		n.durable = maps.Clone(n.children)
		return
	}
	// Every byte of data beyond the synced length, or that differs from
	// it, was marked dirty by the write or resize that changed it.
	size := len(n.data)
	if size > cap(n.synced) {
		n.synced = append(n.synced[:cap(n.synced)], make([]byte, size-cap(n.synced))...)
	}
	n.synced = n.synced[:size]
	for c, dirty := range n.dirty {
		if dirty {
			from, to := min(c*syncChunk, size), min((c+1)*syncChunk, size)
			copy(n.synced[from:to], n.data[from:to])
		}
	}
	clear(n.dirty)
}

func (n *inode) info(name string) os.FileInfo {
	fi := &fileInfo{name: name, mode: n.perm, mtime: n.mtime}
	if n.dir {
		fi.mode |= fs.ModeDir
	} else {
		fi.size = int64(len(n.data))
	}
	return fi
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }
