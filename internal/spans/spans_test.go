package spans

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnionAndOverlap(t *testing.T) {
	a := []Span{{20, 30}, {0, 10}, {5, 12}, {12, 15}, {40, 40}}
	if got, want := Union(a), []Span{{0, 15}, {20, 30}}; !slices.Equal(got, want) {
		t.Fatalf("Union = %v, want %v", got, want)
	}
	if a[0] != (Span{20, 30}) {
		t.Fatal("Union changed its argument")
	}
	b := []Span{{8, 25}, {28, 100}, {9, 11}}
	// [8,15) and [20,25) and [28,30): 7 + 5 + 2.
	if got := Overlap(a, b); got != 14 {
		t.Fatalf("Overlap = %d, want 14", got)
	}
	if got := Overlap(b, a); got != 14 {
		t.Fatalf("Overlap reversed = %d, want 14", got)
	}
	if got := Overlap(a, nil); got != 0 {
		t.Fatalf("Overlap with nothing = %d", got)
	}
}

func TestWritten(t *testing.T) {
	const size = 3<<20 + 1000
	want := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(want)
	got := make([]byte, size+500) // longer than want: compared up to size
	written := []Span{{0, 70_000}, {1<<20 - 10, 1<<20 + 5000}, {2<<20 + 100, 2<<20 + 130}, {3 << 20, size}}
	for _, s := range written {
		copy(got[s.From:s.To], want[s.From:s.To])
	}
	// Wrong bytes that are not zeros.
	copy(got[200_000:], bytes.Repeat([]byte{7}, 9000))
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, got, 0o644); err != nil {
		t.Fatal(err)
	}
	spans, err := Written(path, bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	// The 30-byte span is too short to tell from chance.
	wantSpans := []Span{written[0], written[1], written[3]}
	if !slices.Equal(spans, wantSpans) {
		t.Fatalf("Written = %v, want %v", spans, wantSpans)
	}
	if _, err := Written(filepath.Join(t.TempDir(), "missing"), bytes.NewReader(want)); err == nil {
		t.Fatal("Written of a missing file: no error")
	}
}

// Written reads only the data of a file with space reserved but unwritten:
// reading that space would make the file system count it as data.
func TestWrittenLeavesReservedSpaceUnread(t *testing.T) {
	const size = 8 << 20
	want := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(want)
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		t.Skipf("fallocate: %v", err)
	}
	span := Span{3<<20 + 100, 5<<20 + 7}
	if _, err := f.WriteAt(want[span.From:span.To], span.From); err != nil {
		t.Fatal(err)
	}
	dataAt := func() int64 {
		off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
		if err != nil {
			t.Fatalf("SEEK_DATA: %v", err)
		}
		return off
	}
	before := dataAt()
	if before == 0 {
		t.Skip("this file system counts reserved space as data")
	}
	got, err := Written(path, bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []Span{span}) {
		t.Fatalf("Written = %v, want %v", got, []Span{span})
	}
	if after := dataAt(); after != before {
		t.Fatalf("the first data moved from %d to %d: Written read reserved space", before, after)
	}
}

func TestAsked(t *testing.T) {
	for _, c := range []struct {
		header string
		want   Span
	}{
		{"", Span{0, 100}},
		{"bytes=10-19", Span{10, 20}},
		{"bytes=10-", Span{10, 100}},
		{" bytes=0-0 ", Span{0, 1}},
	} {
		if got := Asked(c.header, 100); got != c.want {
			t.Errorf("Asked(%q, 100) = %v, want %v", c.header, got, c.want)
		}
	}
}
