package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAvailable(t *testing.T) {
	free, err := OS.Available(t.TempDir())
	if err != nil || free <= 0 {
		t.Fatalf("Available = %d, %v; want some free bytes", free, err)
	}
	if _, err := OS.Available(t.TempDir() + "/missing"); err == nil {
		t.Error("Available of a missing folder succeeded")
	}
}

// SyncFileSystem runs syncfs where the file system is one whose syncfs is a
// full sync, and is unsupported elsewhere; WriteError of a file written
// without error reports none.
// quietSystem makes systemDirty report dirty bytes waiting to be written
// until the test ends, whatever else runs on the machine.
func quietSystem(t *testing.T, dirty int64) {
	old := systemDirty
	systemDirty = &dirtyGauge{read: func() (int64, bool) { return dirty, true }}
	t.Cleanup(func() { systemDirty = old })
}

func TestSyncFileSystem(t *testing.T) {
	quietSystem(t, 1<<20)
	dir := t.TempDir()
	f, err := OS.OpenFile(filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	err = OS.SyncFileSystem(dir)
	if canSyncFileSystem(int64(st.Type)) {
		if err != nil {
			t.Fatalf("SyncFileSystem on a file system of type %#x: %v", st.Type, err)
		}
	} else if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("SyncFileSystem on a file system of type %#x: %v, want errors.ErrUnsupported", st.Type, err)
	}
	if err := f.WriteError(); err != nil {
		t.Errorf("WriteError = %v", err)
	}
	if err := OS.SyncFileSystem(filepath.Join(dir, "missing")); err == nil || errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyncFileSystem of a missing folder: %v", err)
	}
	const tmpfs, ext4, fuse = 0x01021994, 0xEF53, 0x65735546
	if canSyncFileSystem(tmpfs) || canSyncFileSystem(fuse) {
		t.Error("syncfs counted as a full sync on tmpfs or FUSE")
	}
	if kernelAtLeast(5, 8) != canSyncFileSystem(ext4) {
		t.Error("syncfs on ext4 is a full sync exactly on Linux 5.8 and later")
	}
}

// A file system sweep is refused while much other data waits to be
// written: it would wait for all of it.
func TestSyncFileSystemRefusesWhenBusy(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if !canSyncFileSystem(int64(st.Type)) {
		t.Skipf("syncfs is not a full sync on file systems of type %#x", st.Type)
	}
	quietSystem(t, busyDirty+1)
	if err := OS.SyncFileSystem(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("SyncFileSystem with %d bytes waiting: %v, want ErrBusy", busyDirty+1, err)
	}
	quietSystem(t, busyDirty)
	if err := OS.SyncFileSystem(dir); err != nil {
		t.Fatalf("SyncFileSystem with %d bytes waiting: %v", busyDirty, err)
	}
}

func TestParseDirty(t *testing.T) {
	const meminfo = "MemTotal:       24683332 kB\nDirty:             19792 kB\nWriteback:           100 kB\nAnonPages:        1 kB\n"
	if n, ok := parseDirty([]byte(meminfo)); !ok || n != (19792+100)<<10 {
		t.Fatalf("parseDirty = %d, %v; want %d", n, ok, (19792+100)<<10)
	}
	for _, bad := range []string{"Dirty: 5 kB\n", "Dirty: x kB\nWriteback: 0 kB\n", "Dirty: 5 MB\nWriteback: 0 kB\n", ""} {
		if n, ok := parseDirty([]byte(bad)); ok {
			t.Errorf("parseDirty(%q) = %d, true; want unknown", bad, n)
		}
	}
	if _, ok := systemDirty.read(); !ok {
		t.Log("this system does not report its dirty data (/proc/meminfo)")
	}
}

func TestDirtyGaugeKeepsItsReadingBriefly(t *testing.T) {
	reads := 0
	g := &dirtyGauge{read: func() (int64, bool) { reads++; return int64(reads), true }}
	for range 3 {
		if n, ok := g.bytes(); n != 1 || !ok {
			t.Fatalf("bytes = %d, %v; want the first reading, 1", n, ok)
		}
	}
	g.at = time.Now().Add(-time.Second)
	if n, _ := g.bytes(); n != 2 {
		t.Fatalf("bytes after a second = %d, want a new reading, 2", n)
	}
}

// The way a file without a name is linked where the kernel refuses to link
// a descriptor itself works too.
func TestLinkByProc(t *testing.T) {
	dir := t.TempDir()
	f, err := OS.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "a")
	if err := linkByProc(int(f.(osFile).Fd()), name); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(name); err != nil || string(got) != "data" {
		t.Errorf("the linked file reads %q, %v; want %q", got, err, "data")
	}
}
