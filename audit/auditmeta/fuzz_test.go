package auditmeta

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

// fuzzPeer is the trusted proxy the client IP fuzz targets connect from.
const fuzzPeer = "10.0.0.2"

// clientAddr makes the address a proxy would append from fuzzer bytes,
// or reports false when they make none that is outside testProxies.
func clientAddr(b []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return a, false
	}
	a = a.Unmap()
	return a, !isTrusted(a, testProxies)
}

// checkIP checks the properties every ClientIP result has.
func checkIP(t *testing.T, a netip.Addr) {
	t.Helper()
	if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
		t.Fatalf("got address %v: want a valid one, without zone, unmapped", a)
	}
	checkLogValid(t, map[string]string{audit.MetadataIP: a.String()})
}

// FuzzXForwardedFor checks, for any value a client sends in
// X-Forwarded-For before a trusted proxy appends the client's address,
// that the address the proxy appended is the one recorded; and that an
// untrusted peer is recorded whatever the header says.
func FuzzXForwardedFor(f *testing.F) {
	f.Add("", []byte{203, 0, 113, 9}, false)
	f.Add("198.51.100.1", []byte{203, 0, 113, 9}, true)
	f.Add("10.0.0.1, 127.0.0.1", []byte{192, 0, 2, 1}, false)
	f.Add("[2001:db8::1]:80,,unknown", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, true)
	f.Add("\x00\xff,\"", []byte{0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, spoof string, client []byte, twoProxies bool) {
		h := http.Header{HeaderXForwardedFor: {spoof}}
		checkPeers(t, h, HeaderXForwardedFor)

		a, ok := clientAddr(client)
		if !ok {
			return
		}
		v := spoof + ", " + a.String()
		if twoProxies {
			v += ", 10.7.7.7"
		}
		h[HeaderXForwardedFor] = []string{v}
		if got, _ := (Config{TrustedProxies: testProxies, ForwardedHeader: HeaderXForwardedFor}).ClientIP(h, fuzzPeer+":1"); got != a {
			t.Fatalf("got %v from %q, want %v: what the client wrote must not matter", got, v, a)
		}
	})
}

// checkPeers checks what holds whatever h holds: from an untrusted peer,
// the peer is the client; from a trusted peer, with the client's header
// alone, the address is any valid one.
func checkPeers(t *testing.T, h http.Header, header string) {
	t.Helper()
	if got, ok := (Config{TrustedProxies: testProxies, ForwardedHeader: header}).ClientIP(h, "192.0.2.200:1"); !ok || got.String() != "192.0.2.200" {
		t.Fatalf("got %v for an untrusted peer, want the peer", got)
	}
	got, ok := (Config{TrustedProxies: testProxies, ForwardedHeader: header}).ClientIP(h, fuzzPeer+":1")
	if !ok {
		t.Fatal("got no address for a trusted peer")
	}
	checkIP(t, got)
}

// FuzzForwarded is FuzzXForwardedFor for the Forwarded header: a prefix
// the client wrote can at worst make the header unreadable, recording
// the proxy, and never chooses the address; when the prefix is itself
// well-formed, the proxy's hop is recorded.
func FuzzForwarded(f *testing.F) {
	f.Add("", []byte{203, 0, 113, 9}, false, false)
	f.Add("for=198.51.100.1;proto=http", []byte{203, 0, 113, 9}, true, false)
	f.Add(`for="`, []byte{192, 0, 2, 1}, false, true)
	f.Add(`x=";for=9.9.9.9;z="`, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, true, true)
	f.Add(`for=unknown, for="[::1]:8", ,`, []byte{198, 51, 100, 7}, false, false)
	f.Fuzz(func(t *testing.T, spoof string, client []byte, withPort, twoProxies bool) {
		h := http.Header{HeaderForwarded: {spoof}}
		checkPeers(t, h, HeaderForwarded)

		a, ok := clientAddr(client)
		if !ok {
			return
		}
		node := a.String()
		switch {
		case a.Is6() && withPort:
			node = `"[` + node + `]:4711"`
		case a.Is6():
			node = `"[` + node + `]"`
		case withPort:
			node = `"` + node + `:4711"`
		}
		v := spoof + ", for=" + node + ";proto=https"
		if twoProxies {
			v += ", for=10.7.7.7"
		}
		h[HeaderForwarded] = []string{v}
		got, _ := (Config{TrustedProxies: testProxies, ForwardedHeader: HeaderForwarded}).ClientIP(h, fuzzPeer+":1")
		if got != a && got.String() != fuzzPeer {
			t.Fatalf("got %v from %q, want %v or the peer: the client chose the address", got, v, a)
		}
		if _, wellFormed := forwardedFor(spoof); wellFormed && got != a {
			t.Fatalf("got %v from %q, want %v", got, v, a)
		}
	})
}

// FuzzTraceparent checks that a trace id is only ever 32 lowercase hex
// digits, not all zero, taken from its place in the header.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := ParseTraceparent(v)
		if !ok {
			if id != "" {
				t.Fatalf("got %q with ok false", id)
			}
			return
		}
		if len(id) != 32 || !lowerHex(id) || allZeros(id) || id != v[3:35] || strings.HasPrefix(v, "ff") {
			t.Fatalf("got trace id %q from %q", id, v)
		}
		checkLogValid(t, map[string]string{audit.MetadataTraceID: id})
	})
}

// FuzzMetadata checks that no headers a client sends make the audit log
// of its request invalid, and that a safe request id is kept.
func FuzzMetadata(f *testing.F) {
	f.Add("curl/8", "req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "203.0.113.9", "for=203.0.113.9")
	f.Add("\x00\xff\xfe", "a b", "garbage", "unknown,,", `for="`)
	f.Add(strings.Repeat("☃", 2000), strings.Repeat("a", 200), "", "", "")
	f.Fuzz(func(t *testing.T, ua, rid, tp, xff, fwd string) {
		for _, header := range []string{HeaderXForwardedFor, HeaderForwarded} {
			c := Config{NewRequestID: func() string { return "generated" }, TrustedProxies: testProxies, ForwardedHeader: header}
			h := http.Header{
				HeaderUserAgent: {ua}, HeaderRequestID: {rid}, HeaderTraceparent: {tp},
				HeaderXForwardedFor: {xff}, HeaderForwarded: {fwd},
			}
			md := c.Metadata(h, fuzzPeer+":1")
			checkLogValid(t, md)
			for k, v := range md {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("metadata[%q] = %q: not valid UTF-8 or holds NUL", k, v)
				}
			}
			if got := md[audit.MetadataRequestID]; ValidRequestID(rid) && got != rid || !ValidRequestID(rid) && got != "generated" {
				t.Fatalf("got request id %q for %q", got, rid)
			}
			if len(md[audit.MetadataUserAgent]) > MaxUserAgentLen {
				t.Fatalf("got a user agent of %d bytes", len(md[audit.MetadataUserAgent]))
			}
		}
	})
}
