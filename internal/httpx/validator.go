package httpx

import (
	"net/http"
	"time"
)

// StrongLastModifiedMargin is how much older than the response's Date a
// Last-Modified time must be to count as a strong validator (RFC 9110
// §8.8.2.2).
const StrongLastModifiedMargin = 60 * time.Second

// StrongETag returns the ETag field value as sent (minus surrounding
// whitespace) when it is a well-formed strong entity-tag, a quoted opaque-tag
// such as "abc" (RFC 9110 §8.8.3). It returns false for a weak W/"…" tag,
// which If-Range must never carry (§13.1.5), and for anything malformed.
func StrongETag(etag string) (string, bool) {
	e := trimOWS(etag)
	if len(e) < 2 || e[0] != '"' || e[len(e)-1] != '"' {
		return "", false
	}
	for i := 1; i < len(e)-1; i++ {
		// etagc = %x21 / %x23-7E / obs-text
		if c := e[i]; c != 0x21 && (c < 0x23 || c == 0x7F) {
			return "", false
		}
	}
	return e, true
}

// StrongLastModified parses a Last-Modified field value and reports whether
// it can serve as a strong validator: only if both it and the response's
// Date parse as HTTP-dates and Last-Modified is at least 60 seconds before
// Date (RFC 9110 §8.8.2.2). A missing or unparsable Date gives false.
func StrongLastModified(lastModified, date string) (time.Time, bool) {
	lm, err := http.ParseTime(trimOWS(lastModified))
	if err != nil {
		return time.Time{}, false
	}
	d, err := http.ParseTime(trimOWS(date))
	if err != nil {
		return time.Time{}, false
	}
	if d.Sub(lm) < StrongLastModifiedMargin {
		return time.Time{}, false
	}
	return lm, true
}
