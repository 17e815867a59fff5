package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/durltest"
)

// slowSource serves a 1 MiB file at 16 KiB/s: a download from it stays
// running for as long as a test needs.
func slowSource(t *testing.T) *durltest.Server {
	src := durltest.NewServer(durltest.WithContent(1, 1<<20), durltest.WithRate(16<<10))
	t.Cleanup(src.Close)
	return src
}

// oneAtATime runs one download at a time, so that most added tasks wait
// in the queue.
func oneAtATime(c *Config) { c.MaxActive = 1 }

func TestAddGetAndList(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)

	one := d.add(api.Download{URL: src.URL + "/one.bin", Paused: true})[0]
	if !validID(one.ID) || one.State != api.StatePaused || one.Dir != dl || one.Total != -1 || one.Created.IsZero() {
		t.Fatalf("added task: %+v", one)
	}

	var many []api.Download
	for i := range 25 {
		many = append(many, api.Download{URL: fmt.Sprintf("%s/f%02d.bin", src.URL, i), Paused: true, Priority: i % 3})
	}
	tasks := d.add(many...)
	ids := map[string]bool{one.ID: true}
	for i, task := range tasks {
		if task.URL != many[i].URL || task.Priority != many[i].Priority || task.State != api.StatePaused {
			t.Errorf("task %d: %+v, want the URL and priority of %+v, paused", i, task, many[i])
		}
		ids[task.ID] = true
	}
	if len(ids) != 26 {
		t.Fatalf("%d distinct IDs, want 26", len(ids))
	}
	if got := d.get(tasks[3].ID); got.URL != many[3].URL || got.ID != tasks[3].ID {
		t.Fatalf("GET task 3: %+v", got)
	}

	// Pages of 10 cover every task once.
	seen := map[string]bool{}
	after, pages := "", 0
	for {
		var list api.TaskList
		d.call("GET", api.PathTasks+"?limit=10&after="+after, nil, http.StatusOK, &list)
		pages++
		if list.Total != 26 {
			t.Fatalf("total %d, want 26", list.Total)
		}
		for _, task := range list.Tasks {
			if seen[task.ID] {
				t.Fatalf("task %s listed twice", task.ID)
			}
			seen[task.ID] = true
		}
		if list.Next == "" {
			break
		}
		if list.Next != list.Tasks[len(list.Tasks)-1].ID || pages > 3 {
			t.Fatalf("page %d: next %q after %d tasks", pages, list.Next, len(list.Tasks))
		}
		after = list.Next
	}
	if pages != 3 || len(seen) != 26 {
		t.Fatalf("%d pages, %d tasks; want 3 pages of 26 tasks", pages, len(seen))
	}

	// Filters.
	var list api.TaskList
	d.call("GET", api.PathTasks+"?state=paused", nil, http.StatusOK, &list)
	if list.Total != 26 || len(list.Tasks) != 26 || list.Next != "" {
		t.Fatalf("state=paused: total %d, %d tasks, next %q", list.Total, len(list.Tasks), list.Next)
	}
	d.call("GET", api.PathTasks+"?state=running,queued", nil, http.StatusOK, &list)
	if list.Total != 0 || list.Tasks == nil || len(list.Tasks) != 0 {
		t.Fatalf("state=running,queued: %+v", list)
	}
	d.wantError("GET", api.PathTasks+"?state=sleeping", nil, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("GET", api.PathTasks+"?limit=0", nil, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("GET", api.PathTasks+"?limit=ten", nil, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("GET", api.PathTasks+"?after=nothex", nil, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("GET", api.PathTasks+"?after=0123456789abcdef", nil, http.StatusNotFound, api.CodeNotFound)
	d.wantError("GET", api.PathTasks+"?sort=name", nil, http.StatusBadRequest, api.CodeBadRequest)
}

func TestPatchTask(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	task := d.add(api.Download{URL: src.URL + "/a.bin", Paused: true})[0]
	path := "/v1/tasks/" + task.ID

	var got api.Task
	d.call("PATCH", path, `{"priority": 7, "rate_limit": 4096}`, http.StatusOK, &got)
	if got.Priority != 7 || got.RateLimit != 4096 {
		t.Fatalf("after PATCH: %+v", got)
	}
	got = api.Task{}
	d.call("PATCH", path, `{"rate_limit": 0}`, http.StatusOK, &got)
	if got.Priority != 7 || got.RateLimit != 0 {
		t.Fatalf("after removing the rate limit: %+v", got)
	}
	d.call("PATCH", path, `{}`, http.StatusOK, &got)
	d.wantError("PATCH", path, `{"priority": 5000}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", path, `{"rate_limit": -1}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", path, `{"priority": "high"}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", path, `{"state": "running"}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", "/v1/tasks/0123456789abcdef", `{"priority": 1}`, http.StatusNotFound, api.CodeNotFound)
	if got := d.get(task.ID); got.Priority != 7 || got.RateLimit != 0 {
		t.Fatalf("refused PATCHes changed the task: %+v", got)
	}

	// Saved in the task's record: a restart keeps them.
	d.call("PATCH", path, `{"rate_limit": 2048}`, http.StatusOK, nil)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, state, dl, oneAtATime)
	if got := d.get(task.ID); got.Priority != 7 || got.RateLimit != 2048 || got.State != api.StatePaused {
		t.Fatalf("after a restart: %+v, want priority 7, rate limit 2048, paused", got)
	}
}

func TestLimits(t *testing.T) {
	state, dl := testDirs(t)
	d := startDaemon(t, state, dl, func(c *Config) { c.MaxActive = 2; c.RateLimit = 1 << 20 })

	var l api.Limits
	d.call("GET", api.PathLimits, nil, http.StatusOK, &l)
	if *l.MaxActive != 2 || *l.MaxConnsPerHost != 16 || *l.RateLimit != 1<<20 {
		t.Fatalf("limits: %d %d %d", *l.MaxActive, *l.MaxConnsPerHost, *l.RateLimit)
	}
	d.call("PATCH", api.PathLimits, `{"max_active": 5}`, http.StatusOK, &l)
	if *l.MaxActive != 5 || *l.MaxConnsPerHost != 16 || *l.RateLimit != 1<<20 {
		t.Fatalf("after PATCH max_active: %d %d %d", *l.MaxActive, *l.MaxConnsPerHost, *l.RateLimit)
	}
	d.call("PATCH", api.PathLimits, `{"max_conns_per_host": 4, "rate_limit": 0}`, http.StatusOK, &l)
	if *l.MaxActive != 5 || *l.MaxConnsPerHost != 4 || *l.RateLimit != 0 {
		t.Fatalf("after PATCH: %d %d %d", *l.MaxActive, *l.MaxConnsPerHost, *l.RateLimit)
	}
	d.wantError("PATCH", api.PathLimits, `{"max_active": -1}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", api.PathLimits, `{"rate_limit": -1}`, http.StatusBadRequest, api.CodeBadRequest)
	d.wantError("PATCH", api.PathLimits, `{"speed": 1}`, http.StatusBadRequest, api.CodeBadRequest)
	var st api.Stats
	d.call("GET", api.PathStats, nil, http.StatusOK, &st)
	if *st.Limits.MaxActive != 5 || *st.Limits.MaxConnsPerHost != 4 || *st.Limits.RateLimit != 0 {
		t.Fatalf("stats limits: %d %d %d", *st.Limits.MaxActive, *st.Limits.MaxConnsPerHost, *st.Limits.RateLimit)
	}
}

func TestPauseAllResumeAll(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, func(c *Config) { c.MaxActive = 2 })
	var tasks []api.Task
	for i := range 4 {
		tasks = append(tasks, d.add(api.Download{URL: fmt.Sprintf("%s/%d.bin", src.URL, i)})[0])
	}
	d.waitState(tasks[0].ID, api.StateRunning)

	var st api.Stats
	d.call("POST", api.PathPauseAll, nil, http.StatusOK, &st)
	if st.Tasks[api.StatePaused] != 4 {
		t.Fatalf("after pause-all: %v", st.Tasks)
	}
	d.call("POST", api.PathResumeAll, nil, http.StatusOK, &st)
	if st.Tasks[api.StateQueued]+st.Tasks[api.StateRunning] != 4 {
		t.Fatalf("after resume-all: %v", st.Tasks)
	}
	d.call("POST", api.PathPauseAll, nil, http.StatusOK, &st)
	if st.Tasks[api.StatePaused] != 4 {
		t.Fatalf("after the second pause-all: %v", st.Tasks)
	}
}

func TestVersionStatsAndMetrics(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)

	var v api.Version
	d.call("GET", api.PathVersion, nil, http.StatusOK, &v)
	if v.Version != durl.Version || v.API != 1 {
		t.Fatalf("version: %+v", v)
	}
	d.add(api.Download{URL: src.URL + "/a.bin", Paused: true}, api.Download{URL: src.URL + "/b.bin", Paused: true})
	d.wantError("GET", "/v1/tasks/zz", nil, http.StatusBadRequest, api.CodeBadRequest)

	var st api.Stats
	d.call("GET", api.PathStats, nil, http.StatusOK, &st)
	if st.Tasks[api.StatePaused] != 2 || st.Version != durl.Version || st.Uptime <= 0 || len(st.Tasks) != 7 {
		t.Fatalf("stats: %+v", st)
	}
	if err := d.srv.log.Flush(); err != nil {
		t.Fatal(err)
	}
	d.call("GET", api.PathStats, nil, http.StatusOK, &st)
	if st.LastID < 2 {
		t.Fatalf("last event ID %d after adding two tasks", st.LastID)
	}

	status, body := d.do("GET", api.PathMetrics, nil)
	if status != http.StatusOK {
		t.Fatalf("metrics: %d %s", status, body)
	}
	checkExposition(t, string(body))
	for _, want := range []string{
		`durl_tasks{state="paused"} 2`,
		`durl_api_requests_total{code="200"} `,
		`durl_api_requests_total{code="400"} 1`,
		"durl_limits_max_active 1",
		"durl_event_clients 0",
		"durl_event_last_id ",
		"durl_bytes_written ",
		"durl_download_rate_bytes_per_second ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// checkExposition checks the Prometheus text format: every sample belongs
// to a metric announced by # HELP and # TYPE lines, and parses.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	sample := regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="[^"\\\n]*"\})? (-?[0-9.e+-]+)$`)
	helped, typed := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch f := strings.Fields(line); {
		case strings.HasPrefix(line, "# HELP ") && len(f) >= 4:
			helped[f[2]] = true
		case strings.HasPrefix(line, "# TYPE ") && len(f) == 4:
			if !slices.Contains([]string{"gauge", "counter"}, f[3]) {
				t.Errorf("bad type: %q", line)
			}
			typed[f[2]] = true
		default:
			m := sample.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("bad sample line: %q", line)
				continue
			}
			if !helped[m[1]] || !typed[m[1]] {
				t.Errorf("sample of %s without # HELP and # TYPE before it", m[1])
			}
		}
	}
}

func TestManyClientsAtOnce(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	const clients, each = 50, 2
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			var req api.AddRequest
			for i := range each {
				req.Downloads = append(req.Downloads, api.Download{URL: fmt.Sprintf("%s/c%d-%d.bin", src.URL, c, i), Paused: true})
			}
			body, _ := json.Marshal(req)
			for _, r := range []struct{ method, path, body string }{
				{"POST", api.PathTasks, string(body)},
				{"GET", api.PathTasks + "?limit=5", ""},
				{"GET", api.PathStats, ""},
			} {
				httpReq, _ := http.NewRequest(r.method, "http://durl"+r.path, strings.NewReader(r.body))
				resp, err := d.client.Do(httpReq)
				if err != nil {
					t.Errorf("client %d: %s %s: %v", c, r.method, r.path, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("client %d: %s %s: %s", c, r.method, r.path, resp.Status)
				}
			}
		})
	}
	wg.Wait()
	if n := d.count(); n != clients*each {
		t.Fatalf("%d tasks, want %d", n, clients*each)
	}
}

// TestQueueChangesWhileRunning: a PATCH of the limits or of a task's
// priority takes effect on the running daemon. Raising max_active starts
// the queued task with the highest priority, whatever the order it came in.
func TestQueueChangesWhileRunning(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl, oneAtATime)
	first := d.add(api.Download{URL: src.URL + "/first.bin"})[0]
	d.waitState(first.ID, api.StateRunning)
	low := d.add(api.Download{URL: src.URL + "/low.bin"})[0]
	high := d.add(api.Download{URL: src.URL + "/high.bin"})[0]
	if got := d.get(low.ID).State; got != api.StateQueued {
		t.Fatalf("the second task is %s with max_active 1, want queued", got)
	}

	d.call("PATCH", "/v1/tasks/"+high.ID, `{"priority": 10}`, http.StatusOK, nil)
	d.call("PATCH", api.PathLimits, `{"max_active": 2}`, http.StatusOK, nil)
	d.waitState(high.ID, api.StateRunning)
	if got := d.get(low.ID).State; got != api.StateQueued {
		t.Fatalf("with max_active 2 the task of priority 0 is %s, want queued behind the one of priority 10", got)
	}
	d.call("PATCH", api.PathLimits, `{"max_active": 0}`, http.StatusOK, nil)
	d.waitState(low.ID, api.StateRunning)
	if got := d.get(first.ID).State; got != api.StateRunning {
		t.Fatalf("the first task is %s, want running still", got)
	}
}

// TestRoutesMatchOpenAPI: the daemon answers every method that
// docs/openapi.json gives a path, and only those (405 for the others).
func TestRoutesMatchOpenAPI(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	state, dl := testDirs(t)
	d := startDaemon(t, state, dl)
	for path, item := range doc.Paths {
		if path == api.PathEvents {
			continue // a stream: TestEventsHeartbeat and others
		}
		url := strings.ReplaceAll(path, "{id}", "0123456789abcdef")
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			status, body := d.do(method, url, "{}")
			_, documented := item[strings.ToLower(method)]
			routed := status != http.StatusMethodNotAllowed && !strings.Contains(string(body), "no such path")
			if documented != routed {
				t.Errorf("%s %s: %d %s; documented %v", method, url, status, body, documented)
			}
		}
	}
}

// A request whose downloads cannot all be started adds none: the ones it
// created are removed again, and the event log says so.
func TestAddAllOrNothing(t *testing.T) {
	state, dl := testDirs(t)
	src := slowSource(t)
	d := startDaemon(t, state, dl)
	events := d.events(0)
	defer events.close()
	out := filepath.Join(dl, "same.bin")
	// Two downloads at once into one file: the second is refused.
	e := d.wantError("POST", api.PathTasks, api.AddRequest{Downloads: []api.Download{
		{URL: src.URL + "/a.bin", Output: out}, {URL: src.URL + "/b.bin", Output: out}}},
		http.StatusConflict, api.CodeConflict)
	if !strings.Contains(e.Message, "same.bin") {
		t.Errorf("message %q does not name the file", e.Message)
	}
	if n := d.count(); n != 0 {
		t.Fatalf("%d tasks after a refused request, want 0", n)
	}
	added := map[string]bool{}
	for _, ev := range events.until(func(ev api.Event) bool { return ev.Kind == api.EventRemoved }) {
		if ev.Kind == api.EventAdded {
			added[ev.TaskID] = true
		}
		if ev.Kind == api.EventRemoved && !added[ev.TaskID] {
			t.Errorf("removed event for %s, which was never added", ev.TaskID)
		}
	}
}
