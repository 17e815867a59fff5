package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRemoteReplacedBetweenRuns kills durl mid-download, replaces the file
// on the server, and reruns: the result must be exactly the new file, never
// the old prefix glued to the new rest (D2). nginx derives its ETag from
// the modification time and the size, so the new file gets a later one.
func TestRemoteReplacedBetweenRuns(t *testing.T) {
	const oldSeed, oldSize = 0xa1, 16 << 20
	for _, tc := range []struct {
		name    string
		newSize int64
		killAt  int64 // kill once the partial file is past this
	}{
		{"same size", oldSize, oldSize / 3},
		{"smaller", 6 << 20, 8 << 20}, // the partial file is longer than the new file
		{"larger", 20 << 20, oldSize / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const newSeed = 0xb2
			root := t.TempDir()
			file := filepath.Join(root, "f")
			mtime := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
			writeContent(t, file, oldSeed, oldSize, mtime)
			srv := startNginx(t, root, "8m")
			url := srv.URL + "/throttled/f"

			dir := t.TempDir()
			state, dest := filepath.Join(dir, "state"), filepath.Join(dir, "f")
			n := killWhenGrown(t, startDurl(t, state, dest, url), dest+partSuffix, tc.killAt, 0, 0)
			oldTag := etag(t, url)
			writeContent(t, file, newSeed, tc.newSize, mtime.Add(time.Hour))
			if newTag := etag(t, url); newTag == oldTag {
				t.Fatalf("nginx's ETag %s did not change with the file", newTag)
			}
			p := runDurl(t, state, dest, url)
			checkFile(t, dest, newSeed, tc.newSize)
			if _, err := os.Stat(dest + partSuffix); !os.IsNotExist(err) {
				t.Errorf("partial file left behind: %v", err)
			}
			t.Logf("killed with %d bytes in the partial file; the rerun said: %s", n, p.output())
			if err := srv.Stop(); err != nil {
				t.Log(err)
			}
			t.Logf("responses: %s", describeTransfers(nginxTransfers(t, srv, "/throttled/f")))
		})
	}
}

// TestRangeIgnoredNginx downloads from a location where nginx ignores Range
// (max_ranges 0: every answer is 200 with the whole file), kills durl
// mid-transfer and reruns: the rerun's ranged request gets the whole file,
// which must replace the partial data, not be appended to it.
func TestRangeIgnoredNginx(t *testing.T) {
	const seed, size = 0xc3, 16 << 20
	root := t.TempDir()
	writeContent(t, filepath.Join(root, "f.bin"), seed, size, time.Now().Add(-2*time.Hour))
	// /norange/ is not throttled: a loopback transfer would end before it
	// could be killed. /throttled-norange/ is the same location, throttled.
	srv := startNginx(t, root, "8m")
	url := srv.URL + "/throttled-norange/f.bin"

	dir := t.TempDir()
	state, dest := filepath.Join(dir, "state"), filepath.Join(dir, "f.bin")
	n := killWhenGrown(t, startDurl(t, state, dest, url), dest+partSuffix, size*2/5, 0, 0)
	p := runDurl(t, state, dest, url)
	checkFile(t, dest, seed, size)
	t.Logf("killed with %d bytes in the partial file; the rerun said: %s", n, p.output())

	if err := srv.Stop(); err != nil {
		t.Log(err)
	}
	entries, err := srv.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	ranged200 := false
	for _, e := range entries {
		if e.URI == "/throttled-norange/f.bin" {
			t.Logf("%s Range %q: %d, %d body bytes", e.Method, e.Range, e.Status, e.BodyBytesSent)
			ranged200 = ranged200 || (e.Range != "" && e.Status == 200)
		}
	}
	if !ranged200 {
		t.Errorf("no ranged request was answered 200: the rerun did not exercise an ignored Range")
	}
}

// describeTransfers formats logged responses.
func describeTransfers(ts []transfer) string {
	var parts []string
	for _, x := range ts {
		parts = append(parts, fmt.Sprintf("Range %q: %d, %d body bytes", x.rng, x.status, x.sent))
	}
	return strings.Join(parts, "; ")
}
