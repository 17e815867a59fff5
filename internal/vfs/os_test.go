package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

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
func TestSyncFileSystem(t *testing.T) {
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
