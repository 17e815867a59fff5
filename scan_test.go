package durl

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// Downloads into a scanned folder look in its listing: what an earlier run
// left there is found as before (a file in place is kept on 304), a file
// put there after the scan is not (it is downloaded again, never taken
// unasked), and once the scan is released, each download looks for
// itself again. A folder that does not exist scans as empty.
func TestScanFolder(t *testing.T) {
	const size = 100 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	mem, opts := memfs.New(), crashOptions(srv)
	into := func(name string) Request {
		return Request{URL: srv.URL + "/" + name, Dest: "/downloads", DestIsDir: true}
	}
	// run downloads req in a session of its own, scanning its folder
	// first if scan is set, and returns the requests it made.
	run := func(req Request, scan bool) placedRun {
		t.Helper()
		s, err := open(context.Background(), opts, mem, bootA)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if scan {
			release, err := s.ScanFolder(req.Dest)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
		}
		before := len(srv.Requests())
		task, err := s.Start(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(t, task); err != nil {
			t.Fatal(err)
		}
		return placedRun{sent: srv.Requests()[before:]}
	}
	conditional := func(run placedRun) bool {
		return len(run.sent) == 1 && run.sent[0].Header.Get("If-None-Match") != ""
	}

	run(into("a.bin"), true) // the folder does not exist yet
	if got := run(into("a.bin"), true); !conditional(got) {
		t.Errorf("a file in place before the scan: the rerun sent %s, want one conditional request", describeSent(got.sent))
	}

	other := opts
	other.StateDir = "/other"
	s, err := open(context.Background(), other, mem, bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, err := s.ScanFolder("/downloads")
	if err != nil {
		t.Fatal(err)
	}
	run(into("b.bin"), false) // another program, after the scan
	before := len(srv.Requests())
	task, err := s.Start(into("b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	if sent := srv.Requests()[before:]; conditional(placedRun{sent: sent}) {
		t.Errorf("a file put in place after the scan was seen: the download sent %s", describeSent(sent))
	}
	if got, _ := mem.ReadFile("/downloads/b.bin"); !bytes.Equal(got, durltest.Content(11, size)) {
		t.Error("wrong file after the download")
	}

	release()
	release() // a second call does nothing
	before = len(srv.Requests())
	task, err = s.Start(into("b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	if sent := srv.Requests()[before:]; !conditional(placedRun{sent: sent}) {
		t.Errorf("after the scan was released: the download sent %s, want one conditional request", describeSent(sent))
	}
}

// A partial file that a killed run left complete is found in the listing:
// the rerun finishes it without asking the server for it again.
func TestScanFolderFindsFinishedPartial(t *testing.T) {
	const size = 20 * kib
	srv := durltest.NewServer(durltest.WithContent(11, size))
	defer srv.Close()
	mem := killWhileFinishing(t, srv)
	opts := crashOptions(srv)
	opts.LazyRecords = true
	s, err := open(context.Background(), opts, mem, bootA)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, err := s.ScanFolder(filepath.Dir(crashDest))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	before := len(srv.Requests())
	task, err := s.Start(Request{URL: srv.FileURL(), Dest: crashDest})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, task); err != nil {
		t.Fatal(err)
	}
	if sent := bodyBytesSince(srv, before); sent != 0 {
		t.Errorf("the server sent %d bytes again, want none", sent)
	}
	wantRerunFile(t, mem, size)
}
