package auditmeta_test

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// A request that came through a trusted proxy: the client's address is
// the rightmost hop of X-Forwarded-For that is not a trusted proxy, and
// what the client wrote to the left of it is not believed.
func ExampleConfig_Metadata() {
	cfg := auditmeta.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	h := http.Header{
		"X-Request-Id":    {"req-42"},
		"User-Agent":      {"curl/8.5\x00"},
		"Traceparent":     {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"X-Forwarded-For": {"198.51.100.66, 203.0.113.9, 10.1.1.1"},
	}
	md := cfg.Metadata(h, "10.0.0.2:41312")
	for _, k := range []string{audit.MetadataRequestID, audit.MetadataUserAgent, audit.MetadataTraceID, audit.MetadataIP} {
		fmt.Printf("%s=%q\n", k, md[k])
	}
	// Output:
	// request_id="req-42"
	// user_agent="curl/8.5"
	// trace_id="4bf92f3577b34da6a3ce929d0e0e4736"
	// ip="203.0.113.9"
}
