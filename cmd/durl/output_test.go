package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl"
)

func TestEncodeEvent(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	ev := durl.Event{
		Seq: 7, Time: at, Kind: durl.EventFailed, TaskID: "abc", URL: "https://u:pw@h/f",
		Path: "/d/f", State: durl.Failed, Progress: durl.Progress{Written: 10, Total: 100, Rate: math.Inf(1)},
		Err: errors.New("durl: the server answered 404 Not Found"),
	}
	line := encodeEvent(ev)
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"seq": 7.0, "time": "2025-01-02T03:04:05.0000006Z", "event": "failed", "task": "abc",
		"url": "https://u:xxxxx@h/f", "path": "/d/f", "state": "failed", "written": 10.0, "total": 100.0,
		"rate": 0.0, "error": "the server answered 404 Not Found",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["reason"]; ok {
		t.Errorf("empty reason encoded: %s", line)
	}
}

func TestLineRenderer(t *testing.T) {
	var out bytes.Buffer
	r := newRenderer(outputLines, nil, &out)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := []durl.Event{
		{Kind: durl.EventAdded, TaskID: "a", URL: "https://h/f", Time: t0},
		{Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f", Path: "/d/f\x1b[31m", Time: t0,
			Progress: durl.Progress{Written: 1 << 20, Total: 11 << 20}},
		{Kind: durl.EventProgress, TaskID: "a", URL: "https://h/f", Time: t0.Add(time.Second)},
		{Kind: durl.EventRetrying, TaskID: "a", URL: "https://h/f", Err: errors.New("durl: connection reset")},
		{Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f"}, // a second start prints nothing
		{Kind: durl.EventRestarted, TaskID: "a", URL: "https://h/f", Reason: "the ETag changed"},
		{Kind: durl.EventCompleted, TaskID: "a", URL: "https://h/f", Path: "/d/f", Time: t0.Add(10 * time.Second),
			Progress: durl.Progress{Written: 11 << 20, Total: 11 << 20}},
	}
	for _, ev := range evs {
		r.event(ev)
	}
	r.errorLine("durl: oops\x07")
	r.finish()
	r.event(evs[1]) // ignored after finish
	want := "durl: continuing https://h/f to /d/f?[31m from 1.0 MiB of 11.0 MiB\n" +
		"durl: https://h/f: retrying (connection reset)\n" +
		"durl: https://h/f: starting over from zero: the ETag changed\n" +
		"durl: saved /d/f (11.0 MiB, 10.0 s, 1.1 MiB/s)\n" +
		"durl: oops?\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestQuietRendererPrintsOnlyErrors(t *testing.T) {
	var out bytes.Buffer
	r := newRenderer(outputQuiet, nil, &out)
	r.event(durl.Event{Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f"})
	r.event(durl.Event{Kind: durl.EventCompleted, TaskID: "a", URL: "https://h/f"})
	r.errorLine("durl: bad")
	r.finish()
	if out.String() != "durl: bad\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestJSONRenderer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	r := newRenderer(outputJSON, &stdout, &stderr)
	// What Open says about other downloads of the state folder is left out.
	r.event(durl.Event{Seq: 1, Kind: durl.EventInterrupted, TaskID: "other", URL: "https://h/o"})
	r.event(durl.Event{Seq: 2, Kind: durl.EventRemoved, TaskID: "old", URL: "https://h/p"})
	r.event(durl.Event{Seq: 1, Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f"})
	r.event(durl.Event{Seq: 2, Kind: durl.EventCompleted, TaskID: "a", URL: "https://h/f", State: durl.Completed})
	r.errorLine("durl: bad")
	r.finish()
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), stdout.String())
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("invalid JSON line %q", l)
		}
	}
	if stderr.String() != "durl: bad\n" {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestBarRendererCompletes(t *testing.T) {
	var out bytes.Buffer
	r := newBarRenderer(&out)
	r.event(durl.Event{Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f.iso", Progress: durl.Progress{Total: 100}})
	r.event(durl.Event{Kind: durl.EventProgress, TaskID: "a", URL: "https://h/f.iso", Progress: durl.Progress{Written: 50, Total: 100, Rate: 10}})
	r.event(durl.Event{Kind: durl.EventStarted, TaskID: "b", URL: "https://h/g.iso", Progress: durl.Progress{Total: -1}})
	r.event(durl.Event{Kind: durl.EventCompleted, TaskID: "a", URL: "https://h/f.iso", Path: "/d/f.iso", Progress: durl.Progress{Written: 100, Total: 100}})
	r.errorLine("durl: https://h/g.iso: the server answered 404 Not Found")
	r.event(durl.Event{Kind: durl.EventFailed, TaskID: "b", URL: "https://h/g.iso"})
	done := make(chan struct{})
	go func() { r.finish(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("finish did not return")
	}
	if !strings.Contains(out.String(), "f.iso") {
		t.Errorf("no bar drawn: %q", out.String())
	}
	if !strings.Contains(out.String(), "failed") {
		t.Errorf("the failed download's bar does not say so: %q", out.String())
	}
	r.errorLine("durl: after") // goes straight to the writer
	if !strings.HasSuffix(out.String(), "durl: after\n") {
		t.Errorf("line after finish lost: %q", out.String())
	}
}

func TestFormat(t *testing.T) {
	sizes := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB"}
	for n, want := range sizes {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	durs := map[time.Duration]string{12300 * time.Millisecond: "12.3 s", 125 * time.Second: "2m05s", 62 * time.Minute: "1h02m", -time.Second: "0.0 s"}
	for d, want := range durs {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := formatRate(85.2 * (1 << 20)); got != "85.2 MiB/s" {
		t.Errorf("formatRate = %q", got)
	}
	if got := formatRate(math.NaN()); got != "0 B/s" {
		t.Errorf("formatRate(NaN) = %q", got)
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "100": 100, "10k": 10 << 10, "10K": 10 << 10, "10M": 10 << 20, "10MB": 10 << 20,
		"10MiB": 10 << 20, "1.5G": 3 << 29, "2T": 2 << 40, " 7m ": 7 << 20, "10M/s": 10 << 20, "100B": 100,
	}
	for in, want := range good {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "-1M", "fast", "1e3", "10X", "NaN", "Inf", "0x10", "99999999999T", "1..5M"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

// An error line printed after its download's bar was aborted, just before
// the command ends, still reaches the terminal: the bars' writer holds
// such lines until it next draws (each of 20 tries).
func TestBarRendererKeepsTheLastErrorLine(t *testing.T) {
	for i := range 20 {
		var out bytes.Buffer
		r := newBarRenderer(&out)
		r.event(durl.Event{Kind: durl.EventStarted, TaskID: "a", URL: "https://h/f.iso", Progress: durl.Progress{Total: -1}})
		r.event(durl.Event{Kind: durl.EventFailed, TaskID: "a", URL: "https://h/f.iso"})
		r.errorLine("durl: https://h/f.iso: the server answered 404 Not Found")
		r.finish()
		if !strings.Contains(out.String(), "404 Not Found") {
			t.Fatalf("try %d: the error line is lost: %q", i, out.String())
		}
	}
}
