package main

// End-to-end tests of the background session: durl serve and the client
// commands as separate processes, killed with SIGKILL as a user's would be.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
)

// startServeProc starts durl serve and waits until it answers.
func startServeProc(t *testing.T, state, downloads string) *durlProc {
	t.Helper()
	p := startDurl(t, "", "", "--state", state, "serve", "-d", downloads)
	waitFor(t, p, "the daemon to answer", func() bool {
		c, err := client.Dial(state)
		if err != nil {
			return false
		}
		_, err = c.Version(context.Background())
		return err == nil
	})
	return p
}

// kill9 kills p with SIGKILL, by its PID, and waits for it.
func kill9(t *testing.T, p *durlProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()
}

// TestE2EDaemonSurvivesKills is the acceptance, as a user would do
// it by hand: durl serve; durl add of a large file; the client that waits
// for it is killed, then the daemon itself is SIGKILLed mid-transfer;
// started again, it finishes the download, durl wait exits 0, the file is
// right, and a client reconnecting with Last-Event-ID gets every event it
// missed, in order, without a gap.
func TestE2EDaemonSurvivesKills(t *testing.T) {
	srv := newTestServer(t, 8<<20, false)
	srv.delay.Store(int64(8 * time.Millisecond)) // about 4 s for the file
	state, downloads := serveDirs(t)
	daemon := startServeProc(t, state, downloads)

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	c, err := client.Dial(state)
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events(ctx, 0)
	defer events.Close()
	if err := events.Connect(); err != nil {
		t.Fatal(err)
	}

	// durl add with a relative -o: resolved against the client's folder.
	r := runDurl(t, downloads, "--state", state, "add", "-o", "big.iso", srv.URL+"/files/big.iso")
	wantExit(t, r, exitOK)
	id := strings.TrimSpace(r.stdout)
	dest := filepath.Join(downloads, "big.iso")

	// The client that waits is killed; the download goes on without it.
	waiter := startDurl(t, "", "", "--state", state, "wait", id)
	waitFor(t, daemon, "1 MiB sent", func() bool { return srv.sent.Load() > 1<<20 })
	kill9(t, waiter)

	// Read the stream up to an event of this run, then kill the daemon
	// mid-transfer.
	var seen uint64
	for {
		e, err := events.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.TaskID == id && e.Kind == api.EventProgress {
			seen = e.ID
			break
		}
	}
	events.Close()
	sentBefore := srv.sent.Load()
	kill9(t, daemon)
	if sentBefore >= 8<<20 {
		t.Fatal("the download finished before the daemon was killed; slow the server down")
	}

	daemon = startServeProc(t, state, downloads)
	r = runDurl(t, "", "--state", state, "wait", id)
	wantExit(t, r, exitOK)
	if got := fileSum(t, dest); got != srv.sum {
		t.Fatalf("SHA-256 %s, want %s", got, srv.sum)
	}
	if _, err := os.Stat(dest + ".durl-part"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the partial file is still there: %v", err)
	}
	if srv.sent.Load() > 10<<20 {
		t.Errorf("sent %d bytes for an 8 MiB file: the restart did not resume", srv.sent.Load())
	}

	// Reconnecting with the last ID seen before the kill.
	c, err = client.Dial(state)
	if err != nil {
		t.Fatal(err)
	}
	replay := c.Events(ctx, seen)
	defer replay.Close()
	want, kinds := seen+1, map[string]bool{}
	for !kinds[api.EventCompleted] {
		e, err := replay.Next()
		if err != nil {
			t.Fatalf("replay after event %d: %v (kinds so far %v)", seen, err, kinds)
		}
		if e.ID != want || e.Kind == api.EventGap {
			t.Fatalf("replay gave event %d (%s), want %d and no gap", e.ID, e.Kind, want)
		}
		want++
		if e.TaskID == id {
			kinds[e.Kind] = true
		}
	}
	if !kinds[api.EventRecovered] {
		t.Errorf("no recovered event for the task in the replay: %v", kinds)
	}
	daemon.cmd.Process.Signal(syscall.SIGTERM)
	wantExit(t, daemon.wait(), exitOK)
}

// TestE2EDaemonStopsGracefully: SIGTERM pauses nothing for good: the
// daemon exits 0 with the task checkpointed, and the next start resumes it.
func TestE2EDaemonStopsGracefully(t *testing.T) {
	srv := newTestServer(t, 4<<20, false)
	srv.delay.Store(int64(8 * time.Millisecond))
	state, downloads := serveDirs(t)
	daemon := startServeProc(t, state, downloads)
	r := runDurl(t, "", "--state", state, "add", "-d", downloads, srv.URL+"/files/data.bin")
	wantExit(t, r, exitOK)
	id := strings.TrimSpace(r.stdout)
	waitFor(t, daemon, "512 KiB sent", func() bool { return srv.sent.Load() > 512<<10 })
	daemon.cmd.Process.Signal(syscall.SIGTERM)
	wantExit(t, daemon.wait(), exitOK)
	if _, err := os.Stat(filepath.Join(state, api.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is still there after a graceful stop: %v", err)
	}

	r = runDurl(t, "", "--state", state, "wait", id)
	if r.code != exitError || !strings.Contains(r.stderr, "durl serve") {
		t.Fatalf("wait with no daemon: exit %d, stderr %q; want 1 and how to start one", r.code, r.stderr)
	}
	srv.delay.Store(0)
	startServeProc(t, state, downloads)
	wantExit(t, runDurl(t, "", "--state", state, "wait", id), exitOK)
	if got := fileSum(t, filepath.Join(downloads, "data.bin")); got != srv.sum {
		t.Fatalf("SHA-256 %s, want %s", got, srv.sum)
	}
}
