// Package retry computes the waits between attempts: exponential backoff
// with full jitter, capped, and a server's Retry-After honoured within the
// cap.
package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff computes successive waits. The zero value is not usable; set Base
// and Max.
type Backoff struct {
	Base, Max time.Duration
	attempt   int
}

// Next returns how long to wait before the next attempt. retryAfter, when
// positive, is the server's wish; it is honoured up to Max, and jitter is
// never applied below it.
func (b *Backoff) Next(retryAfter time.Duration) time.Duration {
	ceiling := b.Base << min(b.attempt, 30)
	if ceiling <= 0 || ceiling > b.Max {
		ceiling = b.Max
	}
	b.attempt++
	wait := ceiling/2 + rand.N(ceiling/2+1)
	if retryAfter > 0 {
		wait = max(wait, min(retryAfter, b.Max))
	}
	return wait
}

// Reset starts over from Base, after progress was made.
func (b *Backoff) Reset() { b.attempt = 0 }

// Attempts is the number of waits since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }
