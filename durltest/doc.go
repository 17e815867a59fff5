// Package durltest provides a fault-injecting HTTP test server for download
// clients, in the spirit of net/http/httptest.
//
// A Server serves one deterministic pseudo-random file (see Pattern, Content
// and Digest) under every path, with correct RFC 9110 range semantics by
// default: single ranges answered 206 with Content-Range, several ranges
// answered 200 with the full body, unsatisfiable ranges answered 416 with
// Content-Range: bytes */size, If-Range honoured only for an equal strong
// ETag or an equal strong Last-Modified date, and a GET whose If-None-Match
// or If-Modified-Since says the client has the current content answered
// 304 Not Modified. Options break each rule a
// resuming client relies on: ignored ranges, content replaced between or
// during requests, cut connections, stalls, short bodies, error statuses,
// redirect chains, expiring signed URLs, gzip where identity was expected,
// wrong digests, ignored preconditions.
//
// Paths:
//
//   - /content/<name> always serves the content (no redirect options apply).
//   - /redirect/<k>/<name> is a hop of the WithRedirects chain.
//   - /signed/<token>/<name> is a signed URL of WithExpiringRedirect.
//   - Any other path is "the file": it serves the content, or starts the
//     redirects that the options ask for. FileURL returns one such URL.
//
// A "file request" is a request that reaches the content (after redirects);
// file requests are numbered from 1 in arrival order, and WithStatusSequence
// and WithRangesIgnoredFor refer to these numbers.
//
// Faults that count "times" (WithCutAfter, WithStall, WithShortBody) apply to
// the first GET responses that carry a body (status 200 or 206), each option
// counting on its own.
//
// Every handler loop is bounded and stops when the client goes away or the
// server is closed, and the server is safe for concurrent requests.
package durltest
