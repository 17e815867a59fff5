package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 5 * time.Second

// newTransport returns the transport under test, built as durl builds it:
// on a clone of http.DefaultTransport, which adjust (if not nil) may change
// first. Its idle connections are closed when the test ends.
func newTransport(t *testing.T, adjust func(tr *http.Transport)) *Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if adjust != nil {
		adjust(tr)
	}
	tt := New(tr)
	t.Cleanup(tt.CloseIdleConnections)
	return tt
}

// idleCount is how many connections to key the transport keeps idle.
func idleCount(tt *Transport, key string) int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.idle[key])
}

// sweeping reports whether the idle-connection sweep is scheduled.
func sweeping(tt *Transport) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.sweep != nil
}

// waitFor polls cond until it holds, and fails the test if it does not
// within waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv returns the next value of ch, and fails the test if none comes
// within waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// get sends a GET for rawURL through c and returns the body, read to its
// end; it fails the test on an error or a status other than 200.
func get(t *testing.T, c *http.Client, rawURL string) string {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", rawURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", rawURL, resp.StatusCode)
	}
	return string(b)
}

// openBodies sends n GETs for rawURL through c, leaving each body unread,
// so that each takes a connection of its own.
func openBodies(t *testing.T, c *http.Client, rawURL string, n int) []*http.Response {
	t.Helper()
	var resps []*http.Response
	for range n {
		resp, err := c.Get(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		resps = append(resps, resp)
	}
	return resps
}

// server is an httptest.Server that counts the connections it accepts and
// closes, and the requests net/http's Transport sent it.
type server struct {
	*httptest.Server
	opened, closed atomic.Int32
	// viaFallback counts the requests with "Accept-Encoding: gzip", which
	// net/http's Transport adds and this package does not.
	viaFallback atomic.Int32
}

// newServer starts a server on 127.0.0.1 running h, closed when the test
// ends.
func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			s.viaFallback.Add(1)
		}
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// key is the server's "host:port", as the transport keys its idle
// connections.
func (s *server) key() string { return s.Listener.Addr().String() }

// rawServer is a TCP server on 127.0.0.1 that runs a handler on each
// connection it accepts, for answers net/http's server would not give.
type rawServer struct {
	ln       net.Listener
	done     chan struct{} // closed when the test ends
	accepted atomic.Int32
	finished atomic.Int32 // handlers returned
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

// newRawServer starts a rawServer running handle(i, c) on its i-th
// connection (from 1) in a goroutine of its own, and closing c after.
// When the test ends it closes the listener and every connection, closes
// done, and waits for the handlers to return.
func newRawServer(t *testing.T, handle func(i int, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := int(s.accepted.Add(1))
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.finished.Add(1)
				defer c.Close()
				handle(i, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(s.done)
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		stopped := make(chan struct{})
		go func() { s.wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(waitTimeout):
			t.Error("the raw server's handlers did not return")
		}
	})
	return s
}

// url is the server's URL for path.
func (s *rawServer) url(path string) string { return "http://" + s.key() + path }

// key is the server's "host:port".
func (s *rawServer) key() string { return s.ln.Addr().String() }

// response is a raw 200 response with body, and extra header lines (each
// ending in "\r\n").
func response(body string, extra ...string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s", len(body), strings.Join(extra, ""), body)
}

// serveEach reads requests from c until that fails, and answers the n-th
// (from 1) with respond's raw response, written at once. It pays no heed
// to "Connection: close".
func serveEach(c net.Conn, respond func(n int, req *http.Request) string) {
	br := bufio.NewReader(c)
	for n := 1; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, respond(n, req)); err != nil {
			return
		}
	}
}

// readRequest reads one request from c, and reports whether it could.
func readRequest(c net.Conn) bool {
	_, err := http.ReadRequest(bufio.NewReader(c))
	return err == nil
}

// stallingServer answers the first connection's request with the header
// of a 100-byte body and its first bytes, part, then stalls until the
// client closes it; later connections answer "fresh" to every request.
func stallingServer(t *testing.T, part string) *rawServer {
	return newRawServer(t, func(i int, c net.Conn) {
		if i > 1 {
			serveEach(c, func(int, *http.Request) string { return response("fresh") })
			return
		}
		if readRequest(c) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"+part)
			io.Copy(io.Discard, c) // returns once the client closes
		}
	})
}

// nextGetIsFresh checks that the stallingServer s saw its first connection
// closed, and that the next GET through c takes a new one.
func nextGetIsFresh(t *testing.T, c *http.Client, s *rawServer) {
	t.Helper()
	waitFor(t, "the server to see the connection closed", func() bool { return s.finished.Load() == 1 })
	if got := get(t, c, s.url("/")); got != "fresh" {
		t.Errorf("next GET = %q", got)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("accepted %d connections, want 2", n)
	}
}

// spyConn is a client connection that tells the test how much the
// transport read from it, when a Read starts and when a deadline is set.
type spyConn struct {
	net.Conn
	read      atomic.Int64
	reading   chan struct{} // gets a value, if it has room, as each Read starts
	deadlined chan struct{} // gets a value, if it has room, at each SetDeadline
}

func (c *spyConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	select {
	case c.deadlined <- struct{}{}:
	default:
	}
	return err
}

func (c *spyConn) Read(p []byte) (int, error) {
	select {
	case c.reading <- struct{}{}:
	default:
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// spyOn makes tr dial spyConns, and sends each on the channel returned.
func spyOn(tr *http.Transport) <-chan *spyConn {
	dial := tr.DialContext
	conns := make(chan *spyConn, 16)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc := &spyConn{Conn: nc, reading: make(chan struct{}, 1), deadlined: make(chan struct{}, 1)}
		select {
		case conns <- sc:
		default:
		}
		return sc, nil
	}
	return conns
}

// Catches: a body read to its end not giving its connection back, or take not finding it.
func TestSequentialGETsReuseOneConnection(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "body of %s", r.URL.Path)
	})
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	for i := range 3 {
		path := fmt.Sprintf("/file%d", i)
		if got, want := get(t, c, s.URL+path), "body of "+path; got != want {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
		if n := idleCount(tt, s.key()); n != 1 {
			t.Fatalf("after GET %d: %d idle connections, want 1", i, n)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("3 GETs opened %d connections, want 1", n)
	}
	if n := s.viaFallback.Load(); n != 0 {
		t.Errorf("%d GETs went to the fallback transport", n)
	}
}

// Catches: Close giving back the connection of a body not read to its end.
func TestBodyClosedEarlyIsNotReused(t *testing.T) {
	// Nothing of the body is left in the buffer at Close, so that only
	// Close decides (the Buffered check would hide a bad one).
	s := stallingServer(t, "0123456789")
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	resp, err := c.Get(s.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := idleCount(tt, s.key()); n != 0 {
		// Fatal: the next GET would wait on the stalled connection.
		t.Fatalf("after a body closed early: %d idle connections, want 0", n)
	}
	nextGetIsFresh(t, c, s)
}

// Catches: a chunked body (with a trailer) misread, or its connection not kept after it.
func TestChunkedResponseThenReuse(t *testing.T) {
	parts := []string{"first part, ", "second part, ", "last part"}
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for _, p := range parts {
			io.WriteString(w, p)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "abc")
	})
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	for i := range 2 {
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), strings.Join(parts, ""); got != want {
			t.Errorf("GET %d: body %q, want %q", i, got, want)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("GET %d: Transfer-Encoding %q, want chunked", i, resp.TransferEncoding)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "abc" {
			t.Errorf("GET %d: trailer X-Sum %q, want abc", i, got)
		}
		if n := idleCount(tt, s.key()); n != 1 {
			t.Errorf("GET %d: %d idle connections, want 1", i, n)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("opened %d connections, want 1", n)
	}
}

// Catches: keep computed without resp.Close, req.Close or DisableKeepAlives.
func TestConnectionCloseIsNotReused(t *testing.T) {
	// The server keeps serving whatever the headers say, so that a
	// connection wrongly kept would serve the second GET.
	cases := []struct {
		name     string
		header   string // extra response header line
		reqClose bool
		disable  bool // tr.DisableKeepAlives
		keep     bool // the connection serves both GETs
	}{
		{name: "keep-alive", keep: true},
		{name: "response Connection: close", header: "Connection: close\r\n"},
		{name: "Request.Close", reqClose: true},
		{name: "DisableKeepAlives", disable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(_ int, c net.Conn) {
				serveEach(c, func(int, *http.Request) string { return response("ok", tc.header) })
			})
			tt := newTransport(t, func(tr *http.Transport) { tr.DisableKeepAlives = tc.disable })
			c := &http.Client{Transport: tt}
			wantIdle, wantConns := 0, int32(2)
			if tc.keep {
				wantIdle, wantConns = 1, 1
			}
			for i := range 2 {
				req, err := http.NewRequest("GET", s.url("/"), nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Close = tc.reqClose
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "ok" {
					t.Fatalf("GET %d: body %q, %v", i, b, err)
				}
				if n := idleCount(tt, s.key()); n != wantIdle {
					t.Errorf("GET %d: %d idle connections, want %d", i, n, wantIdle)
				}
			}
			if n := s.accepted.Load(); n != wantConns {
				t.Errorf("2 GETs took %d connections, want %d", n, wantConns)
			}
		})
	}
}

// Catches: no retry (or a single one) when kept-alive connections were closed by the server.
func TestStaleIdleConnectionIsRetried(t *testing.T) {
	for _, stale := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d stale", stale), func(t *testing.T) {
			// One answer per connection, without "Connection: close";
			// then the server closes it.
			closedConns := make(chan int, 10)
			s := newRawServer(t, func(i int, c net.Conn) {
				if readRequest(c) {
					io.WriteString(c, response(fmt.Sprintf("conn %d", i)))
				}
				c.Close()
				closedConns <- i
			})
			tt := newTransport(t, nil)
			c := &http.Client{Transport: tt}
			resps := openBodies(t, c, s.url("/"), stale)
			for _, resp := range resps {
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if n := idleCount(tt, s.key()); n != stale {
				t.Fatalf("%d idle connections, want %d", n, stale)
			}
			for range stale {
				recv(t, closedConns, "the server to close a connection")
			}
			want := fmt.Sprintf("conn %d", stale+1)
			if got := get(t, c, s.url("/")); got != want {
				t.Errorf("GET after the server closed its connections = %q, want %q", got, want)
			}
			if n := s.accepted.Load(); n != int32(stale+1) {
				t.Errorf("accepted %d connections, want %d", n, stale+1)
			}
		})
	}
}

// Catches: retrying on fresh connections too, an endless loop against such a server.
func TestServerClosingWithoutAnswerFails(t *testing.T) {
	answered := make(chan struct{}, 1)
	s := newRawServer(t, func(i int, c net.Conn) {
		if i == 1 && readRequest(c) {
			io.WriteString(c, response("one answer"))
			c.Close()
			answered <- struct{}{}
		}
		// Later connections: closed at once, no answer.
	})
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	if got := get(t, c, s.url("/")); got != "one answer" {
		t.Fatalf("first GET = %q", got)
	}
	recv(t, answered, "the server to close the first connection")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, staleFirst := range []bool{true, false} {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/"), nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET (stale connection first: %t) succeeded against a server that does not answer", staleFirst)
		}
		if ctx.Err() != nil {
			t.Fatalf("GET (stale connection first: %t) ended only with the test's deadline: %v", staleFirst, err)
		}
	}
	// The stale connection, one retry on a fresh one, then one fresh one.
	if n := s.accepted.Load(); n != 3 {
		t.Errorf("accepted %d connections, want 3", n)
	}
}

// Catches: a cancellation that does not end the wait for the header, or an error not context.Canceled.
func TestCancelWhileWaitingForHeader(t *testing.T) {
	requested := make(chan struct{}, 1)
	s := newRawServer(t, func(_ int, c net.Conn) {
		if readRequest(c) {
			requested <- struct{}{}
			io.Copy(io.Discard, c) // never answers; returns once the client closes
		}
	})
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/"), nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	recv(t, requested, "the request")
	cancel()
	err := recv(t, errc, "RoundTrip to return after the cancellation")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	waitFor(t, "the server to see the connection closed", func() bool { return s.finished.Load() == 1 })
	if n := idleCount(tt, s.key()); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

// blockedRead sends a GET for rawURL with ctx through tt, whose server
// sends the header and part bytes of a longer body, then stalls. It reads
// those bytes, starts a Read of the rest and returns once that Read waits
// on the connection; the Read's error comes on the channel.
func blockedRead(ctx context.Context, t *testing.T, tt *Transport, rawURL string, part int) (*http.Response, <-chan error) {
	t.Helper()
	conns := spyOn(tt.Fallback)
	req, _ := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	resp, err := (&http.Client{Transport: tt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := recv(t, conns, "the dial")
	if _, err := io.ReadFull(resp.Body, make([]byte, part)); err != nil {
		t.Fatal(err)
	}
	select { // the reads so far
	case <-sc.reading:
	default:
	}
	errc := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 100))
		errc <- err
	}()
	recv(t, sc.reading, "the body's Read to wait on the connection")
	return resp, errc
}

// Catches: a cancellation that does not end a body Read, or its error not being context.Canceled.
func TestCancelDuringBodyRead(t *testing.T) {
	s := stallingServer(t, "0123456789")
	tt := newTransport(t, nil)
	c := &http.Client{Transport: tt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, errc := blockedRead(ctx, t, tt, s.url("/"), 10)
	defer resp.Body.Close()
	cancel()
	err := recv(t, errc, "the body's Read to return after the cancellation")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Read error = %v, want context.Canceled", err)
	}
	nextGetIsFresh(t, c, s)
}

// Catches: release ignoring that the cancellation ran (stop() false) and keeping the connection.
func TestCancelledConnectionIsNotKept(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "small") })
	var conns <-chan *spyConn
	tt := newTransport(t, func(tr *http.Transport) { conns = spyOn(tr) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	resp, err := tt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := recv(t, conns, "the dial")
	cancel()
	recv(t, sc.deadlined, "the cancellation to set the connection's deadline")
	// The body is in the buffer already: it may still be read whole, or
	// fail with the cancellation.
	if b, err := io.ReadAll(resp.Body); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("body %q, %v", b, err)
	}
	if n := idleCount(tt, s.key()); n != 0 {
		t.Errorf("%d idle connections after the cancellation, want 0", n)
	}
	waitFor(t, "the server to see the connection closed", func() bool { return s.closed.Load() == 1 })
}

// Catches: Close not closing the connection under a waiting Read, or Reads after Close succeeding.
func TestCloseUnblocksRead(t *testing.T) {
	s := stallingServer(t, "part")
	tt := newTransport(t, nil)
	resp, errc := blockedRead(context.Background(), t, tt, s.url("/"), 4)
	defer resp.Body.Close()
	if err := resp.Body.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := recv(t, errc, "the Read to return after Close"); err == nil {
		t.Error("the Read under Close returned no error")
	}
	for i := range 2 {
		if n, err := resp.Body.Read(make([]byte, 10)); n != 0 || !errors.Is(err, errBodyClosed) {
			t.Errorf("Read %d after Close = %d, %v; want 0, %v", i, n, err, errBodyClosed)
		}
	}
	waitFor(t, "the server to see the connection closed", func() bool { return s.finished.Load() == 1 })
	if n := idleCount(tt, s.key()); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

// Catches: 1xx responses taken as final, or a 101 skipped like the other 1xx.
func TestInformationalResponses(t *testing.T) {
	final := response("ok")
	cases := []struct {
		name    string
		answer  string
		wantErr bool
	}{
		{name: "103", answer: "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + final},
		{name: "100 then 103 twice", answer: "HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </y>\r\n\r\n" + final},
		{name: "101", answer: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n" + final, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(_ int, c net.Conn) {
				serveEach(c, func(int, *http.Request) string { return tc.answer })
			})
			tt := newTransport(t, nil)
			c := &http.Client{Transport: tt}
			if tc.wantErr {
				resp, err := c.Get(s.url("/"))
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET = %s, want an error", resp.Status)
				}
				return
			}
			for i := range 2 {
				resp, err := c.Get(s.url("/"))
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "ok" || err != nil {
					t.Errorf("GET %d = %s %q, %v; want 200 \"ok\"", i, resp.Status, b, err)
				}
			}
			if n := s.accepted.Load(); n != 1 {
				t.Errorf("accepted %d connections, want 1", n)
			}
		})
	}
}

// Catches: MaxResponseHeaderBytes not applied, or applied too strictly.
func TestResponseHeaderLimit(t *testing.T) {
	const limit = 4096
	cases := []struct {
		name        string
		headerBytes int
		wantErr     bool
	}{
		{name: "under the limit", headerBytes: limit - 1024},
		{name: "huge", headerBytes: 1 << 20, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := "X-Filler: " + strings.Repeat("a", 100) + "\r\n"
			s := newRawServer(t, func(_ int, c net.Conn) {
				if !readRequest(c) {
					return
				}
				w := bufio.NewWriter(c)
				w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
				for n := 0; n+len(line) <= tc.headerBytes; n += len(line) {
					if _, err := w.WriteString(line); err != nil {
						return // the client closed
					}
				}
				w.WriteString("\r\nok")
				w.Flush()
				io.Copy(io.Discard, c)
			})
			var conns <-chan *spyConn
			tt := newTransport(t, func(tr *http.Transport) {
				tr.MaxResponseHeaderBytes = limit
				conns = spyOn(tr)
			})
			resp, err := (&http.Client{Transport: tt}).Get(s.url("/"))
			sc := recv(t, conns, "the dial")
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" || err != nil {
					t.Errorf("body %q, %v", b, err)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("a huge response header was accepted")
			}
			if !errors.Is(err, errHeaderTooLong) {
				t.Errorf("err = %v, want %v", err, errHeaderTooLong)
			}
			// The limit, and what one read of the buffer may take beyond.
			if n, most := sc.read.Load(), int64(limit+bufferSize(0)); n > most {
				t.Errorf("read %d bytes of the header, want at most %d", n, most)
			}
			waitFor(t, "the server to see the connection closed", func() bool { return s.finished.Load() == 1 })
		})
	}
}

// Catches: a response with http.NoBody holding its connection until a Close that need not come.
func TestNoBodyResponsesReleaseAtOnce(t *testing.T) {
	cases := []struct {
		method, path string
		wantStatus   int
	}{
		{"HEAD", "/data", 200},
		{"GET", "/304", 304},
		{"GET", "/204", 204},
		{"GET", "/empty", 200},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/304":
					w.WriteHeader(http.StatusNotModified)
				case "/204":
					w.WriteHeader(http.StatusNoContent)
				case "/empty":
				default:
					io.WriteString(w, "data")
				}
			})
			tt := newTransport(t, nil)
			req, _ := http.NewRequest(tc.method, s.URL+tc.path, nil)
			resp, err := tt.RoundTrip(req) // not a Client: Body is the transport's own
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Body != http.NoBody {
				t.Fatalf("status %d, body %T; want %d, http.NoBody", resp.StatusCode, resp.Body, tc.wantStatus)
			}
			if n := idleCount(tt, s.key()); n != 1 {
				t.Errorf("%d idle connections before the body is closed, want 1", n)
			}
			if got := get(t, &http.Client{Transport: tt}, s.URL+"/data"); got != "data" {
				t.Errorf("GET /data = %q", got)
			}
			if n := s.opened.Load(); n != 1 {
				t.Errorf("opened %d connections, want 1", n)
			}
		})
	}
}

// Catches: the lean path taking a request with a body or a method other than GET and HEAD.
func TestFallbackForMethodsAndBodies(t *testing.T) {
	cases := []struct {
		name, method, body string
		wantFallback       bool
	}{
		{name: "GET", method: "GET"},
		{name: "POST", method: "POST", body: "payload", wantFallback: true},
		{name: "PUT", method: "PUT", body: "payload", wantFallback: true},
		{name: "GET with a body", method: "GET", body: "payload", wantFallback: true},
		{name: "DELETE", method: "DELETE", wantFallback: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s:%s", r.Method, b)
			})
			tt := newTransport(t, nil)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, s.URL, body)
			resp, err := (&http.Client{Transport: tt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := tc.method + ":" + tc.body; string(b) != want || err != nil {
				t.Errorf("response %q, %v; want %q", b, err, want)
			}
			fallback := s.viaFallback.Load() == 1
			if fallback != tc.wantFallback {
				t.Errorf("sent by the fallback: %t, want %t", fallback, tc.wantFallback)
			}
			wantIdle := 1 // the lean path keeps the connection
			if tc.wantFallback {
				wantIdle = 0
			}
			if n := idleCount(tt, s.key()); n != wantIdle {
				t.Errorf("the lean path keeps %d idle connections, want %d", n, wantIdle)
			}
		})
	}
}

// Catches: the lean path taking an https request (and sending it as plain http).
func TestFallbackForHTTPS(t *testing.T) {
	var viaFallback atomic.Int32
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			viaFallback.Add(1)
		}
		io.WriteString(w, "secure")
	}))
	t.Cleanup(s.Close)
	tt := newTransport(t, func(tr *http.Transport) {
		tr.TLSClientConfig = s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	})
	if got := get(t, &http.Client{Transport: tt}, s.URL); got != "secure" {
		t.Errorf("GET = %q", got)
	}
	if viaFallback.Load() != 1 {
		t.Error("the https GET did not go through the fallback")
	}
	if n := idleCount(tt, s.Listener.Addr().String()); n != 0 {
		t.Errorf("the lean path keeps %d idle connections, want 0", n)
	}
}

// Catches: the lean path ignoring the fallback's Proxy (a proxy URL, or an error).
func TestFallbackForProxy(t *testing.T) {
	origin := newRawServer(t, func(_ int, c net.Conn) {
		serveEach(c, func(int, *http.Request) string { return response("from the origin") })
	})
	target := origin.url("/file")

	t.Run("proxied", func(t *testing.T) {
		seen := make(chan string, 1)
		proxy := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- r.RequestURI
			io.WriteString(w, "from the proxy")
		})
		proxyURL, _ := url.Parse(proxy.URL)
		tt := newTransport(t, func(tr *http.Transport) { tr.Proxy = http.ProxyURL(proxyURL) })
		if got := get(t, &http.Client{Transport: tt}, target); got != "from the proxy" {
			t.Errorf("GET = %q", got)
		}
		if uri := recv(t, seen, "the proxy's request"); uri != target {
			t.Errorf("the proxy got request URI %q, want %q", uri, target)
		}
	})
	t.Run("Proxy fails", func(t *testing.T) {
		errProxy := errors.New("no proxy for you")
		tt := newTransport(t, func(tr *http.Transport) {
			tr.Proxy = func(*http.Request) (*url.URL, error) { return nil, errProxy }
		})
		resp, err := (&http.Client{Transport: tt}).Get(target)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, errProxy) {
			t.Errorf("err = %v, want %v", err, errProxy)
		}
	})
	if n := origin.accepted.Load(); n != 0 {
		t.Errorf("the origin got %d connections, want 0", n)
	}
}

// Catches: MaxIdleConnsPerHost ignored, or the connections beyond it dropped without a Close.
func TestMaxIdleConnsPerHost(t *testing.T) {
	const maxIdle, open = 2, 4
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data") })
	tt := newTransport(t, func(tr *http.Transport) { tr.MaxIdleConnsPerHost = maxIdle })
	c := &http.Client{Transport: tt}
	resps := openBodies(t, c, s.URL, open)
	if n := s.opened.Load(); n != open {
		t.Fatalf("%d bodies open at once took %d connections", open, n)
	}
	for _, resp := range resps {
		if b, err := io.ReadAll(resp.Body); string(b) != "data" || err != nil {
			t.Fatalf("body %q, %v", b, err)
		}
		resp.Body.Close()
	}
	if n := idleCount(tt, s.key()); n != maxIdle {
		t.Errorf("%d idle connections, want %d", n, maxIdle)
	}
	waitFor(t, "the server to see the extra connections closed", func() bool { return s.closed.Load() >= open-maxIdle })
	if n := s.closed.Load(); n != open-maxIdle {
		t.Errorf("the server saw %d connections closed, want %d", n, open-maxIdle)
	}
}

// Catches: IdleConnTimeout ignored, or a sweep that does not come back for younger connections.
func TestIdleConnTimeout(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data") })
	tt := newTransport(t, func(tr *http.Transport) { tr.IdleConnTimeout = 50 * time.Millisecond })
	c := &http.Client{Transport: tt}
	resps := openBodies(t, c, s.URL, 2)
	// Given back at different times, so that the first sweep likely finds
	// the second connection too young and has to come back for it.
	for i, resp := range resps {
		if i > 0 {
			time.Sleep(25 * time.Millisecond)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	waitFor(t, "the idle connections to be closed", func() bool {
		return idleCount(tt, s.key()) == 0 && s.closed.Load() == 2
	})
	if sweeping(tt) {
		t.Error("the sweep is still scheduled with no idle connection left")
	}
}

// Catches: a sweep closing connections not yet idle for IdleConnTimeout, or not rescheduling.
func TestSweepClosesOnlyExpired(t *testing.T) {
	// One connection is aged by hand and the test runs the sweep itself,
	// so that no timing matters.
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data") })
	tt := newTransport(t, func(tr *http.Transport) { tr.IdleConnTimeout = time.Hour })
	c := &http.Client{Transport: tt}
	resps := openBodies(t, c, s.URL, 2)
	for _, resp := range resps {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	tt.mu.Lock()
	if len(tt.idle[s.key()]) != 2 {
		tt.mu.Unlock()
		t.Fatalf("%d idle connections, want 2", len(tt.idle[s.key()]))
	}
	tt.idle[s.key()][0].idleSince = time.Now().Add(-2 * time.Hour)
	tt.mu.Unlock()
	tt.closeExpired()
	if n := idleCount(tt, s.key()); n != 1 {
		t.Errorf("%d idle connections after the sweep, want 1", n)
	}
	if !sweeping(tt) {
		t.Error("the sweep did not schedule itself again for the connection left")
	}
	waitFor(t, "the server to see the expired connection closed", func() bool { return s.closed.Load() >= 1 })
	if n := s.closed.Load(); n != 1 {
		t.Errorf("the server saw %d connections closed, want 1", n)
	}
}

// Catches: CloseIdleConnections forgetting connections without closing them, or leaving the sweep.
func TestCloseIdleConnections(t *testing.T) {
	const open = 3
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data") })
	tt := newTransport(t, func(tr *http.Transport) { tr.MaxIdleConnsPerHost = open })
	c := &http.Client{Transport: tt}
	resps := openBodies(t, c, s.URL, open)
	for _, resp := range resps {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if n := idleCount(tt, s.key()); n != open {
		t.Fatalf("%d idle connections, want %d", n, open)
	}
	if !sweeping(tt) {
		t.Error("no sweep scheduled for the idle connections")
	}
	tt.CloseIdleConnections()
	if n := idleCount(tt, s.key()); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", n)
	}
	if sweeping(tt) {
		t.Error("the sweep is still scheduled after CloseIdleConnections")
	}
	waitFor(t, "the server to see the connections closed", func() bool { return s.closed.Load() == open })
}

// Catches: a connection kept with unread bytes in its buffer (no br.Buffered() check).
func TestBytesBeyondResponseAreNotReused(t *testing.T) {
	stale := response("stale")
	cases := []struct {
		name, first string // the first answer, then a whole stale response
	}{
		{"after a body", response("first")},
		{"after a 204", "HTTP/1.1 204 No Content\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(i int, c net.Conn) {
				serveEach(c, func(n int, _ *http.Request) string {
					if i == 1 && n == 1 {
						return tc.first + stale // one write
					}
					return response("fresh")
				})
			})
			tt := newTransport(t, nil)
			c := &http.Client{Transport: tt}
			resp, err := c.Get(s.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if n := idleCount(tt, s.key()); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
			if got := get(t, c, s.url("/")); got != "fresh" {
				t.Errorf("next GET = %q, want \"fresh\"", got)
			}
			if n := s.accepted.Load(); n != 2 {
				t.Errorf("accepted %d connections, want 2", n)
			}
		})
	}
}

// Catches a body that, read to its end, answers later reads with an error
// instead of io.EOF (io.ReadFull over a body of whole records).
func TestReadAfterEOFIsEOF(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "0123456789") })
	resp, err := (&http.Client{Transport: newTransport(t, nil)}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := make([]byte, 5)
	for i, want := range []error{nil, nil, io.EOF, io.EOF} {
		if _, err := io.ReadFull(resp.Body, rec); err != want {
			t.Errorf("ReadFull %d of a 10-byte body: %v, want %v", i, err, want)
		}
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(rec); !errors.Is(err, errBodyClosed) {
		t.Errorf("Read after Close: %v, want %v", err, errBodyClosed)
	}
}

// Catches taking a 408 that a server sent on an idle connection as the
// answer to the next request, and keeping that connection: a server may
// leave it open after the 408 (no "Connection: close") and read nothing
// more from it.
func TestIdle408IsNotAnAnswer(t *testing.T) {
	for _, closes := range []bool{true, false} {
		t.Run(fmt.Sprintf("server closes: %t", closes), func(t *testing.T) {
			idle, sent := make(chan struct{}, 1), make(chan struct{}, 1)
			s := newRawServer(t, func(i int, c net.Conn) {
				if i > 1 {
					serveEach(c, func(int, *http.Request) string { return response("ok") })
					return
				}
				if !readRequest(c) {
					return
				}
				io.WriteString(c, response("ok"))
				<-idle
				if closes {
					io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
					c.Close()
				} else {
					io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				}
				sent <- struct{}{}
				io.Copy(io.Discard, c) // reads, never answers
			})
			c := &http.Client{Transport: newTransport(t, nil), Timeout: waitTimeout}
			get(t, c, s.url("/"))
			idle <- struct{}{}
			recv(t, sent, "the 408")
			if got := get(t, c, s.url("/")); got != "ok" {
				t.Errorf("second GET = %q, want ok", got)
			}
			if n := s.accepted.Load(); n != 2 {
				t.Errorf("accepted %d connections, want 2", n)
			}
		})
	}
}

// Catches sending a request without a host to the local machine's port
// 80: net/http refuses it.
func TestNoHostGoesToFallback(t *testing.T) {
	_, err := newTransport(t, nil).RoundTrip(&http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Path: "/x"}, Header: http.Header{}})
	if err == nil || !strings.Contains(err.Error(), "no Host") {
		t.Errorf("GET http:///x: %v, want net/http's no Host error", err)
	}
}
