package webhook

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryPolicyDelay(t *testing.T) {
	rp := DefaultRetryPolicy()
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {5, 16 * time.Second},
		{6, 30 * time.Second}, {60, 30 * time.Second}, // capped by Max, without overflow
	} {
		if got := rp.bound(tt.n); got != tt.want {
			t.Errorf("bound(%d): got %s, want %s", tt.n, got, tt.want)
		}
		for range 100 {
			if d := rp.delay(tt.n, 0); d < 0 || d > tt.want {
				t.Fatalf("delay(%d): got %s, want full jitter within [0, %s]", tt.n, d, tt.want)
			}
		}
	}
	// Retry-After is a floor, capped by Max.
	for range 100 {
		if d := rp.delay(1, 10*time.Second); d != 10*time.Second {
			t.Fatalf("delay(1, Retry-After 10s): got %s, want 10s", d)
		}
	}
	if d := rp.delay(1, time.Hour); d != rp.Max {
		t.Errorf("delay(1, Retry-After 1h): got %s, want Max (%s)", d, rp.Max)
	}
}

// TestRetryPolicyWorstCase pins the worst case the RetryPolicy doc and
// the README state for the defaults: every attempt times out, and every
// wait is as long as Max because each response asked for it.
func TestRetryPolicyWorstCase(t *testing.T) {
	rp := DefaultRetryPolicy()
	attempts := time.Duration(rp.Attempts) * DefaultAttemptTimeout
	waits := time.Duration(rp.Attempts-1) * rp.delay(1, time.Hour) // Retry-After beyond Max: Max
	if got := attempts + waits; got != 4*time.Minute {
		t.Errorf("got a worst case of %s (%s of attempts, %s of waits), want the documented 4m", got, attempts, waits)
	}
	var jitterOnly time.Duration
	for n := 1; n < rp.Attempts; n++ {
		jitterOnly += rp.bound(n)
	}
	if jitterOnly != 31*time.Second {
		t.Errorf("got waits of at most %s without Retry-After, want the documented 31s", jitterOnly)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		rp   RetryPolicy
		want string // in the error; "" for a valid policy
	}{
		{"default", DefaultRetryPolicy(), ""},
		{"longest delays", RetryPolicy{Attempts: 3, Base: maxRetryDelay, Max: maxRetryDelay}, ""},
		{"no attempts", RetryPolicy{Base: time.Second, Max: time.Second}, "Attempts"},
		{"zero base", RetryPolicy{Attempts: 3, Max: time.Second}, "Base"},
		{"max below base", RetryPolicy{Attempts: 3, Base: time.Second, Max: time.Millisecond}, "at least Base"},
		{"max of MaxInt64", RetryPolicy{Attempts: 3, Base: time.Second, Max: math.MaxInt64}, "Max is 2562047h47m16.854775807s, want at most 24h0m0s"},
		{"base of MaxInt64", RetryPolicy{Attempts: 3, Base: math.MaxInt64, Max: math.MaxInt64}, "Base is 2562047h47m16.854775807s, want at most 24h0m0s"},
		{"max just beyond", RetryPolicy{Attempts: 3, Base: time.Second, Max: maxRetryDelay + 1}, "want at most 24h0m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rp.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			case err != nil:
				return
			}
			// A valid policy never makes rand.N panic or the backoff
			// overflow, whatever the attempt and the Retry-After.
			for _, n := range []int{1, 2, 40, 1000} {
				for _, ra := range []time.Duration{0, time.Hour, math.MaxInt64} {
					if d := tt.rp.delay(n, ra); d < 0 || d > tt.rp.Max {
						t.Errorf("delay(%d, %s): got %s, want within [0, %s]", n, ra, d, tt.rp.Max)
					}
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"99999999999999", 24 * time.Hour}, // bounded, no overflow
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %s, want %s", tt.v, got, tt.want)
		}
	}
}
