package durl

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// placedRun is one run of a download in a session of its own.
type placedRun struct {
	err       error
	completed Event                  // its EventCompleted, if any
	sent      []durltest.RequestInfo // the requests it made
}

// runPlaced downloads req on fsys in boot, in a new session whose state
// folder is state, and returns what happened.
func runPlaced(t *testing.T, srv *durltest.Server, fsys *memfs.FS, boot [16]byte, opts Options, state string, req Request) placedRun {
	t.Helper()
	var (
		mu  sync.Mutex
		run placedRun
	)
	opts.StateDir = state
	opts.OnEvent = func(e Event) {
		if e.Kind == EventCompleted {
			mu.Lock()
			run.completed = e
			mu.Unlock()
		}
	}
	before := len(srv.Requests())
	s, err := open(context.Background(), opts, fsys, boot)
	if err != nil {
		t.Fatal(err)
	}
	task, err := s.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	run.err = wait(t, task)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	run.sent = srv.Requests()[before:]
	return run
}

// downloadedOnce serves a file of size with srvOpts, downloads it to
// crashDest on a new memfs in boot A with crashOptions changed by tweak
// (if set), and returns the server (closed with the test), the file
// system, the options and the request.
func downloadedOnce(t *testing.T, size int64, tweak func(*Options), srvOpts ...durltest.Option) (*durltest.Server, *memfs.FS, Options, Request) {
	t.Helper()
	srv := durltest.NewServer(append(srvOpts, durltest.WithContent(11, size))...)
	t.Cleanup(srv.Close)
	mem, opts := memfs.New(), crashOptions(srv)
	if tweak != nil {
		tweak(&opts)
	}
	req := Request{URL: srv.FileURL(), Dest: crashDest}
	if run := runPlaced(t, srv, mem, bootA, opts, "/s1", req); run.err != nil {
		t.Fatal(run.err)
	}
	return srv, mem, opts, req
}

// keptUnchanged fails the test unless run kept the file in place after
// one conditional request that the server answered 304.
func keptUnchanged(t *testing.T, run placedRun, header string) {
	t.Helper()
	if run.err != nil {
		t.Fatalf("the rerun failed: %v", run.err)
	}
	if len(run.sent) != 1 || run.sent[0].Status != http.StatusNotModified || run.sent[0].Header.Get(header) == "" {
		t.Fatalf("the rerun sent %s, want one request with %s answered 304", describeSent(run.sent), header)
	}
	if run.completed.Reason != keptNote {
		t.Errorf("the rerun completed with reason %q, want %q", run.completed.Reason, keptNote)
	}
	if p := run.completed.Progress; p.Written != p.Total || p.Total <= 0 {
		t.Errorf("the rerun completed with progress %+v, want the whole file written", p)
	}
}

// downloadedAgain fails the test unless run fetched the whole file of
// size, without asking whether it changed.
func downloadedAgain(t *testing.T, run placedRun, size int64) {
	t.Helper()
	var body int64
	for _, r := range run.sent {
		body += r.BodyBytes
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			t.Errorf("the rerun asked whether the file changed: %s", describeSent(run.sent))
		}
	}
	if body != size || run.completed.Reason != "" {
		t.Errorf("the rerun fetched %d bytes and completed with reason %q, want %d and none", body, run.completed.Reason, size)
	}
}

func describeSent(sent []durltest.RequestInfo) string {
	var b strings.Builder
	for _, r := range sent {
		b.WriteString(r.Method + " " + r.Path + " " + http.StatusText(r.Status) + " If-None-Match=" +
			r.Header.Get("If-None-Match") + " If-Modified-Since=" + r.Header.Get("If-Modified-Since") + "; ")
	}
	return "[" + b.String() + "]"
}

// A rerun of a completed download asks the server whether the file
// changed, and on 304 Not Modified keeps the file in place: a list killed
// part way is not fetched again from the start. It holds across reboots,
// for downloads with and without a record, in a new state folder too, and
// with a Last-Modified date alone.
func TestRerunKeepsUnchangedFile(t *testing.T) {
	const size = 300 * kib
	lastMod := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, c := range []struct {
		name   string
		opts   []durltest.Option
		lazy   bool
		header string
	}{
		{name: "recorded", header: "If-None-Match"},
		{name: "without a record", lazy: true, header: "If-None-Match"},
		{name: "Last-Modified only", opts: []durltest.Option{durltest.WithETag(durltest.ETagNone), durltest.WithLastModified(lastMod)},
			header: "If-Modified-Since"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, mem, opts, req := downloadedOnce(t, size, func(o *Options) { o.LazyRecords = c.lazy }, c.opts...)
			keptUnchanged(t, runPlaced(t, srv, mem, bootB, opts, "/s2", req), c.header)
			wantRerunFile(t, mem, size)
		})
	}
}

// The file in place is replaced when the remote changed, and downloaded
// again without a question when the mark cannot be trusted: the file was
// written to since, the request is for another URL, the mark is cut or
// altered, the remote gave only a weak ETag, or the server ignores the
// question.
func TestRerunReplacesChangedFile(t *testing.T) {
	const size = 100 * kib
	t.Run("the remote changed", func(t *testing.T) {
		srv, mem, opts, req := downloadedOnce(t, size, nil)
		srv.Replace(12, size+1)
		run := runPlaced(t, srv, mem, bootA, opts, "/s2", req)
		if run.err != nil || len(run.sent) != 1 || run.sent[0].BodyBytes != size+1 || run.completed.Reason != "" {
			t.Errorf("the rerun sent %s and ended with %v, want the new file at once", describeSent(run.sent), run.err)
		}
		if got, _ := mem.ReadFile(crashDest); !bytes.Equal(got, durltest.Content(12, size+1)) {
			t.Error("the file in place is not the new one")
		}
	})
	for _, c := range []struct {
		name  string
		opts  []durltest.Option
		query string
		alter func(t *testing.T, fsys *memfs.FS)
	}{
		{name: "the file was written to", alter: func(t *testing.T, fsys *memfs.FS) {
			f, err := fsys.OpenFile(crashDest, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0}, 10)
			f.Close()
		}},
		{name: "another URL", query: "?v=2"},
		{name: "a cut mark", alter: func(t *testing.T, fsys *memfs.FS) {
			setAttr(t, fsys, crashDest, func(m []byte) []byte { return m[:len(m)-1] })
		}},
		{name: "an altered mark", alter: func(t *testing.T, fsys *memfs.FS) {
			setAttr(t, fsys, crashDest, func(m []byte) []byte { m[1+markDigest+7]++; return m })
		}},
		{name: "a weak ETag", opts: []durltest.Option{durltest.WithETag(durltest.ETagWeak), durltest.WithoutLastModified()}},
		{name: "the server ignores the question", opts: []durltest.Option{durltest.WithoutConditionals()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, mem, opts, req := downloadedOnce(t, size, nil, c.opts...)
			if c.alter != nil {
				c.alter(t, mem)
			}
			req.URL += c.query
			run := runPlaced(t, srv, mem, bootA, opts, "/s2", req)
			if run.err != nil {
				t.Fatal(run.err)
			}
			if c.name == "the server ignores the question" {
				if len(run.sent) != 1 || run.sent[0].Header.Get("If-None-Match") == "" || run.sent[0].BodyBytes != size {
					t.Errorf("the rerun sent %s, want one question answered with the whole file", describeSent(run.sent))
				}
			} else {
				downloadedAgain(t, run, size)
			}
			wantRerunFile(t, mem, size)
		})
	}
}

// Under NoSync the file's data may not have reached the disk, so its mark
// holds only in the boot that wrote it.
func TestRerunAfterNoSync(t *testing.T) {
	const size = 100 * kib
	srv, mem, opts, req := downloadedOnce(t, size, func(o *Options) { o.NoSync = true })
	keptUnchanged(t, runPlaced(t, srv, mem, bootA, opts, "/s2", req), "If-None-Match")
	downloadedAgain(t, runPlaced(t, srv, mem, bootB, opts, "/s3", req), size)
	wantRerunFile(t, mem, size)
}

// A rerun given a checksum keeps the file in place only if the file
// matches it, read from the disk; otherwise it downloads the file again
// and fails the check as any download would.
func TestRerunChecksPlacedFile(t *testing.T) {
	const size = 100 * kib
	srv, mem, opts, req := downloadedOnce(t, size, nil)
	good := durltest.Digest(11, size)
	req.Checksum = "sha256:" + hexString(good[:])
	keptUnchanged(t, runPlaced(t, srv, mem, bootA, opts, "/s2", req), "If-None-Match")
	req.Checksum = "sha256:" + strings.Repeat("0", 64)
	run := runPlaced(t, srv, mem, bootA, opts, "/s3", req)
	if !errors.Is(run.err, ErrChecksumMismatch) {
		t.Errorf("the rerun ended with %v, want %v", run.err, ErrChecksumMismatch)
	}
	downloadedAgain(t, run, size)
}

// setAttr changes the mark of the file name (read with attrOf).
func setAttr(t *testing.T, fsys *memfs.FS, name string, change func(mark []byte) []byte) {
	t.Helper()
	mark := attrOf(t, fsys, name)
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.SetAttr(finishedAttr, change(mark)); err != nil {
		t.Fatal(err)
	}
}
