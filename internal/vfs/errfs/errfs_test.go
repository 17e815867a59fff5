package errfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/errfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

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

func TestOpString(t *testing.T) {
	for op, want := range map[errfs.Op]string{
		errfs.OpOpen: "open", errfs.OpWrite: "write", errfs.OpSyncDir: "syncdir",
		errfs.OpLock: "lock", errfs.OpAny: "any", errfs.Op(99): "Op(99)",
	} {
		if got := op.String(); got != want {
			t.Errorf("%d: %q, want %q", int(op), got, want)
		}
	}
}

// TestEveryOp checks that every operation asks the Injector, with the
// right Op and path, and that an injected error stops it before the inner
// FS sees it.
type call struct {
	op   errfs.Op
	path string
}

func TestEveryOp(t *testing.T) {
	for _, failing := range []bool{true, false} {
		mem := memfs.New()
		must(t, mem.MkdirAll("/d", 0o755))
		var (
			mu    sync.Mutex
			calls []call
			fail  bool
		)
		fsys := errfs.Wrap(mem, func(op errfs.Op, path string) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{op, path})
			if fail {
				return syscall.EIO
			}
			return nil
		})
		f, err := fsys.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		if want := (call{errfs.OpOpen, "/d/a"}); calls[0] != want {
			t.Errorf("got call %v, want %v", calls[0], want)
		}
		mu.Lock()
		fail = failing
		calls = nil
		mu.Unlock()
		steps := []struct {
			want call
			do   func() error
		}{
			{call{errfs.OpMkdir, "/d/e"}, func() error { return fsys.MkdirAll("/d/e", 0o755) }},
			{call{errfs.OpWrite, "/d/a"}, func() error { _, err := f.Write([]byte("ab")); return err }},
			{call{errfs.OpWrite, "/d/a"}, func() error { _, err := f.WriteAt([]byte("c"), 2); return err }},
			{call{errfs.OpRead, "/d/a"}, func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
			{call{errfs.OpStat, "/d/a"}, func() error { _, err := f.Stat(); return err }},
			{call{errfs.OpSync, "/d/a"}, func() error { return f.Sync() }},
			{call{errfs.OpTruncate, "/d/a"}, func() error { return f.Truncate(5) }},
			{call{errfs.OpAllocate, "/d/a"}, func() error { return f.Allocate(10) }},
			{call{errfs.OpStartWriteback, "/d/a"}, func() error { return f.StartWriteback(0, 5) }},
			{call{errfs.OpLock, "/d/a"}, func() error { return f.Lock() }},
			{call{errfs.OpLink, "/d/c"}, func() error { return f.Link("/d/c") }},
			{call{errfs.OpStat, "/d"}, func() error { _, err := fsys.Stat("/d"); return err }},
			{call{errfs.OpReadDir, "/d"}, func() error { _, err := fsys.ReadDir("/d"); return err }},
			{call{errfs.OpSyncDir, "/d"}, func() error { return fsys.SyncDir("/d") }},
			{call{errfs.OpRename, "/d/a"}, func() error { return fsys.Rename("/d/a", "/d/b") }},
			{call{errfs.OpRemove, "/d/e"}, func() error { return fsys.Remove("/d/e") }},
			{call{errfs.OpRead, "/d/a"}, func() error { _, err := f.Read(make([]byte, 1)); return err }},
			{call{errfs.OpClose, "/d/a"}, func() error { return f.Close() }},
			{call{errfs.OpOpen, "/d/x"}, func() error {
				_, err := fsys.OpenFile("/d/x", os.O_RDWR|os.O_CREATE, 0o644)
				return err
			}},
		}
		for _, s := range steps {
			before := mem.Ops()
			err := s.do()
			mu.Lock()
			got := calls[len(calls)-1]
			mu.Unlock()
			if got != s.want {
				t.Errorf("got call %v, want %v", got, s.want)
			}
			if !failing {
				if err != nil {
					t.Errorf("%v: %v", s.want.op, err)
				}
				continue
			}
			wantErr(t, err, syscall.EIO)
			var pe *fs.PathError
			var le *os.LinkError
			if !errors.As(err, &pe) && !errors.As(err, &le) {
				t.Errorf("%v: %T is neither a PathError nor a LinkError", s.want.op, err)
			}
			if mem.Ops() != before {
				t.Errorf("%v: the inner FS ran a failed op", s.want.op)
			}
		}
		if len(calls) != len(steps) {
			t.Errorf("%d calls for %d steps", len(calls), len(steps))
		}
		if _, err := mem.Stat("/d/x"); failing != errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failing %v: Stat(/d/x) = %v", failing, err)
		}
	}
}

func TestFailOn(t *testing.T) {
	mem := memfs.New()
	fsys := errfs.Wrap(mem, errfs.FailOn(errfs.OpSync, "state", nil, 2))
	f, err := fsys.OpenFile("/state", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	g, err := fsys.OpenFile("/data", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Sync())
	for range 3 {
		err = f.Sync()
		wantErr(t, err, syscall.EIO)
		must(t, g.Sync())
	}
	if got, want := err.Error(), "sync /state: input/output error"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	// Repaired: SetInjector(nil) lets everything through.
	fsys.SetInjector(nil)
	must(t, f.Sync())

	// OpAny with a custom error.
	errGone := errors.New("gone")
	fsys = errfs.Wrap(mem, errfs.FailOn(errfs.OpAny, "/state", errGone, 0))
	_, err = fsys.Stat("/state")
	wantErr(t, err, errGone)
	err = fsys.Rename("/state", "/other")
	wantErr(t, err, errGone)
	var le *os.LinkError
	if !errors.As(err, &le) || le.New != "/other" {
		t.Errorf("Rename error %#v is not a LinkError", err)
	}
	_, err = fsys.Stat("/data")
	must(t, err)
}

func TestChain(t *testing.T) {
	inj := errfs.Chain(nil, errfs.FailOn(errfs.OpRemove, "", syscall.EROFS, 0), errfs.FailOn(errfs.OpAny, "b", nil, 0))
	fsys := errfs.Wrap(memfs.New(), inj)
	wantErr(t, fsys.Remove("/b"), syscall.EROFS)
	_, err := fsys.Stat("/b")
	wantErr(t, err, syscall.EIO)
	_, err = fsys.Stat("/a")
	wantErr(t, err, fs.ErrNotExist)
}

// An injected Close error still closes the file and releases its lock.
func TestCloseError(t *testing.T) {
	mem := memfs.New()
	fsys := errfs.Wrap(mem, errfs.FailOn(errfs.OpClose, "", nil, 0))
	f, err := fsys.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	must(t, f.Lock())
	wantErr(t, f.Close(), syscall.EIO)
	g, err := mem.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	must(t, g.Lock())
}

// With an injected error at each step, WriteFileAtomic fails and leaves the
// old content and no temporary file.
func TestWriteFileAtomicErrors(t *testing.T) {
	for _, op := range []errfs.Op{errfs.OpOpen, errfs.OpWrite, errfs.OpSync, errfs.OpClose, errfs.OpRename} {
		t.Run(op.String(), func(t *testing.T) {
			mem := memfs.New()
			must(t, vfs.WriteFileAtomic(mem, "/s", []byte("old"), 0o644))
			fsys := errfs.Wrap(mem, errfs.FailOn(op, "", nil, 0))
			wantErr(t, vfs.WriteFileAtomic(fsys, "/s", []byte("new"), 0o644), syscall.EIO)
			got, err := mem.ReadFile("/s")
			if err != nil || string(got) != "old" {
				t.Errorf("/s = %q, %v", got, err)
			}
			names, _ := mem.ReadDir("/")
			if !slices.Equal(names, []string{"s"}) {
				t.Errorf("left %q", names)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	mem := memfs.New()
	q := errfs.WithQuota(mem, 10)
	f, err := q.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	n, err := f.Write([]byte("012345"))
	if n != 6 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	n, err = f.Write([]byte("6789ab"))
	if n != 4 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write over quota = %d, %v; want 4, ENOSPC", n, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "write" || pe.Path != "/a" {
		t.Errorf("error %#v", err)
	}
	if q.Used() != 10 {
		t.Errorf("Used = %d", q.Used())
	}
	n, err = f.Write([]byte("x"))
	if n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write on a full disk = %d, %v", n, err)
	}
	// Overwriting does not grow the file.
	_, err = f.WriteAt([]byte("ABCDEFGHIJ"), 0)
	must(t, err)
	wantErr(t, f.Allocate(11), syscall.ENOSPC)
	wantErr(t, f.Truncate(11), syscall.ENOSPC)
	g, err := q.OpenFile("/b", os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	_, err = g.WriteAt([]byte("x"), 0)
	wantErr(t, err, syscall.ENOSPC)

	// Free space, resume.
	q.SetQuota(20)
	n, err = f.Write([]byte("ab"))
	if n != 2 || err != nil {
		t.Fatalf("Write after SetQuota = %d, %v", n, err)
	}
	got, _ := mem.ReadFile("/a")
	if string(got) != "ABCDEFGHIJab" {
		t.Errorf("/a = %q", got)
	}

	// Allocate reserves: writes within the reservation need no more room.
	must(t, f.Allocate(20))
	if q.Used() != 20 {
		t.Errorf("Used = %d after Allocate, want 20", q.Used())
	}
	_, err = f.WriteAt([]byte("zz"), 18)
	must(t, err)
	_, err = f.WriteAt([]byte("z"), 20)
	wantErr(t, err, syscall.ENOSPC)

	// Truncation, O_TRUNC and removal give space back.
	must(t, f.Truncate(5))
	if q.Used() != 5 {
		t.Errorf("Used = %d after Truncate(5), want 5", q.Used())
	}
	must(t, f.Close())
	h, err := q.OpenFile("/a", os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	if q.Used() != 0 {
		t.Errorf("Used = %d after O_TRUNC, want 0", q.Used())
	}
	_, err = h.Write([]byte("0123456789"))
	must(t, err)
	must(t, h.Close())
	_, err = g.Write([]byte("01234"))
	must(t, err)
	must(t, q.Rename("/b", "/a")) // replaces the 10 bytes of /a
	if q.Used() != 5 {
		t.Errorf("Used = %d after Rename, want 5", q.Used())
	}
	must(t, q.Remove("/a"))
	if q.Used() != 0 {
		t.Errorf("Used = %d after Remove, want 0", q.Used())
	}
}

func TestQuotaAppendAndRead(t *testing.T) {
	mem := memfs.New()
	must(t, vfs.WriteFileAtomic(mem, "/a", []byte("0123456789"), 0o644)) // not counted
	q := errfs.WithQuota(mem, 3)
	f, err := q.OpenFile("/a", os.O_RDWR|os.O_APPEND, 0)
	must(t, err)
	n, err := f.Write([]byte("abcd"))
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append = %d, %v", n, err)
	}
	g, err := q.OpenFile("/a", os.O_RDWR, 0)
	must(t, err)
	buf := make([]byte, 8)
	_, err = g.Read(buf)
	must(t, err)
	// g's offset is 8: this write needs 1 byte beyond the end of 13.
	n, err = g.Write([]byte("XXXXXX"))
	if n != 5 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write after read = %d, %v", n, err)
	}
	got, _ := mem.ReadFile("/a")
	if string(got) != "01234567XXXXX" {
		t.Errorf("/a = %q", got)
	}
}

// The quota and the injector compose with each other and work on the OS.
func TestQuotaOnOS(t *testing.T) {
	dir := t.TempDir()
	q := errfs.WithQuota(vfs.OS, 8)
	fsys := errfs.Wrap(q, errfs.FailOn(errfs.OpSyncDir, "", nil, 0))
	name := filepath.Join(dir, "a")
	wantErr(t, vfs.WriteFileAtomic(fsys, name, []byte("0123456789"), 0o644), syscall.ENOSPC)
	if q.Used() != 0 {
		t.Errorf("Used = %d after the temporary file was removed", q.Used())
	}
	wantErr(t, vfs.WriteFileAtomic(fsys, name, []byte("0123"), 0o644), syscall.EIO)
	got, err := os.ReadFile(name)
	if err != nil || string(got) != "0123" {
		t.Errorf("%s = %q, %v", name, got, err)
	}
}
