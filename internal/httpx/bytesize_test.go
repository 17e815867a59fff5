package httpx

import (
	"errors"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"100", 100, false},
		{"100B", 100, false},
		{"100b", 100, false},
		{"512k", 512 << 10, false},
		{"512K", 512 << 10, false},
		{"512KB", 512 << 10, false},
		{"512KiB", 512 << 10, false},
		{"512kib", 512 << 10, false},
		{"10M", 10 << 20, false},
		{"10 MiB", 10 << 20, false},
		{" 10m ", 10 << 20, false},
		{"1.5G", 3 << 29, false},
		{"1.5gb", 3 << 29, false},
		{"2T", 2 << 40, false},
		{"0.5k", 512, false},
		{"1.0001", 1, false}, // fractional bytes truncated
		{"0.0001k", 0, false},
		{"8388607T", 8388607 << 40, false},
		{"9223372036854775807", 9223372036854775807, false},
		{"007k", 7 << 10, false},

		{"", 0, true},
		{"  ", 0, true},
		{"k", 0, true},
		{"-1", 0, true},
		{"-1M", 0, true},
		{"+1M", 0, true},
		{".5M", 0, true},
		{"1.M", 0, true},
		{"1..5M", 0, true},
		{"1.5.5M", 0, true},
		{"1e3", 0, true},
		{"0x10", 0, true},
		{"10X", 0, true},
		{"10 MBs", 0, true},
		{"10iB", 0, true},
		{"10P", 0, true},
		{"10 M B", 0, true},
		{"8388608T", 0, true},
		{"9223372036854775808", 0, true},
		{"99999999999999999999999999999999999999999999999999", 0, true},
		{"1,000", 0, true},
		{"١٠", 0, true}, // Arabic-Indic digits
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseByteSize(%q) = %d, %v; wantErr %v", tt.in, got, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrByteSize) {
				t.Errorf("ParseByteSize(%q) error %v does not wrap ErrByteSize", tt.in, err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"100", "1.5G", "512KiB", "-1", "8388608T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			if !errors.Is(err, ErrByteSize) {
				t.Fatalf("error %v does not wrap ErrByteSize", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("%q -> negative %d", s, n)
		}
	})
}
