package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
)

// apiError is an error answer: an HTTP status, a stable code (one of
// api.Code*) and a message saying what to do.
type apiError struct {
	status  int
	code    string
	message string
}

// Error returns the message.
func (e *apiError) Error() string { return e.message }

// errorf returns an *apiError with a formatted message.
func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// badRequest returns a 400 bad_request error.
func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, api.CodeInternal, "cannot encode the answer: %v", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError answers with err as an api.ErrorResponse. An error that is not
// an *apiError is an internal one.
func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = errorf(http.StatusInternalServerError, api.CodeInternal, "%s", message(err))
	}
	writeJSON(w, e.status, api.ErrorResponse{Error: api.Error{Code: e.code, Message: e.message}})
}

// apiFunc is a handler that returns its error instead of writing it.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP runs f and answers its error, if any.
func (f apiFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		writeError(w, err)
	}
}

// taskError maps an error of a task operation (pause, resume, cancel,
// remove, a change of priority or rate) of the library to an answer.
func taskError(id string, err error) *apiError {
	var disk *durl.DiskError
	switch {
	case errors.Is(err, durl.ErrSessionClosed):
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the daemon is stopping; try again once it is restarted")
	case errors.Is(err, durl.ErrLocked):
		return errorf(http.StatusConflict, api.CodeConflict, "task %s is running in another durl process; stop that one first", id)
	case errors.Is(err, durl.ErrNotResumable):
		return errorf(http.StatusConflict, api.CodeConflict, "task %s cannot do that now: it completed or was cancelled", id)
	case errors.Is(err, durl.ErrOutsideAllowedDirs):
		return errorf(http.StatusForbidden, api.CodeForbidden, "%s", message(err))
	case errors.As(err, &disk):
		return errorf(http.StatusInternalServerError, api.CodeInternal, "%s; free some space or fix the folder, then try again", message(err))
	}
	return errorf(http.StatusInternalServerError, api.CodeInternal, "task %s: %s", id, message(err))
}

// startError maps an error of Session.Start to an answer. Start checks the
// request again; what it refuses that the daemon did not is a bad request.
func startError(url string, err error) *apiError {
	var disk *durl.DiskError
	switch {
	case errors.Is(err, durl.ErrSessionClosed):
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the daemon is stopping; add the downloads again once it is restarted")
	case errors.Is(err, durl.ErrOutsideAllowedDirs):
		return errorf(http.StatusForbidden, api.CodeForbidden, "%s: %s; choose a destination inside the daemon's download folders", url, message(err))
	case errors.Is(err, durl.ErrLocked):
		return errorf(http.StatusConflict, api.CodeConflict, "%s: %s; stop that download first", url, message(err))
	case errors.As(err, &disk):
		return errorf(http.StatusInternalServerError, api.CodeInternal, "%s: %s; free some space or fix the folder, then try again", url, message(err))
	}
	return badRequest("%s: %s", url, message(err))
}

// message is err's text without the "durl: " prefixes of the library.
func message(err error) string {
	s := err.Error()
	for {
		t, ok := strings.CutPrefix(s, "durl: ")
		if !ok {
			return s
		}
		s = t
	}
}
