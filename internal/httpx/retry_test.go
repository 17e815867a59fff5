package httpx

import (
	"math"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 120 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"0007", 7 * time.Second, true},
		{"-5", 0, true},
		{"9223372036", 9223372036 * time.Second, true},
		{"9223372037", time.Duration(math.MaxInt64), true},
		{"99999999999999999999999999", time.Duration(math.MaxInt64), true},
		{"Wed, 21 Oct 2015 07:30:00 GMT", 2 * time.Minute, true},
		{"Wednesday, 21-Oct-15 07:30:00 GMT", 2 * time.Minute, true},
		{"Wed Oct 21 07:30:00 2015", 2 * time.Minute, true},
		{"Wed, 21 Oct 2015 07:00:00 GMT", 0, true}, // in the past
		{"Fri, 31 Dec 9999 23:59:59 GMT", time.Duration(math.MaxInt64), true},
		{"", 0, false},
		{"-", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"5 6", 0, false},
		{"0x10", 0, false},
		{"soon", 0, false},
		{"2015-10-21T07:30:00Z", 0, false},
		{"Wed, 21 Oct 2015 07:30:00", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRetryableStatus(t *testing.T) {
	retry := map[int]bool{408: true, 429: true, 500: true, 502: true, 503: true, 504: true}
	for code := 0; code < 1000; code++ {
		if got := RetryableStatus(code); got != retry[code] {
			t.Errorf("RetryableStatus(%d) = %v", code, got)
		}
	}
	if RetryableStatus(-1) {
		t.Error("RetryableStatus(-1) = true")
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "-5", "Wed, 21 Oct 2015 07:30:00 GMT", "99999999999999999999", "1.5"} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 {
			t.Fatalf("%q -> negative delay %v", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("%q -> %v with ok=false", s, d)
		}
	})
}
