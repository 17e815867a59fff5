package durl

import (
	"encoding/json"
	"os"
	"testing"
)

// TestGoldenTaskRecordV1 keeps format 1 of the task record opening. Every
// format version keeps its golden file.
func TestGoldenTaskRecordV1(t *testing.T) {
	b, err := os.ReadFile("testdata/task-record-v1.json")
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
