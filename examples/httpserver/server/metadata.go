package server

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

// HeaderRequestID carries the request id, in both directions: a valid one
// sent by the client is kept, and the one in use is sent back.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds a request id taken from the client.
const maxRequestIDLen = 128

// maxUserAgentLen bounds the user agent kept in the metadata: real ones
// are far shorter, and a client should not choose how big our logs get.
const maxUserAgentLen = 512

// withRequestMetadata returns a handler that puts the request's audit
// metadata into its context, with audit.SetMetadata, before calling next;
// it also sends the request id back in the response. It runs before
// authentication, so that denials carry the metadata too.
func (s *Server) withRequestMetadata(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := s.requestMetadata(r)
		w.Header().Set(HeaderRequestID, md[audit.MetadataRequestID])
		next.ServeHTTP(w, r.WithContext(audit.SetMetadata(r.Context(), md)))
	})
}

// requestMetadata returns the well-known metadata of r. Every value is
// one audit.Log.Validate accepts, whatever the client sent: headers that
// cannot be trusted or read are dropped or replaced, long ones are cut.
//
//   - request_id: X-Request-Id when it is 1 to 128 of [A-Za-z0-9._-],
//     else a new UUID.
//   - user_agent: User-Agent as valid UTF-8 without control characters,
//     cut to 512 bytes; omitted when empty.
//   - trace_id: the trace id of a single valid traceparent header; else
//     omitted.
//   - ip: see ClientIP; omitted when the peer has no IP address.
func (s *Server) requestMetadata(r *http.Request) map[string]string {
	md := make(map[string]string, 4)
	id := r.Header.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = s.newRequestID()
	}
	md[audit.MetadataRequestID] = id
	if ua := cleanText(r.Header.Get("User-Agent"), maxUserAgentLen); ua != "" {
		md[audit.MetadataUserAgent] = ua
	}
	if tp := r.Header.Values("Traceparent"); len(tp) == 1 {
		if traceID, ok := ParseTraceparent(tp[0]); ok {
			md[audit.MetadataTraceID] = traceID
		}
	}
	if ip, ok := ClientIP(r, s.trustedProxies, s.forwardedHeader); ok {
		md[audit.MetadataIP] = ip.String()
	}
	return md
}

// validRequestID reports whether id is 1 to maxRequestIDLen characters of
// [A-Za-z0-9._-]: safe to store, to print and to send back in a header.
func validRequestID(id string) bool {
	return validIdentifier(id, maxRequestIDLen)
}

func validIdentifier(id string, maxLen int) bool {
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

// cleanText returns s made fit for an audit log field of at most maxLen
// bytes: invalid UTF-8 sequences become U+FFFD, control characters
// (NUL among them, which audit.Log.Validate rejects) are removed, and the
// result is cut at a character boundary to at most maxLen bytes.
func cleanText(s string, maxLen int) string {
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

// plain reports whether s is printable ASCII, which cleanText keeps as it is.
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
