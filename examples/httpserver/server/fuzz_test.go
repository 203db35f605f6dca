package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
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
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header[HeaderXForwardedFor] = []string{spoof}
		checkPeers(t, r, HeaderXForwardedFor)

		a, ok := clientAddr(client)
		if !ok {
			return
		}
		h := spoof + ", " + a.String()
		if twoProxies {
			h += ", 10.7.7.7"
		}
		r.Header[HeaderXForwardedFor] = []string{h}
		if got, _ := ClientIP(r, testProxies, HeaderXForwardedFor); got != a {
			t.Fatalf("got %v from %q, want %v: what the client wrote must not matter", got, h, a)
		}
	})
}

// checkPeers checks what holds whatever r's header holds: from an
// untrusted peer, the peer is the client; from a trusted peer, with the
// client's header alone, the address is any valid one. It leaves r coming
// from the trusted peer.
func checkPeers(t *testing.T, r *http.Request, header string) {
	t.Helper()
	r.RemoteAddr = "192.0.2.200:1"
	if got, ok := ClientIP(r, testProxies, header); !ok || got.String() != "192.0.2.200" {
		t.Fatalf("got %v for an untrusted peer, want the peer", got)
	}
	r.RemoteAddr = fuzzPeer + ":1"
	got, ok := ClientIP(r, testProxies, header)
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
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header[HeaderForwarded] = []string{spoof}
		checkPeers(t, r, HeaderForwarded)

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
		h := spoof + ", for=" + node + ";proto=https"
		if twoProxies {
			h += ", for=10.7.7.7"
		}
		r.Header[HeaderForwarded] = []string{h}
		got, _ := ClientIP(r, testProxies, HeaderForwarded)
		if got != a && got.String() != fuzzPeer {
			t.Fatalf("got %v from %q, want %v or the peer: the client chose the address", got, h, a)
		}
		if _, wellFormed := forwardedFor(spoof); wellFormed && got != a {
			t.Fatalf("got %v from %q, want %v", got, h, a)
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

// FuzzRequestMetadata checks that no headers a client sends make the audit
// log of its request invalid, and that a safe request id is kept.
func FuzzRequestMetadata(f *testing.F) {
	f.Add("curl/8", "req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "203.0.113.9", "for=203.0.113.9")
	f.Add("\x00\xff\xfe", "a b", "garbage", "unknown,,", `for="`)
	f.Add(strings.Repeat("☃", 2000), strings.Repeat("a", 200), "", "", "")
	f.Fuzz(func(t *testing.T, ua, rid, tp, xff, fwd string) {
		for _, header := range []string{HeaderXForwardedFor, HeaderForwarded} {
			s := &Server{newRequestID: func() string { return "generated" }, trustedProxies: testProxies, forwardedHeader: header}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = fuzzPeer + ":1"
			r.Header = http.Header{
				"User-Agent": {ua}, "X-Request-Id": {rid}, "Traceparent": {tp},
				HeaderXForwardedFor: {xff}, HeaderForwarded: {fwd},
			}
			md := s.requestMetadata(r)
			checkLogValid(t, md)
			for k, v := range md {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("metadata[%q] = %q: not valid UTF-8 or holds NUL", k, v)
				}
			}
			if got := md[audit.MetadataRequestID]; validRequestID(rid) && got != rid || !validRequestID(rid) && got != "generated" {
				t.Fatalf("got request id %q for %q", got, rid)
			}
			if len(md[audit.MetadataUserAgent]) > maxUserAgentLen {
				t.Fatalf("got a user agent of %d bytes", len(md[audit.MetadataUserAgent]))
			}
		}
	})
}

// discardRepository stores nothing and lists from a fixed repository, so
// that fuzzing the list endpoint does not fill memory.
type discardRepository struct{ audit.Repository }

func (discardRepository) Create(_ context.Context, l *audit.Log) error { return l.Validate() }

// FuzzFilterFromQuery checks that any query string either gives a valid
// Filter that lists without error, or an ErrInvalidQuery with a readable
// message; and that GET /audit-logs answers it 200 or 400, never 500.
func FuzzFilterFromQuery(f *testing.F) {
	cursor := audit.NextCursor([]audit.Log{{ID: "01", CreatedAt: time.Unix(100, 0)}})
	f.Add("action=app.project.created&limit=10")
	f.Add("since=2024-05-01T12:00:00Z&until=2024-05-01T11:00:00Z")
	f.Add("cursor=" + cursor + "&outcome=denied&request_id=r")
	f.Add("org_id=acme&limit=0")
	f.Add("actor=%00&target=%FF")
	f.Add("limit=1000&since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999999Z")
	f.Add("%zz")

	mem := audit.NewMemoryRepository()
	lg := audit.NewLogger(mem, audit.WithSource("seed"))
	ctx := audit.SetOrgID(audit.SetActor(context.Background(), anonymous), "acme")
	for range 3 {
		if err := lg.Log(ctx, ActionProjectCreated, audit.Target{ID: "p", Type: "project"}); err != nil {
			f.Fatal(err)
		}
	}
	srv, err := New(Config{Repository: discardRepository{mem}, Tokens: DemoTokens()})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		wantStatus := http.StatusBadRequest
		if q, err := url.ParseQuery(raw); err == nil {
			flt, err := FilterFromQuery(q)
			if err != nil {
				if !errors.Is(err, ErrInvalidQuery) || !utf8.ValidString(err.Error()) {
					t.Fatalf("got error %q, want a readable ErrInvalidQuery", err)
				}
			} else {
				flt.OrgID = "acme"
				if err := flt.Validate(); err != nil {
					t.Fatalf("got an invalid filter %+v from %q: %v", flt, raw, err)
				}
				if _, err := mem.List(context.Background(), flt); err != nil {
					t.Fatalf("List(%+v): %v", flt, err)
				}
				wantStatus = http.StatusOK
			}
		}
		r := httptest.NewRequest(http.MethodGet, "/audit-logs", nil)
		r.URL.RawQuery = raw
		r.Header.Set("Authorization", "Bearer demo-alice")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != wantStatus {
			t.Fatalf("got status %d (%s) for %q, want %d", w.Code, w.Body, raw, wantStatus)
		}
	})
}
