package daemon

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
)

// Paging of GET /v1/tasks.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// startWorkers is how many downloads of one AddRequest are created at
// once: each makes a durable record, so doing them side by side is faster.
const startWorkers = 16

// addTasks answers POST /v1/tasks: every download is checked before any is
// added, and if one cannot be started the ones this request created are
// removed again.
func (s *Server) addTasks(w http.ResponseWriter, r *http.Request) error {
	var body api.AddRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if len(body.Downloads) == 0 {
		return badRequest("no downloads given: send {\"downloads\": [{\"url\": ...}]}")
	}
	reqs := make([]durl.Request, len(body.Downloads))
	for i, d := range body.Downloads {
		req, err := s.toRequest(d, i)
		if err != nil {
			return err
		}
		reqs[i] = req
	}
	tasks, err := s.startAll(reqs, body.Downloads)
	if err != nil {
		return err
	}
	out := api.AddResponse{Tasks: make([]api.Task, len(tasks))}
	for i, t := range tasks {
		out.Tasks[i] = taskJSON(t)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// startAll starts the requests (or only adds those of paused downloads),
// several at once. If one fails, the tasks the others created are
// removed, with their data, and the first error (in the order given) is
// returned. A request for a download the session already holds unfinished
// continues that task, which is kept.
func (s *Server) startAll(reqs []durl.Request, downloads []api.Download) ([]*durl.Task, error) {
	begin := time.Now()
	tasks := make([]*durl.Task, len(reqs))
	errs := make([]error, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(startWorkers, len(reqs)) {
		wg.Go(func() {
			for i := range next {
				if downloads[i].Paused {
					tasks[i], errs[i] = s.session.Add(reqs[i])
				} else {
					tasks[i], errs[i] = s.session.Start(reqs[i])
				}
			}
		})
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		// Undo the tasks this request created (their "added" events are
		// in the log; Remove logs that they are gone).
		for _, t := range tasks {
			if t != nil && !t.Created().Before(begin) {
				t.Remove(true)
			}
		}
		return nil, startError(reqs[i].URL, err)
	}
	return tasks, nil
}

// listTasks answers GET /v1/tasks: a page of the tasks, oldest first,
// filtered by state.
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	all := s.session.Tasks()
	start := 0
	if q.After != "" {
		i := indexOf(all, q.After)
		if i < 0 {
			return errorf(http.StatusNotFound, api.CodeNotFound, "no task %s to list after: it was removed; list again from the start", q.After)
		}
		start = i + 1
	}
	list := api.TaskList{Tasks: []api.Task{}}
	for i, t := range all {
		if len(q.states) > 0 && !q.states[t.State().String()] {
			continue
		}
		list.Total++
		switch {
		case i < start:
		case len(list.Tasks) < q.Limit:
			list.Tasks = append(list.Tasks, taskJSON(t))
		case list.Next == "":
			list.Next = list.Tasks[len(list.Tasks)-1].ID
		}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// listQuery is the parsed query of GET /v1/tasks.
type listQuery struct {
	api.ListQuery
	states map[string]bool // nil: every state
}

// allStates are the states a task can be in.
var allStates = []string{api.StateQueued, api.StateRunning, api.StatePaused, api.StateInterrupted,
	api.StateCompleted, api.StateFailed, api.StateCancelled}

// parseListQuery checks the query parameters of GET /v1/tasks.
func parseListQuery(v url.Values) (listQuery, error) {
	q := listQuery{ListQuery: api.ListQuery{Limit: defaultPageSize}}
	if err := onlyParams(v, "state", "after", "limit"); err != nil {
		return q, err
	}
	if st := v.Get("state"); st != "" {
		q.states = map[string]bool{}
		for _, name := range strings.Split(st, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(allStates, name) {
				return q, badRequest("state %q is not a task state; use %s", name, strings.Join(allStates, ", "))
			}
			q.states[name] = true
		}
		q.State = st
	}
	if q.After = v.Get("after"); q.After != "" && !validID(q.After) {
		return q, badRequest("after=%q is not a task ID", q.After)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, badRequest("limit=%q: want a number from 1 to %d", l, maxPageSize)
		}
		q.Limit = min(n, maxPageSize)
	}
	return q, nil
}

// onlyParams refuses query parameters other than names, and parameters
// given twice.
func onlyParams(v url.Values, names ...string) error {
	for k, vals := range v {
		if !slices.Contains(names, k) {
			if len(names) == 0 {
				return badRequest("unknown query parameter %q: this path takes none", k)
			}
			return badRequest("unknown query parameter %q; use %s", k, strings.Join(names, ", "))
		}
		if len(vals) > 1 {
			return badRequest("the query parameter %q is given %d times; give it once", k, len(vals))
		}
	}
	return nil
}

// indexOf returns the index of the task with this ID, or -1.
func indexOf(tasks []*durl.Task, id string) int {
	for i, t := range tasks {
		if t.ID() == id {
			return i
		}
	}
	return -1
}

// task returns the task named by the path's {id}: 400 for a malformed ID,
// 404 for an unknown one.
func (s *Server) task(r *http.Request) (*durl.Task, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, badRequest("%q is not a task ID (lower-case hexadecimal)", id)
	}
	t, ok := s.session.Task(id)
	if !ok {
		return nil, errorf(http.StatusNotFound, api.CodeNotFound, "no task %s: it was never added, or was removed or cancelled", id)
	}
	return t, nil
}

// getTask answers GET /v1/tasks/{id}.
func (s *Server) getTask(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	t, err := s.task(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}

// patchTask answers PATCH /v1/tasks/{id}: a new priority or rate limit.
func (s *Server) patchTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.task(r)
	if err != nil {
		return err
	}
	var p api.TaskPatch
	if err := decodeJSON(w, r, &p); err != nil {
		return err
	}
	switch {
	case p.Priority != nil && (*p.Priority < api.MinPriority || *p.Priority > api.MaxPriority):
		return badRequest("priority must be from %d to %d", api.MinPriority, api.MaxPriority)
	case p.RateLimit != nil && *p.RateLimit < 0:
		return badRequest("rate_limit must be 0 (no limit) or more bytes per second")
	}
	if p.Priority != nil {
		if err := t.SetPriority(*p.Priority); err != nil {
			return taskError(t.ID(), err)
		}
	}
	if p.RateLimit != nil {
		if err := t.SetRateLimit(*p.RateLimit); err != nil {
			return taskError(t.ID(), err)
		}
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}

// deleteTask answers DELETE /v1/tasks/{id}[?delete_data=true]: the task is
// stopped and forgotten; with delete_data its partial or downloaded file is
// removed too.
func (s *Server) deleteTask(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "delete_data"); err != nil {
		return err
	}
	deleteData := false
	if v := q.Get("delete_data"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("delete_data=%q: want true or false", v)
		}
		deleteData = b
	}
	t, err := s.task(r)
	if err != nil {
		return err
	}
	if err := t.Remove(deleteData); err != nil { // logs "removed"
		return taskError(t.ID(), err)
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}

// pauseTask answers POST /v1/tasks/{id}/pause. Pausing a paused task is
// not an error.
func (s *Server) pauseTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.task(r)
	if err != nil {
		return err
	}
	if _, err := t.Pause(); err != nil {
		return taskError(t.ID(), err)
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}

// resumeTask answers POST /v1/tasks/{id}/resume. Resuming a queued or
// running task is not an error.
func (s *Server) resumeTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.task(r)
	if err != nil {
		return err
	}
	if err := s.resume(t); err != nil {
		return taskError(t.ID(), err)
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}

// resume resumes t, unless it is queued or running already, and logs
// that a client resumed it.
func (s *Server) resume(t *durl.Task) error {
	if t.State().Active() {
		return nil
	}
	if err := t.Resume(); err != nil {
		if t.State().Active() {
			return nil // resumed by another request meanwhile
		}
		return err
	}
	at := taskJSON(t)
	s.log.Append(api.Event{Kind: api.EventResumed, TaskID: at.ID, URL: at.URL, Path: at.Path, State: at.State,
		Written: at.Written, Total: at.Total})
	return nil
}

// cancelTask answers POST /v1/tasks/{id}/cancel: the task stops and its
// partial data is removed. A completed task cannot be cancelled; DELETE
// forgets it.
func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request) error {
	t, err := s.task(r)
	if err != nil {
		return err
	}
	if t.State() == durl.Completed {
		return errorf(http.StatusConflict, api.CodeConflict, "task %s is completed, there is nothing to cancel; DELETE it to forget it", t.ID())
	}
	if err := t.Cancel(); err != nil {
		return taskError(t.ID(), err)
	}
	writeJSON(w, http.StatusOK, taskJSON(t))
	return nil
}
