package vfs

import "testing"

func TestAvailable(t *testing.T) {
	free, err := OS.Available(t.TempDir())
	if err != nil || free <= 0 {
		t.Fatalf("Available = %d, %v; want some free bytes", free, err)
	}
	if _, err := OS.Available(t.TempDir() + "/missing"); err == nil {
		t.Error("Available of a missing folder succeeded")
	}
}
