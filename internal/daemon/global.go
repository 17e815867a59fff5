package daemon

import (
	"net/http"
	"sync"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
)

// APIVersion is the version of the API the daemon serves.
const APIVersion = 1

// allWorkers is how many tasks pause-all and resume-all handle at once.
const allWorkers = 16

// version answers GET /v1/version.
func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Version{Version: durl.Version, API: APIVersion})
	return nil
}

// getStats answers GET /v1/stats.
func (s *Server) getStats(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.stats())
	return nil
}

// stats counts the tasks by state and sums their progress.
func (s *Server) stats() api.Stats {
	st := api.Stats{
		Tasks:        make(map[string]int, len(allStates)),
		LastID:       s.log.LastID(),
		Uptime:       time.Since(s.started).Seconds(),
		Limits:       limitsJSON(s.session.Limits()),
		Version:      durl.Version,
		EventClients: int(s.clients.Load()),
	}
	for _, name := range allStates {
		st.Tasks[name] = 0
	}
	for _, t := range s.session.Tasks() {
		state := t.State()
		p := t.Progress()
		st.Tasks[state.String()]++
		st.Written += p.Written
		if state == durl.Running {
			st.Rate += p.Rate
		}
	}
	return st
}

// limitsJSON describes the session's limits as the API does.
func limitsJSON(l durl.Limits) api.Limits {
	return api.Limits{MaxActive: &l.MaxActive, MaxConnsPerHost: &l.MaxConnsPerHost, RateLimit: &l.RateLimit}
}

// getLimits answers GET /v1/limits.
func (s *Server) getLimits(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, limitsJSON(s.session.Limits()))
	return nil
}

// patchLimits answers PATCH /v1/limits: the limits given change at once.
func (s *Server) patchLimits(w http.ResponseWriter, r *http.Request) error {
	var p api.Limits
	if err := decodeJSON(w, r, &p); err != nil {
		return err
	}
	switch {
	case p.MaxActive != nil && *p.MaxActive < 0:
		return badRequest("max_active must be 0 (no limit) or more")
	case p.MaxConnsPerHost != nil && *p.MaxConnsPerHost < 0:
		return badRequest("max_conns_per_host must be 0 (the default, 16) or more")
	case p.RateLimit != nil && *p.RateLimit < 0:
		return badRequest("rate_limit must be 0 (no limit) or more bytes per second")
	}
	s.limitsMu.Lock()
	l := s.session.Limits()
	if p.MaxActive != nil {
		l.MaxActive = *p.MaxActive
	}
	if p.MaxConnsPerHost != nil {
		l.MaxConnsPerHost = *p.MaxConnsPerHost
	}
	if p.RateLimit != nil {
		l.RateLimit = *p.RateLimit
	}
	s.session.SetLimits(l)
	s.limitsMu.Unlock()
	writeJSON(w, http.StatusOK, limitsJSON(s.session.Limits()))
	return nil
}

// pauseAll answers POST /v1/pause-all: every queued or running task is
// paused (and stays paused across restarts until resumed).
func (s *Server) pauseAll(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	s.forEach(func(t *durl.Task) {
		if t.State().Active() {
			t.Pause() // a task that ended meanwhile, or runs elsewhere, refuses
		}
	})
	writeJSON(w, http.StatusOK, s.stats())
	return nil
}

// resumeAll answers POST /v1/resume-all: every paused or interrupted task
// is resumed. Failed tasks are left for a client to resume one by one.
func (s *Server) resumeAll(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	s.forEach(func(t *durl.Task) {
		if st := t.State(); st == durl.Paused || st == durl.Interrupted {
			s.resume(t) // one that cannot resume stays as it is
		}
	})
	writeJSON(w, http.StatusOK, s.stats())
	return nil
}

// forEach calls fn for every task, several at once, and waits.
func (s *Server) forEach(fn func(*durl.Task)) {
	tasks := make(chan *durl.Task)
	var wg sync.WaitGroup
	for range allWorkers {
		wg.Go(func() {
			for t := range tasks {
				fn(t)
			}
		})
	}
	for _, t := range s.session.Tasks() {
		tasks <- t
	}
	close(tasks)
	wg.Wait()
}
