package httpx

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// ParseRetryAfter parses a Retry-After field value (RFC 9110 §10.2.3):
// either delay-seconds or an HTTP-date, which is turned into a delay from
// now. A date in the past, or a negative number of seconds, gives 0; a delay
// too large for time.Duration saturates at its maximum. ok is false for
// anything else, including an empty value.
func ParseRetryAfter(v string, now time.Time) (delay time.Duration, ok bool) {
	v = trimOWS(v)
	if v == "" {
		return 0, false
	}
	digits, negative := v, false
	if v[0] == '-' {
		digits, negative = v[1:], true
	}
	if isDigits(digits) {
		if negative {
			return 0, true
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 { // Sub saturates instead of overflowing
		return d, true
	}
	return 0, true
}

// RetryableStatus reports whether a response with this status code is worth
// retrying: 408, 429, 500, 502, 503 and 504. Other codes are final.
func RetryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout,
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
		return true
	}
	return false
}
