package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/durl-dev/durl/internal/httpx"
)

// parseByteSize parses a rate such as "10M", "1.5G", "512k", "10MiB",
// "100" (bytes) or "10M/s". As in curl, the suffixes K, M, G and T are
// powers of 1024.
func parseByteSize(s string) (int64, error) {
	n, err := httpx.ParseByteSize(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if err != nil {
		return 0, fmt.Errorf("%q: want bytes per second such as 512k, 10M or 1.5G (K, M, G, T: powers of 1024)", s)
	}
	return n, nil
}

// formatSize formats a number of bytes with binary units: "512 B",
// "12.3 KiB", "1.0 GiB".
func formatSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || unit == "PiB" {
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
		}
	}
	panic("unreachable")
}

// formatRate formats bytes per second, such as "85.2 MiB/s".
func formatRate(bytesPerSecond float64) string {
	if math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) || bytesPerSecond < 0 {
		bytesPerSecond = 0
	}
	return formatSize(int64(bytesPerSecond)) + "/s"
}

// formatDuration formats a duration briefly: "0.4 s", "12.3 s", "2m05s",
// "1h02m".
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}
