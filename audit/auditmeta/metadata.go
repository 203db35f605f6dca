package auditmeta

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
)

// Request headers read by Config.Metadata. HeaderRequestID also goes back
// in the response: a valid id sent by the client is kept, and the one in
// use is sent back.
const (
	HeaderRequestID   = "X-Request-Id"
	HeaderUserAgent   = "User-Agent"
	HeaderTraceparent = "Traceparent" // W3C Trace Context
)

// Bounds of the values Config.Metadata takes from a client.
const (
	// MaxRequestIDLen bounds a request id taken from the client.
	MaxRequestIDLen = 128
	// MaxUserAgentLen bounds the user agent kept: real ones are far
	// shorter, and a client should not choose how big the logs get.
	MaxUserAgentLen = 512
)

// ErrInvalidConfig is returned by Config.Validate when a Config cannot be
// used.
var ErrInvalidConfig = errors.New("auditmeta: invalid config")

// Config says how Metadata reads a request. The zero Config trusts no
// proxy and makes request ids with uuid.NewString.
//
// A Config is a plain value: Metadata reads it and never modifies it, so
// one Config may serve any number of concurrent requests as long as no one
// changes it, or the prefixes of TrustedProxies, meanwhile.
type Config struct {
	// TrustedProxies are the peers whose ForwardedHeader is believed; see
	// Config.ClientIP. Nil trusts no peer: the recorded ip is always the
	// peer's. Code that keeps a Config for later requests should keep its
	// own copy of the slice (slices.Clone).
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header the trusted proxies set:
	// HeaderXForwardedFor (the default when "") or HeaderForwarded.
	ForwardedHeader string
	// NewRequestID makes the id of a request that came without a valid
	// one. Nil means uuid.NewString, a random (version 4) UUID. An id it
	// returns that ValidRequestID rejects is replaced by uuid.NewString,
	// so that a faulty generator cannot make request logs invalid. It
	// must be safe for concurrent use.
	NewRequestID func() string
}

// Validate reports whether c can be used. The error it returns wraps
// ErrInvalidConfig and names what is wrong.
func (c Config) Validate() error {
	switch c.ForwardedHeader {
	case "", HeaderXForwardedFor, HeaderForwarded:
		return nil
	}
	return fmt.Errorf("%w: forwarded header %q is not %q or %q", ErrInvalidConfig, c.ForwardedHeader, HeaderXForwardedFor, HeaderForwarded)
}

// Metadata returns the well-known audit metadata of a request with headers
// h that came over a connection from peer (see Config.ClientIP), as a new map for
// audit.SetMetadata. Every value is one audit.Log.Validate accepts,
// whatever the client sent: headers that cannot be trusted or read are
// dropped or replaced, long ones are cut.
//
//   - request_id: HeaderRequestID when ValidRequestID accepts it, else a
//     new id from c.NewRequestID (see Config). Always present.
//   - user_agent: HeaderUserAgent through CleanText, cut to
//     MaxUserAgentLen bytes; omitted when that leaves nothing.
//   - trace_id: the trace id of a single HeaderTraceparent that
//     ParseTraceparent reads; else omitted.
//   - ip: c.ClientIP; omitted when peer holds no IP address.
func (c Config) Metadata(h http.Header, peer string) map[string]string {
	md := make(map[string]string, 4)
	id := h.Get(HeaderRequestID)
	if !ValidRequestID(id) {
		id = c.newRequestID()
	}
	md[audit.MetadataRequestID] = id
	if ua := CleanText(h.Get(HeaderUserAgent), MaxUserAgentLen); ua != "" {
		md[audit.MetadataUserAgent] = ua
	}
	if tp := h.Values(HeaderTraceparent); len(tp) == 1 {
		if traceID, ok := ParseTraceparent(tp[0]); ok {
			md[audit.MetadataTraceID] = traceID
		}
	}
	if ip, ok := c.ClientIP(h, peer); ok {
		md[audit.MetadataIP] = ip.String()
	}
	return md
}

// newRequestID returns the id of a request that came without a valid one:
// c.NewRequestID's, when it makes a valid one, else a new UUID.
func (c Config) newRequestID() string {
	if c.NewRequestID != nil {
		if id := c.NewRequestID(); ValidRequestID(id) {
			return id
		}
	}
	return uuid.NewString()
}

// ValidRequestID reports whether id is 1 to MaxRequestIDLen characters of
// [A-Za-z0-9._-]: safe to store, to print and to send back in a header.
func ValidRequestID(id string) bool {
	return ValidIdentifier(id, MaxRequestIDLen)
}

// ValidIdentifier reports whether id is 1 to maxLen characters of
// [A-Za-z0-9._-]: the rule of ValidRequestID, for other identifiers a
// service takes from its clients and records, such as user ids in a
// route.
func ValidIdentifier(id string, maxLen int) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// CleanText returns s made fit for an audit log field of at most maxLen
// bytes: invalid UTF-8 sequences become U+FFFD, control characters
// (NUL among them, which audit.Log.Validate rejects) are removed, and the
// result is cut at a character boundary to at most maxLen bytes.
func CleanText(s string, maxLen int) string {
	if len(s) > maxLen {
		// Cut early so a huge value costs no more than a small one; the
		// final cut below still decides.
		s = cutAtRune(s, maxLen)
	}
	if !plain(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		s = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return -1
			}
			return r
		}, s)
	}
	return cutAtRune(s, maxLen)
}

// plain reports whether s is printable ASCII, which CleanText keeps as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// cutAtRune returns s cut to at most maxLen bytes. When s is valid UTF-8 the
// cut is at a character boundary, so the result is valid UTF-8 too.
func cutAtRune(s string, maxLen int) string {
	if len(s) <= maxLen {
		return s
	}
	for i := maxLen; i >= 0 && i > maxLen-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:maxLen] // not UTF-8 here anyway
}
