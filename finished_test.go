package durl

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/errfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// crashAtPartial runs req with opts on a memfs, without checkpoints, crashes it at the first operation of kind
// op on the partial file (or of the file system) and returns what a crash
// of the given mode leaves.
func crashAtPartial(t *testing.T, opts Options, req Request, op errfs.Op, mode memfs.CrashMode) *memfs.FS {
	t.Helper()
	opts.CheckpointInterval = time.Hour // no checkpoint records the download
	mem := memfs.New()
	crash := func(o errfs.Op, path string) error {
		if o == op && (strings.HasSuffix(path, PartialSuffix) || op == errfs.OpSyncFileSystem) {
			mem.CrashAfter(0)
			return memfs.ErrCrashed
		}
		return nil
	}
	runRequestOn(t, errfs.Wrap(mem, crash), bootA, opts, req)
	if !mem.Crashed() {
		t.Fatalf("the download never reached a %s of its partial file", op)
	}
	return mem.Crash(mode)
}

// crashLazy runs a download without a record (LazyRecords) of srv's file,
// crashes it in mode at the first operation op on its partial file and
// returns what the crash left.
func crashLazy(t *testing.T, srv *durltest.Server, op errfs.Op, mode memfs.CrashMode) *memfs.FS {
	t.Helper()
	opts := crashOptions(srv)
	opts.LazyRecords = true
	return crashAtPartial(t, opts, Request{URL: srv.FileURL(), Dest: crashDest}, op, mode)
}

// killWhileFinishing kills a download without a record as its complete file
// is flushed and returns what the kill left.
func killWhileFinishing(t *testing.T, srv *durltest.Server) *memfs.FS {
	t.Helper()
	return crashLazy(t, srv, errfs.OpSync, memfs.ProcessKill)
}

// rerunLazy runs the download of url to crashDest again, without a
// record, on fsys in boot, and returns the body bytes the server sent for
// it.
func rerunLazy(t *testing.T, srv *durltest.Server, fsys *memfs.FS, boot [16]byte, url string) int64 {
	t.Helper()
	opts := crashOptions(srv)
	opts.LazyRecords = true
	before := len(srv.Requests())
	if err := runRequestOn(t, fsys, boot, opts, Request{URL: url, Dest: crashDest}); err != nil {
		t.Fatal(err)
	}
	return bodyBytesSince(srv, before)
}

// wantRerunFile fails the test unless crashDest holds the content (11,
// size) after a rerun.
func wantRerunFile(t *testing.T, fsys *memfs.FS, size int64) {
	t.Helper()
	if got, _ := fsys.ReadFile(crashDest); !bytes.Equal(got, durltest.Content(11, size)) {
		t.Fatal("wrong file after the rerun")
	}
}

// attrOf returns the finished mark of the file name, nil if it has none.
func attrOf(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Attr(finishedAttr)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A download without a record that is killed while its complete file waits
// for its flush is not downloaded again: its file says it is complete
// (D5), and the rerun asks the server nothing. The file in place carries
// a placed mark instead.
func TestKilledWhileFinishingWithoutARecord(t *testing.T) {
	const size = 40 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	after := killWhileFinishing(t, srv)
	if attrOf(t, after, crashDest+PartialSuffix) == nil {
		t.Fatal("the complete partial file carries no finished mark")
	}
	before := len(srv.Requests())
	rerunLazy(t, srv, after, bootA, srv.FileURL())
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("the rerun sent %d requests, want 0", n)
	}
	wantRerunFile(t, after, size)
	if m := attrOf(t, after, crashDest); len(m) == 0 || m[0] != placedVersion {
		t.Errorf("the file in place carries the mark %q, want a placed mark", m)
	}
}

// The mark is trusted only in the boot that wrote it, for the same URL,
// and for a file of the size it gives, unaltered: otherwise the file is
// downloaded again, and right.
func TestFinishedMarkIsCheckedNotTrusted(t *testing.T) {
	const size = 40 * kib
	for _, c := range []struct {
		name    string
		boot    [16]byte
		query   string
		alter   func(t *testing.T, fsys *memfs.FS)
		refetch bool
	}{
		{name: "same boot, URL and file"},
		{name: "another boot", boot: bootB, refetch: true},
		{name: "another URL", query: "?v=2", refetch: true},
		{name: "the file grew", alter: func(t *testing.T, fsys *memfs.FS) {
			f, _ := fsys.OpenFile(crashDest+PartialSuffix, os.O_RDWR, 0)
			f.WriteAt([]byte{1}, size)
			f.Close()
		}, refetch: true},
		{name: "the mark's size altered", alter: func(t *testing.T, fsys *memfs.FS) {
			setAttr(t, fsys, crashDest+PartialSuffix, func(m []byte) []byte {
				m[1+markDigest+7]++ // the size's last byte
				return m
			})
		}, refetch: true},
		{name: "a mark of another version", alter: func(t *testing.T, fsys *memfs.FS) {
			setAttr(t, fsys, crashDest+PartialSuffix, func(m []byte) []byte { m[0]++; return m })
		}, refetch: true},
		{name: "a cut mark", alter: func(t *testing.T, fsys *memfs.FS) {
			setAttr(t, fsys, crashDest+PartialSuffix, func(m []byte) []byte { return m[:len(m)-1] })
		}, refetch: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := durltest.NewServer(durltest.WithContent(11, size))
			defer srv.Close()
			after := killWhileFinishing(t, srv)
			if c.alter != nil {
				c.alter(t, after)
			}
			boot := bootA
			if c.boot != ([16]byte{}) {
				boot = c.boot
			}
			again := rerunLazy(t, srv, after, boot, srv.FileURL()+c.query)
			if want := map[bool]int64{true: size}[c.refetch]; again != want {
				t.Errorf("%d bytes downloaded again, want %d", again, want)
			}
			wantRerunFile(t, after, size)
		})
	}
}

// After power loss the mark is not trusted (the boot changed): the file is
// downloaded again, and right.
func TestFinishedMarkAfterPowerLoss(t *testing.T) {
	const size = 40 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	after := crashLazy(t, srv, errfs.OpRename, memfs.PowerLoss) // after the flush, before the rename
	if again := rerunLazy(t, srv, after, bootB, srv.FileURL()); again != size {
		t.Errorf("%d bytes downloaded again after power loss, want %d", again, size)
	}
	wantRerunFile(t, after, size)
}

// Killed just before the rename, a download's partial file already carries
// its placed mark, set once the data was flushed: the rerun only finishes
// the file, without a request, even in another boot.
func TestKilledBeforeTheRename(t *testing.T) {
	const size = 40 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	after := crashLazy(t, srv, errfs.OpRename, memfs.ProcessKill)
	if m := attrOf(t, after, crashDest+PartialSuffix); len(m) == 0 || m[0] != placedVersion {
		t.Fatalf("the partial file carries the mark %q, want a placed mark", m)
	}
	before := len(srv.Requests())
	rerunLazy(t, srv, after, bootB, srv.FileURL())
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("the rerun sent %d requests, want 0", n)
	}
	wantRerunFile(t, after, size)
}

// A file found complete is checked against the checksum the rerun is
// given, read from the disk.
func TestFinishedFileIsVerified(t *testing.T) {
	const size = 40 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	good := durltest.Digest(11, size)
	req := Request{URL: srv.FileURL(), Dest: crashDest, Checksum: "sha256:" + hexString(good[:])}
	opts := crashOptions(srv)
	opts.LazyRecords = true
	for _, c := range []struct {
		checksum string
		want     error
	}{{req.Checksum, nil}, {"sha256:" + strings.Repeat("0", 64), ErrChecksumMismatch}} {
		after := crashAtPartial(t, opts, req, errfs.OpSync, memfs.ProcessKill)
		before := len(srv.Requests())
		rerun := req
		rerun.Checksum = c.checksum
		if err := runRequestOn(t, after, bootA, opts, rerun); !errors.Is(err, c.want) {
			t.Errorf("checksum %s: the rerun ended with %v, want %v", c.checksum, err, c.want)
		}
		if n := len(srv.Requests()) - before; n != 0 {
			t.Errorf("checksum %s: the rerun sent %d requests, want 0", c.checksum, n)
		}
	}
}

// A marked download leaves its place without taking a finishing place; a
// remote without a strong validator gives no mark to trust, and the
// download takes a finishing place as before.
func TestMarkedDownloadsNeedNoFinishingPlace(t *testing.T) {
	mem := memfs.New()
	s, err := open(context.Background(), Options{StateDir: crashState, MaxActive: 1}, mem, bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := mem.MkdirAll("/dl", 0o755); err != nil {
		t.Fatal(err)
	}
	for i, etag := range []string{`"v1"`, `"v1"`, "", ""} {
		part, err := mem.OpenFile("/dl/f"+PartialSuffix, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		left := false
		d := &download{s: s, t: &Task{unrecorded: true}, part: part, leaveActive: func() { left = true }}
		d.rec.Request = storedRequest{URL: "http://example.com/f", Dest: "/dl/f"}
		d.rerunPath = finishedPath(d.rec.Request)
		d.rec.Path, d.rec.Total, d.rec.ETag, d.prog.Total = "/dl/f", 10, etag, 10
		if err := d.leaveActiveEarly(); err != nil {
			t.Fatal(err)
		}
		wantLeft, wantFinishing := i < 3, int32(min(max(i-1, 0), 1)) // one finishing place
		_, err = part.Attr(finishedAttr)
		if marked := err == nil; left != wantLeft || marked != (etag != "") {
			t.Errorf("download %d (ETag %q): left %v, marked %v; want %v, %v", i, etag, left, marked, wantLeft, etag != "")
		}
		if n := s.finishing.Load(); n != wantFinishing {
			t.Errorf("download %d: %d finishing places taken, want %d", i, n, wantFinishing)
		}
		part.Close()
		if err := mem.Remove("/dl/f" + PartialSuffix); err != nil { // the next download's partial starts unmarked
			t.Fatal(err)
		}
	}
}

// A common mark fits inside an ext4 inode beside nothing else, so setting
// it writes no block of its own: 256-byte inodes leave 92 bytes for
// attributes, an entry takes 16 and its name and value rounded up to 4,
// and the list ends with 4 zero bytes.
func TestFinishedMarkIsSmall(t *testing.T) {
	m := finishedMark{total: 1 << 40, etag: `"5f3c1a2b-10000000000"`}.encode(placedVersion, bootA, "https://example.com/x")
	if n := 16 + (len(finishedAttr)+3)/4*4 + (len(m)+3)/4*4 + 4; n > 92 {
		t.Errorf("the mark takes %d bytes of the inode's 92", n)
	}
}
