// Package client is the Go client of durl's daemon (durl serve): it sends
// the requests and reads the answers that package api defines.
//
// Dial connects to the daemon of a state folder through its Unix socket;
// New connects to a daemon listening on TCP, with a bearer token. Every
// method takes a context, which bounds the request. An error answer of the
// daemon is an *Error, with the API's stable code.
//
//	c, err := client.Dial(stateDir)
//	if errors.Is(err, client.ErrNoDaemon) {
//		// err says how to start one
//	}
//	tasks, err := c.Add(ctx, api.Download{URL: "https://example.com/big.iso"})
//	...
//	done, err := c.Wait(ctx, tasks[0].ID)
//
// Events follows the daemon's event stream, reconnecting by itself; Wait
// blocks until tasks stop, without missing an end that happens while it
// starts.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/durl-dev/durl/api"
)

// ErrNoDaemon is wrapped by the error of Dial, and of any request through
// the Unix socket, when no daemon listens on the socket: it is missing or
// refuses connections.
var ErrNoDaemon = errors.New("no durl daemon is running")

// unixBaseURL is the base URL of requests through a Unix socket; its host
// is never resolved.
const unixBaseURL = "http://durl"

// dialTimeout bounds Dial's check that the daemon is listening.
const dialTimeout = 5 * time.Second

// maxAnswerBytes bounds the answers read, so that a wrong server cannot
// exhaust memory; maxErrorBytes bounds an error answer.
const (
	maxAnswerBytes = 64 << 20
	maxErrorBytes  = 64 << 10
)

// Client talks to one durl daemon. It is safe for concurrent use.
type Client struct {
	base     string // the base URL, without a trailing slash
	token    string // the bearer token, "" for none
	hc       *http.Client
	stateDir string // through a Unix socket: its state folder; "" over TCP
}

// Dial returns a client of the daemon of the state folder stateDir,
// through its Unix socket (api.SocketName in stateDir), after checking
// that the daemon is listening. If the socket is missing or refuses
// connections, the error wraps ErrNoDaemon and says how to start a daemon.
func Dial(stateDir string) (*Client, error) {
	socket := filepath.Join(stateDir, api.SocketName)
	conn, err := net.DialTimeout("unix", socket, dialTimeout)
	if err != nil {
		if isNoListener(err) {
			return nil, noDaemonError(stateDir)
		}
		return nil, fmt.Errorf("cannot connect to the durl daemon at %s: %w", socket, err)
	}
	conn.Close()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: unixBaseURL, hc: &http.Client{Transport: tr}, stateDir: stateDir}, nil
}

// New returns a client of the daemon listening at baseURL, such as
// http://127.0.0.1:7777, that sends token as its bearer token ("" sends
// none). A baseURL without a scheme is taken as http.
func New(baseURL, token string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: &http.Client{}}
}

// noDaemonError is the error wrapping ErrNoDaemon for stateDir.
func noDaemonError(stateDir string) error {
	return fmt.Errorf("%w for state folder %s; start one with: durl serve --state %s",
		ErrNoDaemon, stateDir, shellQuote(stateDir))
}

// isNoListener reports whether err is the failure to connect to a Unix
// socket that is missing or that no process listens on.
func isNoListener(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters, so that the command in ErrNoDaemon's message can be pasted.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Error is an error answer of the daemon: a 4xx or 5xx status with an
// api.ErrorResponse.
type Error struct {
	Status  int    // the HTTP status code
	Code    string // one of the api.Code constants; "" when the answer had none
	Message string // for people
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (api.Version, error) {
	var v api.Version
	err := c.do(ctx, http.MethodGet, api.PathVersion, nil, nil, &v)
	return v, err
}

// Add adds downloads, all of them or, if the daemon refuses one, none, and
// returns the new tasks in the order given.
func (c *Client) Add(ctx context.Context, downloads ...api.Download) ([]api.Task, error) {
	var resp api.AddResponse
	err := c.do(ctx, http.MethodPost, api.PathTasks, nil, api.AddRequest{Downloads: downloads}, &resp)
	return resp.Tasks, err
}

// List returns one page of the tasks that match q, oldest first; pass the
// page's Next as the next q.After to read the following one.
func (c *Client) List(ctx context.Context, q api.ListQuery) (api.TaskList, error) {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var list api.TaskList
	err := c.do(ctx, http.MethodGet, api.PathTasks, v, nil, &list)
	return list, err
}

// Task returns the task id.
func (c *Client) Task(ctx context.Context, id string) (api.Task, error) {
	return c.taskCall(ctx, http.MethodGet, api.PathTask, id, nil, nil)
}

// Pause pauses the task id and returns it.
func (c *Client) Pause(ctx context.Context, id string) (api.Task, error) {
	return c.taskCall(ctx, http.MethodPost, api.PathPause, id, nil, nil)
}

// Resume resumes the paused, failed or interrupted task id and returns it.
func (c *Client) Resume(ctx context.Context, id string) (api.Task, error) {
	return c.taskCall(ctx, http.MethodPost, api.PathResume, id, nil, nil)
}

// Cancel stops the task id for good, removing its partial data, and
// returns it.
func (c *Client) Cancel(ctx context.Context, id string) (api.Task, error) {
	return c.taskCall(ctx, http.MethodPost, api.PathCancel, id, nil, nil)
}

// Remove forgets the task id and returns it as it was; with deleteData it
// also deletes the task's partial or downloaded file.
func (c *Client) Remove(ctx context.Context, id string, deleteData bool) (api.Task, error) {
	var q url.Values
	if deleteData {
		q = url.Values{"delete_data": {"true"}}
	}
	return c.taskCall(ctx, http.MethodDelete, api.PathTask, id, q, nil)
}

// Update changes the fields of the task id that p gives and returns the
// task.
func (c *Client) Update(ctx context.Context, id string, p api.TaskPatch) (api.Task, error) {
	return c.taskCall(ctx, http.MethodPatch, api.PathTask, id, nil, p)
}

// PauseAll pauses every task and returns the daemon's statistics.
func (c *Client) PauseAll(ctx context.Context) (api.Stats, error) {
	var s api.Stats
	err := c.do(ctx, http.MethodPost, api.PathPauseAll, nil, nil, &s)
	return s, err
}

// ResumeAll resumes every paused task and returns the daemon's statistics.
func (c *Client) ResumeAll(ctx context.Context) (api.Stats, error) {
	var s api.Stats
	err := c.do(ctx, http.MethodPost, api.PathResumeAll, nil, nil, &s)
	return s, err
}

// Stats returns the daemon's statistics, with the ID of its newest event.
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var s api.Stats
	err := c.do(ctx, http.MethodGet, api.PathStats, nil, nil, &s)
	return s, err
}

// Limits returns the daemon's queue settings.
func (c *Client) Limits(ctx context.Context) (api.Limits, error) {
	var l api.Limits
	err := c.do(ctx, http.MethodGet, api.PathLimits, nil, nil, &l)
	return l, err
}

// SetLimits changes the settings that l gives (nil fields are kept) and
// returns them all.
func (c *Client) SetLimits(ctx context.Context, l api.Limits) (api.Limits, error) {
	var out api.Limits
	err := c.do(ctx, http.MethodPatch, api.PathLimits, nil, l, &out)
	return out, err
}

// taskCall sends a request to the path pattern of one task and returns the
// task answered.
func (c *Client) taskCall(ctx context.Context, method, pattern, id string, q url.Values, in any) (api.Task, error) {
	var t api.Task
	if id == "" {
		return t, errors.New("no task ID given")
	}
	path := strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
	err := c.do(ctx, method, path, q, in, &t)
	return t, err
}

// do sends a request with the JSON body in (none when nil) and decodes the
// JSON answer into out (discarded when nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	req, err := c.newRequest(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	body := io.LimitReader(resp.Body, maxAnswerBytes)
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, err = io.Copy(io.Discard, body)
		return err
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("cannot read the daemon's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// newRequest builds a request with the token and, when in is not nil, its
// JSON body.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, in any) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("bad daemon URL %q: %w", c.base, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// transportError explains the failure of a request that got no answer.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	if c.stateDir != "" {
		if isNoListener(err) {
			return noDaemonError(c.stateDir)
		}
		return fmt.Errorf("cannot talk to the durl daemon of state folder %s: %w", c.stateDir, err)
	}
	return fmt.Errorf("cannot talk to the durl daemon at %s: %w", c.base, err)
}

// decodeError returns the *Error of an error answer.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var er api.ErrorResponse
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, &er) == nil {
		e.Code, e.Message = er.Error.Code, er.Error.Message
	}
	if e.Message == "" {
		e.Message = "the daemon answered " + resp.Status
	}
	return e
}
