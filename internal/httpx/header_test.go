package httpx

import (
	"errors"
	"testing"
)

func TestParseHeaderLine(t *testing.T) {
	for _, tc := range []struct {
		line, name, value string
		err               error
	}{
		{"X-Token: abc", "X-Token", "abc", nil},
		{"  Accept :  text/plain  ", "Accept", "text/plain", nil},
		{"X-Empty:", "X-Empty", "", nil},
		{"X-Colons: a:b:c", "X-Colons", "a:b:c", nil},
		{"NoColon", "", "", ErrHeaderForm},
		{": value", "", "", ErrHeaderForm},
		{"Bad Name: v", "", "", ErrHeaderForm},
		{"Bad(Name): v", "", "", ErrHeaderForm},
		{"X-A: b\r\nX-B: c", "", "", ErrHeaderLineBreak},
		{"X-A: b\x00", "", "", ErrHeaderLineBreak},
	} {
		name, value, err := ParseHeaderLine(tc.line)
		if name != tc.name || value != tc.value || !errors.Is(err, tc.err) {
			t.Errorf("ParseHeaderLine(%q) = %q, %q, %v; want %q, %q, %v", tc.line, name, value, err, tc.name, tc.value, tc.err)
		}
	}
}
