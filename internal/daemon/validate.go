package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/httpx"
)

// Bounds of the values of a download.
const (
	maxMirrors   = 32
	maxHeaders   = 64
	maxURLLength = 8 << 10
)

// toRequest checks the download d, the i-th of an AddRequest, and returns
// it as a request of the library. Nothing is changed: it only reads the
// file system to resolve symbolic links.
func (s *Server) toRequest(d api.Download, i int) (durl.Request, error) {
	field := func(name string) string { return fmt.Sprintf("downloads[%d].%s", i, name) }
	req := durl.Request{
		URL:         d.URL,
		Mirrors:     d.Mirrors,
		Checksum:    d.Checksum,
		Connections: d.Connections,
		Priority:    d.Priority,
		RateLimit:   d.RateLimit,
	}
	if d.URL == "" {
		return req, badRequest("%s is missing: give the URL to download", field("url"))
	}
	if err := checkURL(d.URL); err != nil {
		return req, badRequest("%s: %v", field("url"), err)
	}
	if len(d.Mirrors) > maxMirrors {
		return req, badRequest("%s: at most %d mirrors", field("mirrors"), maxMirrors)
	}
	for j, m := range d.Mirrors {
		if err := checkURL(m); err != nil {
			return req, badRequest("%s[%d]: %v", field("mirrors"), j, err)
		}
	}
	var err error
	if req.Header, err = parseHeaders(d.Headers); err != nil {
		return req, badRequest("%s: %v", field("headers"), err)
	}
	if d.Checksum != "" {
		sum, err := httpx.ParseChecksum(d.Checksum)
		if err != nil {
			return req, badRequest("%s %q is not a checksum: want ALGO:HEX, ALGO one of sha256, sha512, sha1 and md5, HEX its digest in hexadecimal",
				field("checksum"), d.Checksum)
		}
		req.Checksum = sum.String()
	}
	switch {
	case d.Connections < 0 || d.Connections > api.MaxConnections:
		return req, badRequest("%s must be from 0 (automatic) to %d", field("connections"), api.MaxConnections)
	case d.Priority < api.MinPriority || d.Priority > api.MaxPriority:
		return req, badRequest("%s must be from %d to %d", field("priority"), api.MinPriority, api.MaxPriority)
	case d.RateLimit < 0:
		return req, badRequest("%s must be 0 (no limit) or more bytes per second", field("rate_limit"))
	}
	if req.Dest, req.DestIsDir, err = s.destination(d, field); err != nil {
		return req, err
	}
	// The session judges the destination against the download folders.
	switch err := s.session.Check(req); {
	case errors.Is(err, durl.ErrOutsideAllowedDirs):
		return req, errorf(http.StatusForbidden, api.CodeForbidden,
			"%s is outside the download folders of durl serve (%s); choose a destination inside them, or start durl serve with -d for that folder",
			req.Dest, strings.Join(s.cfg.DownloadDirs, ", "))
	case err != nil:
		return req, badRequest("downloads[%d]: %v", i, err)
	}
	return req, nil
}

// destination checks the output file or folder of d and returns it
// (the default download folder when d names neither).
func (s *Server) destination(d api.Download, field func(string) string) (dest string, isDir bool, err error) {
	switch {
	case d.Output != "" && d.Dir != "":
		return "", false, badRequest("%s and %s are both given: give at most one", field("output"), field("dir"))
	case d.Output != "":
		if err := checkAbs(d.Output); err != nil {
			return "", false, badRequest("%s: %v", field("output"), err)
		}
		if strings.HasSuffix(d.Output, "/") {
			return "", false, badRequest("%s %q names a folder; give it as dir", field("output"), d.Output)
		}
		dest = filepath.Clean(d.Output)
	case d.Dir != "":
		if err := checkAbs(d.Dir); err != nil {
			return "", false, badRequest("%s: %v", field("dir"), err)
		}
		dest, isDir = filepath.Clean(d.Dir), true
	default:
		return s.cfg.DownloadDirs[0], true, nil
	}
	if fi, err := os.Stat(dest); !isDir && err == nil && fi.IsDir() {
		return "", false, badRequest("%s %q is a folder; give it as dir", field("output"), d.Output)
	}
	return dest, isDir, nil
}

// checkAbs refuses a path that is not absolute, or that no file system
// accepts.
func checkAbs(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%q holds a zero byte", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q is relative: send an absolute path (the client resolves it against its working folder)", p)
	}
	return nil
}

// checkURL refuses a URL that is not an absolute http or https URL.
func checkURL(raw string) error {
	if len(raw) > maxURLLength {
		return fmt.Errorf("the URL is longer than %d bytes", maxURLLength)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a valid URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http or https URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// reservedHeaders are set by durl itself.
var reservedHeaders = map[string]bool{"Range": true, "If-Range": true, "Accept-Encoding": true}

// parseHeaders parses headers of the form "Name: value".
func parseHeaders(values []string) (http.Header, error) {
	if len(values) == 0 {
		return nil, nil
	}
	if len(values) > maxHeaders {
		return nil, fmt.Errorf("at most %d headers", maxHeaders)
	}
	h := make(http.Header)
	for _, v := range values {
		name, value, err := httpx.ParseHeaderLine(v)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q: %w", v, err)
		case reservedHeaders[http.CanonicalHeaderKey(name)]:
			return nil, fmt.Errorf("the %s header is durl's to set", name)
		}
		h.Add(name, value)
	}
	return h, nil
}

// validID reports whether id looks like a task ID: lower-case hex, of a
// bounded length.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.Trim(id, "0123456789abcdef") == ""
}
