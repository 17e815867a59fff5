package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/durl-dev/durl/durltest"
)

// TestKill9ManySmallFiles kills `durl get -j 4 -i LIST` during a list of
// small files, at three moments, and reruns it. The rerun may fetch again
// only the files that were being transferred: at most one a connection
// (D5). A file that was complete and waiting for its flush is kept, though
// no record describes it: its partial file says it is complete. Every
// file ends right. With --no-sync, at two moments: the files have no name
// until they are complete, so the kill leaves no partial file.
func TestKill9ManySmallFiles(t *testing.T) {
	const (
		seed  = 0x5a
		files = 300
		size  = 64 << 10
		jobs  = 4
	)
	for _, c := range []struct {
		killAt int64
		noSync bool // small files then have no name until complete
	}{{60, false}, {140, false}, {220, false}, {60, true}, {180, true}} {
		killAt := c.killAt
		t.Run(fmt.Sprintf("killed after %d files, nosync=%t", killAt, c.noSync), func(t *testing.T) {
			// 16 MiB/s a response: a file takes about 4 ms, so the list
			// takes long enough to be killed in the middle.
			srv := durltest.NewServer(durltest.WithContent(seed, size), durltest.WithRate(16<<20))
			defer srv.Close()
			dir := t.TempDir()
			state, out := filepath.Join(dir, "state"), filepath.Join(dir, "out")
			var list strings.Builder
			for i := range files {
				fmt.Fprintf(&list, "%s/f%03d\n", srv.URL, i)
			}
			listFile := filepath.Join(dir, "list.txt")
			if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--state", state, "get", "-q", "-j", fmt.Sprint(jobs), "-d", out, "-i", listFile}
			if c.noSync {
				args = append(args, "--no-sync")
			}

			p := start(t, dir, durlBin, args...)
			placed := func() (int64, bool) {
				complete, _ := countFiles(out)
				return int64(len(complete)), true
			}
			killWhenPast(t, p, "files in place", placed, killAt, 0, 0)
			inPlace, parts := countFiles(out)
			if c.noSync && parts != 0 {
				t.Errorf("the kill left %d partial files, want none: small files have no name until complete", parts)
			}
			firstRun := requestedPaths(srv, 0)
			before := len(srv.Requests())

			if p := start(t, dir, durlBin, args...); p.wait() != 0 {
				t.Fatalf("the rerun exited %d (%v):\n%s", p.code, p.err, p.output())
			}
			var again []string
			for path := range requestedPaths(srv, before) {
				name := strings.TrimPrefix(path, "/")
				if _, err := os.Stat(filepath.Join(out, name)); err != nil {
					t.Fatalf("%s is not in place after the rerun: %v", name, err)
				}
				if firstRun[path] && !inPlace[name] {
					again = append(again, name)
				}
			}
			var refetched []string // files in place at the kill
			for _, r := range srv.Requests()[before:] {
				if name := strings.TrimPrefix(r.Path, "/"); inPlace[name] && r.BodyBytes > 0 {
					refetched = append(refetched, name)
				}
			}
			t.Logf("killed with %d files in place and %d partial files; the rerun fetched again %d unfinished: %v, and %d in place",
				len(inPlace), parts, len(again), again, len(refetched))
			marks := keepsAttrs(t, dir)
			bound := jobs
			if !marks {
				bound = jobs * lossPerKill / size
			}
			if len(again) > bound {
				t.Errorf("the rerun fetched again %d files that were not in place, more than %d (D5)", len(again), bound)
			}
			if marks && len(refetched) > 0 {
				t.Errorf("the rerun fetched again %d files that were in place and unchanged: %v", len(refetched), refetched)
			}
			for i := range files {
				checkFile(t, filepath.Join(out, fmt.Sprintf("f%03d", i)), seed, size)
			}
			if _, n := countFiles(out); n != 0 {
				t.Errorf("%d partial files left behind", n)
			}
		})
	}
}

// keepsAttrs reports whether the file system of dir keeps extended
// attributes, where durl marks finishing and finished files complete:
// then a kill costs a list of small files at most the one being
// transferred on each connection, and no file in place. Elsewhere it
// costs D5's 256 KiB a connection, and files in place are fetched again.
func keepsAttrs(t *testing.T, dir string) bool {
	probe := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(probe)
	if err := unix.Setxattr(probe, "user.durl-test", []byte("1"), 0); err != nil {
		t.Logf("no extended attributes here (%v): allowing D5's 256 KiB a connection", err)
		return false
	}
	return true
}

// countFiles returns the names of the complete files in dir and how many
// partial files it holds.
func countFiles(dir string) (complete map[string]bool, partial int) {
	entries, _ := os.ReadDir(dir)
	complete = map[string]bool{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), partSuffix) {
			partial++
		} else {
			complete[e.Name()] = true
		}
	}
	return complete, partial
}

// requestedPaths returns the paths of the GET requests srv answered with
// content, from request number first on.
func requestedPaths(srv *durltest.Server, first int) map[string]bool {
	paths := map[string]bool{}
	for _, rq := range srv.Requests()[first:] {
		if rq.Method == "GET" && (rq.Status == 200 || rq.Status == 206) {
			paths[rq.Path] = true
		}
	}
	return paths
}
