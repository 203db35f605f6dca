package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/server"
)

// TestForwardedFor checks over real connections, where the peer is
// 127.0.0.1, that a forwarding header is believed only from a trusted
// proxy, for the Connect protocol and for a gRPC client alike.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		header  string // Config.Metadata.ForwardedHeader
		hdr     []string
		want    string
	}{
		{name: "untrusted peer spoofs X-Forwarded-For", hdr: []string{"X-Forwarded-For", "203.0.113.9"}, want: "127.0.0.1"},
		{name: "untrusted peer spoofs Forwarded", header: auditmeta.HeaderForwarded, hdr: []string{"Forwarded", "for=203.0.113.9"}, want: "127.0.0.1"},
		{name: "untrusted peer spoofs both", hdr: []string{"X-Forwarded-For", "203.0.113.9", "Forwarded", "for=198.51.100.1", "X-Real-Ip", "198.51.100.2"}, want: "127.0.0.1"},
		{name: "trusted proxy: rightmost untrusted hop", trusted: loopback, hdr: []string{"X-Forwarded-For", "198.51.100.66, 203.0.113.9, 127.0.0.5"}, want: "203.0.113.9"},
		{name: "trusted proxy using Forwarded", trusted: loopback, header: auditmeta.HeaderForwarded, hdr: []string{"Forwarded", `for=198.51.100.66, for="[2001:db8::9]:443"`}, want: "2001:db8::9"},
		{name: "trusted proxy, garbage header: the proxy", trusted: loopback, hdr: []string{"X-Forwarded-For", "203.0.113.9, not-an-ip"}, want: "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *server.Config) {
				c.Metadata = auditmeta.Config{TrustedProxies: tt.trusted, ForwardedHeader: tt.header}
			})
			for _, name := range []string{"connect/http1", "grpc-go"} {
				c := e.client(t, name)
				mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
					&projectsv1.CreateProjectRequest{Name: "p-" + strings.ReplaceAll(name, "/", "-")}, tt.hdr...)
				if got := e.newest(t).Metadata[audit.MetadataIP]; got != tt.want {
					t.Errorf("%s: got ip %q, want %q", name, got, tt.want)
				}
			}
		})
	}
}

// TestTraceparent checks, for every client, that a valid traceparent
// gives the log its trace id, and that a request id the client sends is
// kept and sent back.
func TestTraceparent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, name := range clientNames {
		c := e.client(t, name)
		const rid = "req-trace-1"
		mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
			&projectsv1.CreateProjectRequest{Name: "traced-" + strings.ReplaceAll(name, "/", "-")},
			"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Request-Id", rid)
		l := e.newest(t)
		if got, want := l.Metadata[audit.MetadataTraceID], "4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
			t.Errorf("%s: got trace id %q, want %q", name, got, want)
		}
		if got := l.Metadata[audit.MetadataRequestID]; got != rid {
			t.Errorf("%s: got request id %q, want the client's %q", name, got, rid)
		}
	}
}

// TestOversizedHeaders checks that long header values are cut or
// replaced in the log, which stays valid, and that headers beyond what
// the server reads are refused before any handler runs: nothing is
// recorded, and the server goes on serving.
//
// Only the HTTP/1.1 client sends those headers to the server, which
// answers 431. The HTTP/2 clients, connect-go's over h2c and grpc-go,
// refuse to send them at all, since the server advertises its bound in
// SETTINGS_MAX_HEADER_LIST_SIZE: for them the case checks that the bound
// is advertised and kept, not how the server treats a client that
// ignores it.
func TestOversizedHeaders(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"connect/http1", "connect/h2c", "grpc-go"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c := e.client(t, name)
			long := strings.Repeat("7", 18000) // ASCII: gRPC sends nothing else
			mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
				&projectsv1.CreateProjectRequest{Name: "big"},
				"X-Request-Id", strings.Repeat("r", 5000), "Traceparent", "00-"+long, "X-Forwarded-For", long)
			l := e.newest(t)
			checkLog(t, l, wantLog{action: "app.project.created", targetName: "big"})
			if id := l.Metadata[audit.MetadataRequestID]; len(id) > auditmeta.MaxRequestIDLen || strings.HasPrefix(id, "rrr") {
				t.Errorf("got request id %q, want a generated one", id)
			}
			if _, ok := l.Metadata[audit.MetadataTraceID]; ok {
				t.Errorf("got a trace id from a malformed traceparent: %v", l)
			}

			n := len(e.logs(t))
			huge := strings.Repeat("x", 2*server.MaxHeaderBytes)
			_, _, err := call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
				&projectsv1.CreateProjectRequest{Name: "huge"}, "X-Padding", huge)
			if err == nil {
				t.Fatalf("got no error for %d bytes of headers, want them refused", len(huge))
			}
			if got := len(e.logs(t)); got != n {
				t.Errorf("got %d new logs for a refused request, want none", got-n)
			}
			mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
				&projectsv1.CreateProjectRequest{Name: "after"})
		})
	}
}

// TestMalformedHeaders sends, over a raw TCP connection, headers that no
// well-behaved client library would send: bytes that are not UTF-8, a
// request id with spaces, two traceparent headers, garbage forwarding.
// The call succeeds and its log holds only clean values; a NUL byte, which
// HTTP forbids, is refused by the server before any handler runs.
func TestMalformedHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	status, header := rawPost(t, e.addr, procCreate, `{"name":"raw"}`,
		"Authorization: Bearer "+bob,
		"User-Agent: evil\xff\xfe/1.0 \x80",
		"X-Request-Id: a b;\xff",
		"Traceparent: "+trace,
		"Traceparent: "+trace,
		"X-Forwarded-For: \xff\xfe, 10.0.0.1",
	)
	if status != http.StatusOK {
		t.Fatalf("got status %d, want 200", status)
	}
	l := e.newest(t)
	if err := l.Validate(); err != nil {
		t.Fatalf("got an invalid log %v: %v", l, err)
	}
	for k, v := range l.Metadata {
		if !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\x7f") {
			t.Errorf("metadata[%q] = %q: not clean text", k, v)
		}
	}
	if got, want := l.Metadata[audit.MetadataUserAgent], "evil\uFFFD/1.0 \uFFFD"; got != want {
		t.Errorf("got user agent %q, want %q", got, want)
	}
	rid := l.Metadata[audit.MetadataRequestID]
	if !auditmeta.ValidRequestID(rid) || rid != header.Get(auditmeta.HeaderRequestID) {
		t.Errorf("got request id %q (sent back %q), want a generated one sent back", rid, header.Get(auditmeta.HeaderRequestID))
	}
	if _, ok := l.Metadata[audit.MetadataTraceID]; ok {
		t.Errorf("got a trace id from two traceparent headers: %v", l)
	}
	if got := l.Metadata[audit.MetadataIP]; got != "127.0.0.1" {
		t.Errorf("got ip %q, want the peer", got)
	}

	n := len(e.logs(t))
	status, _ = rawPost(t, e.addr, procCreate, `{"name":"nul"}`, "Authorization: Bearer "+bob, "User-Agent: a\x00b")
	if status != http.StatusBadRequest {
		t.Errorf("got status %d for a NUL in a header, want 400", status)
	}
	if got := len(e.logs(t)); got != n {
		t.Errorf("got %d new logs for a refused request, want none", got-n)
	}
}

// rawPost sends a Connect unary call with a JSON body over a new TCP
// connection to addr, with the header lines given as they are, and
// returns the response's status and headers.
func rawPost(t *testing.T, addr, proc, body string, lines ...string) (int, http.Header) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, callTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(callTimeout)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n", proc, addr, len(body))
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header
}
