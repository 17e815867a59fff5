package durltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// result is a response with its body read.
type result struct {
	resp *http.Response
	body []byte
	err  error // error reading the body
}

// do sends a request with the given header name/value pairs and reads the
// whole body, within 5 s.
func do(t *testing.T, c *http.Client, method, url string, hdr ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return result{resp, body, err}
}

func get(t *testing.T, s *Server, hdr ...string) result {
	t.Helper()
	return do(t, s.Client(), http.MethodGet, s.FileURL(), hdr...)
}

func newServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

// noRedirect is a client of s that does not follow redirects.
func noRedirect(s *Server) *http.Client {
	c := *s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func wantStatus(t *testing.T, r result, code int) {
	t.Helper()
	if r.resp.StatusCode != code {
		t.Fatalf("status %d, want %d", r.resp.StatusCode, code)
	}
}

func wantBody(t *testing.T, r result, seed uint64, first, last int64) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("reading body: %v", r.err)
	}
	want := Content(seed, last+1)[first:]
	if !bytes.Equal(r.body, want) {
		t.Fatalf("body of %d bytes is not bytes %d-%d of seed %d", len(r.body), first, last, seed)
	}
}

func TestFullGetAndHead(t *testing.T) {
	s := newServer(t)
	r := get(t, s, "Accept-Encoding", "identity")
	wantStatus(t, r, 200)
	wantBody(t, r, 1, 0, 1<<20-1)
	h := r.resp.Header
	if h.Get("ETag") != s.ETag() || !strings.HasPrefix(s.ETag(), `"`) {
		t.Errorf("ETag %q, server says %q", h.Get("ETag"), s.ETag())
	}
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil || !lm.Equal(s.LastModified()) || time.Since(lm) < 59*time.Minute {
		t.Errorf("Last-Modified %q (%v), want about an hour ago", h.Get("Last-Modified"), err)
	}
	if h.Get("Date") == "" || h.Get("Accept-Ranges") != "bytes" || r.resp.ContentLength != 1<<20 {
		t.Errorf("Date %q, Accept-Ranges %q, Content-Length %d", h.Get("Date"), h.Get("Accept-Ranges"), r.resp.ContentLength)
	}
	if s.BytesSent() != 1<<20 {
		t.Errorf("BytesSent %d", s.BytesSent())
	}

	hr := do(t, s.Client(), http.MethodHead, s.URL+"/other/name.bin")
	wantStatus(t, hr, 200)
	if len(hr.body) != 0 || hr.resp.ContentLength != 1<<20 || hr.resp.Header.Get("ETag") != s.ETag() {
		t.Errorf("HEAD: body %d, Content-Length %d, ETag %q", len(hr.body), hr.resp.ContentLength, hr.resp.Header.Get("ETag"))
	}

	log := s.Requests()
	if len(log) != 2 || s.FileRequests() != 2 {
		t.Fatalf("%d requests logged, FileRequests %d", len(log), s.FileRequests())
	}
	e := log[0]
	if e.Method != "GET" || e.Path != "/file" || e.Status != 200 || e.BodyBytes != 1<<20 ||
		e.AcceptEncoding != "identity" || e.Proto != "HTTP/1.1" || e.Truncated {
		t.Errorf("log entry %+v", e)
	}
	if log[1].Method != "HEAD" || log[1].Path != "/other/name.bin" || log[1].BodyBytes != 0 {
		t.Errorf("log entry %+v", log[1])
	}
}

func TestRanges(t *testing.T) {
	s := newServer(t, WithContent(9, 1000))
	for _, tc := range []struct {
		rng          string
		status       int
		contentRange string
		first, last  int64
	}{
		{"bytes=100-199", 206, "bytes 100-199/1000", 100, 199},
		{"bytes=900-", 206, "bytes 900-999/1000", 900, 999},
		{"bytes=0-", 206, "bytes 0-999/1000", 0, 999},
		{"bytes=0-0", 206, "bytes 0-0/1000", 0, 0},
		{"bytes=-100", 206, "bytes 900-999/1000", 900, 999},
		{"bytes=-5000", 206, "bytes 0-999/1000", 0, 999},
		{"bytes=990-5000", 206, "bytes 990-999/1000", 990, 999},
		{"bytes=0-1,5-6", 200, "", 0, 999},
		{"bytes=5-2", 200, "", 0, 999},
		{"items=0-1", 200, "", 0, 999},
		{"bytes=abc", 200, "", 0, 999},
		{"bytes=1000-", 416, "bytes */1000", 0, 0},
		{"bytes=5000-6000", 416, "bytes */1000", 0, 0},
		{"bytes=-0", 416, "bytes */1000", 0, 0},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			r := get(t, s, "Range", tc.rng)
			wantStatus(t, r, tc.status)
			if got := r.resp.Header.Get("Content-Range"); got != tc.contentRange {
				t.Fatalf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if tc.status != 416 {
				wantBody(t, r, 9, tc.first, tc.last)
				if r.resp.ContentLength != tc.last-tc.first+1 {
					t.Fatalf("Content-Length %d", r.resp.ContentLength)
				}
			}
		})
	}
}

func TestIfRange(t *testing.T) {
	s := newServer(t, WithContent(2, 1000))
	lm := s.LastModified().Format(http.TimeFormat)
	for _, tc := range []struct {
		name, ifRange string
		status        int
	}{
		{"equal strong ETag", s.ETag(), 206},
		{"other ETag", `"other"`, 200},
		{"weak form of the ETag", "W/" + s.ETag(), 200},
		{"equal strong date", lm, 206},
		{"other date", s.LastModified().Add(time.Second).Format(http.TimeFormat), 200},
		{"garbage", "yesterday", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, s, "Range", "bytes=10-", "If-Range", tc.ifRange)
			wantStatus(t, r, tc.status)
			if tc.status == 206 {
				wantBody(t, r, 2, 10, 999)
			} else {
				wantBody(t, r, 2, 0, 999)
			}
		})
	}

	t.Run("weak server ETag", func(t *testing.T) {
		s := newServer(t, WithContent(2, 1000), WithETag(ETagWeak))
		if !strings.HasPrefix(s.ETag(), `W/"`) {
			t.Fatalf("ETag %q", s.ETag())
		}
		wantStatus(t, get(t, s, "Range", "bytes=10-", "If-Range", s.ETag()), 200)
		wantStatus(t, get(t, s, "Range", "bytes=10-", "If-Range", strings.TrimPrefix(s.ETag(), "W/")), 200)
	})
	t.Run("no ETag", func(t *testing.T) {
		s := newServer(t, WithETag(ETagNone))
		r := get(t, s, "Range", "bytes=10-19")
		if _, ok := r.resp.Header["Etag"]; ok || s.ETag() != "" {
			t.Fatalf("ETag sent: %q", r.resp.Header.Get("ETag"))
		}
		wantStatus(t, r, 206)
	})
	t.Run("recent date is weak", func(t *testing.T) {
		s := newServer(t, WithLastModified(time.Now()))
		r := get(t, s, "Range", "bytes=10-", "If-Range", s.LastModified().Format(http.TimeFormat))
		wantStatus(t, r, 200)
	})
	t.Run("no Last-Modified", func(t *testing.T) {
		s := newServer(t, WithoutLastModified())
		r := get(t, s, "Range", "bytes=10-", "If-Range", lm)
		wantStatus(t, r, 200)
		if r.resp.Header.Get("Last-Modified") != "" || r.resp.Header.Get("Date") == "" {
			t.Fatalf("Last-Modified %q, Date %q", r.resp.Header.Get("Last-Modified"), r.resp.Header.Get("Date"))
		}
	})
}

func TestWithoutRanges(t *testing.T) {
	s := newServer(t, WithContent(3, 5000), WithoutRanges())
	r := get(t, s, "Range", "bytes=100-", "If-Range", s.ETag())
	wantStatus(t, r, 200)
	wantBody(t, r, 3, 0, 4999)
	if r.resp.Header.Get("Accept-Ranges") != "" {
		t.Fatalf("Accept-Ranges %q", r.resp.Header.Get("Accept-Ranges"))
	}
}

func TestRangesIgnoredFor(t *testing.T) {
	s := newServer(t, WithContent(3, 5000), WithRangesIgnoredFor(func(n int) bool { return n == 2 }))
	for i, want := range []int{206, 200, 206} {
		r := get(t, s, "Range", "bytes=100-")
		if r.resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i+1, r.resp.StatusCode, want)
		}
	}
}

func TestCutAfter(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			opts := []Option{WithContent(4, 100_000), WithCutAfter(30_000, 1)}
			if h2 {
				opts = append(opts, WithHTTP2())
			}
			s := newServer(t, opts...)
			r := get(t, s)
			wantStatus(t, r, 200)
			if r.err == nil || len(r.body) != 30_000 || !bytes.Equal(r.body, Content(4, 30_000)) {
				t.Fatalf("cut response: %d bytes, err %v", len(r.body), r.err)
			}
			// Resume: not cut any more.
			r = get(t, s, "Range", "bytes=30000-", "If-Range", s.ETag())
			wantStatus(t, r, 206)
			wantBody(t, r, 4, 30_000, 99_999)
			if s.BytesSent() != 100_000 {
				t.Fatalf("BytesSent %d", s.BytesSent())
			}
			log := s.Requests()
			if !log[0].Truncated || log[0].BodyBytes != 30_000 || log[1].Truncated {
				t.Fatalf("log %+v", log)
			}
		})
	}
}

func TestCutEveryResponse(t *testing.T) {
	s := newServer(t, WithContent(4, 10_000), WithCutAfter(1000, 0))
	for i := range 3 {
		r := get(t, s, "Range", fmt.Sprintf("bytes=%d-", i*1000))
		if r.err == nil || len(r.body) != 1000 {
			t.Fatalf("response %d: %d bytes, err %v", i, len(r.body), r.err)
		}
	}
}

func TestShortBody(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			opts := []Option{WithContent(4, 100_000), WithShortBody(12_345, 1)}
			if h2 {
				opts = append(opts, WithHTTP2())
			}
			s := newServer(t, opts...)
			r := get(t, s)
			if r.resp.ContentLength != 100_000 || len(r.body) != 12_345 || !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Fatalf("Content-Length %d, got %d bytes, err %v", r.resp.ContentLength, len(r.body), r.err)
			}
			wantBody(t, get(t, s), 4, 0, 99_999)
		})
	}
}

func TestStall(t *testing.T) {
	s := newServer(t, WithContent(5, 50_000), WithStall(10_000, 200*time.Millisecond, 1))
	start := time.Now()
	r := get(t, s)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("stalled response took only %v", d)
	}
	wantBody(t, r, 5, 0, 49_999)
	start = time.Now()
	wantBody(t, get(t, s), 5, 0, 49_999)
	if d := time.Since(start); d > 190*time.Millisecond {
		t.Fatalf("second response took %v", d)
	}
}

func TestStallEndsWhenClientGoes(t *testing.T) {
	s := NewServer(WithContent(5, 50_000), WithStall(10_000, time.Minute, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.FileURL(), nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 10_000 || err == nil {
		t.Fatalf("got %d bytes, err %v", len(b), err)
	}
	// A second client stays connected; Close must not wait for it.
	req2, _ := http.NewRequest(http.MethodGet, s.FileURL(), nil)
	resp2, err := s.Client().Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestStatusSequence(t *testing.T) {
	s := newServer(t, WithContent(6, 1000), WithStatusSequence(503, 429), WithRetryAfter("2"))
	for _, want := range []int{503, 429} {
		r := get(t, s)
		wantStatus(t, r, want)
		if r.resp.Header.Get("Retry-After") != "2" || len(r.body) == 0 {
			t.Fatalf("Retry-After %q, body %q", r.resp.Header.Get("Retry-After"), r.body)
		}
	}
	r := get(t, s)
	wantStatus(t, r, 200)
	wantBody(t, r, 6, 0, 999)
	if r.resp.Header.Get("Retry-After") != "" {
		t.Fatal("Retry-After on a 200")
	}
	if s.BytesSent() != 1000 {
		t.Fatalf("BytesSent %d counts error texts", s.BytesSent())
	}
}

func TestRedirects(t *testing.T) {
	s := newServer(t, WithContent(7, 1000), WithRedirects(3))
	r := get(t, s)
	wantBody(t, r, 7, 0, 999)
	if p := r.resp.Request.URL.Path; p != "/content/file" {
		t.Fatalf("final path %q", p)
	}
	var found int
	for _, e := range s.Requests() {
		if e.Status == http.StatusFound {
			found++
		}
	}
	if found != 3 || s.FileRequests() != 1 {
		t.Fatalf("%d redirects, %d file requests", found, s.FileRequests())
	}
}

func TestExpiringRedirect(t *testing.T) {
	s := newServer(t, WithContent(7, 1000), WithExpiringRedirect(1))
	c := noRedirect(s)
	r := do(t, c, http.MethodGet, s.FileURL())
	wantStatus(t, r, http.StatusFound)
	loc := r.resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/signed/") || !strings.HasSuffix(loc, "/file") {
		t.Fatalf("Location %q", loc)
	}
	wantBody(t, do(t, c, http.MethodGet, s.URL+loc), 7, 0, 999)
	wantStatus(t, do(t, c, http.MethodGet, s.URL+loc, "Range", "bytes=10-"), http.StatusForbidden)
	// The original URL mints a new token; the default client follows it.
	r = get(t, s, "Range", "bytes=10-")
	wantStatus(t, r, 206)
	if r.resp.Request.URL.Path == loc {
		t.Fatal("token reused")
	}
	wantStatus(t, do(t, c, http.MethodGet, s.URL+"/signed/bogus/file"), http.StatusForbidden)
}

func TestRedirectTo(t *testing.T) {
	s := newServer(t, WithRedirectTo("ftp://example.invalid/x"))
	r := do(t, noRedirect(s), http.MethodGet, s.FileURL())
	wantStatus(t, r, http.StatusFound)
	if loc := r.resp.Header.Get("Location"); loc != "ftp://example.invalid/x" {
		t.Fatalf("Location %q", loc)
	}
	// /content/ still serves the file.
	wantStatus(t, do(t, s.Client(), http.MethodGet, s.URL+"/content/x"), 200)
}

func TestHTTP2AndTLS(t *testing.T) {
	s := newServer(t, WithContent(8, 200_000), WithHTTP2())
	r := get(t, s, "Range", "bytes=1000-")
	wantStatus(t, r, 206)
	wantBody(t, r, 8, 1000, 199_999)
	if r.resp.ProtoMajor != 2 || !strings.HasPrefix(s.URL, "https://") || s.Requests()[0].Proto != "HTTP/2.0" {
		t.Fatalf("proto %s, URL %s", r.resp.Proto, s.URL)
	}

	s1 := newServer(t, WithContent(8, 1000), WithTLS())
	r = get(t, s1)
	wantBody(t, r, 8, 0, 999)
	if r.resp.ProtoMajor != 1 || r.resp.TLS == nil {
		t.Fatalf("proto %s, TLS %v", r.resp.Proto, r.resp.TLS != nil)
	}
}

func TestGzipWhenOffered(t *testing.T) {
	s := newServer(t, WithContent(9, 100_000), WithGzipWhenOffered())
	// Go's Transport offers gzip on its own and decompresses transparently.
	r := get(t, s)
	wantBody(t, r, 9, 0, 99_999)
	if !r.resp.Uncompressed || r.resp.ContentLength != -1 {
		t.Fatalf("Uncompressed %v, Content-Length %d", r.resp.Uncompressed, r.resp.ContentLength)
	}
	if e := s.Requests()[0]; e.AcceptEncoding != "gzip" || e.BodyBytes != s.BytesSent() {
		t.Fatalf("log %+v, BytesSent %d", e, s.BytesSent())
	}
	// Asked explicitly, the client sees the encoding and the -gzip ETag.
	r = get(t, s, "Accept-Encoding", "gzip")
	if r.resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasSuffix(r.resp.Header.Get("ETag"), `-gzip"`) {
		t.Fatalf("Content-Encoding %q, ETag %q", r.resp.Header.Get("Content-Encoding"), r.resp.Header.Get("ETag"))
	}
	// A CDN that ignores Range and compresses.
	s2 := newServer(t, WithContent(9, 1000), WithGzipWhenOffered(), WithoutRanges())
	r = get(t, s2, "Range", "bytes=5-", "Accept-Encoding", "gzip")
	if r.resp.StatusCode != 200 || r.resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, Content-Encoding %q", r.resp.StatusCode, r.resp.Header.Get("Content-Encoding"))
	}
	// Identity and ranged requests are not compressed.
	for _, hdr := range [][]string{{"Accept-Encoding", "identity"}, {"Accept-Encoding", "gzip;q=0"}, {"Range", "bytes=5-"}} {
		r = get(t, s, hdr...)
		if r.resp.Header.Get("Content-Encoding") != "" || r.resp.Uncompressed {
			t.Fatalf("%v: compressed", hdr)
		}
	}
}

func TestReplace(t *testing.T) {
	s := newServer(t, WithContent(1, 10_000))
	oldETag, oldLM := s.ETag(), s.LastModified()
	s.Replace(2, 10_000)
	if seed, size := s.Version(); seed != 2 || size != 10_000 {
		t.Fatalf("Version %d %d", seed, size)
	}
	if s.ETag() == oldETag || !s.LastModified().After(oldLM) || time.Since(s.LastModified()) < time.Minute {
		t.Fatalf("ETag %q -> %q, Last-Modified %v -> %v", oldETag, s.ETag(), oldLM, s.LastModified())
	}
	// If-Range with the old ETag: the full new body.
	r := get(t, s, "Range", "bytes=5000-", "If-Range", oldETag)
	wantStatus(t, r, 200)
	wantBody(t, r, 2, 0, 9_999)
	if r.resp.Header.Get("ETag") != s.ETag() {
		t.Fatal("ETag header is not the new one")
	}
	// If-Range with the old date: the full new body too.
	wantStatus(t, get(t, s, "Range", "bytes=5000-", "If-Range", oldLM.Format(http.TimeFormat)), 200)
	// Without If-Range, a blind resume gets bytes of the new version.
	r = get(t, s, "Range", "bytes=5000-")
	wantStatus(t, r, 206)
	wantBody(t, r, 2, 5000, 9_999)
	// A recent date stays recent.
	s2 := newServer(t, WithLastModified(time.Now()))
	s2.Replace(3, 10)
	if time.Since(s2.LastModified()) > time.Minute {
		t.Fatalf("recent Last-Modified became %v", s2.LastModified())
	}
}

func TestReplaceAtByte(t *testing.T) {
	t.Run("cut", func(t *testing.T) {
		s := newServer(t, WithContent(1, 100_000), WithReplaceAtByte(40_000, 2, 90_000))
		r := get(t, s)
		if r.err == nil || len(r.body) != 40_000 || !bytes.Equal(r.body, Content(1, 40_000)) {
			t.Fatalf("got %d bytes, err %v", len(r.body), r.err)
		}
		if seed, size := s.Version(); seed != 2 || size != 90_000 {
			t.Fatalf("Version %d %d", seed, size)
		}
		r = get(t, s, "Range", "bytes=40000-", "If-Range", r.resp.Header.Get("ETag"))
		wantStatus(t, r, 200)
		wantBody(t, r, 2, 0, 89_999)
	})
	t.Run("mix", func(t *testing.T) {
		s := newServer(t, WithContent(1, 100_000), WithReplaceAtByte(40_000, 2, 100_000), WithReplaceMode(ReplaceMix))
		r := get(t, s)
		want := append(Content(1, 40_000), Content(2, 100_000)[40_000:]...)
		if r.err != nil || !bytes.Equal(r.body, want) {
			t.Fatalf("got %d bytes, err %v, glued as expected: %v", len(r.body), r.err, bytes.Equal(r.body, want))
		}
	})
	t.Run("mix shorter", func(t *testing.T) {
		s := newServer(t, WithContent(1, 100_000), WithReplaceAtByte(40_000, 2, 50_000), WithReplaceMode(ReplaceMix))
		r := get(t, s)
		if !errors.Is(r.err, io.ErrUnexpectedEOF) || len(r.body) != 50_000 {
			t.Fatalf("got %d bytes, err %v", len(r.body), r.err)
		}
	})
	t.Run("finish", func(t *testing.T) {
		s := newServer(t, WithContent(1, 100_000), WithReplaceAtByte(40_000, 2, 100_000), WithReplaceMode(ReplaceFinish))
		wantBody(t, get(t, s), 1, 0, 99_999)
		wantBody(t, get(t, s), 2, 0, 99_999)
	})
}

func TestReplaceAfter(t *testing.T) {
	s := newServer(t, WithReplaceAfter(50*time.Millisecond, 5, 100))
	deadline := time.Now().Add(3 * time.Second)
	for seed, _ := s.Version(); seed != 5; seed, _ = s.Version() {
		if time.Now().After(deadline) {
			t.Fatal("content not replaced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantBody(t, get(t, s), 5, 0, 99)
}

func TestRate(t *testing.T) {
	s := newServer(t, WithContent(1, 30_000), WithRate(100_000))
	start := time.Now()
	wantBody(t, get(t, s), 1, 0, 29_999)
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("30 kB at 100 kB/s took %v", d)
	}
}

func TestHeaders(t *testing.T) {
	s := newServer(t, WithContent(3, 5000), WithContentDisposition(`attachment; filename="a b.bin"`), WithReprDigest())
	sum := sha256.Sum256(Content(3, 5000))
	want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	for _, rng := range []string{"", "bytes=100-200"} {
		r := get(t, s, "Range", rng)
		if got := r.resp.Header.Get("Repr-Digest"); got != want {
			t.Fatalf("Range %q: Repr-Digest %q, want %q", rng, got, want)
		}
		if got := r.resp.Header.Get("Content-Disposition"); got != `attachment; filename="a b.bin"` {
			t.Fatalf("Content-Disposition %q", got)
		}
	}
	s = newServer(t, WithContent(3, 5000), WithWrongReprDigest())
	if got := get(t, s).resp.Header.Get("Repr-Digest"); got == want || !strings.HasPrefix(got, "sha-256=:") {
		t.Fatalf("wrong Repr-Digest %q", got)
	}
}

func TestWithoutContentLength(t *testing.T) {
	s := newServer(t, WithContent(3, 100_000), WithoutContentLength())
	r := get(t, s)
	wantBody(t, r, 3, 0, 99_999)
	if r.resp.ContentLength != -1 {
		t.Fatalf("Content-Length %d", r.resp.ContentLength)
	}
	if r = get(t, s, "Range", "bytes=10-19"); r.resp.ContentLength != 10 {
		t.Fatalf("206 Content-Length %d", r.resp.ContentLength)
	}
}

func TestConcurrentSegments(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			const size, parts = 1 << 20, 8
			opts := []Option{WithContent(11, size), WithStall(1000, 20*time.Millisecond, 3), WithCutAfter(100_000, 2)}
			if h2 {
				opts = append(opts, WithHTTP2())
			}
			s := newServer(t, opts...)
			got := make([]byte, size)
			var wg sync.WaitGroup
			errs := make(chan error, parts)
			for i := range parts {
				wg.Go(func() {
					first, last := int64(i*size/parts), int64((i+1)*size/parts-1)
					for attempt := 0; first <= last; attempt++ {
						if attempt == 5 {
							errs <- fmt.Errorf("part %d: too many attempts", i)
							return
						}
						req, _ := http.NewRequest(http.MethodGet, s.FileURL(), nil)
						req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
						req.Header.Set("If-Range", s.ETag())
						resp, err := s.Client().Do(req)
						if err != nil {
							continue
						}
						if resp.StatusCode != 206 {
							resp.Body.Close()
							errs <- fmt.Errorf("part %d: status %d", i, resp.StatusCode)
							return
						}
						n, _ := io.ReadFull(resp.Body, got[first:last+1])
						resp.Body.Close()
						first += int64(n)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := Verify(bytes.NewReader(got), 11, size); err != nil {
				t.Fatal(err)
			}
			if s.BytesSent() != size {
				t.Fatalf("BytesSent %d", s.BytesSent())
			}
			if n := len(s.Requests()); n != parts+2 {
				t.Fatalf("%d requests, want %d", n, parts+2)
			}
		})
	}
}
