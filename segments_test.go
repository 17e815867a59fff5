package durl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// Several connections fetch bounded, conditional ranges of one
// representation and assemble the right file, over HTTP/1.1 and HTTP/2.
func TestSegmentedDownload(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			const size = 24*mib + 7
			opts := []durltest.Option{durltest.WithContent(21, size)}
			if proto == "HTTP/2.0" {
				opts = append(opts, durltest.WithHTTP2())
			}
			srv := durltest.NewServer(opts...)
			defer srv.Close()
			s, _, dir := testSession(t, srv, Options{})
			dest := filepath.Join(dir, "f")
			good := durltest.Digest(21, size)
			task, err := s.Start(Request{URL: srv.FileURL(), Dest: dest, Connections: 4, Checksum: "sha256:" + hexString(good[:])})
			if err != nil {
				t.Fatal(err)
			}
			if err := wait(t, task); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 21, size)
			ranged := 0
			for _, r := range srv.Requests() {
				if r.Range == "" {
					continue
				}
				ranged++
				if r.IfRange == "" && r.Range == "bytes=0-4194303" {
					continue // the first request, which learns the validator
				}
				if r.IfRange != srv.ETag() || r.Status != 206 || !strings.Contains(r.Range, "-") || strings.HasSuffix(r.Range, "-") {
					t.Errorf("ranged request %q If-Range %q status %d: want a bounded, conditional range", r.Range, r.IfRange, r.Status)
				}
			}
			if ranged < 3 {
				t.Errorf("%d ranged requests, want at least 3 (4 connections)", ranged)
			}
			// Every request is bounded: nothing is sent twice.
			if extra := srv.BytesSent() - size; extra > 0 {
				t.Errorf("%d bytes sent beyond the file's size", extra)
			}
		})
	}
}

// A connection that stalls gives up its part: the others take half of what
// it has left, so all end together.
func TestWorkStealingFromAStalledConnection(t *testing.T) {
	const size = 32 * mib
	srv := durltest.NewServer(durltest.WithContent(22, size), durltest.WithStall(1*mib, 3*time.Second, 1))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{StallTimeout: 20 * time.Second})
	dest := filepath.Join(dir, "f")
	task, _ := s.Start(Request{URL: srv.FileURL(), Dest: dest, Connections: 2})
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 22, size)
	if n := len(srv.Requests()); n < 3 {
		t.Errorf("%d requests: nothing was stolen from the stalled connection", n)
	}
}

// The remote replaced while ranges are in flight: every connection stops,
// the download starts over and ends with the new file.
func TestSegmentedRemoteReplaced(t *testing.T) {
	for _, size := range []int64{20 * mib, 24 * mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			srv := durltest.NewServer(durltest.WithContent(23, 20*mib), durltest.WithReplaceAtByte(6*mib, 24, size))
			defer srv.Close()
			s, log, dir := testSession(t, srv, Options{})
			dest := filepath.Join(dir, "f")
			task, _ := s.Start(Request{URL: srv.FileURL(), Dest: dest, Connections: 4})
			if err := wait(t, task); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 24, size)
			if log.count(EventRestarted) < 1 {
				t.Error("no restart reported")
			}
		})
	}
}

// A server that ignores Range on some requests only: those parts are
// fetched again; the file is right.
func TestRangesIgnoredSometimes(t *testing.T) {
	const size = 20 * mib
	srv := durltest.NewServer(durltest.WithContent(25, size),
		durltest.WithRangesIgnoredFor(func(n int) bool { return n%3 == 0 }))
	defer srv.Close()
	s, _, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, _ := s.Start(Request{URL: srv.FileURL(), Dest: dest, Connections: 4})
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 25, size)
}

// TestSegmentedCrash crashes a three-connection download at write k (every
// 5th k), as a kill and as a power loss, and checks D1, D3 and D5 (at most
// 256 KiB per connection downloaded again after a kill).
func TestSegmentedCrash(t *testing.T) {
	const size, conns = 9 * mib, 3
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	crashSweep(t, srv, sweep{opts: crashOptions(srv), size: size, conns: conns, step: 5})
}

// A download split in two, its first part done, is continued by one
// connection (a record of a run with more connections, or of an older
// durl, whose automatic default split files from 8 MiB on); the remote has
// shrunk meanwhile: the 200 answer to the
// second part's range starts a one-part plan, which that connection must
// take from its start.
func TestRestartFromALaterPart(t *testing.T) {
	const size, half = 9 * mib, 9 * mib / 2
	srv := durltest.NewServer(durltest.WithContent(31, size))
	defer srv.Close()
	head, err := srv.Client().Head(srv.FileURL())
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	s, log, dir := testSession(t, srv, Options{})
	dest := filepath.Join(dir, "f")
	task, err := s.Add(Request{URL: srv.FileURL(), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	// What an interrupted first run left: both parts planned, the first
	// one written, 1 MiB of the second.
	rec := task.savedRecord()
	rec.Generation, rec.Total, rec.Path = 1, size, dest
	rec.ETag, rec.AcceptRanges = head.Header.Get("ETag"), true
	if err := s.writeRecord(&rec, true); err != nil {
		t.Fatal(err)
	}
	content := durltest.Content(31, size)
	if err := os.WriteFile(dest+PartialSuffix, content[:half+mib], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.OS.OpenFile(s.taskPath(task.ID()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = progress.New(f, progressBase, s.bootID).WriteDurable(progress.Record{Generation: 1, Total: size,
		Segments: []progress.Segment{{Start: 0, End: half, Written: half}, {Start: half, End: size, Written: mib}}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	task.setRecord(rec)
	srv.Replace(32, size/4)
	if err := task.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, 32, size/4)
	if log.count(EventRestarted) != 1 {
		t.Errorf("%d restarts reported, want 1", log.count(EventRestarted))
	}
}

// The automatic default splits a file only from autoMinSize on, on its
// first run as on later ones: a smaller file is fetched by one connection
// (after the first answer, a bounded probe, tells its size).
func TestAutomaticConnections(t *testing.T) {
	for _, tc := range []struct {
		size      int64
		wantSplit bool
	}{{16 * mib, false}, {autoMinSize, true}} {
		t.Run(fmt.Sprint(tc.size>>20, "MiB"), func(t *testing.T) {
			srv := durltest.NewServer(durltest.WithContent(41, tc.size))
			defer srv.Close()
			s, _, dir := testSession(t, srv, Options{})
			dest := filepath.Join(dir, "f")
			task, err := s.Start(Request{URL: srv.FileURL(), Dest: dest})
			if err != nil {
				t.Fatal(err)
			}
			if err := wait(t, task); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, 41, tc.size)
			var bounded []string // ranges with an end, the probe's aside
			for _, r := range srv.Requests() {
				if r.Range != "" && !strings.HasSuffix(r.Range, "-") && r.Range != "bytes=0-4194303" {
					bounded = append(bounded, r.Range)
				}
			}
			if split := len(bounded) > 0; split != tc.wantSplit {
				t.Errorf("split %v (ranges %q of %d requests), want %v", split, bounded, len(srv.Requests()), tc.wantSplit)
			}
		})
	}
}
