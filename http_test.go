package durl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// Every request asks for the identity encoding, over HTTP/1.1 and HTTP/2.
func TestDownloadPlainAndIdentityEncoding(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			opts := []durltest.Option{durltest.WithContent(7, 3*mib+5), durltest.WithGzipWhenOffered()}
			if proto == "HTTP/2.0" {
				opts = append(opts, durltest.WithHTTP2())
			}
			srv := durltest.NewServer(opts...)
			defer srv.Close()
			s, _, dir := testSession(t, srv, Options{})
			dest := filepath.Join(dir, "out.bin")
			if _, err := get(t, s, srv.FileURL(), dest); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 7, 3*mib+5)
			for _, r := range srv.Requests() {
				if r.AcceptEncoding != "identity" || r.Proto != proto {
					t.Errorf("request %+v: want Accept-Encoding identity over %s", r, proto)
				}
			}
			if _, err := os.Stat(dest + PartialSuffix); !os.IsNotExist(err) {
				t.Errorf("partial file left behind: %v", err)
			}
		})
	}
}

// A cut connection resumes with a conditional range request: If-Range
// carries the strong ETag, or an old enough Last-Modified when there is no
// ETag.
func TestResumeIsConditional(t *testing.T) {
	cases := []struct {
		name    string
		opts    []durltest.Option
		ifRange func(srv *durltest.Server) string
	}{
		{"strong etag", nil, func(srv *durltest.Server) string { return srv.ETag() }},
		{"old last-modified", []durltest.Option{durltest.WithETag(durltest.ETagNone)},
			func(srv *durltest.Server) string { return srv.LastModified().UTC().Format(httpTimeFormat) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := durltest.NewServer(append(c.opts, durltest.WithContent(3, 2*mib), durltest.WithCutAfter(700*kib, 2))...)
			defer srv.Close()
			s, log, dir := testSession(t, srv, Options{})
			dest := filepath.Join(dir, "f")
			if _, err := get(t, s, srv.FileURL(), dest); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 3, 2*mib)
			reqs := srv.Requests()
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for _, r := range reqs[1:] {
				if !strings.HasPrefix(r.Range, "bytes=") || r.IfRange != c.ifRange(srv) || r.Status != 206 {
					t.Errorf("resume request Range=%q If-Range=%q status %d, want If-Range %q and 206", r.Range, r.IfRange, r.Status, c.ifRange(srv))
				}
			}
			// Nothing but the bytes lost in flight is fetched twice.
			if extra := srv.BytesSent() - 2*mib; extra > 2*bufferSize {
				t.Errorf("%d bytes sent twice", extra)
			}
			if log.count(EventRetrying) != 2 || log.count(EventRestarted) != 0 {
				t.Errorf("retrying %d, restarted %d; want 2, 0", log.count(EventRetrying), log.count(EventRestarted))
			}
		})
	}
}

const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// The remote replaced mid-download (same size, larger, smaller): durl
// restarts and ends with the new file, never a mix (D2).
func TestRemoteReplacedRestarts(t *testing.T) {
	for _, size := range []int64{2 * mib, 3 * mib, 1 * mib} {
		for _, etag := range []durltest.ETagKind{durltest.ETagStrong, durltest.ETagWeak, durltest.ETagNone} {
			t.Run(fmt.Sprintf("%s-to-%d", []string{"strong", "weak", "none"}[etag], size), func(t *testing.T) {
				opts := []durltest.Option{durltest.WithContent(1, 2*mib), durltest.WithETag(etag),
					durltest.WithReplaceAtByte(1200*kib, 2, size)}
				if etag != durltest.ETagStrong {
					opts = append(opts, durltest.WithLastModified(time.Now())) // too recent to be a validator
				}
				srv := durltest.NewServer(opts...)
				defer srv.Close()
				s, log, dir := testSession(t, srv, Options{})
				dest := filepath.Join(dir, "f")
				if _, err := get(t, s, srv.FileURL(), dest); err != nil {
					t.Fatal(err)
				}
				checkFile(t, dest, 2, size)
				if log.count(EventRestarted) != 1 {
					t.Errorf("restarted %d times, want 1: %q", log.count(EventRestarted), log.reasons(EventRestarted))
				}
			})
		}
	}
}

// Without a safe validator, a resume fetches an overlap of what is on disk
// and compares it before writing on.
func TestNoValidatorResumesAfterOverlapCheck(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(4, 2*mib), durltest.WithETag(durltest.ETagWeak),
		durltest.WithLastModified(time.Now()), durltest.WithCutAfter(900*kib, 1))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	if _, err := get(t, s, srv.FileURL(), dest); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 4, 2*mib)
	r := srv.Requests()[1]
	if r.IfRange != "" || r.Status != 206 {
		t.Errorf("resume sent If-Range %q (a weak or recent validator must not be used), status %d", r.IfRange, r.Status)
	}
	if log.count(EventRestarted) != 0 {
		t.Errorf("restarted: %q", log.reasons(EventRestarted))
	}
}

// A server that ignores Range: restart from zero with the body it sent,
// and say so.
func TestRangeIgnoredRestarts(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(5, 2*mib), durltest.WithoutRanges(), durltest.WithCutAfter(800*kib, 1))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	if _, err := get(t, s, srv.FileURL(), dest); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 5, 2*mib)
	if r := log.reasons(EventRestarted); len(r) != 1 || !strings.Contains(r[0], "ignored the range") {
		t.Errorf("restart reasons %q", r)
	}
}

// The remote shrank below what was downloaded while paused: the 416 is not
// taken as "complete"; durl restarts and gets the new file.
func TestShrunkRemoteAnswers416(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(6, 2*mib), durltest.WithETag(durltest.ETagNone),
		durltest.WithLastModified(time.Now()), durltest.WithRate(4*mib))
	defer srv.Close()
	s, log, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	waitWritten(t, task, 1*mib)
	if _, err := task.Pause(); err != nil {
		t.Fatal(err)
	}
	srv.Replace(9, 512*kib)
	if err := task.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 9, 512*kib)
	if log.count(EventRestarted) != 1 {
		t.Errorf("restarts %q", log.reasons(EventRestarted))
	}
}

// Short bodies, stalls and transient statuses are retried; the download
// completes.
func TestTransientFaultsAreRetried(t *testing.T) {
	cases := map[string][]durltest.Option{
		"short body":      {durltest.WithShortBody(300*kib, 2)},
		"stall":           {durltest.WithStall(300*kib, 10*time.Second, 1)},
		"503 and 429":     {durltest.WithStatusSequence(503, 429, 500), durltest.WithRetryAfter("0")},
		"no length, cut":  {durltest.WithoutContentLength(), durltest.WithCutAfter(500*kib, 1)},
		"redirect chain":  {durltest.WithRedirects(3), durltest.WithCutAfter(500*kib, 1)},
		"expiring signed": {durltest.WithExpiringRedirect(1), durltest.WithCutAfter(500*kib, 1)},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			srv := durltest.NewServer(append(opts, durltest.WithContent(8, 1*mib+3))...)
			defer srv.Close()
			s, _, dir := testSession(t, srv, Options{StallTimeout: 300 * time.Millisecond})
			dest := filepath.Join(dir, "f")
			if _, err := get(t, s, srv.FileURL(), dest); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 8, 1*mib+3)
		})
	}
}

// Permanent failures end at once with a typed error.
func TestPermanentFailures(t *testing.T) {
	t.Run("404", func(t *testing.T) {
		srv := durltest.NewServer(durltest.WithStatusSequence(404))
		defer srv.Close()
		s, _, dir := testSession(t, srv, Options{})
		_, err := get(t, s, srv.FileURL(), filepath.Join(dir, "f"))
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != 404 {
			t.Fatalf("err = %v, want a 404 StatusError", err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%d requests for a 404, want 1", n)
		}
	})
	t.Run("redirect to file://", func(t *testing.T) {
		srv := durltest.NewServer(durltest.WithRedirectTo("file:///etc/passwd"))
		defer srv.Close()
		s, _, dir := testSession(t, srv, Options{})
		_, err := get(t, s, srv.FileURL(), filepath.Join(dir, "f"))
		if !errors.Is(err, errBadRedirect) {
			t.Fatalf("err = %v, want a refused redirect", err)
		}
	})
}

// Hostile Content-Disposition names never escape the destination folder.
func TestContentDispositionIsSanitised(t *testing.T) {
	long := strings.Repeat("a", 10000) + ".bin"
	headers := []string{`attachment; filename="../../x"`, `attachment; filename="/etc/passwd"`,
		`attachment; filename*=UTF-8''evil%00name`, `attachment; filename*=UTF-8''..%2F..%2Fx`,
		`attachment; filename*=UTF-8''ctl%01%1B%5B31m%7F`, `attachment; filename="` + long + `"`,
		`attachment; filename=".."`, `attachment; filename="C:\\win\\x.exe"`}
	for _, name := range headers {
		srv := durltest.NewServer(durltest.WithContent(2, 1000), durltest.WithContentDisposition(name))
		s, _, dir := testSession(t, srv, Options{})
		into := filepath.Join(dir, "into")
		os.Mkdir(into, 0o755)
		task, err := s.Start(Request{URL: srv.FileURL(), Dest: into, DestIsDir: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(t, task); err != nil {
			t.Fatalf("%.80q: %.300v", name, err)
		}
		p := task.Path()
		if filepath.Dir(p) != into || len(filepath.Base(p)) > 255 || strings.ContainsAny(filepath.Base(p), "\x00\x01\x1b/\\") {
			t.Errorf("%q saved as %q", name, p)
		}
		checkFile(t, p, 2, 1000)
		srv.Close()
	}
}

// A checksum the user gives, and a server's Repr-Digest, are verified
// before the file reaches its destination; a mismatch keeps it aside.
func TestChecksums(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(3, 300*kib))
	defer srv.Close()
	good := durltest.Digest(3, 300*kib)
	s, _, dir := testSession(t, srv, Options{})

	dest := filepath.Join(dir, "good")
	task, _ := s.Start(Request{URL: srv.FileURL(), Dest: dest, Checksum: "sha256:" + hexString(good[:])})
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 3, 300*kib)

	bad := filepath.Join(dir, "bad")
	task, _ = s.Start(Request{URL: srv.FileURL(), Dest: bad, Checksum: "sha256:" + strings.Repeat("0", 64)})
	err := wait(t, task)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a file that failed its checksum reached the destination")
	}
	checkFile(t, bad+mismatchSuffix, 3, 300*kib)

	for _, wrong := range []bool{false, true} {
		opt := durltest.WithReprDigest()
		if wrong {
			opt = durltest.WithWrongReprDigest()
		}
		srv := durltest.NewServer(durltest.WithContent(4, 200*kib), opt, durltest.WithCutAfter(100*kib, 1))
		s, _, dir := testSession(t, srv, Options{})
		_, err := get(t, s, srv.FileURL(), filepath.Join(dir, "r"))
		if wrong != errors.Is(err, ErrChecksumMismatch) {
			t.Errorf("Repr-Digest wrong=%v: err = %v", wrong, err)
		}
		srv.Close()
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
