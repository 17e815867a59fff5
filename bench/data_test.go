package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenFileDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, err := genFile(filepath.Join(dir, "a"), 7, 3*miB+5, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := genFile(filepath.Join(dir, "b"), 7, 3*miB+5, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := genFile(filepath.Join(dir, "c"), 8, 3*miB+5, time.Now())
	if a != b || a == c {
		t.Fatalf("sha a=%s b=%s c=%s", a, b, c)
	}
	if got, n, _ := hashFile(filepath.Join(dir, "a")); got != a || n != 3*miB+5 {
		t.Fatalf("hashFile = %s %d", got, n)
	}
}

func TestCompareVersions(t *testing.T) {
	dir := t.TempDir()
	oldP, newP := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	genFile(oldP, 1, 1*miB, time.Now())
	genFile(newP, 2, 1*miB+miB/2, time.Now())
	old, _ := os.ReadFile(oldP)
	nw, _ := os.ReadFile(newP)
	cases := []struct {
		data []byte
		want string
	}{
		{old, "old"},
		{nw, "new"},
		{old[:300_001], "partial old"},
		{nw[:12345], "partial new"},
		{append(append([]byte{}, old[:400_003]...), nw[400_003:]...), "mix"},
		{append(append([]byte{}, old[:400_003]...), nw[:100]...), "neither"},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "f")
		os.WriteFile(p, c.data, 0o644)
		if got := compareVersions(p, oldP, newP); !strings.HasPrefix(got, c.want) {
			t.Errorf("case %d: got %q, want %s", i, got, c.want)
		}
	}
	if got := compareVersions(filepath.Join(dir, "none"), oldP, newP); got != "no file" {
		t.Errorf("missing: %q", got)
	}
}

func TestProgressCountsAllocatedBytes(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "x.bin")
	f, _ := os.Create(dest + ".part")
	f.Truncate(100 * miB) // sparse: no blocks
	f.WriteAt(make([]byte, miB), 0)
	f.Close()
	if p := progress(dest, ""); p < miB || p > 2*miB {
		t.Fatalf("progress = %d", p)
	}
}
