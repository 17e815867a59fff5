package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/vfs"
)

// serveDirs returns a state folder short enough for a Unix socket, and a
// download folder beside it.
func serveDirs(t *testing.T) (state, downloads string) {
	root, err := os.MkdirTemp("", "durl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return filepath.Join(root, "st"), filepath.Join(root, "dl")
}

// startServe runs durl serve with args in this process until the returned
// function is called, which returns its exit code.
func startServe(t *testing.T, state string, args ...string) (stop func() int, stderr *syncBuffer) {
	t.Helper()
	stderr = &syncBuffer{}
	e := &env{
		stdin:  strings.NewReader(""),
		stdout: &syncBuffer{},
		stderr: stderr,
		getenv: func(string) string { return "" },
		getwd:  func() (string, error) { return state, nil },
		fs:     vfs.OS,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve", "--state", state, "--no-sync"}, args...), e) }()
	return func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(20 * time.Second):
			t.Fatal("durl serve did not stop within 20 s")
			return -1
		}
	}, stderr
}

// waitListening waits until durl serve printed that it listens.
func waitListening(t *testing.T, stderr *syncBuffer) {
	t.Helper()
	for i := 0; !strings.Contains(stderr.String(), "listening on"); i++ {
		if i > 1000 {
			t.Fatalf("durl serve does not listen: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeStartsAnswersAndStops(t *testing.T) {
	state, dl := serveDirs(t)
	stop, stderr := startServe(t, state, "-d", dl, "--max-active", "2")
	waitListening(t, stderr)
	if lines := strings.Count(stderr.String(), "\n"); lines != 1 || !strings.Contains(stderr.String(), dl) {
		t.Fatalf("durl serve printed %q, want one line naming %s", stderr.String(), dl)
	}
	socket := filepath.Join(state, api.SocketName)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	resp, err := c.Get("http://durl" + api.PathLimits)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"max_active":2`) {
		t.Fatalf("GET %s: %s %s", api.PathLimits, resp.Status, body.String())
	}
	c.CloseIdleConnections()

	// A second daemon on the same state folder is refused.
	stop2, stderr2 := startServe(t, state, "-d", dl)
	if code := stop2(); code != exitLocked || !strings.Contains(stderr2.String(), "another durl serve") {
		t.Fatalf("second durl serve: exit %d, %q", code, stderr2.String())
	}

	if code := stop(); code != exitOK {
		t.Fatalf("exit %d after a graceful stop: %s", code, stderr.String())
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("the socket is left after the stop: %v", err)
	}
}

func TestServeUsageErrors(t *testing.T) {
	state, dl := serveDirs(t)
	for _, args := range [][]string{
		{"--max-active", "-1"},
		{"--max-conns-per-host", "-2"},
		{"--limit-rate", "fast"},
		{"--keep-completed", "0s"},
		{"--token", "0123456789abcdef"},
		{"--listen", "127.0.0.1:0", "--token", "short"},
		{"extra-argument"},
	} {
		stop, stderr := startServe(t, state, append([]string{"-d", dl}, args...)...)
		if code := stop(); code != exitUsage || !strings.Contains(stderr.String(), "durl serve --help") {
			t.Errorf("%v: exit %d, %q; want %d and a usage line", args, code, stderr.String(), exitUsage)
		}
	}
}

func TestServeDefaultDownloadDir(t *testing.T) {
	home := t.TempDir()
	xdg := filepath.Join(home, "xdg-downloads")
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"HOME": home, "XDG_DOWNLOAD_DIR": xdg}, xdg},
		{map[string]string{"HOME": home, "XDG_DOWNLOAD_DIR": "relative"}, filepath.Join(home, "Downloads")},
		{map[string]string{"HOME": home}, filepath.Join(home, "Downloads")},
	} {
		e, _, _ := testEnv("", home, c.vars)
		dirs, err := (&serveOptions{}).downloadDirs(e)
		if err != nil || len(dirs) != 1 || dirs[0] != c.want {
			t.Errorf("%v: %v %v, want [%s]", c.vars, dirs, err, c.want)
			continue
		}
		if fi, err := os.Stat(c.want); err != nil || !fi.IsDir() {
			t.Errorf("%s was not created: %v", c.want, err)
		}
	}
	e, _, _ := testEnv("", home, nil)
	abs := filepath.Join(home, "abs")
	dirs, err := (&serveOptions{dirs: []string{"rel", abs + "/x/.."}}).downloadDirs(e)
	if err != nil || dirs[0] != filepath.Join(home, "rel") || dirs[1] != abs {
		t.Errorf("-d rel -d %s/x/..: %v %v", abs, dirs, err)
	}
}
