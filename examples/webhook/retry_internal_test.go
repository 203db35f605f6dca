package webhook

import (
	"net/http"
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
