package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/daemon/daemontest"
)

// testContext returns a context that ends with the test, or after 10 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialNoDaemon(t *testing.T) {
	dir := daemontest.StateDir(t)
	want := "no durl daemon is running for state folder " + dir + "; start one with: durl serve --state " + dir

	_, err := Dial(dir)
	if !errors.Is(err, ErrNoDaemon) || err.Error() != want {
		t.Errorf("missing socket: got %v\nwant %s", err, want)
	}

	// A socket left by a daemon that died refuses connections.
	l, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, api.SocketName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(dir); !errors.Is(err, ErrNoDaemon) || err.Error() != want {
		t.Errorf("stale socket: got %v\nwant %s", err, want)
	}

	// The command in the message can be pasted into a shell.
	err = noDaemonError("/tmp/my state")
	if got := err.Error(); got != "no durl daemon is running for state folder /tmp/my state; start one with: durl serve --state '/tmp/my state'" {
		t.Errorf("quoted: %s", got)
	}
}

func TestUnixSocket(t *testing.T) {
	f := daemontest.New()
	dir := f.ServeUnix(t)
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	v, err := c.Version(ctx)
	if err != nil || v != (api.Version{Version: "1.2.3", API: 1}) {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	tasks, err := c.Add(ctx, api.Download{URL: "https://example.com/a"}, api.Download{URL: "https://example.com/b"})
	if err != nil || len(tasks) != 2 || tasks[0].ID != "t1" || tasks[1].URL != "https://example.com/b" {
		t.Fatalf("Add = %+v, %v", tasks, err)
	}
	task, err := c.Task(ctx, "t2")
	if err != nil || task.ID != "t2" || task.State != api.StateQueued {
		t.Fatalf("Task = %+v, %v", task, err)
	}
}

func TestDaemonGoneAfterDial(t *testing.T) {
	dir := daemontest.StateDir(t)
	l, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: daemontest.New().Handler()}
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(testContext(t)); err != nil {
		t.Fatal(err)
	}
	srv.Close() // removes the socket
	<-served
	_, err = c.Stats(testContext(t))
	if !errors.Is(err, ErrNoDaemon) {
		t.Errorf("got %v, want ErrNoDaemon", err)
	}
}

func TestTokenOverTCP(t *testing.T) {
	f := daemontest.New()
	f.Token = "s3cret"
	url := f.ServeTCP(t)
	ctx := testContext(t)

	_, err := New(url, "wrong").Stats(ctx)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != api.CodeUnauthorized || err.Error() != "missing or wrong token" {
		t.Errorf("wrong token: %#v", err)
	}
	if _, err := New(url+"/", "s3cret").Stats(ctx); err != nil {
		t.Errorf("right token: %v", err)
	}
}

func TestErrorDecoding(t *testing.T) {
	f := daemontest.New()
	url := f.ServeTCP(t)
	ctx := testContext(t)
	c := New(url, "")

	_, err := c.Pause(ctx, "nope")
	var ae *Error
	if !errors.As(err, &ae) || *ae != (Error{Status: 404, Code: api.CodeNotFound, Message: "no task nope"}) {
		t.Errorf("404: %#v", err)
	}

	// An answer that is not the API's: the status says what happened.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err = New(srv.URL, "").Stats(ctx)
	if !errors.As(err, &ae) || *ae != (Error{Status: 502, Message: "the daemon answered 502 Bad Gateway"}) {
		t.Errorf("502: %#v", err)
	}

	// Not JSON on success.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}))
	defer srv2.Close()
	if _, err := New(srv2.URL, "").Stats(ctx); err == nil {
		t.Error("no error for an answer that is not JSON")
	}

	// Nobody listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := New(addr, "").Stats(ctx); err == nil || errors.Is(err, ErrNoDaemon) {
		t.Errorf("closed port: %v", err)
	}
}

func TestRequests(t *testing.T) {
	f := daemontest.New()
	url := f.ServeTCP(t)
	ctx := testContext(t)
	c := New(url, "")
	f.Add(api.Task{URL: "https://example.com/a", State: api.StateRunning})
	f.Add(api.Task{URL: "https://example.com/b", State: api.StateCompleted})

	prio, rate := 5, int64(1024)
	steps := []func() error{
		func() error {
			_, err := c.Update(ctx, "t1", api.TaskPatch{Priority: &prio, RateLimit: &rate})
			return err
		},
		func() error { _, err := c.Pause(ctx, "t1"); return err },
		func() error { _, err := c.Resume(ctx, "t1"); return err },
		func() error { _, err := c.Cancel(ctx, "t1"); return err },
		func() error {
			_, err := c.List(ctx, api.ListQuery{State: "running,queued", After: "t0", Limit: 10})
			return err
		},
		func() error { _, err := c.PauseAll(ctx); return err },
		func() error { _, err := c.ResumeAll(ctx); return err },
		func() error {
			n := 2
			l, err := c.SetLimits(ctx, api.Limits{MaxActive: &n})
			if err == nil && (l.MaxActive == nil || *l.MaxActive != 2) {
				err = errors.New("SetLimits answered the wrong limits")
			}
			return err
		},
		func() error { _, err := c.Limits(ctx); return err },
		func() error { _, err := c.Remove(ctx, "t2", true); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []string{
		`PATCH /v1/tasks/t1 {"priority":5,"rate_limit":1024}`,
		"POST /v1/tasks/t1/pause",
		"POST /v1/tasks/t1/resume",
		"POST /v1/tasks/t1/cancel",
		"GET /v1/tasks?after=t0&limit=10&state=running%2Cqueued",
		"POST /v1/pause-all",
		"POST /v1/resume-all",
		`PATCH /v1/limits {"max_active":2}`,
		"GET /v1/limits",
		"DELETE /v1/tasks/t2?delete_data=true",
	}
	if got := f.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n got %q\nwant %q", got, want)
	}
	if _, err := c.Task(ctx, ""); err == nil {
		t.Error("no error for an empty ID")
	}
}

func TestListPages(t *testing.T) {
	f := daemontest.New()
	c := New(f.ServeTCP(t), "")
	for _, u := range []string{"a", "b", "c"} {
		f.Add(api.Task{URL: "https://example.com/" + u, State: api.StateQueued})
	}
	ctx := testContext(t)
	var ids []string
	q := api.ListQuery{}
	for {
		page, err := c.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page.Tasks {
			ids = append(ids, task.ID)
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if !reflect.DeepEqual(ids, []string{"t1", "t2", "t3"}) {
		t.Errorf("ids %q", ids)
	}
}
