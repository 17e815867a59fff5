package httpx

import (
	"testing"
	"time"
)

func TestStrongETag(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`"abc"`, `"abc"`, true},
		{`"xyzzy-123/456"`, `"xyzzy-123/456"`, true},
		{`""`, `""`, true},
		{` "abc" `, `"abc"`, true},
		{`"!#$%&'()*+,-./:;<=>?@[]^_{|}~"`, `"!#$%&'()*+,-./:;<=>?@[]^_{|}~"`, true},
		{"\"caf\xe9\"", "\"caf\xe9\"", true}, // obs-text
		{`W/"abc"`, "", false},
		{`w/"abc"`, "", false},
		{`abc`, "", false},
		{`"abc`, "", false},
		{`abc"`, "", false},
		{`"`, "", false},
		{``, "", false},
		{`"a"b"`, "", false},
		{`"a b"`, "", false},
		{"\"a\tb\"", "", false},
		{"\"a\x00b\"", "", false},
		{"\"a\x7fb\"", "", false},
		{`"a", "b"`, "", false},
		{`'abc'`, "", false},
	}
	for _, tt := range tests {
		got, ok := StrongETag(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("StrongETag(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStrongLastModified(t *testing.T) {
	lm := "Tue, 15 Nov 1994 12:45:26 GMT"
	lmTime := time.Date(1994, 11, 15, 12, 45, 26, 0, time.UTC)
	tests := []struct {
		lm, date string
		ok       bool
	}{
		{lm, "Tue, 15 Nov 1994 12:46:26 GMT", true}, // exactly 60 s
		{lm, "Wed, 16 Nov 1994 00:00:00 GMT", true},
		{lm, "Wednesday, 16-Nov-94 00:00:00 GMT", true}, // RFC 850 date
		{lm, "Wed Nov 16 00:00:00 1994", true},          // asctime date
		{" " + lm + " ", "Wed, 16 Nov 1994 00:00:00 GMT", true},
		{lm, "Tue, 15 Nov 1994 12:46:25 GMT", false}, // 59 s
		{lm, lm, false},
		{lm, "Mon, 14 Nov 1994 00:00:00 GMT", false}, // Date before Last-Modified
		{lm, "", false},
		{lm, "yesterday", false},
		{"", "Wed, 16 Nov 1994 00:00:00 GMT", false},
		{"1994-11-15T12:45:26Z", "Wed, 16 Nov 1994 00:00:00 GMT", false},
	}
	for _, tt := range tests {
		got, ok := StrongLastModified(tt.lm, tt.date)
		if ok != tt.ok {
			t.Errorf("StrongLastModified(%q, %q) ok = %v, want %v", tt.lm, tt.date, ok, tt.ok)
			continue
		}
		if ok && !got.Equal(lmTime) {
			t.Errorf("StrongLastModified(%q, %q) = %v, want %v", tt.lm, tt.date, got, lmTime)
		}
		if !ok && !got.IsZero() {
			t.Errorf("StrongLastModified(%q, %q) = %v with ok=false", tt.lm, tt.date, got)
		}
	}
}
