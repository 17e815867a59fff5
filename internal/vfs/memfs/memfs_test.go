package memfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

var modes = []memfs.CrashMode{memfs.ProcessKill, memfs.PowerLoss}

func exists(t *testing.T, fsys *memfs.FS, name string) bool {
	t.Helper()
	_, err := fsys.Stat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// wantFile checks name holds want, or is missing if want is "<none>".
func wantFile(t *testing.T, fsys *memfs.FS, name, want string) {
	t.Helper()
	got, err := fsys.ReadFile(name)
	switch {
	case want == "<none>" && errors.Is(err, fs.ErrNotExist):
	case want == "<none>":
		t.Errorf("%s: got %q, %v; want no file", name, got, err)
	case err != nil:
		t.Errorf("%s: %v; want %q", name, err, want)
	case string(got) != want:
		t.Errorf("%s holds %q, want %q", name, got, want)
	}
}

func writeFile(t *testing.T, fsys vfs.FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

func appendFile(t *testing.T, fsys vfs.FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

func TestUnsyncedFile(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "data", false)
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "data")
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "<none>")
}

func TestSyncWithoutSyncDir(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "data", true)
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "data")
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "<none>")
}

func TestSyncDirWithoutSync(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "data", false)
	must(t, fsys.SyncDir("/"))
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "data")
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "")
}

// SyncFileSystem makes every file and folder durable, in one operation.
func TestSyncFileSystem(t *testing.T) {
	fsys := memfs.New()
	must(t, fsys.MkdirAll("/d/e", 0o755))
	writeFile(t, fsys, "/a", "data", false)
	writeFile(t, fsys, "/d/e/b", "more", false)
	must(t, fsys.Rename("/a", "/d/a"))
	before := fsys.Ops()
	must(t, fsys.SyncFileSystem("/d"))
	if n := fsys.Ops() - before; n != 1 {
		t.Errorf("SyncFileSystem counted as %d operations, want 1", n)
	}
	after := fsys.Crash(memfs.PowerLoss)
	wantFile(t, after, "/a", "<none>")
	wantFile(t, after, "/d/a", "data")
	wantFile(t, after, "/d/e/b", "more")
}

// Extended attributes survive a kill; only SyncFileSystem makes them
// survive power loss (Sync stands for fdatasync).
func TestAttrDurability(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "data", true)
	must(t, fsys.SyncDir("/"))
	f, err := fsys.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, f.SetAttr("k", []byte("v1")))
	must(t, f.Sync())
	attr := func(fsys *memfs.FS) string {
		f, err := fsys.OpenFile("/a", os.O_RDONLY, 0)
		must(t, err)
		defer f.Close()
		v, err := f.Attr("k")
		if errors.Is(err, fs.ErrNotExist) {
			return "<none>"
		}
		must(t, err)
		return string(v)
	}
	if got := attr(fsys.Crash(memfs.ProcessKill)); got != "v1" {
		t.Errorf("after a kill: %s, want v1", got)
	}
	if got := attr(fsys.Crash(memfs.PowerLoss)); got != "<none>" {
		t.Errorf("after power loss with only Sync: %s, want <none>", got)
	}
	fsys = memfs.New()
	writeFile(t, fsys, "/a", "data", true)
	f, err = fsys.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, f.SetAttr("k", []byte("v1")))
	must(t, fsys.SyncFileSystem("/"))
	must(t, f.SetAttr("k", []byte("v2")))
	if got := attr(fsys.Crash(memfs.PowerLoss)); got != "v1" {
		t.Errorf("after power loss: %s, want v1, the value SyncFileSystem saw", got)
	}
}

func TestUnsyncedTail(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "synced", true)
	must(t, fsys.SyncDir("/"))
	appendFile(t, fsys, "/a", "+unsynced", false)
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "synced+unsynced")
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "synced")
}

func TestTruncateDurability(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "abcdef", true)
	must(t, fsys.SyncDir("/"))
	f, err := fsys.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, f.Truncate(2))
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "abcdef")
	fsys = fsys.Crash(memfs.ProcessKill)
	f, err = fsys.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, f.Truncate(3))
	must(t, f.Sync())
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "ab\x00")
}

func TestRenameDurability(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "A", true)
	writeFile(t, fsys, "/b", "B", true)
	must(t, fsys.SyncDir("/"))
	must(t, fsys.Rename("/a", "/b"))

	kill := fsys.Crash(memfs.ProcessKill)
	wantFile(t, kill, "/a", "<none>")
	wantFile(t, kill, "/b", "A")
	power := fsys.Crash(memfs.PowerLoss)
	wantFile(t, power, "/a", "A")
	wantFile(t, power, "/b", "B")

	must(t, kill.SyncDir("/"))
	power = kill.Crash(memfs.PowerLoss)
	wantFile(t, power, "/a", "<none>")
	wantFile(t, power, "/b", "A")
}

// A file opened without a name survives no crash until Link names it, and
// its name no power loss until its folder is synced.
func TestUnnamedDurability(t *testing.T) {
	// unnamed writes and syncs a file without a name in "/", then does
	// the steps given.
	unnamed := func(steps ...func(fsys *memfs.FS, f vfs.File) error) *memfs.FS {
		fsys := memfs.New()
		f, err := fsys.OpenFile("/", os.O_RDWR|unix.O_TMPFILE, 0o644)
		must(t, err)
		_, err = f.Write([]byte("data"))
		must(t, err)
		must(t, f.Sync())
		must(t, fsys.SyncFileSystem("/"))
		for _, step := range steps {
			must(t, step(fsys, f))
		}
		return fsys
	}
	link := func(_ *memfs.FS, f vfs.File) error { return f.Link("/a") }
	syncDir := func(fsys *memfs.FS, _ vfs.File) error { return fsys.SyncDir("/") }

	names, err := unnamed().Crash(memfs.ProcessKill).ReadDir("/")
	if err != nil || len(names) != 0 {
		t.Errorf("after a kill before the link, the folder holds %q, %v; want nothing", names, err)
	}
	wantFile(t, unnamed(link).Crash(memfs.ProcessKill), "/a", "data")
	wantFile(t, unnamed(link).Crash(memfs.PowerLoss), "/a", "<none>")
	wantFile(t, unnamed(link, syncDir).Crash(memfs.PowerLoss), "/a", "data")
}

func TestRemoveDurability(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "A", true)
	must(t, fsys.SyncDir("/"))
	must(t, fsys.Remove("/a"))
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "<none>")
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "A")
	fsys = fsys.Crash(memfs.ProcessKill)
	must(t, fsys.SyncDir("/"))
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a", "<none>")
}

func TestCrossFolderRename(t *testing.T) {
	setup := func() *memfs.FS {
		fsys := memfs.New()
		must(t, fsys.MkdirAll("/src", 0o755))
		must(t, fsys.MkdirAll("/dst", 0o755))
		writeFile(t, fsys, "/src/f", "F", true)
		must(t, fsys.SyncDir("/src"))
		must(t, fsys.SyncDir("/"))
		must(t, fsys.Rename("/src/f", "/dst/f"))
		return fsys
	}
	for _, c := range []struct {
		sync           []string
		wantSrc, wantD string
	}{
		{nil, "F", "<none>"},
		{[]string{"/dst"}, "F", "F"}, // both names, one inode
		{[]string{"/src"}, "<none>", "<none>"},
		{[]string{"/src", "/dst"}, "<none>", "F"},
	} {
		t.Run(fmt.Sprint(c.sync), func(t *testing.T) {
			fsys := setup()
			for _, d := range c.sync {
				must(t, fsys.SyncDir(d))
			}
			power := fsys.Crash(memfs.PowerLoss)
			wantFile(t, power, "/src/f", c.wantSrc)
			wantFile(t, power, "/dst/f", c.wantD)
		})
	}
}

func TestMkdirAllDurability(t *testing.T) {
	fsys := memfs.New()
	must(t, fsys.MkdirAll("/a/b", 0o755))
	writeFile(t, fsys, "/a/b/f", "F", true)
	must(t, fsys.SyncDir("/a/b"))
	must(t, fsys.SyncDir("/a"))
	// "/" was never synced: "/a" and everything under it is lost.
	power := fsys.Crash(memfs.PowerLoss)
	if exists(t, power, "/a") {
		t.Error("/a survived without a SyncDir of /")
	}
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a/b/f", "F")

	fsys = fsys.Crash(memfs.ProcessKill)
	must(t, fsys.SyncDir("/"))
	wantFile(t, fsys.Crash(memfs.PowerLoss), "/a/b/f", "F")

	// A folder whose own entry is durable keeps only its durable entries.
	fsys = memfs.New()
	must(t, fsys.MkdirAll("/a/b", 0o755))
	must(t, fsys.SyncDir("/"))
	writeFile(t, fsys, "/a/b/f", "F", true)
	must(t, fsys.SyncDir("/a/b"))
	power = fsys.Crash(memfs.PowerLoss)
	if !exists(t, power, "/a") || exists(t, power, "/a/b") {
		t.Error("want /a without /a/b")
	}
}

func TestProcessKillThenPowerLoss(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "A", true)
	must(t, fsys.SyncDir("/"))
	appendFile(t, fsys, "/a", "+", false)
	writeFile(t, fsys, "/b", "B", true)
	kill := fsys.Crash(memfs.ProcessKill)
	wantFile(t, kill, "/a", "A+")
	wantFile(t, kill, "/b", "B")
	// What was never synced before the kill is still not durable after it.
	power := kill.Crash(memfs.PowerLoss)
	wantFile(t, power, "/a", "A")
	wantFile(t, power, "/b", "<none>")
}

func TestCrashAfter(t *testing.T) {
	fsys := memfs.New()
	fsys.CrashAfter(2)
	f, err := fsys.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644) // op 1
	must(t, err)
	_, err = f.Write([]byte("x")) // op 2
	must(t, err)
	if !fsys.Crashed() || fsys.Ops() != 2 {
		t.Fatalf("Crashed %v, Ops %d; want true, 2", fsys.Crashed(), fsys.Ops())
	}
	_, err = f.Write([]byte("y"))
	wantErr(t, err, memfs.ErrCrashed)
	_, err = f.ReadAt(make([]byte, 1), 0)
	wantErr(t, err, memfs.ErrCrashed)
	wantErr(t, f.Close(), memfs.ErrCrashed)
	_, err = fsys.Stat("/a")
	wantErr(t, err, memfs.ErrCrashed)
	_, err = fsys.ReadDir("/")
	wantErr(t, err, memfs.ErrCrashed)
	wantErr(t, fsys.Rename("/a", "/b"), memfs.ErrCrashed)
	fsys.CrashAfter(-1) // cannot undo a crash
	wantErr(t, fsys.MkdirAll("/d", 0o755), memfs.ErrCrashed)
	if fsys.Ops() != 2 {
		t.Errorf("Ops = %d after failures, want 2", fsys.Ops())
	}
	wantFile(t, fsys, "/a", "x") // ReadFile inspects a crashed FS
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "x")

	fsys = memfs.New()
	fsys.CrashAfter(0)
	_, err = fsys.Stat("/")
	wantErr(t, err, memfs.ErrCrashed)

	// Failed operations do not count.
	fsys = memfs.New()
	fsys.CrashAfter(1)
	wantErr(t, fsys.Remove("/missing"), fs.ErrNotExist)
	must(t, fsys.MkdirAll("/d", 0o755))
	wantErr(t, fsys.MkdirAll("/e", 0o755), memfs.ErrCrashed)

	// A negative k cancels a planned crash.
	fsys = memfs.New()
	fsys.CrashAfter(1)
	fsys.CrashAfter(-1)
	must(t, fsys.MkdirAll("/d", 0o755))
	must(t, fsys.MkdirAll("/e", 0o755))
}

func TestOps(t *testing.T) {
	fsys := memfs.New()
	step := func(want int, what string, fn func() error) {
		t.Helper()
		before := fsys.Ops()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := fsys.Ops() - before; got != want {
			t.Errorf("%s counted %d ops, want %d", what, got, want)
		}
	}
	var f, g vfs.File
	step(1, "create", func() (err error) { f, err = fsys.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644); return })
	step(0, "open existing with O_CREATE", func() (err error) { g, err = fsys.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644); return })
	step(1, "open with O_TRUNC", func() error { _, err := fsys.OpenFile("/a", os.O_RDWR|os.O_TRUNC, 0); return err })
	step(1, "Write", func() error { _, err := f.Write([]byte("abc")); return err })
	step(1, "WriteAt", func() error { _, err := f.WriteAt([]byte("abc"), 10); return err })
	step(0, "Read", func() error { _, err := g.Read(make([]byte, 2)); return err })
	step(0, "ReadAt", func() error { _, err := g.ReadAt(make([]byte, 2), 0); return err })
	step(0, "Stat", func() error { _, err := f.Stat(); return err })
	step(1, "Truncate", func() error { return f.Truncate(5) })
	step(1, "Allocate", func() error { return f.Allocate(100) })
	step(1, "Sync", f.Sync)
	step(0, "StartWriteback", func() error { return f.StartWriteback(0, 5) })
	step(0, "Lock", f.Lock)
	step(0, "Close", f.Close)
	step(1, "MkdirAll creating two", func() error { return fsys.MkdirAll("/x/y", 0o755) })
	step(0, "MkdirAll creating none", func() error { return fsys.MkdirAll("/x/y", 0o755) })
	step(1, "SyncDir", func() error { return fsys.SyncDir("/x") })
	step(1, "Rename", func() error { return fsys.Rename("/a", "/x/a") })
	step(1, "Remove", func() error { return fsys.Remove("/x/a") })
	step(0, "FS.Stat", func() error { _, err := fsys.Stat("/x"); return err })
	step(0, "ReadDir", func() error { _, err := fsys.ReadDir("/x"); return err })
	step(0, "ReadFile", func() error { _, err := fsys.ReadFile("/x/y/missing"); wantErr(t, err, fs.ErrNotExist); return nil })
}

func TestCrashedFSStaysDead(t *testing.T) {
	fsys := memfs.New()
	writeFile(t, fsys, "/a", "A", false)
	f, err := fsys.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, f.Lock())
	next := fsys.Crash(memfs.ProcessKill)
	if !fsys.Crashed() || next.Crashed() {
		t.Fatal("the old FS must be crashed, the new one not")
	}
	_, err = f.Write([]byte("x"))
	wantErr(t, err, memfs.ErrCrashed)
	// The new FS has no locks and is independent of the old one.
	g, err := next.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, g.Lock())
	_, err = g.WriteAt([]byte("B"), 0)
	must(t, err)
	wantFile(t, next, "/a", "B")
	wantFile(t, fsys, "/a", "A")
	wantFile(t, fsys.Crash(memfs.ProcessKill), "/a", "A")
}

// TestWriteFileAtomicCrash crashes vfs.WriteFileAtomic at each of its
// operations and checks that the file holds the old or the new content,
// and the new one exactly when the crash came after the step that made it
// so.
func TestWriteFileAtomicCrash(t *testing.T) {
	const name = "/state/s"
	setup := func() *memfs.FS {
		fsys := memfs.New()
		must(t, fsys.MkdirAll("/state", 0o755))
		must(t, fsys.SyncDir("/"))
		must(t, vfs.WriteFileAtomic(fsys, name, []byte("old"), 0o644))
		return fsys
	}
	fsys := setup()
	base := fsys.Ops()
	must(t, vfs.WriteFileAtomic(fsys, name, []byte("new"), 0o644))
	n := fsys.Ops() - base
	if n != 5 { // open, write, sync, rename, syncdir
		t.Fatalf("WriteFileAtomic did %d ops, want 5", n)
	}
	for k := 0; k <= n; k++ {
		fsys := setup()
		fsys.CrashAfter(k)
		err := vfs.WriteFileAtomic(fsys, name, []byte("new"), 0o644)
		if k < n && !errors.Is(err, memfs.ErrCrashed) || k == n && err != nil {
			t.Fatalf("k=%d: WriteFileAtomic = %v", k, err)
		}
		for _, mode := range modes {
			after := fsys.Crash(mode)
			got, err := after.ReadFile(name)
			if err != nil {
				t.Fatalf("k=%d %v: %v", k, mode, err)
			}
			renamed := k >= 4
			if mode == memfs.PowerLoss {
				renamed = k >= 5
			}
			want := map[bool]string{false: "old", true: "new"}[renamed]
			if string(got) != want {
				t.Errorf("k=%d %v: %q, want %q", k, mode, got, want)
			}
			must(t, vfs.SweepTemp(after, "/state"))
			names, err := after.ReadDir("/state")
			must(t, err)
			if len(names) != 1 {
				t.Errorf("k=%d %v: after SweepTemp: %q", k, mode, names)
			}
		}
	}
}

func TestConcurrentAccess(t *testing.T) {
	fsys := memfs.New()
	f, err := fsys.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	const workers, chunk = 8, 1024
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			buf := bytes.Repeat([]byte{byte(i + 1)}, chunk)
			for j := range 4 {
				off := int64((j*workers + i) * chunk)
				if _, err := f.WriteAt(buf, off); err != nil {
					t.Error(err)
				}
				got := make([]byte, chunk)
				if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, buf) {
					t.Errorf("ReadAt(%d) = %v", off, err)
				}
				if _, err := fsys.Stat("/a"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	fi, err := f.Stat()
	must(t, err)
	if fi.Size() != 4*workers*chunk {
		t.Errorf("size %d", fi.Size())
	}
}

func TestPaths(t *testing.T) {
	fsys := memfs.New()
	must(t, fsys.MkdirAll("d/e/", 0o755))
	writeFile(t, fsys, "d/e/../f", "F", false)
	wantFile(t, fsys, "/d/f", "F")
	wantFile(t, fsys, "./d//f", "F")
	fi, err := fsys.Stat(".")
	must(t, err)
	if !fi.IsDir() || fi.Name() != "/" {
		t.Errorf("Stat(.) = %q dir %v", fi.Name(), fi.IsDir())
	}
	_, err = fsys.OpenFile("", os.O_RDONLY, 0)
	wantErr(t, err, fs.ErrNotExist)
	wantErr(t, fsys.Remove("/"), syscall.EBUSY)
}
