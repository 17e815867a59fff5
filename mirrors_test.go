package durl

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durl-dev/durl/durltest"
)

// rangedRequests counts a server's 206 answers.
func rangedRequests(srv *durltest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Status == 206 {
			n++
		}
	}
	return n
}

// Parts are drawn from the URL and its mirrors.
func TestMirrorsShareTheWork(t *testing.T) {
	const size = 24 * mib
	primary := durltest.NewServer(durltest.WithContent(31, size), durltest.WithRate(24*mib))
	m1 := durltest.NewServer(durltest.WithContent(31, size), durltest.WithRate(24*mib))
	m2 := durltest.NewServer(durltest.WithContent(31, size), durltest.WithRate(24*mib))
	for _, srv := range []*durltest.Server{primary, m1, m2} {
		defer srv.Close()
	}
	s, log, dir := testSession(t, primary, Options{})
	dest := filepath.Join(dir, "f")
	task, err := s.Start(Request{URL: primary.FileURL(), Mirrors: []string{m1.FileURL(), m2.FileURL()}, Dest: dest, Connections: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 31, size)
	if rangedRequests(m1) == 0 || rangedRequests(m2) == 0 {
		t.Errorf("mirrors served %d and %d parts, want some each", rangedRequests(m1), rangedRequests(m2))
	}
	if n := log.count(EventWarning); n != 0 {
		t.Errorf("%d warnings: %q", n, log.reasons(EventWarning))
	}
}

// A mirror whose file differs (other bytes, or another size), or which
// fails for good, is dropped with a warning; the download completes from
// the others.
func TestBadMirrorsAreDropped(t *testing.T) {
	const size = 20 * mib
	cases := map[string]struct {
		opts []durltest.Option
		why  string
	}{
		"other bytes":    {[]durltest.Option{durltest.WithContent(99, size)}, "bytes differ"},
		"other size":     {[]durltest.Option{durltest.WithContent(32, size+1)}, "bytes, not"},
		"not found":      {[]durltest.Option{durltest.WithContent(32, size), durltest.WithStatusSequence(404, 404, 404, 404, 404, 404)}, "404"},
		"ignores ranges": {[]durltest.Option{durltest.WithContent(32, size), durltest.WithoutRanges()}, "range"},
		"other digest":   {[]durltest.Option{durltest.WithContent(32, size), durltest.WithWrongReprDigest()}, "Repr-Digest"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			primary := durltest.NewServer(durltest.WithContent(32, size), durltest.WithRate(16*mib), durltest.WithReprDigest())
			defer primary.Close()
			bad := durltest.NewServer(append(c.opts, durltest.WithRate(16*mib))...)
			defer bad.Close()
			s, log, dir := testSession(t, primary, Options{})
			dest := filepath.Join(dir, "f")
			task, _ := s.Start(Request{URL: primary.FileURL(), Mirrors: []string{bad.FileURL()}, Dest: dest, Connections: 3})
			if err := wait(t, task); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 32, size)
			if w := log.reasons(EventWarning); len(w) != 1 || !strings.Contains(w[0], c.why) {
				t.Errorf("warnings %q, want one saying %q", w, c.why)
			}
		})
	}
}

// A mirror that fails now and then (503) does not fail the download.
func TestFailingMirrorDoesNotFailTheDownload(t *testing.T) {
	const size = 20 * mib
	primary := durltest.NewServer(durltest.WithContent(33, size), durltest.WithRate(16*mib))
	defer primary.Close()
	flaky := durltest.NewServer(durltest.WithContent(33, size), durltest.WithStatusSequence(503, 503, 503, 503, 503, 503, 503, 503))
	defer flaky.Close()
	s, _, dir := testSession(t, primary, Options{})
	dest := filepath.Join(dir, "f")
	task, _ := s.Start(Request{URL: primary.FileURL(), Mirrors: []string{flaky.FileURL()}, Dest: dest, Connections: 3})
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 33, size)
}

// A URL that fails before it answered with the file (404, or no answer at
// all) does not fail a download its mirrors can serve: the download starts
// from the next mirror that works, with a warning, and the file keeps the
// name the URL gives, split or not.
func TestDeadURLFallsBackToMirrors(t *testing.T) {
	const large, small = 20 * mib, 40 * kib
	closed := durltest.NewServer(durltest.WithContent(34, large))
	closed.Close() // refuses connections
	cases := map[string]struct {
		size      int64
		primary   []durltest.Option
		dead      bool // primary is the closed server
		badMirror bool // a first mirror that fails for good too
		warnings  []string
	}{
		"404, split":       {size: large, primary: []durltest.Option{durltest.WithStatusSequence(404, 404, 404, 404, 404)}, warnings: []string{"answered 404"}},
		"404, small":       {size: small, primary: []durltest.Option{durltest.WithStatusSequence(404, 404, 404, 404, 404)}, warnings: []string{"answered 404"}},
		"no answer":        {size: large, dead: true, warnings: []string{"failed 3 times"}},
		"first mirror 410": {size: large, primary: []durltest.Option{durltest.WithStatusSequence(404, 404, 404, 404, 404)}, badMirror: true, warnings: []string{"answered 404", "answered 410"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			primaryURL := closed.URL + "/pub/f.bin"
			if !c.dead {
				primary := durltest.NewServer(append(c.primary, durltest.WithContent(34, c.size))...)
				defer primary.Close()
				primaryURL = primary.URL + "/pub/f.bin"
			}
			good := durltest.NewServer(durltest.WithContent(34, c.size), durltest.WithRate(32*mib))
			defer good.Close()
			mirrors := []string{good.URL + "/mirror/f-copy.bin"}
			if c.badMirror {
				gone := durltest.NewServer(durltest.WithContent(34, c.size), durltest.WithStatusSequence(410, 410, 410, 410))
				defer gone.Close()
				mirrors = append([]string{gone.URL + "/f.bin"}, mirrors...)
			}
			s, log, dir := testSession(t, good, Options{})
			task, err := s.Start(Request{URL: primaryURL, Mirrors: mirrors, Dest: dir, DestIsDir: true, Connections: 4})
			if err != nil {
				t.Fatal(err)
			}
			if err := wait(t, task); err != nil {
				t.Fatal(err)
			}
			checkFile(t, filepath.Join(dir, "f.bin"), 34, c.size)
			w := log.reasons(EventWarning)
			if len(w) != len(c.warnings) {
				t.Fatalf("warnings %q, want %d", w, len(c.warnings))
			}
			for i, want := range c.warnings {
				if !strings.Contains(w[i], want) || !strings.Contains(w[i], "trying mirror") {
					t.Errorf("warning %q, want one saying %q and trying a mirror", w[i], want)
				}
			}
		})
	}
}

// Once a mirror started the download in place of a dead URL, the task's
// record says so: a run of a new session goes on from that mirror, does
// not ask the URL again, and fetches again only what was not written.
func TestDownloadStartedFromAMirrorResumes(t *testing.T) {
	const size = 16 * mib
	primary := durltest.NewServer(durltest.WithContent(35, size), durltest.WithStatusSequence(404, 404, 404))
	defer primary.Close()
	good := durltest.NewServer(durltest.WithContent(35, size), durltest.WithRate(8*mib))
	defer good.Close()
	s, _, dir := testSession(t, good, Options{})
	req := Request{URL: primary.FileURL(), Mirrors: []string{good.FileURL()}, Dest: filepath.Join(dir, "f")}
	task, err := s.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 4*mib)
	task.Pause()
	if err := wait(t, task); !errors.Is(err, ErrPaused) {
		t.Fatalf("pause: %v", err)
	}
	s.Close()
	asked, served := len(primary.Requests()), good.BytesSent()

	s2, _, _ := testSession(t, good, Options{StateDir: filepath.Join(dir, "state")})
	tasks := s2.Tasks()
	if len(tasks) != 1 {
		t.Fatalf("the new session has %d tasks, want the paused one", len(tasks))
	}
	written := tasks[0].Progress().Written
	if err := tasks[0].Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, tasks[0]); err != nil {
		t.Fatal(err)
	}
	checkFile(t, req.Dest, 35, size)
	if n := len(primary.Requests()) - asked; n != 0 {
		t.Errorf("the resumed run asked the dead URL %d times, want none", n)
	}
	if again := good.BytesSent() - served; again > size-written {
		t.Errorf("the resumed run fetched %d bytes, want at most the %d not written", again, size-written)
	}
}
