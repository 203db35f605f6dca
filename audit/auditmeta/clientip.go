package auditmeta

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Headers a trusted proxy may use to pass on the client's address; see
// Config.ClientIP and Config.ForwardedHeader.
const (
	HeaderXForwardedFor = "X-Forwarded-For" // the de facto standard, a list of addresses
	HeaderForwarded     = "Forwarded"       // RFC 7239, for= parameters
)

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes and
// single addresses, such as "10.0.0.0/8, 192.0.2.1, ::1", into prefixes; a
// single address becomes a prefix holding only itself. An empty s gives no
// prefixes: no peer is trusted.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		a = normalizeAddr(a)
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientIP returns the address of the client of a request with headers h
// that came over a connection from peer, the connection's remote address
// ("host:port" or a bare address, as http.Request.RemoteAddr and
// connect.Peer.Addr hold it). It reports false when peer holds no address
// (as with a Unix socket).
//
// The client is the peer, unless the peer is one of c.TrustedProxies.
// Only then is c.ForwardedHeader read, HeaderForwarded or
// HeaderXForwardedFor ("" means HeaderXForwardedFor; any other name, which
// Validate rejects, means no header is believed). Its hops are walked from
// the right, the one the nearest proxy added, skipping trusted proxies:
// the first hop that is not trusted is the client. Hops further left were
// written by that client and prove nothing. When a hop cannot be read
// ("unknown", an obfuscated name, garbage) the walk stops and the last hop
// read is the client; a Forwarded header that is not well-formed is
// ignored whole. So a client may at worst hide behind a trusted proxy; it
// can never choose the address that is recorded.
//
// Use the header your proxies actually set. Believing the other one would
// let a client write it, since the proxies pass it on untouched.
//
// The address is returned without a zone and with an IPv4-mapped IPv6
// address unmapped, as the trusted prefixes are compared against.
func (c Config) ClientIP(h http.Header, peer string) (netip.Addr, bool) {
	a, ok := parsePeer(peer)
	if !ok {
		return netip.Addr{}, false
	}
	trusted := c.TrustedProxies
	if !isTrusted(a, trusted) {
		return a, true
	}
	switch c.ForwardedHeader {
	case HeaderXForwardedFor, "":
		return fromXForwardedFor(a, h.Values(HeaderXForwardedFor), trusted), true
	case HeaderForwarded:
		return fromForwarded(a, h.Values(HeaderForwarded), trusted), true
	}
	return a, true
}

// parsePeer parses a peer address, "host:port" or a bare address.
func parsePeer(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	return netip.Addr{}, false
}

// normalizeAddr drops a's zone, which names an interface of the host that
// wrote it and cannot be compared, and unmaps an IPv4-mapped address.
func normalizeAddr(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromXForwardedFor walks the hops of X-Forwarded-For values — header
// lines in the order received, each a comma-separated list — from the
// right; see Config.ClientIP. It reads the hops in place, without splitting the
// whole header.
func fromXForwardedFor(peer netip.Addr, values []string, trusted []netip.Prefix) netip.Addr {
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for {
			j := strings.LastIndexByte(rest, ',')
			hop := strings.TrimSpace(rest[j+1:])
			a, ok := parseHop(hop)
			if !ok {
				return client
			}
			if !isTrusted(a, trusted) {
				return a
			}
			client = a
			if j < 0 {
				break
			}
			rest = rest[:j]
		}
	}
	return client
}

// parseHop parses one X-Forwarded-For hop: an address, optionally with a
// port, and an IPv6 address optionally in brackets.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return normalizeAddr(a), true
		}
	}
	return netip.Addr{}, false
}

// fromForwarded walks the for= nodes of Forwarded header values from the
// right; see Config.ClientIP.
func fromForwarded(peer netip.Addr, values []string, trusted []netip.Prefix) netip.Addr {
	if len(values) == 0 {
		return peer
	}
	nodes, ok := forwardedFor(strings.Join(values, ","))
	if !ok {
		return peer
	}
	client := peer
	for i := len(nodes) - 1; i >= 0; i-- {
		a, ok := parseForwardedNode(nodes[i])
		if !ok {
			return client
		}
		if !isTrusted(a, trusted) {
			return a
		}
		client = a
	}
	return client
}

// forwardedFor parses a Forwarded header (RFC 7239, section 4) and returns
// the for= value of each of its elements, in order, unquoted; "" for an
// element without one. Empty list elements are skipped. It reports false
// when s is not well-formed, or an element has two for= parameters.
//
// Values that are tokens may also hold ':', '[' and ']', which RFC 7239
// requires to be quoted but some proxies do not.
func forwardedFor(s string) ([]string, bool) {
	var nodes []string
	node, hasFor, pairs := "", false, 0
	i := 0
	for {
		i = skipSpace(s, i)
		if i < len(s) && s[i] != ',' && s[i] != ';' {
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			name := s[start:i]
			if name == "" || i >= len(s) || s[i] != '=' {
				return nil, false
			}
			i++
			var value string
			if i < len(s) && s[i] == '"' {
				v, n, ok := unquote(s[i:])
				if !ok {
					return nil, false
				}
				value, i = v, i+n
			} else {
				start := i
				for i < len(s) && isValueChar(s[i]) {
					i++
				}
				if i == start {
					return nil, false
				}
				value = s[start:i]
			}
			if strings.EqualFold(name, "for") {
				if hasFor {
					return nil, false
				}
				node, hasFor = value, true
			}
			pairs++
			i = skipSpace(s, i)
		}
		if i < len(s) && s[i] == ';' {
			i++
			continue
		}
		if i < len(s) && s[i] != ',' {
			return nil, false
		}
		if pairs > 0 {
			nodes = append(nodes, node)
		}
		if i >= len(s) {
			return nodes, true
		}
		i++ // ','
		node, hasFor, pairs = "", false, 0
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c is a tchar of RFC 9110.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isValueChar reports whether c may appear in an unquoted Forwarded value:
// a tchar, or one of the characters of an address with a port.
func isValueChar(c byte) bool {
	return isTokenChar(c) || c == ':' || c == '[' || c == ']'
}

// unquote reads the quoted-string at the start of s and returns its
// content, unescaped, and its length in s.
func unquote(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, true
		case c == '\\':
			i++
			if i == len(s) {
				return "", 0, false
			}
			b.WriteByte(s[i])
		case c < ' ' && c != '\t', c == 0x7f:
			return "", 0, false
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// parseForwardedNode parses a for= node of RFC 7239: an IPv4 address or a
// bracketed IPv6 address, each optionally followed by ":port". "unknown"
// and obfuscated identifiers ("_hidden") are not addresses. A bare IPv6
// address is accepted too.
func parseForwardedNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port := s[1:end], s[end+1:]
		if port != "" && (len(port) < 2 || port[0] != ':') {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return normalizeAddr(a), true
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || i == len(s)-1 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}
