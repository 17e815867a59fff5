package retry

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 60 * time.Second}
	prevCeiling := time.Duration(0)
	for i := 0; i < 12; i++ {
		ceiling := min(time.Second<<i, 60*time.Second)
		w := b.Next(0)
		if w < ceiling/2 || w > ceiling {
			t.Fatalf("attempt %d: wait %v outside [%v, %v]", i, w, ceiling/2, ceiling)
		}
		if ceiling < prevCeiling {
			t.Fatalf("ceiling shrank")
		}
		prevCeiling = ceiling
	}
	b.Reset()
	if w := b.Next(0); w > time.Second {
		t.Fatalf("after Reset: wait %v, want <= 1s", w)
	}
}

func TestBackoffHonoursRetryAfterWithinCap(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 60 * time.Second}
	if w := b.Next(30 * time.Second); w < 30*time.Second {
		t.Fatalf("wait %v ignores Retry-After 30s", w)
	}
	if w := b.Next(10 * time.Hour); w > 60*time.Second {
		t.Fatalf("wait %v exceeds the cap", w)
	}
}
