// Package retry holds the waiting rules shared by every loop that calls
// out and tries again: the media fetcher, the outbox dispatcher and the
// relay. One place decides how long a failed call waits, so the three
// cannot drift apart.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is capped exponential backoff: the first retry waits about Min,
// each further one twice as long, never more than Max. A Max below Min
// lowers the first step too, so max_backoff alone makes retries fast.
type Backoff struct {
	Min, Max time.Duration
}

// Wait is the pause before retry n (n >= 1 counts the failures so far),
// with jitter over its upper half, [d/2, d], so that calls failing together
// do not come back together.
func (b Backoff) Wait(n int) time.Duration {
	d := min(b.Min, b.Max)
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// After reads a Retry-After header value: delay-seconds or an HTTP date
// (RFC 9110 section 10.2.3). Zero when absent, malformed or in the past.
func After(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sleep waits d or until ctx ends; false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Idle is the pause of a worker loop between two looks at its queue: it
// returns true when d has passed, a change arrived or kick fired, and false
// when ctx ended or the change channel closed (the store closed: nothing
// more can be recorded, so the loop stops as it would at shutdown).
func Idle[T any](ctx context.Context, d time.Duration, changes <-chan T, kick <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case _, ok := <-changes:
		return ok
	case <-kick:
		return true
	case <-t.C:
		return true
	}
}
