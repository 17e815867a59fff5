package nginxtest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/durl-dev/durl/internal/spans"
)

func needNginx(t *testing.T) {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nginx is required in CI: %v", err)
		}
		t.Skipf("nginx not installed: %v", err)
	}
}

func get(t *testing.T, url, rng string) (int, []byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, time.Since(start)
}

func TestServer(t *testing.T) {
	needNginx(t)
	root := t.TempDir()
	const size = 2 << 20
	data := make([]byte, size)
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	s, err := Start(Options{Root: root, LimitRate: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	defer s.Stop()

	st, b, plainTime := get(t, s.URL+"/plain/f.bin", "")
	if st != 200 || !bytes.Equal(b, data) {
		t.Fatalf("plain: status %d, %d bytes", st, len(b))
	}
	st, b, _ = get(t, s.URL+"/plain/f.bin", "bytes=100-199")
	if st != 206 || !bytes.Equal(b, data[100:200]) {
		t.Fatalf("plain range: status %d, %d bytes", st, len(b))
	}
	st, b, _ = get(t, s.URL+"/norange/f.bin", "bytes=100-199")
	if st != 200 || !bytes.Equal(b, data) {
		t.Fatalf("norange: status %d, %d bytes", st, len(b))
	}
	// nginx lets a connection send limit_rate*(seconds since start+1)
	// bytes, so the first second's worth goes at once: 2 MiB at 1 MiB/s
	// takes about one second.
	st, b, thrTime := get(t, s.URL+"/throttled/f.bin", "")
	if st != 200 || !bytes.Equal(b, data) {
		t.Fatalf("throttled: status %d, %d bytes", st, len(b))
	}
	if thrTime < 700*time.Millisecond || thrTime < 3*plainTime {
		t.Fatalf("throttled took %v, plain %v: not throttled", thrTime, plainTime)
	}
	st, b, _ = get(t, s.URL+"/throttled-norange/f.bin", "bytes=0-9")
	if st != 200 || !bytes.Equal(b, data) {
		t.Fatalf("throttled-norange: status %d, %d bytes", st, len(b))
	}
	st, _, _ = get(t, s.URL+"/plain/missing", "")
	if st != 404 {
		t.Fatalf("missing: status %d", st)
	}

	entries, err := s.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	want := []LogEntry{
		{Method: "GET", URI: "/plain/f.bin", Status: 200, BodyBytesSent: size},
		{Method: "GET", URI: "/plain/f.bin", Range: "bytes=100-199", Status: 206, BodyBytesSent: 100},
		{Method: "GET", URI: "/norange/f.bin", Range: "bytes=100-199", Status: 200, BodyBytesSent: size},
		{Method: "GET", URI: "/throttled/f.bin", Status: 200, BodyBytesSent: size},
		{Method: "GET", URI: "/throttled-norange/f.bin", Range: "bytes=0-9", Status: 200, BodyBytesSent: size},
		{Method: "GET", URI: "/plain/missing", Status: 404},
	}
	if len(entries) != len(want) {
		t.Fatalf("access log has %d entries, want %d: %+v", len(entries), len(want), entries)
	}
	for i, w := range want {
		e := entries[i]
		if e.Method != w.Method || e.URI != w.URI || e.Range != w.Range || e.Status != w.Status ||
			(w.Status != 404 && e.BodyBytesSent != w.BodyBytesSent) || e.BytesSent <= e.BodyBytesSent {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
		// The clock nginx logs by is the test's, to the millisecond.
		if e.Start().Before(began.Add(-time.Second)) || e.End.After(time.Now().Add(time.Second)) || e.Start().After(e.End) {
			t.Errorf("entry %d ran from %v to %v, outside the test (began %v)", i, e.Start(), e.End, began)
		}
	}
	if got := s.BodyBytesSent("/f.bin"); got != 4*size+100 {
		t.Errorf("BodyBytesSent = %d, want %d", got, 4*size+100)
	}

	// A client that goes away mid-transfer is logged with a partial body.
	if err := s.ClearAccessLog(); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Get(s.URL + "/throttled/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, resp.Body, 100_000)
	resp.Body.Close() // closes the connection: the body was not read to the end
	entries, err = s.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Status != 200 || entries[0].BodyBytesSent <= 0 || entries[0].BodyBytesSent >= size {
		t.Errorf("aborted request logged as %+v", entries)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("nginx pid %d still there after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("nginx temp folder left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "f.bin")); err != nil {
		t.Errorf("served file removed: %v", err)
	}
	if entries, _ := s.AccessLog(); len(entries) != 1 {
		t.Errorf("AccessLog after Stop: %d entries, want 1", len(entries))
	}
}

func TestParseLine(t *testing.T) {
	e, ok := parseLine(`GET /plain/a b "bytes=5-" 206 1234 1000 0.012 7 1796180000.125`)
	if !ok || e.Method != "GET" || e.URI != "/plain/a b" || e.Range != "bytes=5-" || e.Status != 206 ||
		e.BytesSent != 1234 || e.BodyBytesSent != 1000 || e.Connection != 7 ||
		e.End.UnixMilli() != 1796180000125 || e.Start().UnixMilli() != 1796180000113 {
		t.Fatalf("got %+v %v", e, ok)
	}
	if b := e.Body(); b != (spans.Span{From: 5, To: 1005}) {
		t.Fatalf("Body = %+v, want [5, 1005)", b)
	}
	e, ok = parseLine(`GET /x "bytes=5-9" 200 250 100 0.000 1 1796180000.000`)
	if !ok || e.Range != "bytes=5-9" || e.Body() != (spans.Span{From: 0, To: 100}) {
		t.Fatalf("a 200 to a Range: %+v %v, body %+v", e, ok, e.Body())
	}
	e, ok = parseLine(`HEAD /x "-" 200 250 0 0.000 1 1796180000.000`)
	if !ok || e.Range != "" || e.BodyBytesSent != 0 {
		t.Fatalf("got %+v %v", e, ok)
	}
	if _, ok := parseLine("garbage"); ok {
		t.Fatal("garbage parsed")
	}
}
