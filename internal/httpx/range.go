package httpx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrContentRange is wrapped by every error ParseContentRange returns.
var ErrContentRange = errors.New("httpx: invalid Content-Range")

// ContentRange is a parsed Content-Range header of a 206 or 416 response.
type ContentRange struct {
	First, Last int64 // inclusive byte positions; both -1 for an unsatisfied range ("bytes */N")
	Complete    int64 // the complete length, -1 when "*" (unknown)
}

// Unsatisfied reports whether c is an unsatisfied-range ("bytes */N"), as
// sent with a 416 response.
func (c ContentRange) Unsatisfied() bool { return c.First < 0 }

// Length is the number of bytes the range covers (Last-First+1), or 0 for an
// unsatisfied range.
func (c ContentRange) Length() int64 {
	if c.Unsatisfied() {
		return 0
	}
	return c.Last - c.First + 1
}

// String formats c as a Content-Range field value; for any value returned by
// ParseContentRange, ParseContentRange(c.String()) returns c again.
func (c ContentRange) String() string {
	if c.Unsatisfied() {
		return "bytes */" + strconv.FormatInt(c.Complete, 10)
	}
	complete := "*"
	if c.Complete >= 0 {
		complete = strconv.FormatInt(c.Complete, 10)
	}
	return fmt.Sprintf("bytes %d-%d/%s", c.First, c.Last, complete)
}

// ParseContentRange parses a Content-Range field value (RFC 9110 §14.4):
//
//	"bytes 0-499/1234"  a satisfied range of a representation of 1234 bytes
//	"bytes 0-499/*"     the same, complete length unknown (Complete == -1)
//	"bytes */1234"      an unsatisfied range (First == Last == -1)
//
// The grammar is applied strictly: the unit must be "bytes" (compared
// case-insensitively, §14.1), followed by exactly one SP; positions and
// lengths are plain decimal digits that fit an int64; First <= Last, and
// Last < Complete when Complete is known. Only whitespace around the whole
// value, which is not part of a field value (§5.5), is ignored. Last may not
// be math.MaxInt64, so that Length never overflows. Errors wrap
// ErrContentRange.
func ParseContentRange(s string) (ContentRange, error) {
	bad := func(why string) (ContentRange, error) {
		return ContentRange{}, fmt.Errorf("%w %s: %s", ErrContentRange, quote(s), why)
	}
	unit, rest, ok := strings.Cut(trimOWS(s), " ")
	if !ok {
		return bad("want \"bytes \" followed by a range")
	}
	if !strings.EqualFold(unit, "bytes") {
		return bad("range unit is not bytes")
	}

	if length, ok := strings.CutPrefix(rest, "*/"); ok {
		complete, err := parsePos(length)
		if err != nil {
			return bad("complete length: " + err.Error())
		}
		return ContentRange{First: -1, Last: -1, Complete: complete}, nil
	}

	rng, length, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("missing \"/\" and complete length")
	}
	firstS, lastS, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("missing \"-\" in range")
	}
	first, err := parsePos(firstS)
	if err != nil {
		return bad("first position: " + err.Error())
	}
	last, err := parsePos(lastS)
	if err != nil {
		return bad("last position: " + err.Error())
	}
	if last < first {
		return bad("last position before first position")
	}
	if last == math.MaxInt64 {
		return bad("last position too large")
	}
	complete := int64(-1)
	if length != "*" {
		if complete, err = parsePos(length); err != nil {
			return bad("complete length: " + err.Error())
		}
		if last >= complete {
			return bad("last position not below complete length")
		}
	}
	return ContentRange{First: first, Last: last, Complete: complete}, nil
}

// parsePos parses 1*DIGIT into a non-negative int64.
func parsePos(s string) (int64, error) {
	if !isDigits(s) {
		return 0, errors.New("not a decimal number")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("number out of range")
	}
	return n, nil
}

// FormatRange formats a Range request field value for one byte range:
// "bytes=first-last", or "bytes=first-" (to the end) when last < 0.
func FormatRange(first, last int64) string {
	if last < 0 {
		return "bytes=" + strconv.FormatInt(first, 10) + "-"
	}
	return "bytes=" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
}
