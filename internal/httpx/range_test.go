package httpx

import (
	"errors"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-499/1234", ContentRange{0, 499, 1234}, true},
		{"bytes 500-1233/1234", ContentRange{500, 1233, 1234}, true},
		{"bytes 0-0/1", ContentRange{0, 0, 1}, true},
		{"bytes 0-499/*", ContentRange{0, 499, -1}, true},
		{"bytes */1234", ContentRange{-1, -1, 1234}, true},
		{"bytes */0", ContentRange{-1, -1, 0}, true},
		{"Bytes 1-2/3", ContentRange{1, 2, 3}, true},
		{" bytes 1-2/3\t", ContentRange{1, 2, 3}, true}, // OWS around a field value is not part of it
		{"bytes 007-010/0100", ContentRange{7, 10, 100}, true},
		{"bytes 0-9223372036854775806/9223372036854775807", ContentRange{0, 9223372036854775806, 9223372036854775807}, true},
		{"bytes 0-9223372036854775806/*", ContentRange{0, 9223372036854775806, -1}, true},

		{"", ContentRange{}, false},
		{"bytes", ContentRange{}, false},
		{"bytes ", ContentRange{}, false},
		{"bytes=0-499/1234", ContentRange{}, false},
		{"items 0-499/1234", ContentRange{}, false},
		{"bytes  0-499/1234", ContentRange{}, false},
		{"bytes\t0-499/1234", ContentRange{}, false},
		{"bytes 0 -499/1234", ContentRange{}, false},
		{"bytes 0- 499/1234", ContentRange{}, false},
		{"bytes 0-499 /1234", ContentRange{}, false},
		{"bytes 0-499/ 1234", ContentRange{}, false},
		{"bytes 0-499", ContentRange{}, false},
		{"bytes 0-/1234", ContentRange{}, false},
		{"bytes -499/1234", ContentRange{}, false},
		{"bytes 499/1234", ContentRange{}, false},
		{"bytes 0-499/", ContentRange{}, false},
		{"bytes 500-499/1234", ContentRange{}, false},
		{"bytes 0-1234/1234", ContentRange{}, false},
		{"bytes 0-0/0", ContentRange{}, false},
		{"bytes -1-499/1234", ContentRange{}, false},
		{"bytes +1-499/1234", ContentRange{}, false},
		{"bytes 0-499/-1", ContentRange{}, false},
		{"bytes 0-499/1234/5", ContentRange{}, false},
		{"bytes 0-499-600/1234", ContentRange{}, false},
		{"bytes 0x10-0x20/1234", ContentRange{}, false},
		{"bytes 1e3-2e3/1e4", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes */", ContentRange{}, false},
		{"bytes */-5", ContentRange{}, false},
		{"bytes * /1234", ContentRange{}, false},
		{"bytes 0-9223372036854775807/*", ContentRange{}, false},              // Length would overflow
		{"bytes 0-9223372036854775808/*", ContentRange{}, false},              // overflow
		{"bytes 0-1/9223372036854775808", ContentRange{}, false},              // overflow
		{"bytes 0-1/99999999999999999999999999999999", ContentRange{}, false}, // overflow
		{"bytes 0-499/1234, bytes 500-999/1234", ContentRange{}, false},
		{"bytes ０-1/2", ContentRange{}, false}, // fullwidth digit
	}
	for _, tt := range tests {
		got, err := ParseContentRange(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseContentRange(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrContentRange) {
				t.Errorf("ParseContentRange(%q) error %v does not wrap ErrContentRange", tt.in, err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ParseContentRange(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestContentRangeMethods(t *testing.T) {
	tests := []struct {
		c           ContentRange
		str         string
		length      int64
		unsatisfied bool
	}{
		{ContentRange{0, 499, 1234}, "bytes 0-499/1234", 500, false},
		{ContentRange{5, 5, -1}, "bytes 5-5/*", 1, false},
		{ContentRange{-1, -1, 77}, "bytes */77", 0, true},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.str)
		}
		if got := tt.c.Length(); got != tt.length {
			t.Errorf("%+v.Length() = %d, want %d", tt.c, got, tt.length)
		}
		if got := tt.c.Unsatisfied(); got != tt.unsatisfied {
			t.Errorf("%+v.Unsatisfied() = %v, want %v", tt.c, got, tt.unsatisfied)
		}
	}
}

func TestFormatRange(t *testing.T) {
	tests := []struct {
		first, last int64
		want        string
	}{
		{0, -1, "bytes=0-"},
		{1024, -1, "bytes=1024-"},
		{0, 0, "bytes=0-0"},
		{100, 199, "bytes=100-199"},
		{9223372036854775806, 9223372036854775806, "bytes=9223372036854775806-9223372036854775806"},
	}
	for _, tt := range tests {
		if got := FormatRange(tt.first, tt.last); got != tt.want {
			t.Errorf("FormatRange(%d, %d) = %q, want %q", tt.first, tt.last, got, tt.want)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-499/1234", "bytes 0-499/*", "bytes */1234", "bytes 0-0/0", "bytes 9-1/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContentRange(s)
		if err != nil {
			if !errors.Is(err, ErrContentRange) {
				t.Fatalf("error %v does not wrap ErrContentRange", err)
			}
			return
		}
		if c.Unsatisfied() {
			if c.First != -1 || c.Last != -1 || c.Complete < 0 {
				t.Fatalf("bad unsatisfied range %+v", c)
			}
		} else {
			if c.First < 0 || c.First > c.Last {
				t.Fatalf("First/Last out of order: %+v", c)
			}
			if c.Complete != -1 && (c.Complete < 0 || c.Last >= c.Complete) {
				t.Fatalf("Last not below Complete: %+v", c)
			}
			if c.Length() <= 0 {
				t.Fatalf("Length overflow: %+v -> %d", c, c.Length())
			}
		}
		again, err := ParseContentRange(c.String())
		if err != nil || again != c {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, c, c.String(), again, err)
		}
	})
}
