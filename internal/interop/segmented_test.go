package interop

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/spans"
)

// taskProgressBase is where the progress record sits in a task file
// (tasks/ID.task; see record.go in package durl).
const taskProgressBase = 128 << 10

// recordedWritten returns the bytes counted by the newest valid slot of the
// progress record under state (in tasks/*.task), and whether there was
// one. A slot torn by a concurrent write fails its CRC and is skipped.
func recordedWritten(state string) (int64, bool) {
	paths, _ := filepath.Glob(filepath.Join(state, "tasks", "*.task"))
	var best progress.Record
	found := false
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for slot := 0; slot < 3; slot++ {
			lo := taskProgressBase + slot*progress.SlotSize
			if lo >= len(b) {
				break
			}
			r, err := progress.Unmarshal(b[lo:min(lo+progress.SlotSize, len(b))])
			if err == nil && (!found || r.Seq > best.Seq) {
				best, found = r, true
			}
		}
	}
	return best.Written(), found
}

// killWhenWritten is killWhenGrown for a download with several connections,
// whose partial file is preallocated (its size and blocks say nothing): it
// watches the bytes counted by the progress record under state instead.
func killWhenWritten(t *testing.T, p *proc, state string, target int64, quiet time.Duration) int64 {
	t.Helper()
	return killWhenPast(t, p, "the progress record", func() (int64, bool) { return recordedWritten(state) }, target, quiet, 0)
}

// writtenSpans returns the spans of file that hold want's bytes at the same
// offsets: what a download had written when it was killed.
func writtenSpans(t *testing.T, file string, want []byte) []spans.Span {
	t.Helper()
	written, err := spans.Written(file, bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	return written
}

// askedSpans returns the bytes the 206 answers of ts were asked for.
func askedSpans(ts []transfer, size int64) []spans.Span {
	var out []spans.Span
	for _, x := range ts {
		if x.status == 206 {
			out = append(out, spans.Asked(x.rng, size))
		}
	}
	return out
}

// sentSpans returns the bytes each response's body carried.
func sentSpans(ts []transfer) []spans.Span {
	var out []spans.Span
	for _, x := range ts {
		out = append(out, spans.Span{From: x.from, To: x.from + x.sent})
	}
	return out
}

func TestKill9Segmented(t *testing.T) {
	const (
		seed  = 0x5e6
		size  = 64 << 20
		conns = 4
		kills = 3
		gap   = 1 << 20
		// 2 MiB/s per connection: nginx sends each new request's first
		// second at once (see nginxtest), and every run opens 4, so at
		// 8 MiB/s three runs would be little but bursts.
		rate = "2m"
		// As in TestKill9ResumeNginx: kill between nginx's bursts, when
		// no connection has bytes in the socket buffers.
		quiet = 2 * pollEvery
	)
	root := t.TempDir()
	writeContent(t, filepath.Join(root, "seg.bin"), seed, size, time.Now().Add(-2*time.Hour))
	srv := startNginx(t, root, rate)
	const uri = "/throttled/seg.bin"
	url := srv.URL + uri
	r := rand.New(rand.NewPCG(killSeed, 3))
	// In the first 3/4 of the file, so that no run ends before its kill.
	targets := killTargets(r, kills, size*3/4, gap)
	t.Logf("seed %d: kill targets %v", killSeed, targets)

	dir := t.TempDir()
	state, dest := filepath.Join(dir, "state"), filepath.Join(dir, "seg.bin")
	get := func() *proc {
		return start(t, dir, durlBin, "--state", state, "get", "-x", strconv.Itoa(conns), "-o", dest, url)
	}
	began := time.Now()
	content := durltest.Content(seed, size)
	var recorded []int64       // what the progress record counted after each kill
	var written [][]spans.Span // what the partial file held after each kill
	var runEnds []int          // log entries for uri after each kill: where each run ends
	var prev int64
	for _, target := range targets {
		p := get()
		prev = killWhenWritten(t, p, state, max(target, prev+gap), quiet)
		recorded = append(recorded, prev)
		written = append(written, writtenSpans(t, dest+partSuffix, content))
		// Every aborted request is logged once nginx has closed it.
		if err := srv.WaitIdle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		runEnds = append(runEnds, len(nginxTransfers(t, srv, uri)))
	}
	if p := get(); p.wait() != 0 {
		t.Fatalf("durl get -x %d exited %d (%v):\n%s", conns, p.code, p.err, p.output())
	}
	t.Logf("%d kills and the final run took %v; the record counted %v bytes after the kills", kills, time.Since(began).Round(time.Millisecond), recorded)
	checkFile(t, dest, seed, size)
	if _, err := os.Stat(dest + partSuffix); !os.IsNotExist(err) {
		t.Errorf("partial file left behind: %v", err)
	}

	// Stopped, nginx has logged every request, aborted ones included.
	if err := srv.Stop(); err != nil {
		t.Log(err)
	}
	ts := nginxTransfers(t, srv, uri)
	runs := make([][]transfer, 0, kills+1)
	from := 0
	for _, end := range append(runEnds, len(ts)) {
		runs = append(runs, ts[from:end])
		from = end
	}

	// Several connections, ranged and at once.
	ranges := map[string]bool{}
	n206 := 0
	for _, x := range ts {
		if x.status != 206 {
			t.Errorf("a %d answer to Range %q: durl asked for the whole file", x.status, x.rng)
			continue
		}
		n206++
		ranges[x.rng] = true
	}
	// One kill cuts short every request in flight at that moment.
	cut := 0
	for _, x := range runs[0] {
		if x.status == 206 && x.sent < spans.Asked(x.rng, size).Len() {
			cut++
		}
	}
	t.Logf("%d responses (%d of them 206) over %d distinct ranges; runs of %v responses; the first kill cut %d requests short",
		len(ts), n206, len(ranges), lens(runs), cut)
	if n206 < conns || len(ranges) < conns {
		t.Errorf("%d 206 answers over %d distinct ranges, want at least %d of each", n206, len(ranges), conns)
	}
	if cut < 3 {
		t.Errorf("the first kill cut %d requests short, want at least 3 in flight at once: %+v", cut, runs[0])
	}

	// D5, at most 256 KiB per connection per kill, is judged on what durl
	// controls: bytes it had written that the next run asked for again.
	// What was sent again in all is logged, not judged: it also holds what
	// never reached durl, such as what nginx counts as sent after the kill
	// (see TestKill9ResumeNginx).
	var total int64
	for _, x := range ts {
		total += x.sent
	}
	extra := total - size
	var resent, unrecorded, untrusted []int64
	before := int64(0)
	for k := 0; k < kills; k++ {
		untrusted = append(untrusted, spans.Overlap(written[k], askedSpans(runs[k+1], size)))
		var later []transfer
		for _, run := range runs[k+1:] {
			later = append(later, run...)
		}
		resent = append(resent, spans.Overlap(sentSpans(runs[k]), sentSpans(later)))
		var sent int64
		for _, x := range runs[k] {
			sent += x.sent
		}
		unrecorded = append(unrecorded, sent-(recorded[k]-before))
		before = recorded[k]
	}
	t.Logf("%d body bytes sent for a %d-byte file: %s sent again over %d kills, %s per kill (%s per kill and connection)",
		total, size, kib(extra), kills, kib(extra/kills), kib(extra/kills/conns))
	t.Logf("per kill: sent again %s; sent but not counted by the record %s; written but asked for again %s",
		kibs(resent), kibs(unrecorded), kibs(untrusted))
	for k, n := range untrusted {
		if limit := int64(conns * lossPerKill); n > limit {
			t.Errorf("after kill %d durl asked again for %s it had written, more than %s (D5: at most 256 KiB per connection)",
				k+1, kib(n), kib(limit))
		}
	}
}

// lens returns the length of each run.
func lens(runs [][]transfer) []int {
	var out []int
	for _, r := range runs {
		out = append(out, len(r))
	}
	return out
}
