package durltest

import (
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the largest body piece written at once.
const chunkSize = 32 << 10

// Sentinel errors that end a body early.
var (
	errCut      = errors.New("durltest: cut")              // close the connection / reset the stream
	errShort    = errors.New("durltest: short body")       // end the response normally
	errGone     = errors.New("durltest: client gone")      // client went away or server closed
	errReplaced = errors.New("durltest: content replaced") // re-check the version, go on
)

// RequestInfo describes one request received by a Server and its response.
// Requests in progress have the status and body bytes sent so far.
type RequestInfo struct {
	Method         string
	Path           string      // r.URL.Path
	Proto          string      // "HTTP/1.1" or "HTTP/2.0"
	RemoteAddr     string      // client address: distinguishes connections
	Range          string      // Range header ("" if absent)
	IfRange        string      // If-Range header
	AcceptEncoding string      // Accept-Encoding header
	Header         http.Header // a copy of all request headers

	Status    int   // status code sent (0 if none yet)
	BodyBytes int64 // body bytes written, including short error texts
	Truncated bool  // the server deliberately ended the body early (cut, short body, replacement)
}

// version is one version of the content. Versions are compared by pointer.
type version struct {
	seed    uint64
	size    int64
	etag    string    // "" if none
	lastMod time.Time // zero if none; whole seconds

	digestOnce sync.Once
	digest     [32]byte
}

func (v *version) sha256() [32]byte {
	v.digestOnce.Do(func() { v.digest = Digest(v.seed, v.size) })
	return v.digest
}

// Server is a fault-injecting HTTP test server of one file. Create it with
// NewServer and Close it when done.
type Server struct {
	// URL is the base URL of the server, http://127.0.0.1:port (https://
	// with WithTLS or WithHTTP2), without a trailing slash.
	URL string

	cfg       config
	ts        *httptest.Server
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	timer     *time.Timer // WithReplaceAfter

	bytesSent atomic.Int64
	fileReqs  atomic.Int64
	cutUsed   atomic.Int64
	stallUsed atomic.Int64
	shortUsed atomic.Int64

	mu        sync.Mutex
	cur       *version
	log       []*RequestInfo
	tokens    map[string]int // signed URL token -> uses left
	tokenSeq  uint64
	claimed   int64 // body bytes counted towards WithReplaceAtByte
	replaceAt bool  // WithReplaceAtByte has fired
}

// NewServer starts and returns a Server listening on 127.0.0.1 only. It
// panics if it cannot listen, like httptest.NewServer.
func NewServer(opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{cfg: cfg, done: make(chan struct{}), tokens: make(map[string]int)}
	lm := time.Time{}
	if !cfg.lastMod.IsZero() {
		lm = cfg.lastMod.UTC().Truncate(time.Second)
	}
	s.cur = s.newVersion(cfg.seed, cfg.size, lm)
	if cfg.replaceAt.on && cfg.replaceAt.at <= 0 {
		s.replaceAt = true
		s.Replace(cfg.replaceAt.seed, cfg.replaceAt.size)
	}

	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	ts.Listener.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("durltest: failed to listen on 127.0.0.1: %v", err))
	}
	ts.Listener = l
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.EnableHTTP2 = cfg.http2
	if cfg.tls || cfg.http2 {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	s.ts = ts
	s.URL = ts.URL
	if r := cfg.replaceAfter; r.on {
		s.timer = time.AfterFunc(r.d, func() { s.Replace(r.seed, r.size) })
	}
	return s
}

// Close closes all client connections, shuts the server down and waits for its
// handlers to return. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.timer != nil {
			s.timer.Stop()
		}
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// Client returns an HTTP client configured for the server: it trusts its TLS
// certificate and speaks HTTP/2 with WithHTTP2. It follows redirects (Go's
// default of at most 10).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// FileURL returns the URL of the file, s.URL + "/file". Any path other than
// /content/, /redirect/ and /signed/ ones serves the file too.
func (s *Server) FileURL() string { return s.URL + "/file" }

// BytesSent returns the total number of file body bytes (200 and 206
// responses, compressed bytes for gzip) written to clients by all requests.
// Short error texts are not counted. Bytes are counted as they are handed to
// the connection, so the count never lags behind what clients have received;
// it is exact for bodies that clients read to the end or that the server cut.
// Bytes sent to a client that went away may be counted though it never read
// them (they were in socket buffers or HTTP/2 frames).
func (s *Server) BytesSent() int64 { return s.bytesSent.Load() }

// FileRequests returns the number of file requests received so far: requests
// that reached the content, after redirects.
func (s *Server) FileRequests() int { return int(s.fileReqs.Load()) }

// Requests returns a copy of the log of all requests, in arrival order.
func (s *Server) Requests() []RequestInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RequestInfo, len(s.log))
	for i, e := range s.log {
		out[i] = *e
		out[i].Header = e.Header.Clone()
	}
	return out
}

// Replace switches the content to version (seed, size) now. The ETag changes
// with (seed, size); Last-Modified moves forward and keeps its nature: a
// recent (weak) date becomes the current time, a strong one moves one minute
// later. Responses in progress are handled as WithReplaceMode says.
func (s *Server) Replace(seed uint64, size int64) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = s.newVersion(seed, size, nextLastModified(s.cur.lastMod, now))
}

// Version returns the current content's seed and size.
func (s *Server) Version() (seed uint64, size int64) {
	v := s.current()
	return v.seed, v.size
}

// ETag returns the current ETag header value, "" with ETagNone.
func (s *Server) ETag() string { return s.current().etag }

// LastModified returns the current Last-Modified date, the zero time with
// WithoutLastModified.
func (s *Server) LastModified() time.Time { return s.current().lastMod }

func (s *Server) current() *version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *Server) newVersion(seed uint64, size int64, lastMod time.Time) *version {
	v := &version{seed: seed, size: size, lastMod: lastMod}
	tag := fmt.Sprintf(`"%016x-%x"`, seed, size)
	switch s.cfg.etag {
	case ETagStrong:
		v.etag = tag
	case ETagWeak:
		v.etag = "W/" + tag
	}
	return v
}

// nextLastModified returns the Last-Modified date of a version replacing one
// modified at old, keeping a recent date recent and a strong one strong.
func nextLastModified(old, now time.Time) time.Time {
	if old.IsZero() {
		return old
	}
	if now.Sub(old) < time.Minute {
		t := now.UTC().Truncate(time.Second)
		if !t.After(old) {
			t = old.Add(time.Second)
		}
		return t
	}
	t := old.Add(time.Minute)
	if now.Sub(t) < time.Minute {
		t = old.Add(time.Second)
	}
	return t
}

// reply is one request being answered.
type reply struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rc   *http.ResponseController
	info *RequestInfo // guarded by s.mu
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	info := &RequestInfo{
		Method:         r.Method,
		Path:           r.URL.Path,
		Proto:          r.Proto,
		RemoteAddr:     r.RemoteAddr,
		Range:          r.Header.Get("Range"),
		IfRange:        r.Header.Get("If-Range"),
		AcceptEncoding: r.Header.Get("Accept-Encoding"),
		Header:         r.Header.Clone(),
	}
	s.mu.Lock()
	s.log = append(s.log, info)
	s.mu.Unlock()
	rp := &reply{s: s, w: w, r: r, rc: http.NewResponseController(w), info: info}

	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/content/"):
		s.serveContent(rp)
	case strings.HasPrefix(p, "/redirect/"):
		k, name, _ := strings.Cut(strings.TrimPrefix(p, "/redirect/"), "/")
		n, err := strconv.Atoi(k)
		if err != nil || n < 0 {
			rp.text(http.StatusNotFound, "durltest: bad redirect hop\n")
			return
		}
		rp.redirect(s.hop(n-1, name))
	case strings.HasPrefix(p, "/signed/"):
		token, _, _ := strings.Cut(strings.TrimPrefix(p, "/signed/"), "/")
		s.mu.Lock()
		left, ok := s.tokens[token]
		if ok && left > 0 {
			s.tokens[token] = left - 1
		}
		s.mu.Unlock()
		if !ok || left <= 0 {
			rp.text(http.StatusForbidden, "durltest: signed URL expired\n")
			return
		}
		s.serveContent(rp)
	default:
		name := strings.TrimPrefix(p, "/")
		switch {
		case s.cfg.redirectTo != "":
			rp.redirect(s.cfg.redirectTo)
		case s.cfg.redirects > 0:
			rp.redirect(s.hop(s.cfg.redirects-1, name))
		case s.cfg.expiring:
			rp.redirect(s.hop(0, name))
		default:
			s.serveContent(rp)
		}
	}
}

// hop returns the Location of a redirect with k more redirects to go after
// it: the next hop, the signed URL of WithExpiringRedirect, or /content/.
func (s *Server) hop(k int, name string) string {
	if k > 0 {
		return "/redirect/" + strconv.Itoa(k) + "/" + name
	}
	if s.cfg.expiring {
		s.mu.Lock()
		s.tokenSeq++
		token := fmt.Sprintf("%016x", mix64(s.tokenSeq^0x5ec7e7))
		s.tokens[token] = s.cfg.expiringUses
		s.mu.Unlock()
		return "/signed/" + token + "/" + name
	}
	return "/content/" + name
}

// redirect answers 302 to loc.
func (rp *reply) redirect(loc string) {
	rp.w.Header().Set("Location", loc)
	rp.text(http.StatusFound, "durltest: redirect\n")
}

func (rp *reply) writeHeader(code int) {
	rp.s.mu.Lock()
	rp.info.Status = code
	rp.s.mu.Unlock()
	rp.w.WriteHeader(code)
}

// text answers code with a short text body.
func (rp *reply) text(code int, msg string) {
	h := rp.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	rp.writeHeader(code)
	if rp.r.Method == http.MethodHead {
		return
	}
	n, _ := io.WriteString(rp.w, msg)
	rp.s.mu.Lock()
	rp.info.BodyBytes += int64(n)
	rp.s.mu.Unlock()
}

// end finishes a body that stopped with err.
func (rp *reply) end(err error) {
	if err == nil || err == errGone {
		return
	}
	rp.s.mu.Lock()
	rp.info.Truncated = true
	rp.s.mu.Unlock()
	if err != errCut {
		return // errShort or a write error: end the response normally
	}
	rp.rc.Flush()
	if rp.r.ProtoMajor == 1 {
		if conn, _, err := rp.rc.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// serveContent answers a file request.
func (s *Server) serveContent(rp *reply) {
	r, h := rp.r, rp.w.Header()
	n := int(s.fileReqs.Add(1))
	if n <= len(s.cfg.statuses) {
		if s.cfg.retryAfter != "" {
			h.Set("Retry-After", s.cfg.retryAfter)
		}
		code := s.cfg.statuses[n-1]
		rp.text(code, fmt.Sprintf("durltest: injected status %d %s\n", code, http.StatusText(code)))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		rp.text(http.StatusMethodNotAllowed, "durltest: method not allowed\n")
		return
	}

	v := s.current()
	now := time.Now()
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", "application/octet-stream")
	if !v.lastMod.IsZero() {
		h.Set("Last-Modified", v.lastMod.Format(http.TimeFormat))
	}
	if s.cfg.disposition != "" {
		h.Set("Content-Disposition", s.cfg.disposition)
	}
	if s.cfg.gzip {
		h.Set("Vary", "Accept-Encoding")
	}
	rangesOn := !s.cfg.noRanges && (s.cfg.ignoreRanges == nil || !s.cfg.ignoreRanges(n))
	if rangesOn {
		h.Set("Accept-Ranges", "bytes")
	}
	ranges := r.Header.Values("Range")
	if s.cfg.gzip && (len(ranges) == 0 || !rangesOn) && offersGzip(r.Header.Values("Accept-Encoding")) {
		s.serveGzip(rp, v)
		return
	}
	if v.etag != "" {
		h.Set("ETag", v.etag)
	}
	if !s.cfg.noConditionals && notModified(r.Header, v) {
		rp.writeHeader(http.StatusNotModified)
		return
	}

	status, first, length := http.StatusOK, int64(0), v.size
	if len(ranges) > 0 && rangesOn && ifRangeHolds(r.Header.Get("If-Range"), v, now) {
		f, l, res := parseRange(ranges, v.size)
		switch res {
		case rangeSingle:
			status, first, length = http.StatusPartialContent, f, l-f+1
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", f, l, v.size))
		case rangeUnsatisfiable:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", v.size))
			rp.text(http.StatusRequestedRangeNotSatisfiable, "durltest: range not satisfiable\n")
			return
		}
	}
	if s.cfg.reprDigest {
		d := v.sha256()
		if s.cfg.wrongReprDigest {
			d[0] ^= 0xff
		}
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(d[:])+":")
	}
	chunked := status == http.StatusOK && s.cfg.noContentLength
	if !chunked {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	rp.writeHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	rp.rc.Flush() // send the headers now, before any stall; without Content-Length: chunked
	snd := s.newSender(rp)
	rp.end(s.stream(v, first, length, snd))
}

// serveGzip answers 200 with the gzip-compressed full body of v.
func (s *Server) serveGzip(rp *reply, v *version) {
	h := rp.w.Header()
	h.Set("Content-Encoding", "gzip")
	if v.etag != "" {
		h.Set("ETag", strings.TrimSuffix(v.etag, `"`)+`-gzip"`)
	}
	rp.writeHeader(http.StatusOK)
	if rp.r.Method == http.MethodHead {
		return
	}
	rp.rc.Flush()
	sink := &gzipSink{snd: s.newSender(rp)}
	zw := gzip.NewWriter(sink)
	err := s.stream(v, 0, v.size, zw)
	if err == nil {
		err = zw.Close()
	}
	if sink.err != nil {
		err = sink.err
	}
	rp.end(err)
}

// stream writes bytes first .. first+length-1 of version v to w, following
// replacements of the content as WithReplaceMode says.
func (s *Server) stream(v *version, first, length int64, w io.Writer) error {
	buf := make([]byte, chunkSize)
	src := v
	for off, end := first, first+length; off < end; {
		if cur := s.current(); cur != src {
			switch s.cfg.replaceMode {
			case ReplaceCut:
				return errCut
			case ReplaceMix:
				src = cur
			}
		}
		k := min(int64(len(buf)), end-off, src.size-off)
		if k <= 0 {
			return errShort // the mixed-in version is shorter
		}
		Fill(buf[:k], src.seed, off)
		n, err := w.Write(buf[:k])
		off += int64(n)
		if err != nil && err != errReplaced {
			return err
		}
	}
	return nil
}

// gzipSink passes compressed bytes to a sender, hiding errReplaced from the
// compressor, and remembers the error that stopped it.
type gzipSink struct {
	snd *sender
	err error
}

func (g *gzipSink) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := g.snd.Write(p[n:])
		n += m
		if err != nil && err != errReplaced {
			g.err = err
			return n, err
		}
	}
	return n, nil
}

// sender writes the body of one response, injecting the faults configured.
// Offsets are body bytes of this response (compressed bytes for gzip).
type sender struct {
	s       *Server
	rp      *reply
	sent    int64
	cutAt   int64 // -1: none
	stallAt int64
	shortAt int64

	paceFrom  time.Time // WithRate: when pacing (re)started
	pacedFrom int64     // sent at paceFrom
}

// take reports whether one more of times uses is available in used.
func take(used *atomic.Int64, times int) bool {
	return times <= 0 || used.Add(1) <= int64(times)
}

func (s *Server) newSender(rp *reply) *sender {
	snd := &sender{s: s, rp: rp, cutAt: -1, stallAt: -1, shortAt: -1}
	if c := s.cfg.cut; c.on && take(&s.cutUsed, c.times) {
		snd.cutAt = c.at
	}
	if c := s.cfg.stall; c.on && take(&s.stallUsed, c.times) {
		snd.stallAt = c.at
	}
	if c := s.cfg.short; c.on && take(&s.shortUsed, c.times) {
		snd.shortAt = c.at
	}
	return snd
}

// Write writes p, stopping early with errReplaced right after a write that
// triggered WithReplaceAtByte, so that the caller checks the version again.
func (snd *sender) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if err := snd.faultsHere(); err != nil {
			return n, err
		}
		k, trigger := snd.claim(len(p) - n)
		m, err := snd.send(p[n : n+k])
		n += m
		if trigger {
			r := snd.s.cfg.replaceAt
			snd.s.Replace(r.seed, r.size)
			if err == nil && n < len(p) {
				return n, errReplaced
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// faultsHere injects the faults placed at the current offset.
func (snd *sender) faultsHere() error {
	if snd.sent == snd.stallAt {
		snd.stallAt = -1
		if !snd.s.sleep(snd.rp.r, snd.s.cfg.stall.d) {
			return errGone
		}
		snd.paceFrom = time.Time{}
	}
	if snd.sent == snd.cutAt {
		return errCut
	}
	if snd.sent == snd.shortAt {
		return errShort
	}
	return nil
}

// claim returns how many of want bytes may be written before the next fault
// offset or the WithReplaceAtByte threshold, and whether writing them reaches
// that threshold (then the caller must replace the content).
func (snd *sender) claim(want int) (int, bool) {
	k := int64(want)
	for _, at := range []int64{snd.stallAt, snd.cutAt, snd.shortAt} {
		if at > snd.sent && at-snd.sent < k {
			k = at - snd.sent
		}
	}
	s := snd.s
	if !s.cfg.replaceAt.on {
		return int(k), false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replaceAt {
		return int(k), false
	}
	if rest := s.cfg.replaceAt.at - s.claimed; k >= rest {
		s.claimed += rest
		s.replaceAt = true
		return int(rest), true
	}
	s.claimed += k
	return int(k), false
}

// send writes p, flushing after each piece and pacing with WithRate.
func (snd *sender) send(p []byte) (int, error) {
	rate := snd.s.cfg.rate
	step := len(p)
	if rate > 0 {
		step = int(min(max(rate/20, 1), chunkSize))
	}
	n := 0
	for n < len(p) {
		q := p[n:min(n+step, len(p))]
		if rate > 0 && !snd.pace(rate) {
			return n, errGone
		}
		// Count the bytes before writing them, so that the counters never lag
		// behind what a client has received. Take back what HTTP/1 failed to
		// write; an HTTP/2 Write reports all or nothing, and fails when the
		// client resets the stream after receiving every byte but before the
		// end of the stream, so keep its count.
		snd.count(len(q))
		m, err := snd.rp.w.Write(q)
		if m < len(q) && snd.rp.r.ProtoMajor == 1 {
			snd.count(m - len(q))
		}
		n += m
		snd.sent += int64(m)
		if err == nil {
			err = snd.rp.rc.Flush()
		}
		if err != nil {
			return n, errGone
		}
	}
	return n, nil
}

// count adds n to the body byte counters.
func (snd *sender) count(n int) {
	snd.s.bytesSent.Add(int64(n))
	snd.s.mu.Lock()
	snd.rp.info.BodyBytes += int64(n)
	snd.s.mu.Unlock()
}

// pace waits until the bytes sent so far are due at the given rate. It
// reports false if the client went away or the server was closed.
func (snd *sender) pace(rate int64) bool {
	if snd.paceFrom.IsZero() {
		snd.paceFrom, snd.pacedFrom = time.Now(), snd.sent
		return true
	}
	due := snd.paceFrom.Add(time.Duration(float64(snd.sent-snd.pacedFrom) / float64(rate) * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	return snd.s.sleep(snd.rp.r, d)
}

// sleep waits for d, and reports false if the client of r went away or the
// server was closed first.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}
