package webhook

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds how a Publisher retries delivery to an endpoint.
//
// After failed attempt n, the next one waits a random duration between 0
// and min(Max, Base·2ⁿ⁻¹) ("full jitter", so that many senders that failed
// together do not retry together), or, when the response had a
// Retry-After header, at least what it asks, up to Max.
//
// A delivery to one endpoint therefore lasts at most
//
//	Attempts × the attempt timeout + (Attempts−1) × Max
//
// plus any time spent waiting for a free request (WithMaxConcurrency). With
// the defaults (6 attempts of up to DefaultAttemptTimeout, 15s, and Max
// 30s) that is 6×15s + 5×30s = 4 minutes. The waits alone are at most
// 1+2+4+8+16 = 31 seconds only when no response asks for more with
// Retry-After; an endpoint that answers 503 with "Retry-After: 30" every
// time makes each of them 30 seconds. Publish stops sooner when its
// context ends.
type RetryPolicy struct {
	Attempts int           // attempts per endpoint, the first included; at least 1
	Base     time.Duration // the bound of the first delay; more than 0
	Max      time.Duration // the bound of every delay, Retry-After included; at least Base, at most 24h
}

// maxRetryDelay bounds RetryPolicy.Max: longer waits do not belong in
// memory, and the bound keeps the backoff arithmetic from overflowing.
const maxRetryDelay = 24 * time.Hour

// DefaultRetryPolicy returns the policy of a Publisher made without
// WithRetry: 6 attempts, delays bounded by 1s, 2s, 4s, 8s and 16s, and
// Retry-After honored up to 30s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Attempts: 6, Base: time.Second, Max: 30 * time.Second}
}

func (rp RetryPolicy) validate() error {
	switch {
	case rp.Attempts < 1:
		return fmt.Errorf("webhook: RetryPolicy.Attempts is %d, want at least 1", rp.Attempts)
	case rp.Base <= 0:
		return fmt.Errorf("webhook: RetryPolicy.Base is %s, want more than 0", rp.Base)
	case rp.Base > maxRetryDelay:
		return fmt.Errorf("webhook: RetryPolicy.Base is %s, want at most %s", rp.Base, maxRetryDelay)
	case rp.Max < rp.Base:
		return fmt.Errorf("webhook: RetryPolicy.Max is %s, want at least Base (%s)", rp.Max, rp.Base)
	case rp.Max > maxRetryDelay:
		return fmt.Errorf("webhook: RetryPolicy.Max is %s, want at most %s", rp.Max, maxRetryDelay)
	}
	return nil
}

// bound returns the most the policy waits after failed attempt n (n ≥ 1).
func (rp RetryPolicy) bound(n int) time.Duration {
	d := rp.Base
	for i := 1; i < n && d < rp.Max; i++ {
		d *= 2
	}
	return min(d, rp.Max)
}

// delay returns how long to wait after failed attempt n, given the
// response's Retry-After (0 when there was none).
func (rp RetryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	d := rand.N(rp.bound(n) + 1)
	return max(d, min(retryAfter, rp.Max))
}

// parseRetryAfter returns the wait a Retry-After header value asks for,
// given as seconds or as an HTTP date, relative to now; 0 when v is empty,
// malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryDelay/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}
