package main

import (
	"runtime"
	"testing"
)

func TestEnsureSyncProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ensureSyncProcs(func(string) string { return "1" })
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("GOMAXPROCS=1 in the environment: %d Ps, want 1", n)
	}
	ensureSyncProcs(func(string) string { return "" })
	if n := runtime.GOMAXPROCS(0); n != minSyncProcs {
		t.Fatalf("%d Ps, want %d", n, minSyncProcs)
	}
}
