package durl

import "net/http"

// Request describes one download.
type Request struct {
	// URL is the http or https URL to download.
	URL string
	// Mirrors are other URLs of the same file. Parts of the file are drawn
	// from all of them; a mirror is used only after its size, its answer
	// to a range durl already holds, and its digest (when both send one)
	// agree with URL's; one that disagrees or fails for good is dropped
	// with an EventWarning. When URL fails before it answered with the
	// file (an error status, or no answer three times), the download
	// starts from the first mirror that works instead, which then plays
	// URL's part; the file keeps the name URL gives.
	Mirrors []string
	// Dest is the destination file, or the folder to put it in when
	// DestIsDir is set (the name then comes from Content-Disposition,
	// sanitised, else from the URL).
	Dest      string
	DestIsDir bool
	// Header holds extra request headers.
	Header http.Header
	// Checksum, if set ("sha256:HEX"; also sha512, sha1, md5), is verified
	// before the file is moved to its destination.
	Checksum string
	// RateLimit caps this task's bytes per second. Zero means no limit.
	RateLimit int64
	// Connections is how many connections may fetch parts of the file at
	// once. Zero is automatic: several when the server honours ranges with
	// a strong validator and the file is large, one otherwise. More than
	// one is used only under those same conditions.
	Connections int
	// Priority orders the tasks waiting for a free place (Options.MaxActive)
	// or a free connection to their host: higher goes first; equal
	// priorities go in the order they came. Default 0.
	Priority int
}
