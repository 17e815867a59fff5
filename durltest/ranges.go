package durltest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// rangeResult is the outcome of parsing a Range header.
type rangeResult int

const (
	rangeIgnore        rangeResult = iota // absent, invalid, several ranges or another unit: send 200
	rangeSingle                           // one satisfiable range: send 206
	rangeUnsatisfiable                    // send 416
)

// parseRange parses the Range header values of a request for a
// representation of the given size, as RFC 9110 §14.1.2 says. It returns the
// first and last (inclusive) offsets of a single satisfiable range. Several
// ranges are answered with the full body, which §14.2 allows.
func parseRange(values []string, size int64) (first, last int64, res rangeResult) {
	if len(values) != 1 {
		return 0, 0, rangeIgnore
	}
	unit, spec, ok := strings.Cut(strings.TrimSpace(values[0]), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return 0, 0, rangeIgnore
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, rangeIgnore
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // suffix range: the last b bytes
		n, ok := parseOffset(b)
		if !ok {
			return 0, 0, rangeIgnore
		}
		if n == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		return size - min(n, size), size - 1, rangeSingle
	}
	first, ok = parseOffset(a)
	if !ok {
		return 0, 0, rangeIgnore
	}
	last = size - 1
	if b != "" {
		if last, ok = parseOffset(b); !ok || last < first {
			return 0, 0, rangeIgnore
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return first, last, rangeSingle
}

// parseOffset parses a non-empty string of decimal digits.
func parseOffset(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ifRangeHolds evaluates an If-Range value (RFC 9110 §13.1.5) against version
// v answered at time now: true if absent, if a strong ETag equal to v's
// strong ETag, or if an HTTP date equal to v's Last-Modified when that is a
// strong validator (at least 60 s before now). A weak ETag never matches.
func ifRangeHolds(val string, v *version, now time.Time) bool {
	val = strings.TrimSpace(val)
	switch {
	case val == "":
		return true
	case strings.HasPrefix(val, "W/"):
		return false
	case strings.HasPrefix(val, `"`):
		return v.etag != "" && !strings.HasPrefix(v.etag, "W/") && val == v.etag
	}
	t, err := http.ParseTime(val)
	if err != nil || v.lastMod.IsZero() || now.Sub(v.lastMod) < time.Minute {
		return false
	}
	return t.Equal(v.lastMod)
}

// notModified reports whether the preconditions of a GET in h say v has
// not changed (RFC 9110 §13.2.2): If-None-Match lists its ETag (weak
// comparison), or without If-None-Match, If-Modified-Since is not before
// its Last-Modified.
func notModified(h http.Header, v *version) bool {
	if inm := h.Get("If-None-Match"); inm != "" {
		if v.etag == "" {
			return false
		}
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(v.etag, "W/") {
				return true
			}
		}
		return false
	}
	t, err := http.ParseTime(h.Get("If-Modified-Since"))
	return err == nil && !v.lastMod.IsZero() && !v.lastMod.After(t)
}

// offersGzip reports whether Accept-Encoding values offer gzip with a
// non-zero quality.
func offersGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			if !strings.EqualFold(name, "gzip") && !strings.EqualFold(name, "x-gzip") {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						q = f
					}
				}
			}
			if q > 0 {
				return true
			}
		}
	}
	return false
}
