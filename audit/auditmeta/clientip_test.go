package auditmeta

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"
)

// testProxies are the trusted proxies of the client IP tests: a private
// network, loopback, and one IPv6 range.
var testProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
}

func TestClientIP(t *testing.T) {
	for _, tt := range []struct {
		name   string
		peer   string // the connection's remote address
		header string // the forwarded header believed
		xff    []string
		fwd    []string
		want   string // "" = no address
	}{
		// Untrusted peers: headers are never read.
		{name: "untrusted peer, no header", peer: "192.0.2.1:5000", want: "192.0.2.1"},
		{name: "untrusted peer spoofs X-Forwarded-For", peer: "192.0.2.1:5000", xff: []string{"203.0.113.9"}, want: "192.0.2.1"},
		{name: "untrusted peer spoofs Forwarded", peer: "192.0.2.1:5000", header: HeaderForwarded, fwd: []string{"for=203.0.113.9"}, want: "192.0.2.1"},
		{name: "untrusted peer spoofs a trusted address", peer: "192.0.2.1:5000", xff: []string{"10.0.0.1"}, want: "192.0.2.1"},
		{name: "untrusted IPv6 peer", peer: "[2001:db8::5]:443", xff: []string{"203.0.113.9"}, want: "2001:db8::5"},
		{name: "IPv4-mapped peer is unmapped", peer: "[::ffff:192.0.2.1]:80", want: "192.0.2.1"},
		{name: "peer zone is dropped", peer: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "peer without port", peer: "192.0.2.1", want: "192.0.2.1"},
		{name: "peer that is no address", peer: "@", want: ""},
		{name: "empty peer", peer: "", want: ""},

		// Trusted peer, X-Forwarded-For.
		{name: "trusted peer, no header", peer: "10.0.0.2:1", want: "10.0.0.2"},
		{name: "one hop", peer: "10.0.0.2:1", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "client prefix is ignored", peer: "10.0.0.2:1", xff: []string{"198.51.100.66, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "trusted hops are skipped", peer: "10.0.0.2:1", xff: []string{"198.51.100.66,203.0.113.9 , 10.1.1.1,127.0.0.1"}, want: "203.0.113.9"},
		{name: "all hops trusted: the leftmost", peer: "10.0.0.2:1", xff: []string{"10.9.9.9, 10.1.1.1"}, want: "10.9.9.9"},
		{name: "header lines in order", peer: "10.0.0.2:1", xff: []string{"198.51.100.66", "203.0.113.9, 10.1.1.1"}, want: "203.0.113.9"},
		{name: "rightmost line wins", peer: "10.0.0.2:1", xff: []string{"203.0.113.9", "10.1.1.1"}, want: "203.0.113.9"},
		{name: "hop with port", peer: "10.0.0.2:1", xff: []string{"203.0.113.9:4711"}, want: "203.0.113.9"},
		{name: "IPv6 hop", peer: "10.0.0.2:1", xff: []string{"2001:db8::9"}, want: "2001:db8::9"},
		{name: "bracketed IPv6 hop", peer: "10.0.0.2:1", xff: []string{"[2001:db8::9]"}, want: "2001:db8::9"},
		{name: "bracketed IPv6 hop with port", peer: "10.0.0.2:1", xff: []string{"[2001:db8::9]:443"}, want: "2001:db8::9"},
		{name: "IPv4-mapped hop", peer: "10.0.0.2:1", xff: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "hop zone is dropped", peer: "10.0.0.2:1", xff: []string{"fe80::9%25eth0, fe80::9%eth0"}, want: "fe80::9"},
		{name: "trusted IPv6 range", peer: "[::1]:1", xff: []string{"203.0.113.9, 2001:db8:ffff::1"}, want: "203.0.113.9"},
		{name: "garbage hop stops the walk", peer: "10.0.0.2:1", xff: []string{"203.0.113.9, unknown, 10.1.1.1"}, want: "10.1.1.1"},
		{name: "garbage rightmost hop: the peer", peer: "10.0.0.2:1", xff: []string{"203.0.113.9, bogus"}, want: "10.0.0.2"},
		{name: "empty hop stops the walk", peer: "10.0.0.2:1", xff: []string{"203.0.113.9,,10.1.1.1"}, want: "10.1.1.1"},
		{name: "empty header", peer: "10.0.0.2:1", xff: []string{""}, want: "10.0.0.2"},
		{name: "Forwarded is ignored when X-Forwarded-For is the header", peer: "10.0.0.2:1", fwd: []string{"for=203.0.113.9"}, want: "10.0.0.2"},
		{name: "unknown header name: nothing believed", peer: "10.0.0.2:1", header: "X-Real-Ip", xff: []string{"203.0.113.9"}, want: "10.0.0.2"},

		// Trusted peer, Forwarded.
		{name: "forwarded one hop", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{"for=203.0.113.9"}, want: "203.0.113.9"},
		{name: "forwarded ignores X-Forwarded-For", peer: "10.0.0.2:1", header: HeaderForwarded, xff: []string{"203.0.113.9"}, want: "10.0.0.2"},
		{name: "forwarded quoted IPv6 with port", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "forwarded quoted IPv4 with port", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for="203.0.113.9:4711"`}, want: "203.0.113.9"},
		{name: "forwarded unquoted IPv4 with port", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=203.0.113.9:4711`}, want: "203.0.113.9"},
		{name: "forwarded obfuscated port", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for="[2001:db8::9]:_p1"`}, want: "2001:db8::9"},
		{name: "forwarded other parameters", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`proto=https;For=203.0.113.9;by=10.0.0.2;host="example.com"`}, want: "203.0.113.9"},
		{name: "forwarded client prefix is ignored", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66, for=203.0.113.9`}, want: "203.0.113.9"},
		{name: "forwarded trusted hops are skipped", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66, for=203.0.113.9`, `for=10.1.1.1;proto=http`}, want: "203.0.113.9"},
		{name: "forwarded quoted comma is not a separator", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=203.0.113.9;x="a, for=198.51.100.66"`}, want: "203.0.113.9"},
		{name: "forwarded escaped quote", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`x="\", for=198.51.100.66", for=203.0.113.9`}, want: "203.0.113.9"},
		{name: "forwarded empty elements are skipped", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=203.0.113.9, , ,`}, want: "203.0.113.9"},
		{name: "forwarded unknown stops the walk", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66, for=unknown, for=10.1.1.1`}, want: "10.1.1.1"},
		{name: "forwarded obfuscated node stops the walk", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66, for=_hidden`}, want: "10.0.0.2"},
		{name: "forwarded element without for stops the walk", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66, proto=https`}, want: "10.0.0.2"},
		{name: "forwarded unclosed quote: the peer", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for="198.51.100.66`, `for=203.0.113.9`}, want: "10.0.0.2"},
		{name: "forwarded two for in one element: the peer", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for=198.51.100.66;for=203.0.113.9`}, want: "10.0.0.2"},
		{name: "forwarded garbage: the peer", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`203.0.113.9`}, want: "10.0.0.2"},
		{name: "forwarded bracketed IPv4 is not a node", peer: "10.0.0.2:1", header: HeaderForwarded, fwd: []string{`for="[203.0.113.9]"`}, want: "10.0.0.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.xff != nil {
				h[HeaderXForwardedFor] = tt.xff
			}
			if tt.fwd != nil {
				h[HeaderForwarded] = tt.fwd
			}
			got, ok := (Config{TrustedProxies: testProxies, ForwardedHeader: tt.header}).ClientIP(h, tt.peer)
			if tt.want == "" {
				if ok {
					t.Fatalf("got %v, want no address", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("got %v (ok %v), want %s", got, ok, tt.want)
			}
		})
	}
}

func TestForwardedFor(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // nil: malformed
	}{
		{`for=a`, []string{"a"}},
		{`for="a b"`, []string{"a b"}},
		{`For=a;proto=http, by=b`, []string{"a", ""}},
		{` for = a`, nil},
		{`for=a ; by=b ,for=c`, []string{"a", "c"}},
		{`for=a;;`, []string{"a"}},
		{`,,for=a,,`, []string{"a"}},
		{``, []string{}},
		{` , `, []string{}},
		{`for=`, nil},
		{`for`, nil},
		{`=a`, nil},
		{`for="a`, nil},
		{`for="a\`, nil},
		{`for="a"b`, nil},
		{"for=\"a\x01\"", nil},
		{`for="\"q\""`, []string{`"q"`}},
	} {
		got, ok := forwardedFor(tt.in)
		if tt.want == nil {
			if ok {
				t.Errorf("forwardedFor(%q) = %q, want malformed", tt.in, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, tt.want) {
			t.Errorf("forwardedFor(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.1 ,::1,, 2001:db8::/32,192.168.1.7/24")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.1/32", "::1/128", "2001:db8::/32", "192.168.1.0/24"}
	var gotS []string
	for _, p := range got {
		gotS = append(gotS, p.String())
	}
	if !slices.Equal(gotS, want) {
		t.Errorf("got %v, want %v", gotS, want)
	}
	if got, err := ParseTrustedProxies(""); err != nil || len(got) != 0 {
		t.Errorf("got %v, %v for an empty list, want none", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0.1/8/8", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q): got no error", bad)
		}
	}
}
