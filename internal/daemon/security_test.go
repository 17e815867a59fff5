package daemon

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durl-dev/durl/api"
)

const testToken = "test-token-0123456789"

// tcp sends a request to the daemon's TCP listener with the headers h.
func (d *testDaemon) tcp(method, path string, body any, h http.Header) (int, []byte) {
	d.t.Helper()
	c := &http.Client{Timeout: waitTimeout}
	return doRequest(d.t, c, "http://"+d.srv.TCPAddr().String(), method, path, body, h)
}

func TestTCPNeedsTheToken(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime, func(c *Config) { c.Listen = "127.0.0.1:0"; c.Token = testToken })
	add := api.AddRequest{Downloads: []api.Download{{URL: src.FileURL(), Paused: true}}}

	for name, h := range map[string]http.Header{
		"no token":     nil,
		"wrong token":  {"Authorization": {"Bearer " + testToken + "x"}},
		"short token":  {"Authorization": {"Bearer test"}},
		"empty token":  {"Authorization": {"Bearer "}},
		"basic scheme": {"Authorization": {"Basic " + testToken}},
		"bare token":   {"Authorization": {testToken}},
	} {
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"POST", api.PathTasks, add},
			{"GET", api.PathTasks, nil},
			{"POST", api.PathPauseAll, nil},
			{"PATCH", api.PathLimits, `{"max_active": 9}`},
			{"GET", api.PathMetrics, nil},
			{"GET", api.PathEvents, nil},
			{"GET", "/nowhere", nil},
		} {
			status, body := d.tcp(r.method, r.path, r.body, h)
			if status != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"unauthorized"`) {
				t.Errorf("%s: %s %s: %d %s, want 401 unauthorized", name, r.method, r.path, status, body)
			}
		}
	}
	if n := d.count(); n != 0 {
		t.Fatalf("%d tasks after unauthorized requests, want 0", n)
	}
	var l api.Limits
	d.call("GET", api.PathLimits, nil, http.StatusOK, &l)
	if *l.MaxActive != 1 {
		t.Fatalf("an unauthorized PATCH changed max_active to %d", *l.MaxActive)
	}

	auth := http.Header{"Authorization": {"Bearer " + testToken}}
	if status, body := d.tcp("POST", api.PathTasks, add, auth); status != http.StatusOK {
		t.Fatalf("with the token: %d %s", status, body)
	}
	if status, body := d.tcp("GET", api.PathMetrics, nil, auth); status != http.StatusOK || !strings.Contains(string(body), `durl_api_requests_total{code="401"} 42`) {
		t.Fatalf("metrics with the token: %d %s", status, body)
	}
	if n := d.count(); n != 1 {
		t.Fatalf("%d tasks, want 1", n)
	}
}

func TestGeneratedToken(t *testing.T) {
	state, dl := testDirs(t)
	tcp := func(c *Config) { c.Listen = "127.0.0.1:0" }
	d := startDaemon(t, state, dl, tcp)
	path := filepath.Join(state, api.TokenName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < MinTokenLength || d.srv.TokenPath() != path {
		t.Fatalf("token %q at %q", token, d.srv.TokenPath())
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	if status, body := d.tcp("GET", api.PathVersion, nil, auth); status != http.StatusOK {
		t.Fatalf("with the generated token: %d %s", status, body)
	}
	d.stop()

	// The next start keeps the token.
	d = startDaemon(t, state, dl, tcp)
	if status, body := d.tcp("GET", api.PathVersion, nil, auth); status != http.StatusOK {
		t.Fatalf("with the token after a restart: %d %s", status, body)
	}
	d.stop()

	// A token others can read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{StateDir: state, DownloadDirs: []string{dl}, Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Fatalf("New with a readable token file: %v", err)
	}
	// A short token is refused.
	if _, err := New(context.Background(), Config{StateDir: state, DownloadDirs: []string{dl}, Listen: "127.0.0.1:0", Token: "short"}); err == nil {
		t.Fatal("New accepted a short token")
	}
}

func TestDestinationOutsideIsRefused(t *testing.T) {
	state, dl := testDirs(t)
	outside := filepath.Join(filepath.Dir(dl), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dl, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dl, "evil.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "missing"), filepath.Join(dl, "dangling")); err != nil {
		t.Fatal(err)
	}
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	url := src.FileURL()

	for name, dl := range map[string]api.Download{
		"dot-dot output":         {URL: url, Output: dl + "/../outside/a.bin"},
		"dot-dot dir":            {URL: url, Dir: dl + "/sub/../../outside"},
		"absolute elsewhere":     {URL: url, Output: filepath.Join(outside, "a.bin")},
		"dir elsewhere":          {URL: url, Dir: outside},
		"root":                   {URL: url, Output: "/a.bin"},
		"through a symlink":      {URL: url, Output: filepath.Join(dl, "link", "a.bin")},
		"dir is a symlink":       {URL: url, Dir: filepath.Join(dl, "link")},
		"under a symlinked dir":  {URL: url, Dir: filepath.Join(dl, "link", "new", "sub")},
		"output is a symlink":    {URL: url, Output: filepath.Join(dl, "evil.bin")},
		"through a dangling one": {URL: url, Output: filepath.Join(dl, "dangling", "sub", "a.bin")},
	} {
		e := d.wantError("POST", api.PathTasks, api.AddRequest{Downloads: []api.Download{dl}}, http.StatusForbidden, api.CodeForbidden)
		if !strings.Contains(e.Message, "download folders") {
			t.Errorf("%s: message %q does not say where downloads may go", name, e.Message)
		}
	}
	for name, dl := range map[string]api.Download{
		"relative output": {URL: url, Output: "a.bin"},
		"relative dir":    {URL: url, Dir: "sub"},
		"both":            {URL: url, Output: filepath.Join(dl, "a.bin"), Dir: dl},
		"output a folder": {URL: url, Output: dl},
		"zero byte":       {URL: url, Output: dl + "/a\x00.bin"},
	} {
		e := d.wantError("POST", api.PathTasks, api.AddRequest{Downloads: []api.Download{dl}}, http.StatusBadRequest, api.CodeBadRequest)
		t.Logf("%s: %s", name, e.Message)
	}
	if n := d.count(); n != 0 {
		t.Fatalf("%d tasks after refused downloads, want 0", n)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("files were created outside: %v", entries)
	}

	// A subfolder that does not exist yet is fine; a batch with one
	// refused download adds none.
	ok := api.Download{URL: url, Output: filepath.Join(dl, "new", "sub", "a.bin"), Paused: true}
	d.wantError("POST", api.PathTasks, api.AddRequest{Downloads: []api.Download{ok, {URL: url, Dir: outside}}}, http.StatusForbidden, api.CodeForbidden)
	if n := d.count(); n != 0 {
		t.Fatalf("%d tasks after a refused batch, want 0", n)
	}
	d.add(ok)
}

func TestBadRequestsChangeNothing(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	task := d.add(api.Download{URL: src.FileURL(), Paused: true})[0]
	url := src.FileURL()
	for name, body := range map[string]string{
		"malformed JSON":    `{"downloads": [`,
		"not JSON":          `url=http://example.com/`,
		"empty body":        ``,
		"null":              `null`,
		"no downloads":      `{"downloads": []}`,
		"unknown field":     `{"downloads": [{"url": "` + url + `", "bogus": 1}]}`,
		"unknown top field": `{"downloads": [{"url": "` + url + `"}], "mode": "fast"}`,
		"trailing data":     `{"downloads": [{"url": "` + url + `"}]} {}`,
		"trailing garbage":  `{"downloads": [{"url": "` + url + `"}]} x`,
		"wrong type":        `{"downloads": "` + url + `"}`,
		"wrong field type":  `{"downloads": [{"url": "` + url + `", "priority": "high"}]}`,
		"array":             `[{"url": "` + url + `"}]`,
	} {
		e := d.wantError("POST", api.PathTasks, body, http.StatusBadRequest, api.CodeBadRequest)
		if name == "unknown field" && !strings.Contains(e.Message, "bogus") {
			t.Errorf("%s: message %q does not name the field", name, e.Message)
		}
	}

	// A batch whose second download is bad: the message names it, and the
	// first is not added either.
	other := url + "2"
	for name, bad := range map[string]api.Download{
		"no url":              {Output: dl + "/x"},
		"ftp url":             {URL: "ftp://example.com/x"},
		"no host":             {URL: "http:///x"},
		"bad mirror":          {URL: other, Mirrors: []string{"file:///etc/passwd"}},
		"bad checksum":        {URL: other, Checksum: "sha256:abc"},
		"unknown algorithm":   {URL: other, Checksum: "crc32:00000000"},
		"bad header":          {URL: other, Headers: []string{"no colon"}},
		"header line break":   {URL: other, Headers: []string{"X-A: b\r\nX-B: c"}},
		"reserved header":     {URL: other, Headers: []string{"Range: bytes=0-"}},
		"too many conns":      {URL: other, Connections: api.MaxConnections + 1},
		"negative conns":      {URL: other, Connections: -1},
		"priority too high":   {URL: other, Priority: api.MaxPriority + 1},
		"priority too low":    {URL: other, Priority: api.MinPriority - 1},
		"negative rate limit": {URL: other, RateLimit: -1},
	} {
		body := api.AddRequest{Downloads: []api.Download{{URL: url + "/first", Paused: true}, bad}}
		e := d.wantError("POST", api.PathTasks, body, http.StatusBadRequest, api.CodeBadRequest)
		if !strings.Contains(e.Message, "downloads[1]") {
			t.Errorf("%s: message %q does not say which download", name, e.Message)
		}
	}

	huge := `{"downloads": [{"url": "` + url + `?` + strings.Repeat("a", api.MaxBodyBytes) + `"}]}`
	d.wantError("POST", api.PathTasks, huge, http.StatusRequestEntityTooLarge, api.CodeTooLarge)
	d.wantError("PATCH", api.PathLimits, `{"max_active": 1`+strings.Repeat(" ", api.MaxBodyBytes)+`}`, http.StatusRequestEntityTooLarge, api.CodeTooLarge)

	for _, id := range []string{"XYZ", "0123456789ABCDEF", strings.Repeat("a", 65), "%2e%2e", "a-b", "a%2Fb"} {
		d.wantError("GET", "/v1/tasks/"+id, nil, http.StatusBadRequest, api.CodeBadRequest)
		d.wantError("POST", "/v1/tasks/"+id+"/pause", nil, http.StatusBadRequest, api.CodeBadRequest)
		d.wantError("DELETE", "/v1/tasks/"+id, nil, http.StatusBadRequest, api.CodeBadRequest)
	}
	for _, r := range [][2]string{
		{"GET", "/v1/tasks/0123456789abcdef"},
		{"PATCH", "/v1/tasks/0123456789abcdef"},
		{"DELETE", "/v1/tasks/0123456789abcdef"},
		{"POST", "/v1/tasks/0123456789abcdef/pause"},
		{"POST", "/v1/tasks/0123456789abcdef/resume"},
		{"POST", "/v1/tasks/0123456789abcdef/cancel"},
		{"GET", "/v2/tasks"},
		{"GET", "/"},
	} {
		d.wantError(r[0], r[1], `{}`, http.StatusNotFound, api.CodeNotFound)
	}
	for _, r := range [][2]string{
		{"PUT", api.PathTasks},
		{"POST", "/v1/tasks/" + task.ID},
		{"GET", "/v1/tasks/" + task.ID + "/pause"},
		{"GET", api.PathPauseAll},
		{"DELETE", api.PathLimits},
		{"POST", api.PathEvents},
		{"POST", api.PathMetrics},
	} {
		d.wantError(r[0], r[1], nil, http.StatusMethodNotAllowed, api.CodeMethod)
	}
	status, _ := d.do("PUT", api.PathTasks, nil)
	if status != http.StatusMethodNotAllowed {
		t.Fatal(status)
	}
	d.wantError("GET", api.PathEvents+"?last_event_id=abc", nil, http.StatusBadRequest, api.CodeBadRequest)

	if n := d.count(); n != 1 {
		t.Fatalf("%d tasks after bad requests, want 1", n)
	}
	if got := d.get(task.ID); got.State != api.StatePaused || got.Priority != 0 {
		t.Fatalf("the task changed: %+v", got)
	}
}
