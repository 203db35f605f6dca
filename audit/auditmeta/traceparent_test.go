package auditmeta

import "testing"

func TestParseTraceparent(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tt := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"version 00", "00-" + id + "-00f067aa0ba902b7-01", true},
		{"flags 00", "00-" + id + "-00f067aa0ba902b7-00", true},
		{"later version", "01-" + id + "-00f067aa0ba902b7-01", true},
		{"later version with more fields", "cc-" + id + "-00f067aa0ba902b7-01-what-ever", true},
		{"later version, no dash after flags", "cc-" + id + "-00f067aa0ba902b7-01x", false},
		{"version 00 with more fields", "00-" + id + "-00f067aa0ba902b7-01-x", false},
		{"version ff", "ff-" + id + "-00f067aa0ba902b7-01", false},
		{"uppercase", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero parent id", "00-" + id + "-0000000000000000-01", false},
		{"short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},
		{"not hex", "00-" + id + "-00f067aa0ba902bz-01", false},
		{"wrong separator", "00_" + id + "-00f067aa0ba902b7-01", false},
		{"short flags", "00-" + id + "-00f067aa0ba902b7-1", false},
		{"empty", "", false},
		{"garbage", "hello", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTraceparent(tt.in)
			if ok != tt.ok {
				t.Fatalf("got ok %v, want %v", ok, tt.ok)
			}
			if ok && got != id {
				t.Fatalf("got trace id %q, want %q", got, id)
			}
		})
	}
}
