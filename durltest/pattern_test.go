package durltest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPatternAndFill(t *testing.T) {
	const size = 1000
	c := Content(7, size)
	for off := int64(0); off < size; off++ {
		if c[off] != Pattern(7, off) {
			t.Fatalf("Content[%d] = %#x, Pattern = %#x", off, c[off], Pattern(7, off))
		}
	}
	// Unaligned fills agree with Content.
	for _, off := range []int64{0, 1, 3, 7, 8, 13, 500} {
		for _, n := range []int{0, 1, 5, 8, 9, 17, 100} {
			b := make([]byte, n)
			Fill(b, 7, off)
			if !bytes.Equal(b, c[off:off+int64(n)]) {
				t.Fatalf("Fill(off=%d, n=%d) differs from Content", off, n)
			}
		}
	}
	// Seeds differ at most offsets, and a body differs from itself shifted.
	other, same, shifted := Content(8, size), 0, 0
	for i := range c {
		if c[i] == other[i] {
			same++
		}
		if i > 0 && c[i] == c[i-1] {
			shifted++
		}
	}
	if same > size/50 || shifted > size/50 {
		t.Fatalf("too many equal bytes: %d between seeds, %d when shifted", same, shifted)
	}
	// A longer version of one seed shares the prefix.
	if !bytes.Equal(Content(7, 2*size)[:size], c) {
		t.Fatal("Content(7, 2000) does not start with Content(7, 1000)")
	}
}

func TestDigestAndReader(t *testing.T) {
	for _, size := range []int64{0, 1, 100, 200_001} {
		if Digest(3, size) != sha256.Sum256(Content(3, size)) {
			t.Fatalf("Digest(3, %d) differs from SHA-256 of Content", size)
		}
		b, err := io.ReadAll(NewReader(3, size))
		if err != nil || !bytes.Equal(b, Content(3, size)) {
			t.Fatalf("NewReader(3, %d): err %v, equal %v", size, err, bytes.Equal(b, Content(3, size)))
		}
	}
}

func TestVerify(t *testing.T) {
	c := Content(5, 100_000)
	if err := Verify(bytes.NewReader(c), 5, 100_000); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(c)
	bad[70_001] ^= 1
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"changed byte", bad, "offset 70001"},
		{"other seed", Content(6, 100_000), "offset 0"},
		{"short", c[:99_999], "ends at offset 99999"},
		{"long", append(bytes.Clone(c), 0), "longer than 100000"},
	} {
		err := Verify(bytes.NewReader(tc.data), 5, 100_000)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Verify = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, 5, 100_000); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path, 5, 100_001); err == nil {
		t.Fatal("VerifyFile accepted a short file")
	}
}

func TestNextLastModified(t *testing.T) {
	base := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	// Strong (an hour old) stays strong and moves forward.
	if got := nextLastModified(base, base.Add(time.Hour)); !got.After(base) || base.Add(time.Hour).Sub(got) < time.Minute {
		t.Fatalf("strong date replaced by %v", got)
	}
	// Recent stays recent.
	if got := nextLastModified(base, base.Add(10*time.Second)); !got.After(base) || got.Sub(base) > 11*time.Second {
		t.Fatalf("recent date replaced by %v", got)
	}
	if got := nextLastModified(time.Time{}, base); !got.IsZero() {
		t.Fatalf("no date replaced by %v", got)
	}
}
