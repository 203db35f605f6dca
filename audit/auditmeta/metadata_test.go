package auditmeta

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

func TestCleanText(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"plain", "curl/8.0", 512, "curl/8.0"},
		{"UTF-8 kept", "naïve/1.0 ☃", 512, "naïve/1.0 ☃"},
		{"invalid UTF-8 replaced", "a\xffb\xc3", 512, "a\uFFFDb\uFFFD"},
		{"NUL and controls removed", "a\x00b\tc\x7fd\ne", 512, "abcde"},
		{"cut", "abcdef", 4, "abcd"},
		{"cut at a character boundary", "ab☃", 4, "ab"},
		{"replacement does not overflow", "ab\xff\xff", 4, "ab"},
		{"long invalid", strings.Repeat("\x80", 10000), 8, "\uFFFD"},
		{"empty", "", 8, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := CleanText(tt.in, tt.max)
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if len(got) > tt.max || !utf8.ValidString(got) {
				t.Fatalf("got %q: longer than %d or not UTF-8", got, tt.max)
			}
		})
	}
}

// TestMetadataHostileHeaders checks that whatever a client puts in its
// headers, the metadata of its request passes audit.Log.Validate, so that
// no client can keep its request from being audited.
func TestMetadataHostileHeaders(t *testing.T) {
	c := Config{NewRequestID: func() string { return "generated" }, TrustedProxies: testProxies}
	huge := strings.Repeat("☃", 3000) // 9000 bytes
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		name    string
		peer    string
		headers map[string][]string
		want    map[string]string // expected values; a key mapped to "" must be absent
	}{
		{
			name: "well-formed", peer: "192.0.2.1:1",
			headers: map[string][]string{"X-Request-Id": {"req-1.A_b"}, "User-Agent": {"curl/8"}, "Traceparent": {trace}},
			want:    map[string]string{"request_id": "req-1.A_b", "user_agent": "curl/8", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "ip": "192.0.2.1"},
		},
		{
			name: "request id with a space", peer: "192.0.2.1:1",
			headers: map[string][]string{"X-Request-Id": {"a b"}},
			want:    map[string]string{"request_id": "generated", "user_agent": "", "trace_id": ""},
		},
		{
			name: "request id too long", peer: "192.0.2.1:1",
			headers: map[string][]string{"X-Request-Id": {strings.Repeat("a", 129)}},
			want:    map[string]string{"request_id": "generated"},
		},
		{
			name: "request id of 128", peer: "192.0.2.1:1",
			headers: map[string][]string{"X-Request-Id": {strings.Repeat("a", 128)}},
			want:    map[string]string{"request_id": strings.Repeat("a", 128)},
		},
		{
			name: "request id with NUL and invalid UTF-8", peer: "192.0.2.1:1",
			headers: map[string][]string{"X-Request-Id": {"a\x00\xff"}},
			want:    map[string]string{"request_id": "generated"},
		},
		{
			name: "user agent huge", peer: "192.0.2.1:1",
			headers: map[string][]string{"User-Agent": {huge}},
			want:    map[string]string{"user_agent": strings.Repeat("☃", MaxUserAgentLen/3)},
		},
		{
			name: "user agent with NUL and invalid UTF-8", peer: "192.0.2.1:1",
			headers: map[string][]string{"User-Agent": {"x\x00y\xfe"}},
			want:    map[string]string{"user_agent": "xy\uFFFD"},
		},
		{
			name: "user agent of nothing but NULs", peer: "192.0.2.1:1",
			headers: map[string][]string{"User-Agent": {"\x00\x00"}},
			want:    map[string]string{"user_agent": ""},
		},
		{
			name: "traceparent malformed", peer: "192.0.2.1:1",
			headers: map[string][]string{"Traceparent": {"00-" + huge}},
			want:    map[string]string{"trace_id": ""},
		},
		{
			name: "two traceparent headers", peer: "192.0.2.1:1",
			headers: map[string][]string{"Traceparent": {trace, trace}},
			want:    map[string]string{"trace_id": ""},
		},
		{
			name: "huge forwarding header from a trusted proxy", peer: "10.0.0.1:1",
			headers: map[string][]string{"X-Forwarded-For": {huge + ", 203.0.113.9"}},
			want:    map[string]string{"ip": "203.0.113.9"},
		},
		{
			name: "garbage forwarding header from a trusted proxy", peer: "10.0.0.1:1",
			headers: map[string][]string{"X-Forwarded-For": {"\x00\xff" + huge}},
			want:    map[string]string{"ip": "10.0.0.1"},
		},
		{
			name: "no peer address", peer: "pipe",
			want: map[string]string{"ip": ""},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			md := c.Metadata(http.Header(tt.headers), tt.peer)
			for k, want := range tt.want {
				got, ok := md[k]
				if want == "" && ok {
					t.Errorf("metadata[%q]: got %q, want it absent", k, got)
				}
				if want != "" && got != want {
					t.Errorf("metadata[%q]: got %q, want %q", k, got, want)
				}
			}
			checkLogValid(t, md)
		})
	}
}

// checkLogValid checks that a log with metadata md would be stored.
func checkLogValid(tb testing.TB, md map[string]string) {
	tb.Helper()
	l := audit.Log{
		ID: "id", Source: "test", Action: "app.project.created",
		Actor: audit.Actor{Type: audit.ActorTypeAnonymous}, Metadata: md, CreatedAt: time.Unix(1, 0),
	}
	if err := l.Validate(); err != nil {
		tb.Fatalf("got %v for metadata %q, want a valid log: request metadata must never make an audit log invalid", err, md)
	}
}

func TestMetadataDefaults(t *testing.T) {
	var c Config // trusts no proxy, makes its own request ids
	h := http.Header{HeaderXForwardedFor: {"203.0.113.9"}}
	md := c.Metadata(h, "10.0.0.1:1")
	if got := md[audit.MetadataIP]; got != "10.0.0.1" {
		t.Errorf("ip: got %q, want the peer 10.0.0.1: the zero Config trusts no proxy", got)
	}
	id := md[audit.MetadataRequestID]
	if !ValidRequestID(id) || id == c.Metadata(h, "10.0.0.1:1")[audit.MetadataRequestID] {
		t.Errorf("request_id: got %q twice or invalid, want a new valid id per request", id)
	}
}

// TestRequestIDGenerator checks the ids of requests that come without a
// valid one: random UUIDs by default, the configured generator's when
// ValidRequestID accepts them, and random UUIDs in place of any it does
// not, so that a faulty generator cannot make request logs invalid.
func TestRequestIDGenerator(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, tt := range []struct {
		name string
		gen  func() string
		want string // "" means a random UUID
	}{
		{name: "default"},
		{name: "valid generated id kept", gen: func() string { return "gen-1" }, want: "gen-1"},
		{name: "empty replaced", gen: func() string { return "" }},
		{name: "spaces replaced", gen: func() string { return "a b" }},
		{name: "NUL replaced", gen: func() string { return "a\x00" }},
		{name: "too long replaced", gen: func() string { return strings.Repeat("a", MaxRequestIDLen+1) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{NewRequestID: tt.gen}
			seen := make(map[string]bool)
			for range 100 {
				id := c.Metadata(http.Header{}, "192.0.2.1:1")[audit.MetadataRequestID]
				if tt.want != "" {
					if id != tt.want {
						t.Fatalf("got %q, want %q", id, tt.want)
					}
					continue
				}
				if !uuid4.MatchString(id) || seen[id] {
					t.Fatalf("got %q, want a new version 4 UUID", id)
				}
				seen[id] = true
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, h := range []string{"", HeaderXForwardedFor, HeaderForwarded} {
		if err := (Config{ForwardedHeader: h}).Validate(); err != nil {
			t.Errorf("ForwardedHeader %q: got %v, want nil", h, err)
		}
	}
	if err := (Config{ForwardedHeader: "X-Real-Ip"}).Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "X-Real-Ip") {
		t.Errorf("got %v, want an error wrapping ErrInvalidConfig naming the header", err)
	}
}
