// Package http1 is a lean HTTP/1.1 transport for the requests a download
// makes most: GET and HEAD over plain http, without a proxy. Each request
// runs on its caller's goroutine, from writing the request to reading the
// last byte of the body; everything else goes to a fallback
// *http.Transport.
//
// net/http's Transport gives every connection a reading and a writing
// goroutine, and hands each request and response between them and the
// caller. Without that hand-over, 2,000 files of 64 KiB over 16
// connections (nginx on loopback, 2 cores, runs of the old and new build
// taking turns) took 6 to 9 % less CPU time and 5 to 11 % less wall time.
// The parsing is net/http's own (Request.Write, http.ReadResponse); this
// package only keeps connections.
package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper. It sends GET and HEAD requests without
// a body to plain http URLs itself, over connections it keeps alive; any
// other request, and any request the fallback's Proxy sends through a
// proxy, goes to Fallback. It reads its settings from Fallback:
// DialContext, Proxy, ReadBufferSize, WriteBufferSize, MaxIdleConnsPerHost,
// IdleConnTimeout, MaxResponseHeaderBytes and DisableKeepAlives. It has no
// ResponseHeaderTimeout (a caller bounds the wait with the request's
// context) and no MaxConnsPerHost (durl's session caps connections per
// host itself).
//
// A response's body must be read to its end or closed; a body read to its
// end (and not marked "Connection: close") gives its connection back for
// the next request to the same host.
type Transport struct {
	Fallback *http.Transport

	mu    sync.Mutex
	idle  map[string][]*conn // by "host:port", the most recently used last
	sweep *time.Timer        // closes connections idle too long
}

// New returns a Transport that sends what it does not handle to fallback.
func New(fallback *http.Transport) *Transport {
	return &Transport{Fallback: fallback}
}

// errHeaderTooLong is the error of a response whose header exceeds the
// limit.
var errHeaderTooLong = errors.New("http1: the server's response header is too long")

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	key := hostPort(req)
	for {
		c, reused := t.take(key), true
		if c == nil {
			var err error
			if c, err = t.dial(ctx, key); err != nil {
				return nil, err
			}
			reused = false
		}
		resp, err := t.send(ctx, c, req)
		if err == nil && reused && resp.StatusCode == http.StatusRequestTimeout {
			// A server may say 408 on a connection kept alive too long
			// before it closes it: the answer is not to this request.
			resp.Body.Close()
			continue
		}
		if err == nil {
			return resp, nil
		}
		// A connection kept alive may have been closed by the server
		// meanwhile: it then answers nothing. GET and HEAD are safe to
		// send again, on the next idle connection or a new one.
		if !reused || c.got > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// handles reports whether the request is one the transport sends itself.
func (t *Transport) handles(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if t.Fallback.Proxy != nil {
		if u, err := t.Fallback.Proxy(req); err != nil || u != nil {
			return false
		}
	}
	return true
}

// hostPort is the address a request goes to.
func hostPort(req *http.Request) string {
	port := req.URL.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(req.URL.Hostname(), port)
}

// conn is one connection. Its reader counts what it reads, so that a
// failed request knows whether the server answered anything, and limits
// how much a response header may take.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	key       string
	got       int64     // bytes read since the request was written
	limit     int64     // bytes the header may still take; -1: no limit
	idleSince time.Time // when it was given back
}

func (c *conn) Read(p []byte) (int, error) {
	if c.limit == 0 {
		return 0, errHeaderTooLong
	}
	if c.limit > 0 && int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.nc.Read(p)
	c.got += int64(n)
	if c.limit > 0 {
		c.limit -= int64(n)
	}
	return n, err
}

func (t *Transport) dial(ctx context.Context, key string) (*conn, error) {
	dial := t.Fallback.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, key: key}
	c.br = bufio.NewReaderSize(c, bufferSize(t.Fallback.ReadBufferSize))
	c.bw = bufio.NewWriterSize(nc, bufferSize(t.Fallback.WriteBufferSize))
	return c, nil
}

// bufferSize is net/http's default of 4 KiB for a size of 0.
func bufferSize(n int) int {
	if n <= 0 {
		return 4 << 10
	}
	return n
}

// send writes the request on c and reads the response's header. On error,
// c is closed.
func (t *Transport) send(ctx context.Context, c *conn, req *http.Request) (_ *http.Response, err error) {
	// Cancelling the context sets a deadline in the past, which ends any
	// read or write under way; the connection is then closed, not kept.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if err != nil {
			stop()
			c.nc.Close()
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
		}
	}()
	c.got = 0
	if err := req.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	c.limit = t.Fallback.MaxResponseHeaderBytes
	if c.limit <= 0 {
		c.limit = 10 << 20 // net/http's default
	}
	c.limit += int64(c.br.Size()) // what one read may take beyond the header
	resp, err := readResponse(c.br, req)
	c.limit = -1
	if err != nil {
		return nil, err
	}
	keep := !resp.Close && !req.Close && !t.Fallback.DisableKeepAlives &&
		resp.StatusCode != http.StatusRequestTimeout // the server is closing it
	if resp.Body == http.NoBody { // HEAD, 204, 304, or an empty body
		t.release(c, stop, keep)
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, c: c, t: t, ctx: ctx, stop: stop, keep: keep}
	return resp, nil
}

// readResponse reads the final response, skipping informational (1xx)
// ones such as 103 Early Hints.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, fmt.Errorf("http1: unexpected %s to a %s request", resp.Status, req.Method)
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue
		}
		return resp, nil
	}
}

// errBodyClosed is the error of a read after Close, as in net/http.
var errBodyClosed = errors.New("http: read on closed response body")

// body is a response's body. At its end it gives its connection back.
// Close may be called while a Read waits: it closes the connection, which
// ends the Read.
type body struct {
	rc     io.Reader
	c      *conn
	t      *Transport
	ctx    context.Context
	stop   func() bool // stops the cancellation; false if it already ran
	keep   bool        // the connection may serve another request
	end    error       // what every further Read returns: io.EOF or the read's error
	closed atomic.Bool
	done   atomic.Bool // the connection was given back or closed
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	if b.end != nil {
		return 0, b.end
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(b.keep)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
	}
	b.end = err
	return n, err
}

// Close closes the body. Closed before its end, it closes the connection:
// draining what is left could take longer than a new connection.
func (b *body) Close() error {
	b.closed.Store(true)
	b.finish(false)
	return nil
}

func (b *body) finish(keep bool) {
	if b.done.Swap(true) {
		return
	}
	b.t.release(b.c, b.stop, keep)
}

// release ends a request on c: it gives c back when keep is true, the
// cancellation did not run, and nothing unread is left; else it closes c.
func (t *Transport) release(c *conn, stop func() bool, keep bool) {
	if stop() && keep && c.br.Buffered() == 0 {
		t.give(c)
		return
	}
	c.nc.Close()
}

// take returns an idle connection to key, or nil.
func (t *Transport) take(key string) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[key]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[key] = list[:len(list)-1]
	return c
}

// give keeps c for the next request to its host, unless enough are kept.
func (t *Transport) give(c *conn) {
	max := t.Fallback.MaxIdleConnsPerHost
	if max == 0 {
		max = http.DefaultMaxIdleConnsPerHost
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[c.key]) >= max {
		c.nc.Close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[string][]*conn)
	}
	c.idleSince = time.Now()
	t.idle[c.key] = append(t.idle[c.key], c)
	if timeout := t.Fallback.IdleConnTimeout; timeout > 0 && t.sweep == nil {
		t.sweep = time.AfterFunc(timeout, t.closeExpired)
	}
}

// closeExpired closes the connections idle for longer than
// IdleConnTimeout, and comes back while any are left.
func (t *Transport) closeExpired() {
	timeout := t.Fallback.IdleConnTimeout
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	oldest := time.Now()
	for key, list := range t.idle {
		kept := list[:0]
		for _, c := range list {
			if time.Since(c.idleSince) >= timeout {
				c.nc.Close()
				continue
			}
			kept = append(kept, c)
			if c.idleSince.Before(oldest) {
				oldest = c.idleSince
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = kept
		}
	}
	if len(t.idle) > 0 {
		t.sweep = time.AfterFunc(time.Until(oldest.Add(timeout)), t.closeExpired)
	}
}

// CloseIdleConnections closes the connections kept alive, here and in the
// fallback. Connections in use are not interrupted.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, list := range t.idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	t.Fallback.CloseIdleConnections()
}
