package durl

import (
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
