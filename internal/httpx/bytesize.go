package httpx

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrByteSize is wrapped by every error ParseByteSize returns.
var ErrByteSize = errors.New("httpx: invalid byte size")

// byteUnits maps lower-cased unit suffixes to binary multipliers.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseByteSize parses a size such as "100", "512k", "10M", "1.5G" or
// "2 TiB" into bytes, as used by --limit-rate. The number is decimal with an
// optional fraction; the unit, case-insensitive and optionally separated by
// spaces, is K, M, G or T (binary multiples of 1024) optionally followed by
// "B" or "iB", or just "B". Fractional bytes are truncated. Negative sizes
// and sizes beyond int64 are rejected. Errors wrap ErrByteSize.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && ('0' <= t[i] && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	intPart, frac, hasDot := strings.Cut(num, ".")
	if !isDigits(intPart) || hasDot && !isDigits(frac) {
		return 0, fmt.Errorf("%w %s: want a number such as 100, 512k or 1.5M", ErrByteSize, quote(s))
	}
	if len(num) > 40 {
		return 0, fmt.Errorf("%w %s: too many digits", ErrByteSize, quote(s))
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%w %s: unknown unit %s (want K, M, G or T)", ErrByteSize, quote(s), quote(unit))
	}
	// value = intPart.frac × mult, computed exactly: (intPart‖frac × mult) / 10^len(frac).
	n, _ := new(big.Int).SetString(intPart+frac, 10)
	n.Mul(n, big.NewInt(mult))
	n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !n.IsInt64() {
		return 0, fmt.Errorf("%w %s: too large", ErrByteSize, quote(s))
	}
	return n.Int64(), nil
}
