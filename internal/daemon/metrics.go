package daemon

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// requestCounter counts the API's answers by HTTP status.
type requestCounter struct {
	mu     sync.Mutex
	counts map[int]uint64
}

// add counts one answer with this status.
func (c *requestCounter) add(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[int]uint64{}
	}
	c.counts[status]++
}

// snapshot returns the counts so far.
func (c *requestCounter) snapshot() map[int]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// metrics answers GET /metrics in the Prometheus text format (version
// 0.0.4).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	st := s.stats()
	var b bytes.Buffer
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}

	metric("durl_tasks", "gauge", "Tasks the daemon knows, by state.")
	for _, state := range allStates {
		fmt.Fprintf(&b, "durl_tasks{state=%q} %d\n", state, st.Tasks[state])
	}
	metric("durl_download_rate_bytes_per_second", "gauge", "Bytes per second of all running downloads, recent average.")
	fmt.Fprintf(&b, "durl_download_rate_bytes_per_second %g\n", st.Rate)
	metric("durl_bytes_written", "gauge", "Bytes written by the tasks the daemon knows.")
	fmt.Fprintf(&b, "durl_bytes_written %d\n", st.Written)
	metric("durl_event_last_id", "gauge", "ID of the newest event.")
	fmt.Fprintf(&b, "durl_event_last_id %d\n", st.LastID)
	metric("durl_event_clients", "gauge", "Clients reading the event stream.")
	fmt.Fprintf(&b, "durl_event_clients %d\n", st.EventClients)
	metric("durl_uptime_seconds", "gauge", "Seconds since the daemon started.")
	fmt.Fprintf(&b, "durl_uptime_seconds %g\n", st.Uptime)
	metric("durl_limits_max_active", "gauge", "Most downloads running at once; 0 is no limit.")
	fmt.Fprintf(&b, "durl_limits_max_active %d\n", *st.Limits.MaxActive)
	metric("durl_limits_max_conns_per_host", "gauge", "Most connections to one host across all downloads.")
	fmt.Fprintf(&b, "durl_limits_max_conns_per_host %d\n", *st.Limits.MaxConnsPerHost)
	metric("durl_limits_rate_bytes_per_second", "gauge", "Most bytes per second of all downloads; 0 is no limit.")
	fmt.Fprintf(&b, "durl_limits_rate_bytes_per_second %d\n", *st.Limits.RateLimit)

	metric("durl_api_requests_total", "counter", "API requests answered, by HTTP status.")
	counts := s.requests.snapshot()
	codes := make([]int, 0, len(counts))
	for code := range counts {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		fmt.Fprintf(&b, "durl_api_requests_total{code=\"%d\"} %d\n", code, counts[code])
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
	return nil
}
