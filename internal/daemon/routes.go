package daemon

import (
	"net/http"
	"slices"
	"strings"

	"github.com/durl-dev/durl/api"
)

// routes returns the API's paths and methods.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	route(mux, api.PathVersion, methods{"GET": s.version})
	route(mux, api.PathTasks, methods{"GET": s.listTasks, "POST": s.addTasks})
	route(mux, api.PathTask, methods{"GET": s.getTask, "PATCH": s.patchTask, "DELETE": s.deleteTask})
	route(mux, api.PathPause, methods{"POST": s.pauseTask})
	route(mux, api.PathResume, methods{"POST": s.resumeTask})
	route(mux, api.PathCancel, methods{"POST": s.cancelTask})
	route(mux, api.PathPauseAll, methods{"POST": s.pauseAll})
	route(mux, api.PathResumeAll, methods{"POST": s.resumeAll})
	route(mux, api.PathStats, methods{"GET": s.getStats})
	route(mux, api.PathLimits, methods{"GET": s.getLimits, "PATCH": s.patchLimits})
	route(mux, api.PathEvents, methods{"GET": s.events})
	route(mux, api.PathMetrics, methods{"GET": s.metrics})
	mux.Handle("/", apiFunc(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no such path %s; the API's paths start with /v1/", r.URL.Path)
	}))
	return mux
}

// methods maps the HTTP methods of a path to their handlers.
type methods map[string]apiFunc

// route registers each method of path ("GET /v1/tasks"), and answers the
// other methods with 405 and the Allow header.
func route(mux *http.ServeMux, path string, m methods) {
	var allowed []string
	for method, h := range m {
		mux.Handle(method+" "+path, h)
		allowed = append(allowed, method)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	mux.Handle(path, apiFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return errorf(http.StatusMethodNotAllowed, api.CodeMethod, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)
	}))
}

// instrument counts the answers by status and answers 503 once the daemon
// is stopping.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		if s.isStopping() {
			writeError(sw, errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the daemon is stopping; try again once it is restarted"))
		} else {
			next.ServeHTTP(sw, r)
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.requests.add(sw.status)
	})
}

// statusWriter remembers the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and sends it.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sends body bytes; the status is then 200 unless set before.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (to
// flush the event stream and set deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
