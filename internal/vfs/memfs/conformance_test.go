package memfs_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// The conformance suite runs against vfs.OS and memfs alike, to prove that
// memfs behaves like the operating system where durl relies on it.

type conformanceCase struct {
	name string
	run  func(t *testing.T, fsys vfs.FS, dir string)
}

func TestConformance(t *testing.T) {
	impls := []struct {
		name  string
		setup func(t *testing.T) (vfs.FS, string)
	}{
		{"OS", func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() }},
		{"memfs", func(t *testing.T) (vfs.FS, string) {
			fsys := memfs.New()
			if err := fsys.MkdirAll("/tmp/test", 0o755); err != nil {
				t.Fatal(err)
			}
			return fsys, "/tmp/test"
		}},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					fsys, dir := impl.setup(t)
					c.run(t, fsys, dir)
				})
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func create(t *testing.T, fsys vfs.FS, name string, data string) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	must(t, f.Close())
}

func content(t *testing.T, fsys vfs.FS, name string) string {
	t.Helper()
	b, err := vfs.ReadFile(fsys, name)
	must(t, err)
	return string(b)
}

func wantContent(t *testing.T, fsys vfs.FS, name, want string) {
	t.Helper()
	if got := content(t, fsys, name); got != want {
		t.Fatalf("%s holds %q, want %q", name, got, want)
	}
}

var conformance = []conformanceCase{
	{"CreateWriteRead", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		if f.Name() != name {
			t.Errorf("Name() = %q, want %q", f.Name(), name)
		}
		n, err := f.Write([]byte("hello"))
		if n != 5 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		buf := make([]byte, 5)
		n, err = f.ReadAt(buf, 0)
		if n != 5 || err != nil || string(buf) != "hello" {
			t.Fatalf("ReadAt = %d, %v, %q", n, err, buf)
		}
		fi, err := f.Stat()
		must(t, err)
		if fi.Name() != "a" || fi.Size() != 5 || fi.IsDir() || !fi.Mode().IsRegular() {
			t.Errorf("Stat = %q size %d mode %v", fi.Name(), fi.Size(), fi.Mode())
		}
		fi, err = fsys.Stat(name)
		must(t, err)
		if fi.Name() != "a" || fi.Size() != 5 || fi.IsDir() {
			t.Errorf("FS.Stat = %q size %d dir %v", fi.Name(), fi.Size(), fi.IsDir())
		}
	}},
	{"SequentialReadWrite", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		for _, s := range []string{"abc", "de"} {
			_, err := f.Write([]byte(s))
			must(t, err)
		}
		// The offset is at the end: reading finds nothing.
		n, err := f.Read(make([]byte, 4))
		if n != 0 || err != io.EOF {
			t.Fatalf("Read at end = %d, %v; want 0, EOF", n, err)
		}
		r, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		must(t, err)
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil || string(got) != "abcde" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if n, err := r.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) = %d, %v; want 0, nil", n, err)
		}
	}},
	{"OpenMissing", func(t *testing.T, fsys vfs.FS, dir string) {
		_, err := fsys.OpenFile(filepath.Join(dir, "missing"), os.O_RDONLY, 0)
		wantErr(t, err, fs.ErrNotExist)
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			t.Errorf("%T is not a *fs.PathError", err)
		}
		_, err = fsys.OpenFile(filepath.Join(dir, "missing", "a"), os.O_RDWR|os.O_CREATE, 0o644)
		wantErr(t, err, fs.ErrNotExist)
		_, err = fsys.Stat(filepath.Join(dir, "missing"))
		wantErr(t, err, fs.ErrNotExist)
		create(t, fsys, filepath.Join(dir, "file"), "x")
		_, err = fsys.OpenFile(filepath.Join(dir, "file", "a"), os.O_RDWR|os.O_CREATE, 0o644)
		wantErr(t, err, syscall.ENOTDIR)
	}},
	{"Excl", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		must(t, err)
		must(t, f.Close())
		_, err = fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		wantErr(t, err, fs.ErrExist)
	}},
	{"Trunc", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		create(t, fsys, name, "hello")
		f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
		must(t, err)
		must(t, f.Close())
		wantContent(t, fsys, name, "")
		// Without O_TRUNC the content stays and writes overwrite it.
		create(t, fsys, name, "hello")
		f, err = fsys.OpenFile(name, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.Write([]byte("J"))
		must(t, err)
		must(t, f.Close())
		wantContent(t, fsys, name, "Jello")
	}},
	{"Append", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		create(t, fsys, name, "ab")
		f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		defer f.Close()
		_, err = f.Write([]byte("cd"))
		must(t, err)
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Error("WriteAt on an O_APPEND file succeeded")
		}
		g, err := fsys.OpenFile(name, os.O_WRONLY, 0)
		must(t, err)
		_, err = g.WriteAt([]byte("ef"), 4)
		must(t, err)
		must(t, g.Close())
		_, err = f.Write([]byte("g"))
		must(t, err)
		wantContent(t, fsys, name, "abcdefg")
	}},
	{"AccessMode", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		create(t, fsys, name, "abc")
		r, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		must(t, err)
		defer r.Close()
		if _, err := r.Write([]byte("x")); err == nil {
			t.Error("Write on a read-only file succeeded")
		}
		if _, err := r.WriteAt([]byte("x"), 0); err == nil {
			t.Error("WriteAt on a read-only file succeeded")
		}
		if err := r.Truncate(0); err == nil {
			t.Error("Truncate on a read-only file succeeded")
		}
		w, err := fsys.OpenFile(name, os.O_WRONLY, 0)
		must(t, err)
		defer w.Close()
		if _, err := w.Read(make([]byte, 1)); err == nil {
			t.Error("Read on a write-only file succeeded")
		}
		if _, err := w.ReadAt(make([]byte, 1), 0); err == nil {
			t.Error("ReadAt on a write-only file succeeded")
		}
		wantContent(t, fsys, name, "abc")
	}},
	{"ReadAtEOF", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		create(t, fsys, name, "hello")
		f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		must(t, err)
		defer f.Close()
		buf := make([]byte, 10)
		n, err := f.ReadAt(buf, 2)
		if n != 3 || err != io.EOF || string(buf[:n]) != "llo" {
			t.Errorf("short ReadAt = %d, %v, %q", n, err, buf[:n])
		}
		n, err = f.ReadAt(buf, 5)
		if n != 0 || err != io.EOF {
			t.Errorf("ReadAt at end = %d, %v", n, err)
		}
		n, err = f.ReadAt(buf, 100)
		if n != 0 || err != io.EOF {
			t.Errorf("ReadAt past end = %d, %v", n, err)
		}
		n, err = f.ReadAt(buf[:2], 3)
		if n != 2 || err != nil {
			t.Errorf("exact ReadAt = %d, %v", n, err)
		}
		if _, err := f.ReadAt(buf, -1); err == nil {
			t.Error("ReadAt at a negative offset succeeded")
		}
	}},
	{"WritePastEOF", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		_, err = f.WriteAt([]byte("x"), 4)
		must(t, err)
		_, err = f.WriteAt([]byte("ab"), 1)
		must(t, err)
		wantContent(t, fsys, name, "\x00ab\x00x")
		if _, err := f.WriteAt([]byte("x"), -1); err == nil {
			t.Error("WriteAt at a negative offset succeeded")
		}
	}},
	{"Truncate", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		_, err = f.Write([]byte("abcdef"))
		must(t, err)
		must(t, f.Truncate(2))
		wantContent(t, fsys, name, "ab")
		must(t, f.Truncate(4)) // the cut bytes must not come back
		wantContent(t, fsys, name, "ab\x00\x00")
		must(t, f.Truncate(2))
		_, err = f.WriteAt([]byte("z"), 5)
		must(t, err)
		wantContent(t, fsys, name, "ab\x00\x00\x00z")
		if err := f.Truncate(-1); err == nil {
			t.Error("Truncate(-1) succeeded")
		}
	}},
	{"Allocate", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		_, err = f.Write([]byte("ab"))
		must(t, err)
		err = f.Allocate(1 << 16)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip("no fallocate here")
		}
		must(t, err)
		wantContent(t, fsys, name, "ab")
		if err := f.Allocate(0); err == nil {
			t.Error("Allocate(0) succeeded")
		}
		must(t, f.StartWriteback(0, 2))
		must(t, f.Sync())
	}},
	{"Rename", func(t *testing.T, fsys vfs.FS, dir string) {
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		create(t, fsys, a, "new")
		create(t, fsys, b, "old")
		old, err := fsys.OpenFile(b, os.O_RDONLY, 0)
		must(t, err)
		defer old.Close()
		must(t, fsys.Rename(a, b))
		wantContent(t, fsys, b, "new")
		_, err = fsys.Stat(a)
		wantErr(t, err, fs.ErrNotExist)
		// The replaced file lives on for the handle that has it open.
		got, err := io.ReadAll(old)
		if err != nil || string(got) != "old" {
			t.Errorf("replaced file reads %q, %v", got, err)
		}
		must(t, fsys.Rename(b, b))
		wantContent(t, fsys, b, "new")
	}},
	{"RenameErrors", func(t *testing.T, fsys vfs.FS, dir string) {
		a, d := filepath.Join(dir, "a"), filepath.Join(dir, "d")
		err := fsys.Rename(filepath.Join(dir, "missing"), a)
		wantErr(t, err, fs.ErrNotExist)
		var le *os.LinkError
		if !errors.As(err, &le) {
			t.Errorf("%T is not an *os.LinkError", err)
		}
		create(t, fsys, a, "x")
		err = fsys.Rename(a, filepath.Join(dir, "missing", "a"))
		wantErr(t, err, fs.ErrNotExist)
		must(t, fsys.MkdirAll(d, 0o755))
		wantErr(t, fsys.Rename(a, d), syscall.EISDIR)
		wantErr(t, fsys.Rename(d, a), syscall.ENOTDIR)
		wantErr(t, fsys.Rename(d, filepath.Join(d, "sub")), syscall.EINVAL)
		wantContent(t, fsys, a, "x")
	}},
	{"Unnamed", func(t *testing.T, fsys vfs.FS, dir string) {
		a := filepath.Join(dir, "a")
		f, err := fsys.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o644)
		must(t, err)
		defer f.Close()
		_, err = f.WriteAt([]byte("data"), 0)
		must(t, err)
		if names, err := fsys.ReadDir(dir); err != nil || len(names) != 0 {
			t.Fatalf("the folder lists %q, %v; want nothing before the link", names, err)
		}
		must(t, f.Link(a))
		wantContent(t, fsys, a, "data")
		var le *os.LinkError
		if err := f.Link(a); !errors.As(err, &le) || !errors.Is(err, fs.ErrExist) {
			t.Errorf("linking to an existing name: %v, want an *os.LinkError that is fs.ErrExist", err)
		}
		wantErr(t, f.Link(filepath.Join(dir, "missing", "a")), fs.ErrNotExist)
		_, err = fsys.OpenFile(filepath.Join(dir, "missing"), os.O_RDWR|unix.O_TMPFILE, 0o644)
		wantErr(t, err, fs.ErrNotExist)
		_, err = fsys.OpenFile(a, os.O_RDWR|unix.O_TMPFILE, 0o644)
		wantErr(t, err, syscall.ENOTDIR)
	}},
	{"RenameFolder", func(t *testing.T, fsys vfs.FS, dir string) {
		d, e := filepath.Join(dir, "d"), filepath.Join(dir, "e")
		must(t, fsys.MkdirAll(d, 0o755))
		create(t, fsys, filepath.Join(d, "f"), "x")
		must(t, fsys.Rename(d, e))
		wantContent(t, fsys, filepath.Join(e, "f"), "x")
		_, err := fsys.Stat(d)
		wantErr(t, err, fs.ErrNotExist)
		// Onto a folder: an empty one is replaced, a full one refused.
		must(t, fsys.MkdirAll(d, 0o755))
		wantErr(t, fsys.Rename(d, e), syscall.ENOTEMPTY)
		must(t, fsys.Rename(e, d))
		wantContent(t, fsys, filepath.Join(d, "f"), "x")
	}},
	{"Remove", func(t *testing.T, fsys vfs.FS, dir string) {
		a, d := filepath.Join(dir, "a"), filepath.Join(dir, "d")
		wantErr(t, fsys.Remove(a), fs.ErrNotExist)
		create(t, fsys, a, "x")
		f, err := fsys.OpenFile(a, os.O_RDWR, 0)
		must(t, err)
		defer f.Close()
		must(t, fsys.Remove(a))
		_, err = fsys.Stat(a)
		wantErr(t, err, fs.ErrNotExist)
		// The open file still works.
		_, err = f.WriteAt([]byte("y"), 1)
		must(t, err)
		buf := make([]byte, 2)
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "xy" {
			t.Errorf("removed file reads %q, %v", buf, err)
		}
		must(t, fsys.MkdirAll(filepath.Join(d, "e"), 0o755))
		wantErr(t, fsys.Remove(d), syscall.ENOTEMPTY)
		must(t, fsys.Remove(filepath.Join(d, "e")))
		must(t, fsys.Remove(d))
	}},
	{"Folders", func(t *testing.T, fsys vfs.FS, dir string) {
		d := filepath.Join(dir, "x", "y", "z")
		must(t, fsys.MkdirAll(d, 0o755))
		must(t, fsys.MkdirAll(d, 0o755))
		fi, err := fsys.Stat(d)
		must(t, err)
		if !fi.IsDir() || fi.Name() != "z" || !fi.Mode().IsDir() {
			t.Errorf("Stat = %q dir %v mode %v", fi.Name(), fi.IsDir(), fi.Mode())
		}
		for _, n := range []string{"c", "a", "b"} {
			create(t, fsys, filepath.Join(d, n), n)
		}
		must(t, fsys.MkdirAll(filepath.Join(d, "0"), 0o755))
		names, err := fsys.ReadDir(d)
		must(t, err)
		if want := []string{"0", "a", "b", "c"}; !slices.Equal(names, want) {
			t.Errorf("ReadDir = %q, want %q", names, want)
		}
		_, err = fsys.ReadDir(filepath.Join(dir, "missing"))
		wantErr(t, err, fs.ErrNotExist)
		_, err = fsys.ReadDir(filepath.Join(d, "a"))
		wantErr(t, err, syscall.ENOTDIR)
		wantErr(t, fsys.MkdirAll(filepath.Join(d, "a"), 0o755), syscall.ENOTDIR)
		wantErr(t, fsys.MkdirAll(filepath.Join(d, "a", "b"), 0o755), syscall.ENOTDIR)
		must(t, fsys.SyncDir(d))
		wantErr(t, fsys.SyncDir(filepath.Join(dir, "missing")), fs.ErrNotExist)
	}},
	{"OpenFolder", func(t *testing.T, fsys vfs.FS, dir string) {
		f, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
		must(t, err)
		defer f.Close()
		fi, err := f.Stat()
		must(t, err)
		if !fi.IsDir() {
			t.Error("an open folder is not a folder")
		}
		_, err = f.Read(make([]byte, 1))
		wantErr(t, err, syscall.EISDIR)
		must(t, f.Sync())
		_, err = fsys.OpenFile(dir, os.O_WRONLY, 0)
		wantErr(t, err, syscall.EISDIR)
	}},
	{"Lock", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "lock")
		f1, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		f2, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f2.Close()
		must(t, f1.Lock())
		must(t, f1.Lock())
		if err := f2.Lock(); err != vfs.ErrLocked {
			t.Fatalf("second Lock = %v, want ErrLocked", err)
		}
		must(t, f1.Close())
		must(t, f2.Lock())
		f3, err := fsys.OpenFile(name, os.O_RDONLY, 0)
		must(t, err)
		defer f3.Close()
		if err := f3.Lock(); err != vfs.ErrLocked {
			t.Fatalf("third Lock = %v, want ErrLocked", err)
		}
	}},
	{"Attr", func(t *testing.T, fsys vfs.FS, dir string) {
		f, err := fsys.OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		defer f.Close()
		_, err = f.Attr("durl.test")
		wantErr(t, err, fs.ErrNotExist)
		if err := f.SetAttr("durl.test", []byte("one")); errors.Is(err, errors.ErrUnsupported) {
			t.Skip("this file system keeps no extended attributes")
		} else {
			must(t, err)
		}
		must(t, f.SetAttr("durl.test", []byte("two")))
		v, err := f.Attr("durl.test")
		must(t, err)
		if string(v) != "two" {
			t.Errorf("Attr = %q, want %q", v, "two")
		}
		must(t, f.SetAttr("durl.test", nil))
		_, err = f.Attr("durl.test")
		wantErr(t, err, fs.ErrNotExist)
		must(t, f.SetAttr("durl.test", nil)) // removing what is gone is no error
	}},
	{"Closed", func(t *testing.T, fsys vfs.FS, dir string) {
		f, err := fsys.OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		must(t, f.Close())
		_, err = f.Write([]byte("x"))
		wantErr(t, err, os.ErrClosed)
		_, err = f.ReadAt(make([]byte, 1), 0)
		wantErr(t, err, os.ErrClosed)
		wantErr(t, f.Close(), os.ErrClosed)
	}},
	{"WriteFileAtomic", func(t *testing.T, fsys vfs.FS, dir string) {
		name := filepath.Join(dir, "state")
		must(t, vfs.WriteFileAtomic(fsys, name, []byte("one"), 0o644))
		must(t, vfs.WriteFileAtomic(fsys, name, []byte("two"), 0o644))
		wantContent(t, fsys, name, "two")
		create(t, fsys, name+vfs.TempSuffix, "junk")
		must(t, vfs.SweepTemp(fsys, dir))
		names, err := fsys.ReadDir(dir)
		must(t, err)
		if !slices.Equal(names, []string{"state"}) {
			t.Errorf("after SweepTemp: %q", names)
		}
	}},
}
