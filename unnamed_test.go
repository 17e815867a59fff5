package durl

import (
	"bytes"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs/errfs"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// A small download into a folder, without a record or syncing, writes its
// data to a file without a name until it is complete (openUnnamed): no
// partial file; no record counts on the data, though
// checkpoints come while it transfers (D1); a kill leaves nothing in the
// folder, and the rerun downloads the file again, within D5; the file in
// place has its placed mark.
func TestSmallFileWithoutAName(t *testing.T) {
	const size = 48 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size), durltest.WithRate(4*size))
	defer srv.Close()
	opts := crashOptions(srv) // a checkpoint every 2 ms
	opts.NoSync, opts.LazyRecords = true, true
	req := Request{URL: srv.URL + "/file.bin", Dest: "/downloads", DestIsDir: true}

	after := killWhileUnnamed(t, opts, req)
	rerunGetsWhole(t, after, opts, req, srv, size)
	if mark := attrOf(t, after, "/downloads/file.bin"); len(mark) == 0 || mark[0] != placedVersion {
		t.Errorf("the file in place has the mark %x, want a placed mark", mark)
	}
}

// A download whose file grows past recordStep when the remote changes
// moves on to a partial file, which a kill leaves for the rerun to resume
// (D5).
func TestSmallFileThatGrows(t *testing.T) {
	const small, large = 48 * kib, 400 * kib
	srv := durltest.NewServer(durltest.WithContent(12, small), durltest.WithRate(2*mib),
		durltest.WithReplaceAtByte(20*kib, 11, large)) // checkProgressTrue knows seed 11
	defer srv.Close()
	opts := crashOptions(srv)
	opts.NoSync, opts.LazyRecords = true, true
	req := Request{URL: srv.URL + "/file.bin", Dest: "/downloads", DestIsDir: true}

	mem := memfs.New()
	kill, writes := killAtWrite(mem, 3, func(path string) bool { return strings.HasSuffix(path, PartialSuffix) })
	runRequestOn(t, errfs.Wrap(mem, kill), bootA, opts, req)
	if !mem.Crashed() {
		t.Fatalf("the download wrote %d times, not 3, to a partial file", writes())
	}
	after := mem.Crash(memfs.ProcessKill)
	claimed := checkProgressTrue(t, after, bootA)
	before := len(srv.Requests())
	if err := runRequestOn(t, after, bootA, opts, req); err != nil {
		t.Fatal(err)
	}
	if got, _ := after.ReadFile("/downloads/file.bin"); !bytes.Equal(got, durltest.Content(11, large)) {
		t.Fatal("wrong file after the rerun")
	}
	if again := bodyBytesSince(srv, before) - (large - claimed); claimed == 0 || again > 256*kib {
		t.Errorf("the rerun resumed from %d bytes and downloaded %d again, want some and at most 256 KiB", claimed, again)
	}
}

// killAtWrite returns an injector that kills mem at the n-th write to a
// file whose name match accepts, and a function that counts those writes.
func killAtWrite(mem *memfs.FS, n int, match func(path string) bool) (errfs.Injector, func() int) {
	var (
		mu     sync.Mutex
		writes int
	)
	kill := func(op errfs.Op, path string) error {
		mu.Lock()
		defer mu.Unlock()
		if op == errfs.OpWrite && match(path) {
			if writes++; writes == n {
				mem.CrashAfter(0)
				return memfs.ErrCrashed
			}
		}
		return nil
	}
	return kill, func() int {
		mu.Lock()
		defer mu.Unlock()
		return writes
	}
}

// Where the file system has no files without a name, the download uses
// its partial file.
func TestSmallFileWithoutANameUnsupported(t *testing.T) {
	const size = 48 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	opts := crashOptions(srv)
	opts.NoSync, opts.LazyRecords = true, true
	req := Request{URL: srv.URL + "/file.bin", Dest: "/downloads", DestIsDir: true}
	mem := memfs.New()
	var (
		mu            sync.Mutex
		partialWrites int
	)
	noUnnamed := func(op errfs.Op, path string) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case op == errfs.OpOpen && path == req.Dest:
			return syscall.EOPNOTSUPP
		case op == errfs.OpWrite && strings.HasSuffix(path, PartialSuffix):
			partialWrites++
		}
		return nil
	}
	if err := runRequestOn(t, errfs.Wrap(mem, noUnnamed), bootA, opts, req); err != nil {
		t.Fatal(err)
	}
	if got, _ := mem.ReadFile("/downloads/file.bin"); !bytes.Equal(got, durltest.Content(11, size)) {
		t.Fatal("wrong file")
	}
	if partialWrites == 0 {
		t.Error("the data was not written to the partial file")
	}
}

// A small download that a mirror serves, the URL being dead, keeps its
// data in a file without a name too: a kill leaves nothing in the folder
// and no record that counts on the data (D1); the rerun gets the whole
// file from the mirror, named as the URL names it.
func TestSmallFileWithoutANameFromAMirror(t *testing.T) {
	const size = 48 * kib
	primary := durltest.NewServer(durltest.WithContent(11, size), durltest.WithStatusSequence(404, 404))
	defer primary.Close()
	mirror := durltest.NewServer(durltest.WithContent(11, size), durltest.WithRate(4*size))
	defer mirror.Close()
	opts := crashOptions(primary)
	opts.NoSync, opts.LazyRecords = true, true
	req := Request{URL: primary.URL + "/file.bin", Mirrors: []string{mirror.URL + "/other-name.bin"},
		Dest: "/downloads", DestIsDir: true}

	after := killWhileUnnamed(t, opts, req)
	rerunGetsWhole(t, after, opts, req, mirror, size)
}

// killWhileUnnamed runs req on a new memfs, kills it at its third write
// into a file without a name, and checks what the kill leaves: nothing in
// the folder, and no record that counts on the data (D1). It returns the
// file system after the kill.
func killWhileUnnamed(t *testing.T, opts Options, req Request) *memfs.FS {
	t.Helper()
	mem := memfs.New()
	kill, writes := killAtWrite(mem, 3, func(path string) bool { return path == req.Dest }) // no name: its folder's
	runRequestOn(t, errfs.Wrap(mem, kill), bootA, opts, req)
	if !mem.Crashed() {
		t.Fatalf("the download wrote its data %d times, not 3, into a file without a name", writes())
	}
	after := mem.Crash(memfs.ProcessKill)
	if names, _ := after.ReadDir(req.Dest); len(names) != 0 {
		t.Errorf("after the kill, the folder holds %q, want nothing", names)
	}
	if claimed := checkProgressTrue(t, after, bootA); claimed != 0 {
		t.Errorf("a record counts %d bytes of a file without a name", claimed)
	}
	return after
}

// rerunGetsWhole reruns req on fsys and checks that it fetches from srv
// the whole file of size bytes (seed 11) again, as /downloads/file.bin.
func rerunGetsWhole(t *testing.T, fsys *memfs.FS, opts Options, req Request, srv *durltest.Server, size int64) {
	t.Helper()
	before := len(srv.Requests())
	if err := runRequestOn(t, fsys, bootA, opts, req); err != nil {
		t.Fatal(err)
	}
	if got, _ := fsys.ReadFile("/downloads/file.bin"); !bytes.Equal(got, durltest.Content(11, size)) {
		t.Fatal("wrong file after the rerun")
	}
	if again := bodyBytesSince(srv, before); again != size {
		t.Errorf("the rerun downloaded %d bytes, want the whole file, %d", again, size)
	}
}
