package durl

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs/memfs"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGoldenTaskRecordV1 keeps format 1 of the task record opening. Every
// format version keeps its golden file.
func TestGoldenTaskRecordV1(t *testing.T) {
	b, err := os.ReadFile("testdata/state-v1/tasks/0123456789abcdef.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec taskRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Format != 1 || rec.ID != "0123456789abcdef" || rec.State != recActive || rec.Total != 1048576 ||
		rec.ETag != `"abc"` || rec.Generation != 1 || rec.Request.URL != "http://127.0.0.1:8080/file" ||
		rec.Path != "/downloads/file" || rec.Request.Header.Get("X-Token") != "t" {
		t.Fatalf("decoded %+v", rec)
	}
}

// TestFormat1StateFolderIsMigrated opens a state folder written in format 1
// (a JSON record and a progress file per task): the task is found in flight,
// moved into a task file with its progress, and the old files are gone.
func TestFormat1StateFolderIsMigrated(t *testing.T) {
	const dir = "testdata/state-v1/tasks"
	if *update { // a durable record in slot 1: 300 KiB of 1 MiB written
		r := progress.Record{Seq: 5, Generation: 1, Durable: true, Total: 1048576,
			Segments: []progress.Segment{{Start: 0, End: 1048576, Written: 307200}}}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 3*progress.SlotSize)
		copy(out[progress.SlotSize:], b)
		os.WriteFile(filepath.Join(dir, "0123456789abcdef.progress"), out, 0o644)
	}
	mem := memfs.New()
	if err := mem.MkdirAll("/state/tasks", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0123456789abcdef.json", "0123456789abcdef.progress"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := mem.OpenFile("/state/tasks/"+name, os.O_RDWR|os.O_CREATE, 0o600)
		f.Write(b)
		f.Close()
	}
	s, err := open(context.Background(), Options{StateDir: "/state", Recovery: ReportInterrupted}, mem, bootB)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	found := s.Interrupted()
	if len(found) != 1 || found[0].ID() != "0123456789abcdef" || found[0].Path() != "/downloads/file" {
		t.Fatalf("Interrupted() = %v", found)
	}
	names, _ := mem.ReadDir("/state/tasks")
	if len(names) != 1 || names[0] != "0123456789abcdef.task" {
		t.Fatalf("tasks folder after migration: %v", names)
	}
	rd, err := found[0].ResumeData()
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.openResumeData(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Segments) != 1 || p.Segments[0].Written != 307200 {
		t.Errorf("progress after migration: %+v, want 307200 bytes written", p.Segments)
	}
}

// TestGoldenTaskFileV2 keeps format 2, the task file, opening.
func TestGoldenTaskFileV2(t *testing.T) {
	const golden = "testdata/task-v2.task"
	mem := memfs.New()
	s := &Session{fs: mem, tasksDir: "/state/tasks"}
	mem.MkdirAll(s.tasksDir, 0o700)
	if *update {
		rec := taskRecord{ID: "0123456789abcdef", State: recPaused, Path: "/downloads/file", ETag: `"abc"`,
			Total: 1048576, Generation: 3, Request: storedRequest{URL: "http://127.0.0.1:8080/file", Dest: "/downloads/file"}}
		f, err := s.createRecord(&rec)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		rec.State = recActive
		if err := s.writeRecord(&rec, true); err != nil {
			t.Fatal(err)
		}
		b, _ := mem.ReadFile(s.taskPath(rec.ID))
		os.WriteFile(golden, b, 0o644)
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := mem.OpenFile(s.taskPath("0123456789abcdef"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	f.Write(b)
	f.Close()
	rec, err := s.loadRecord("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Format != 2 || rec.State != recActive || rec.Generation != 3 || rec.ETag != `"abc"` || rec.Total != 1048576 {
		t.Fatalf("decoded %+v", rec)
	}
}
