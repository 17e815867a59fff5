package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/internal/vfs"
)

// testEnv returns an env with the given stdin, capturing stdout and stderr,
// with the variables vars and cwd as the working folder.
func testEnv(stdin string, cwd string, vars map[string]string) (*env, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return vars[k] },
		getwd:  func() (string, error) { return cwd, nil },
		fs:     vfs.OS,
	}, &stdout, &stderr
}

// runInProcess runs the command line in this process.
func runInProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	e, out, errOut := testEnv("", t.TempDir(), map[string]string{"DURL_STATE": t.TempDir()})
	code = run(context.Background(), args, e)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	commentsOnly := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(commentsOnly, []byte("# nothing yet\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"get"}, "no URL given"},
		{[]string{"get", "--bogus", "http://127.0.0.1/x"}, "unknown flag: --bogus"},
		{[]string{"get", "-j", "x", "http://127.0.0.1/x"}, "invalid argument"},
		{[]string{"get", "-j", "0", "http://127.0.0.1/x"}, "-j must be at least 1"},
		{[]string{"get", "-o", "f", "http://127.0.0.1/a", "http://127.0.0.1/b"}, "-o names one file"},
		{[]string{"get", "--checksum", "sha256:" + strings.Repeat("0", 64), "http://127.0.0.1/a", "http://127.0.0.1/b"}, "--checksum applies to one URL"},
		{[]string{"get", "--checksum", "sha256:abc", "http://127.0.0.1/a"}, "64 hex digits"},
		{[]string{"get", "--checksum", "crc32:abcd", "http://127.0.0.1/a"}, "want ALGO:HEX"},
		{[]string{"get", "ftp://127.0.0.1/a"}, "not an http or https URL"},
		{[]string{"get", "-H", "NoColon", "http://127.0.0.1/a"}, "want 'Name: value'"},
		{[]string{"get", "--limit-rate", "fast", "http://127.0.0.1/a"}, "--limit-rate"},
		{[]string{"get", "--proxy", "::", "http://127.0.0.1/a"}, "--proxy"},
		{[]string{"get", "--cacert", "/nonexistent/ca.pem", "http://127.0.0.1/a"}, "--cacert"},
		{[]string{"get", "-i", "/nonexistent/list.txt"}, "cannot read the URL list"},
		{[]string{"get", "-i", commentsOnly}, commentsOnly + " holds no URL"},
		{[]string{"get", "--retries", "-1", "http://127.0.0.1/a"}, "--retries"},
		{[]string{"nosuchcommand"}, "unknown command"},
		{[]string{"version", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.want)
			}
			if n := strings.Count(stderr, "\n"); n != 1 || !strings.HasPrefix(stderr, "durl: ") {
				t.Errorf("stderr is not one line starting with durl: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing (no usage dump)", stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runInProcess(t, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "durl "+durl.Version+" (go") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%v: stdout %q", args, stdout)
		}
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	code, stdout, _ := runInProcess(t, "get", "--help")
	if code != 0 || !strings.Contains(stdout, "--limit-rate") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

func TestStateDir(t *testing.T) {
	tests := []struct {
		flag string
		vars map[string]string
		want string
	}{
		{"/flag", map[string]string{"DURL_STATE": "/env", "XDG_STATE_HOME": "/xdg", "HOME": "/home/u"}, "/flag"},
		{"", map[string]string{"DURL_STATE": "/env", "XDG_STATE_HOME": "/xdg", "HOME": "/home/u"}, "/env"},
		{"", map[string]string{"XDG_STATE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/durl"},
		{"", map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/durl"},
		{"", map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/durl"},
		{"rel", map[string]string{"HOME": "/home/u"}, "/cwd/rel"},
		{"", map[string]string{"DURL_STATE": "rel", "HOME": "/home/u"}, "/cwd/rel"},
	}
	for _, tt := range tests {
		e, _, _ := testEnv("", "/cwd", tt.vars)
		a := &app{env: e, stateDir: tt.flag}
		got, err := a.resolveStateDir()
		if err != nil || got != filepath.FromSlash(tt.want) {
			t.Errorf("flag %q, vars %v: got %q, %v; want %q", tt.flag, tt.vars, got, err, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	task := func(err error) error { return &durl.TaskError{TaskID: "t1", URL: "https://x/y", Err: err} }
	netErr := &url.Error{Op: "Get", URL: "https://x/y", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usageErrorf("bad"), exitUsage},
		{task(&durl.StatusError{StatusCode: 404, Status: "404 Not Found"}), exitNetwork},
		{task(&durl.StatusError{StatusCode: 503, Status: "503 Service Unavailable"}), exitNetwork},
		{task(netErr), exitNetwork},
		{task(fmt.Errorf("read body: %w", io.ErrUnexpectedEOF)), exitNetwork},
		{task(fmt.Errorf("wrapped: %w", durl.ErrRemoteChanged)), exitRemoteChanged},
		{task(durl.ErrChecksumMismatch), exitChecksum},
		{task(&durl.DiskError{Op: "write", Path: "/d/f", Err: syscall.ENOSPC}), exitDisk},
		{&durl.DiskError{Op: "create folder", Path: "/d", Err: os.ErrPermission}, exitDisk},
		{task(durl.ErrPaused), exitInterrupted},
		{errInterrupted, exitInterrupted},
		{&downloadError{URL: "https://x/y", Err: fmt.Errorf("start: %w", durl.ErrLocked)}, exitLocked},
		{task(durl.ErrLocked), exitLocked},
		{task(&durl.DestinationInUseError{Path: "/d/y", TaskID: "t0"}), exitLocked},
		{&exitStatus{code: 5}, 5},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	// All codes distinct and below 126.
	seen := map[int]bool{}
	for _, c := range []int{exitOK, exitError, exitUsage, exitNetwork, exitRemoteChanged, exitChecksum, exitDisk, exitInterrupted, exitLocked} {
		if seen[c] || c >= 126 {
			t.Errorf("exit code %d repeated or >= 126", c)
		}
		seen[c] = true
	}
}

func TestDescribe(t *testing.T) {
	task := func(err error) error { return &durl.TaskError{TaskID: "t1", URL: "https://x/y", Err: err} }
	tests := []struct {
		err  error
		want string
	}{
		{task(&durl.StatusError{StatusCode: 404, Status: "404 Not Found"}),
			"durl: https://x/y: the server answered 404 Not Found; check the URL"},
		{&downloadError{URL: "https://x/y", Err: fmt.Errorf("wrap: %w", durl.ErrLocked)},
			"durl: https://x/y: another durl is already downloading this file; wait for the other durl to finish, or stop it and run this command again"},
		{task(&durl.DestinationInUseError{Path: "/d/y", TaskID: "t0", URL: "https://u:pw@z/y"}),
			"durl: https://x/y: https://u:xxxxx@z/y is being saved under the same name, /d/y; download them into different folders (-d DIR)"},
		{errInterrupted, "durl: paused; run the same command again to continue"},
		{task(durl.ErrChecksumMismatch),
			"durl: https://x/y: the downloaded file does not match the expected checksum; it was kept aside, not saved; check the --checksum value and the URL"},
		{task(&durl.DiskError{Op: "write", Path: "/d/f", Err: syscall.ENOSPC}),
			"durl: https://x/y: write /d/f: no space left on device; free some space or fix the folder, then run the same command again to continue"},
		{&durl.TaskError{URL: "https://user:secret@x/y", Err: errors.New("durl: odd\nthing")},
			"durl: https://user:xxxxx@x/y: odd thing; run the same command again; if it keeps failing, please report it"},
	}
	for _, tt := range tests {
		if got := describe(tt.err); got != tt.want {
			t.Errorf("describe(%v)\n got %q\nwant %q", tt.err, got, tt.want)
		}
	}
}

func TestCleanRemovesControlCharacters(t *testing.T) {
	got := clean("a\x1b[2Jb\rc\x7fd\u009be")
	if got != "a?[2Jb?c?d?e" {
		t.Errorf("clean = %q", got)
	}
}
