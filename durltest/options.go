package durltest

import "time"

// Option configures a Server. Options are applied in order by NewServer.
type Option func(*config)

// ETagKind selects the kind of ETag a Server sends.
type ETagKind int

const (
	// ETagStrong sends a strong ETag such as "0000000000000001-100000" (the default).
	ETagStrong ETagKind = iota
	// ETagWeak sends a weak ETag such as W/"0000000000000001-100000", which
	// never matches in If-Range.
	ETagWeak
	// ETagNone sends no ETag.
	ETagNone
)

// ReplaceMode says what happens to responses in progress when the content is
// replaced (by Replace, WithReplaceAtByte or WithReplaceAfter).
type ReplaceMode int

const (
	// ReplaceCut abruptly closes the connection (HTTP/1.x) or resets the
	// stream (HTTP/2) of every response in progress before it sends a byte
	// of the new version (the default). The response whose bytes reached the
	// WithReplaceAtByte threshold is cut right after them.
	ReplaceCut ReplaceMode = iota
	// ReplaceFinish lets responses in progress finish sending the old
	// version, like a server holding the old file open.
	ReplaceFinish
	// ReplaceMix makes responses in progress go on with the bytes of the new
	// version at the same offsets, like a server reading a file that is
	// overwritten in place: the client receives a glued body that no header
	// reveals. If the new version is shorter, the body ends early.
	ReplaceMix
)

// fault is a fault injected at one body offset of the first times responses.
type fault struct {
	on    bool
	at    int64
	times int
	d     time.Duration
}

// replacement is a content version to switch to.
type replacement struct {
	on   bool
	at   int64
	d    time.Duration
	seed uint64
	size int64
}

// config holds the options of a Server.
type config struct {
	seed            uint64
	size            int64
	etag            ETagKind
	lastMod         time.Time // zero: no Last-Modified
	noRanges        bool
	ignoreRanges    func(requestNumber int) bool
	replaceAt       replacement
	replaceAfter    replacement
	replaceMode     ReplaceMode
	cut             fault
	stall           fault
	short           fault
	statuses        []int
	retryAfter      string
	rate            int64
	redirects       int
	expiring        bool
	expiringUses    int
	redirectTo      string
	disposition     string
	reprDigest      bool
	wrongReprDigest bool
	gzip            bool
	tls             bool
	http2           bool
	noContentLength bool
	noConditionals  bool
}

func defaultConfig() config {
	return config{
		seed:    1,
		size:    1 << 20,
		etag:    ETagStrong,
		lastMod: time.Now().Add(-time.Hour),
	}
}

// WithContent sets the initial content: the body of Content(seed, size).
// The default is seed 1 and size 1 MiB.
func WithContent(seed uint64, size int64) Option {
	return func(c *config) { c.seed, c.size = seed, size }
}

// WithETag selects the kind of ETag sent (ETagStrong by default). The ETag is
// derived from the current version (seed, size), so it changes when the
// content is replaced by a different version.
func WithETag(kind ETagKind) Option {
	return func(c *config) { c.etag = kind }
}

// WithLastModified sets the Last-Modified date of the initial content
// (truncated to the second). The default is one hour before NewServer, a
// strong validator; pass time.Now() for a recent, weak one (RFC 9110
// §8.8.2.2: a date less than 60 s before the response's Date is weak, and
// If-Range never matches it). A zero t is WithoutLastModified.
func WithLastModified(t time.Time) Option {
	return func(c *config) { c.lastMod = t }
}

// WithoutLastModified sends no Last-Modified header.
func WithoutLastModified() Option {
	return func(c *config) { c.lastMod = time.Time{} }
}

// WithoutRanges makes the server ignore Range and If-Range: every request is
// answered 200 with the full body and no Accept-Ranges header.
func WithoutRanges() Option {
	return func(c *config) { c.noRanges = true }
}

// WithRangesIgnoredFor ignores Range (200 with the full body, no
// Accept-Ranges) on the file requests that ignore selects. requestNumber is
// the 1-based count of file requests (see Server.FileRequests). ignore may be
// called concurrently.
func WithRangesIgnoredFor(ignore func(requestNumber int) bool) Option {
	return func(c *config) { c.ignoreRanges = ignore }
}

// WithReplaceAtByte replaces the content by version (seed, size) once n body
// bytes in total have been sent (see Server.BytesSent; n <= 0 replaces it at
// once). The response that sent byte n is then handled as WithReplaceMode
// says: by default it is cut right after that byte.
func WithReplaceAtByte(n int64, seed uint64, size int64) Option {
	return func(c *config) { c.replaceAt = replacement{on: true, at: n, seed: seed, size: size} }
}

// WithReplaceAfter replaces the content by version (seed, size) d after
// NewServer returns.
func WithReplaceAfter(d time.Duration, seed uint64, size int64) Option {
	return func(c *config) { c.replaceAfter = replacement{on: true, d: d, seed: seed, size: size} }
}

// WithReplaceMode says what happens to responses in progress when the content
// is replaced. The default is ReplaceCut.
func WithReplaceMode(m ReplaceMode) Option {
	return func(c *config) { c.replaceMode = m }
}

// WithCutAfter makes the first times body-carrying GET responses (every one
// if times <= 0) send n body bytes and then abruptly close the connection
// (HTTP/1.x) or reset the stream (HTTP/2). A response shorter than n is not
// cut but still counts as one of the times.
func WithCutAfter(n int64, times int) Option {
	return func(c *config) { c.cut = fault{on: true, at: n, times: times} }
}

// WithStall makes the first times body-carrying GET responses (every one if
// times <= 0) stop sending, without closing, for d after afterBytes body
// bytes, or until the client goes away or the server is closed.
func WithStall(afterBytes int64, d time.Duration, times int) Option {
	return func(c *config) { c.stall = fault{on: true, at: afterBytes, times: times, d: d} }
}

// WithStatusSequence answers the first len(codes) file requests with those
// status codes (such as 503 or 429) and a short text body; later requests are
// served normally. See also WithRetryAfter.
func WithStatusSequence(codes ...int) Option {
	return func(c *config) { c.statuses = append([]int(nil), codes...) }
}

// WithRetryAfter sets the Retry-After value (seconds or an HTTP date) sent
// with the responses of WithStatusSequence.
func WithRetryAfter(v string) Option {
	return func(c *config) { c.retryAfter = v }
}

// WithRate limits every response body to about bytesPerSecond, sent in small
// timer-paced chunks (at most 20 a second).
func WithRate(bytesPerSecond int64) Option {
	return func(c *config) { c.rate = bytesPerSecond }
}

// WithShortBody makes the first times body-carrying GET responses (every one
// if times <= 0) declare their full Content-Length but send only n body bytes,
// then end the response: HTTP/1.1 then closes the connection, HTTP/2 ends the
// stream early. Without a Content-Length (WithGzipWhenOffered,
// WithoutContentLength) the body then ends as if it were complete.
func WithShortBody(n int64, times int) Option {
	return func(c *config) { c.short = fault{on: true, at: n, times: times} }
}

// WithRedirects makes a request for the file answer with a chain of n 302
// redirects, through /redirect/<k>/<name>, before reaching /content/<name>
// (or the signed URL of WithExpiringRedirect).
func WithRedirects(n int) Option {
	return func(c *config) { c.redirects = n }
}

// WithExpiringRedirect makes a request for the file redirect (302) to a freshly
// minted signed URL /signed/<token>/<name>, which serves the content for uses
// requests and then answers 403 Forbidden, like an expiring CDN link. Each new
// request to the original URL mints a new token.
func WithExpiringRedirect(uses int) Option {
	return func(c *config) { c.expiring, c.expiringUses = true, uses }
}

// WithRedirectTo makes a request for the file redirect (302) to target,
// verbatim, such as "ftp://example.com/x" or "file:///etc/passwd". It takes
// precedence over WithRedirects and WithExpiringRedirect.
func WithRedirectTo(target string) Option {
	return func(c *config) { c.redirectTo = target }
}

// WithContentDisposition sends value verbatim as the Content-Disposition header.
func WithContentDisposition(value string) Option {
	return func(c *config) { c.disposition = value }
}

// WithReprDigest sends Repr-Digest: sha-256=:BASE64: (RFC 9530) of the whole
// current representation on every 200 and 206 response (except gzip ones).
func WithReprDigest() Option {
	return func(c *config) { c.reprDigest, c.wrongReprDigest = true, false }
}

// WithWrongReprDigest is WithReprDigest with a wrong digest (the right one
// with its first byte flipped).
func WithWrongReprDigest() Option {
	return func(c *config) { c.reprDigest, c.wrongReprDigest = true, true }
}

// WithGzipWhenOffered answers a request whose Accept-Encoding offers gzip,
// and that has no Range or whose Range is ignored (WithoutRanges,
// WithRangesIgnoredFor), with a gzip-compressed full body (Content-Encoding:
// gzip, no Content-Length, no Repr-Digest, the ETag suffixed with -gzip as
// Apache does), as some servers and CDNs do. Go's Transport offers gzip on
// every request that has neither Range nor Accept-Encoding.
func WithGzipWhenOffered() Option {
	return func(c *config) { c.gzip = true }
}

// WithTLS serves HTTPS (HTTP/1.1 only) with a self-signed certificate that
// Server.Client trusts.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithHTTP2 serves HTTPS with HTTP/2 enabled; Server.Client speaks HTTP/2.
func WithHTTP2() Option {
	return func(c *config) { c.http2 = true }
}

// WithoutContentLength sends 200 responses without Content-Length (chunked in
// HTTP/1.1), so the client does not know the size.
func WithoutContentLength() Option {
	return func(c *config) { c.noContentLength = true }
}

// WithoutConditionals makes the server ignore If-None-Match and
// If-Modified-Since: it answers 200 with the body where a server that
// honours them would answer 304 Not Modified.
func WithoutConditionals() Option {
	return func(c *config) { c.noConditionals = true }
}
