// Package httpx holds the small, pure HTTP parsing helpers the download
// engine needs: Content-Range and Range (RFC 9110 §14), Content-Disposition
// file names (RFC 6266, RFC 8187), validators (RFC 9110 §8.8), Retry-After,
// integrity digests (RFC 9530 and user checksums) and byte sizes.
//
// Every function is pure: nothing here performs I/O or keeps state, and every
// parser is written to accept hostile input without panicking.
package httpx

import "strconv"

// quote renders untrusted input for an error message, shortened so that a
// hostile header cannot flood the logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isOWS reports whether c is optional whitespace (SP or HTAB, RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS removes leading and trailing SP and HTAB.
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
