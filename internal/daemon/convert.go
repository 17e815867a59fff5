package daemon

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
)

// taskJSON describes the task t as the API does.
func taskJSON(t *durl.Task) api.Task {
	req := t.Request()
	state := t.State()
	p := t.Progress()
	at := api.Task{
		ID:          t.ID(),
		URL:         req.URL,
		Mirrors:     req.Mirrors,
		Path:        t.Path(),
		State:       state.String(),
		Priority:    t.Priority(),
		Written:     p.Written,
		Total:       p.Total,
		RateLimit:   t.RateLimit(),
		Connections: req.Connections,
		Checksum:    req.Checksum,
		Created:     t.Created(),
	}
	if state == durl.Running {
		at.Rate = p.Rate
	}
	if req.DestIsDir {
		at.Dir = req.Dest
	}
	if state == durl.Failed {
		if err := t.Err(); err != nil {
			at.Error = failure(err)
		}
	}
	return at
}

// eventJSON converts an event of the library; the event log gives it its
// ID. A run stopped because the daemon stops is not paused for good: the
// next start resumes it, so its event is an interrupted one.
func eventJSON(e durl.Event) api.Event {
	ev := api.Event{
		Time:    e.Time,
		Kind:    e.Kind.String(),
		TaskID:  e.TaskID,
		URL:     e.URL,
		Path:    e.Path,
		State:   e.State.String(),
		Written: e.Progress.Written,
		Total:   e.Progress.Total,
		Rate:    e.Progress.Rate,
		Reason:  e.Reason,
	}
	switch {
	case e.Kind == durl.EventPaused && errors.Is(e.Err, durl.ErrSessionClosed):
		ev.Kind, ev.State = api.EventInterrupted, api.StateInterrupted
		ev.Reason = "the daemon stopped; its next start resumes the download"
	case e.Err != nil && (e.Kind == durl.EventFailed || e.Kind == durl.EventRetrying):
		ev.Error = failure(e.Err)
	}
	return ev
}

// failure describes why a task failed (or an attempt did): a stable code
// and the library's message.
func failure(err error) *api.Error {
	var te *durl.TaskError
	if errors.As(err, &te) && te.Err != nil {
		err = te.Err // the message without the URL, which the task names
	}
	return &api.Error{Code: failureCode(err), Message: message(err)}
}

// failureCode classifies the error a task stopped with.
func failureCode(err error) string {
	var (
		disk   *durl.DiskError
		status *durl.StatusError
		netErr net.Error
	)
	switch {
	case errors.Is(err, durl.ErrRemoteChanged):
		return api.CodeRemoteChanged
	case errors.Is(err, durl.ErrChecksumMismatch):
		return api.CodeChecksum
	case errors.Is(err, durl.ErrLocked):
		return api.CodeLocked
	case errors.As(err, &disk), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return api.CodeDisk
	case errors.As(err, &status), errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return api.CodeNetwork
	}
	return api.CodeFailed
}
