package httpx

import (
	"errors"
	"strings"
)

// Errors of ParseHeaderLine.
var (
	ErrHeaderForm      = errors.New("want 'Name: value'")
	ErrHeaderLineBreak = errors.New("the value holds a line break")
)

// ParseHeaderLine splits a header given as one line "Name: value", as to
// curl -H, into its name, an RFC 9110 token (§5.6.2), and its value
// without surrounding white space. A value with a line break or a NUL is
// refused: it would smuggle another header in.
func ParseHeaderLine(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	switch {
	case !ok || !isToken(name):
		return "", "", ErrHeaderForm
	case strings.ContainsAny(value, "\r\n\x00"):
		return "", "", ErrHeaderLineBreak
	}
	return name, value, nil
}

// isToken reports whether s is an HTTP token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
