package durl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/durl-dev/durl/durltest"
)

// A name the file system takes keeps its partial file beside it, even when
// the suffix would make the partial's name too long: that name is cut
// short, with a digest of the whole name, the same every time.
func TestBesideName(t *testing.T) {
	if got := besideName("/d/a.bin", PartialSuffix); got != "/d/a.bin"+PartialSuffix {
		t.Errorf("short name: %q", got)
	}
	long := strings.Repeat("a", 250)
	other := strings.Repeat("a", 249) + "b"
	accents := "x" + strings.Repeat("é", 124) // 249 bytes, runes starting at odd offsets
	seen := map[string]string{}
	for _, name := range []string{long, other, accents} {
		got := besideName("/d/"+name, PartialSuffix)
		dir, base := filepath.Split(got)
		if dir != "/d/" || len(base) > maxNameBytes || !strings.HasSuffix(base, PartialSuffix) ||
			!strings.HasPrefix(base, name[:100]) || !utf8.ValidString(base) {
			t.Errorf("%d-byte name: %q", len(name), got)
		}
		if got != besideName("/d/"+name, PartialSuffix) {
			t.Errorf("%d-byte name: not the same twice", len(name))
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("%q and %q share the partial name %q", prev, name, got)
		}
		seen[got] = name
	}
	// A name too long for the file system stays as it is: creating its
	// partial file fails before anything is downloaded.
	tooLong := "/d/" + strings.Repeat("c", 256)
	if got := besideName(tooLong, PartialSuffix); got != tooLong+PartialSuffix {
		t.Errorf("too long: %q", got)
	}
}

// A download to a name of 250 bytes completes, pauses and resumes in its
// partial file, and a checksum mismatch keeps the file aside.
func TestLongDestinationName(t *testing.T) {
	const size = 2 * mib
	srv := durltest.NewServer(durltest.WithContent(5, size), durltest.WithRate(4*mib))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, strings.Repeat("n", 250))
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 512*kib)
	if _, err := task.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := task.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 5, size)
	if sent := srv.BytesSent(); sent > size+size/2 {
		t.Errorf("the server sent %d bytes for %d: the resume did not continue the partial file", sent, size)
	}

	bad := filepath.Join(dir, strings.Repeat("m", 250))
	task, _ = s.Start(Request{URL: srv.FileURL(), Dest: bad, Checksum: "sha256:" + strings.Repeat("0", 64)})
	if err := wait(t, task); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	checkFile(t, besideName(bad, mismatchSuffix), 5, size)
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a file that failed its checksum reached the destination")
	}
}
