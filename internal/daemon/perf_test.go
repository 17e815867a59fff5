package daemon

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/durltest"
)

// perfEnabled skips the performance tests unless DURL_PERF=1: they take
// tens of seconds, and their numbers mean little under the race detector.
func perfEnabled(t *testing.T) {
	if os.Getenv("DURL_PERF") != "1" {
		t.Skip("set DURL_PERF=1 to run the performance tests")
	}
}

// TestPerfTenThousandTasks adds 10,000 tasks through the API, with fsync,
// then checks that a restart serves the API in under a second.
func TestPerfTenThousandTasks(t *testing.T) {
	perfEnabled(t)
	state, dl := testDirs(t)
	src := slowSource(t)
	withSync := func(c *Config) { c.NoSync = false; c.MaxActive = 1 }
	d := startDaemon(t, state, dl, withSync)
	start := time.Now()
	const total, batch = 10_000, 500
	for b := 0; b < total/batch; b++ {
		var downloads []api.Download
		for i := range batch {
			downloads = append(downloads, api.Download{URL: fmt.Sprintf("%s/%d-%d.bin", src.URL, b, i), Paused: true})
		}
		d.add(downloads...)
	}
	t.Logf("added %d tasks in %v", total, time.Since(start))
	start = time.Now()
	var list api.TaskList
	d.call("GET", api.PathTasks+"?limit=1000&state=paused", nil, http.StatusOK, &list)
	t.Logf("listed a page of %d of %d in %v", len(list.Tasks), list.Total, time.Since(start))
	if list.Total != total {
		t.Fatalf("%d tasks, want %d", list.Total, total)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	d = startDaemon(t, state, dl, withSync)
	d.call("GET", api.PathStats, nil, http.StatusOK, nil)
	took := time.Since(start)
	t.Logf("restart with %d tasks served the API after %v", total, took)
	if took > time.Second {
		t.Errorf("the restart took %v, want under 1 s", took)
	}
}

// TestPerfMemory runs 50 downloads with 1,000 more queued and checks the
// process's resident memory.
func TestPerfMemory(t *testing.T) {
	perfEnabled(t)
	state, dl := testDirs(t)
	src := durltest.NewServer(durltest.WithContent(1, 64<<20), durltest.WithRate(64<<10))
	defer src.Close()
	d := startDaemon(t, state, dl, func(c *Config) { c.MaxActive = 50; c.MaxConnsPerHost = 64 })
	for b := range 21 {
		var downloads []api.Download
		for i := range 50 {
			downloads = append(downloads, api.Download{URL: fmt.Sprintf("%s/%d-%d.bin", src.URL, b, i)})
		}
		d.add(downloads...)
	}
	waitFor(t, "50 running", func() bool {
		var st api.Stats
		d.call("GET", api.PathStats, nil, http.StatusOK, &st)
		return st.Tasks[api.StateRunning] == 50
	})
	time.Sleep(3 * time.Second)
	var st api.Stats
	d.call("GET", api.PathStats, nil, http.StatusOK, &st)
	runtime.GC()
	rss := rssBytes(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use %d MiB, stacks %d MiB, Go total from OS %d MiB, goroutines %d", ms.HeapInuse>>20, ms.StackInuse>>20, ms.Sys>>20, runtime.NumGoroutine())
	t.Logf("%v; resident %d MiB (test, source server and daemon together)", st.Tasks, rss>>20)
	if rss > 100<<20 {
		t.Errorf("resident memory %d MiB, want under 100", rss>>20)
	}
	d.call("POST", api.PathPauseAll, nil, http.StatusOK, nil)
}

// rssBytes returns this process's resident memory.
func rssBytes(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}
