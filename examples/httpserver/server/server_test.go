package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/httpserver/server"
)

// wantLog is what a test expects of an audit log; empty fields are not
// checked, except that Reason "" means no reason.
type wantLog struct {
	action, org, actorID, actorType, outcome, reason string
	targetType, targetID, targetName                 string
	metadata                                         map[string]string
}

// checkLog checks l against want, and that it carries the metadata of the
// request that r answered: the request id sent back, the test's user
// agent and the loopback address.
func checkLog(t *testing.T, l audit.Log, r reply, want wantLog) {
	t.Helper()
	if err := l.Validate(); err != nil {
		t.Errorf("got an invalid log %v: %v", l, err)
	}
	check := func(field, got, want string) {
		t.Helper()
		if want != "" && got != want {
			t.Errorf("%s: got %q, want %q (log %v)", field, got, want, l)
		}
	}
	check("action", l.Action, want.action)
	check("source", l.Source, server.DefaultSource)
	check("org_id", l.OrgID, want.org)
	check("actor.id", l.Actor.ID, want.actorID)
	check("actor.type", l.Actor.Type, want.actorType)
	check("target.type", l.Target.Type, want.targetType)
	check("target.id", l.Target.ID, want.targetID)
	check("target.name", l.Target.Name, want.targetName)
	check("outcome", l.Metadata[audit.MetadataOutcome], want.outcome)
	if got := l.Metadata["reason"]; got != want.reason {
		t.Errorf("reason: got %q, want %q (log %v)", got, want.reason, l)
	}
	for k, v := range want.metadata {
		check("metadata "+k, l.Metadata[k], v)
	}
	check("request_id", l.Metadata[audit.MetadataRequestID], r.header.Get(auditmeta.HeaderRequestID))
	check("user_agent", l.Metadata[audit.MetadataUserAgent], testUserAgent)
	check("ip", l.Metadata[audit.MetadataIP], "127.0.0.1")
}

// TestEndToEnd walks the life of a project over HTTP and checks, after
// each request, the audit log it wrote: who, what, on which target, with
// which outcome, and the request's metadata.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	step := func(c call, status int, want wantLog) reply {
		t.Helper()
		r := e.mustDo(t, c, status)
		if got := r.header.Get(auditmeta.HeaderRequestID); got == "" {
			t.Errorf("%s %s: got no %s in the response", c.method, c.path, auditmeta.HeaderRequestID)
		}
		checkLog(t, e.newest(t), r, want)
		return r
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"

	// An admin creates a project; the client's request id and trace are kept.
	r := step(call{method: "POST", path: "/projects", token: alice, body: `{"name":"apollo"}`, header: map[string]string{
		"X-Request-Id": "req-42", "Traceparent": "00-" + trace + "-00f067aa0ba902b7-01",
	}}, http.StatusCreated, wantLog{
		action: server.ActionProjectCreated, org: "acme", actorID: "user-alice", actorType: audit.ActorTypeUser,
		outcome: audit.OutcomeSuccess, targetType: "project", targetName: "apollo",
		metadata: map[string]string{audit.MetadataRequestID: "req-42", audit.MetadataTraceID: trace},
	})
	if got := r.header.Get(auditmeta.HeaderRequestID); got != "req-42" {
		t.Errorf("got request id %q sent back, want req-42", got)
	}
	var p struct{ ID, Name string }
	mustDecode(t, r.body, &p)
	id := p.ID
	if got := e.newest(t).Target.ID; got != id {
		t.Errorf("got target id %q, want the project's %q", got, id)
	}

	// A service account (a member) renames it.
	step(call{method: "PATCH", path: "/projects/" + id, token: ci, body: `{"name":"apollo-2"}`}, http.StatusOK, wantLog{
		action: server.ActionProjectUpdated, org: "acme", actorID: "sa-deployer", actorType: audit.ActorTypeService,
		outcome: audit.OutcomeSuccess, targetType: "project", targetID: id, targetName: "apollo-2",
		metadata: map[string]string{"previous_name": "apollo"},
	})
	// A member may not delete it, nor manage members: denied, and recorded.
	step(call{method: "DELETE", path: "/projects/" + id, token: bob}, http.StatusForbidden, wantLog{
		action: server.ActionProjectDeleted, org: "acme", actorID: "user-bob",
		outcome: audit.OutcomeDenied, reason: "admin_required", targetType: "project", targetID: id,
	})
	step(call{method: "POST", path: "/projects/" + id + "/members", token: bob, body: `{"user_id":"dave","role":"editor"}`}, http.StatusForbidden, wantLog{
		action: server.ActionMemberAdded, org: "acme", actorID: "user-bob", outcome: audit.OutcomeDenied, reason: "admin_required",
	})
	// The admin adds a member, fails to add them twice, removes them.
	step(call{method: "POST", path: "/projects/" + id + "/members", token: alice, body: `{"user_id":"dave","role":"editor"}`}, http.StatusCreated, wantLog{
		action: server.ActionMemberAdded, org: "acme", actorID: "user-alice", outcome: audit.OutcomeSuccess,
		targetType: "user", targetID: "dave", metadata: map[string]string{"project_id": id, "member_role": "editor"},
	})
	step(call{method: "POST", path: "/projects/" + id + "/members", token: alice, body: `{"user_id":"dave","role":"viewer"}`}, http.StatusConflict, wantLog{
		action: server.ActionMemberAdded, outcome: audit.OutcomeFailure, reason: "conflict", targetID: "dave",
	})
	step(call{method: "POST", path: "/projects/" + id + "/members", token: alice, body: `{"user_id":"dave","role":"owner"}`}, http.StatusBadRequest, wantLog{
		action: server.ActionMemberAdded, outcome: audit.OutcomeFailure, reason: "invalid_request",
	})
	step(call{method: "DELETE", path: "/projects/" + id + "/members/dave", token: alice}, http.StatusNoContent, wantLog{
		action: server.ActionMemberRemoved, actorID: "user-alice", outcome: audit.OutcomeSuccess,
		targetType: "user", targetID: "dave", metadata: map[string]string{"project_id": id, "member_role": "editor"},
	})
	step(call{method: "DELETE", path: "/projects/" + id + "/members/dave", token: alice}, http.StatusNotFound, wantLog{
		action: server.ActionMemberRemoved, outcome: audit.OutcomeFailure, reason: "not_found", targetID: "dave",
	})
	// Bad input and unknown projects are failures.
	step(call{method: "PATCH", path: "/projects/" + id, token: alice, body: `{"name":`}, http.StatusBadRequest, wantLog{
		action: server.ActionProjectUpdated, outcome: audit.OutcomeFailure, reason: "invalid_request", targetID: id,
	})
	step(call{method: "POST", path: "/projects", token: alice, body: `{"name":"x","owner":"eve"}`}, http.StatusBadRequest, wantLog{
		action: server.ActionProjectCreated, outcome: audit.OutcomeFailure, reason: "invalid_request",
	})
	step(call{method: "POST", path: "/projects", token: alice, body: `{"name":"APOLLO-2"}`}, http.StatusConflict, wantLog{
		action: server.ActionProjectCreated, outcome: audit.OutcomeFailure, reason: "conflict", targetName: "APOLLO-2",
	})
	step(call{method: "DELETE", path: "/projects/00000000-0000-4000-8000-000000000000", token: alice}, http.StatusNotFound, wantLog{
		action: server.ActionProjectDeleted, outcome: audit.OutcomeFailure, reason: "not_found",
		targetID: "00000000-0000-4000-8000-000000000000",
	})
	// A path no log could hold is cut to fit, not a reason to lose the event.
	step(call{method: "DELETE", path: "/projects/" + strings.Repeat("%FF", 300), token: alice}, http.StatusNotFound, wantLog{
		action: server.ActionProjectDeleted, outcome: audit.OutcomeFailure, reason: "not_found",
	})
	// No token, or a wrong one: recorded with the anonymous actor and no org.
	step(call{method: "POST", path: "/projects", body: `{"name":"x"}`}, http.StatusUnauthorized, wantLog{
		action: server.ActionAuthFailed, actorType: audit.ActorTypeAnonymous, outcome: audit.OutcomeDenied,
		reason: "missing_token", metadata: map[string]string{"route": "POST /projects"},
	})
	step(call{method: "DELETE", path: "/projects/" + id, token: "guess"}, http.StatusUnauthorized, wantLog{
		action: server.ActionAuthFailed, actorType: audit.ActorTypeAnonymous, outcome: audit.OutcomeDenied,
		reason: "invalid_token", metadata: map[string]string{"route": "DELETE /projects/{id}"},
	})
	if l := e.newest(t); l.OrgID != "" || l.Actor.ID != "" {
		t.Errorf("got org %q, actor id %q for an unauthenticated request, want neither", l.OrgID, l.Actor.ID)
	}
	// Reads of projects are not audited, authenticated or not.
	before := e.count(t, audit.Filter{})
	e.mustDo(t, call{method: "GET", path: "/projects"}, http.StatusUnauthorized)
	e.mustDo(t, call{method: "GET", path: "/projects", token: bob}, http.StatusOK)
	if after := e.count(t, audit.Filter{}); after != before {
		t.Errorf("got %d logs after reading projects, want %d: reads are not audited", after, before)
	}
	// The admin deletes the project.
	step(call{method: "DELETE", path: "/projects/" + id, token: alice}, http.StatusNoContent, wantLog{
		action: server.ActionProjectDeleted, actorID: "user-alice", outcome: audit.OutcomeSuccess,
		targetID: id, targetName: "apollo-2",
	})

	// The admin reads the trail: acme's logs, newest first, and the reading
	// is itself recorded.
	lr := e.list(t, alice, "limit=100")
	if got, want := len(lr.Logs), e.count(t, audit.Filter{OrgID: "acme"})-1; got != want {
		t.Errorf("got %d logs, want %d: every acme log but the listing's own", got, want)
	}
	for i, l := range lr.Logs {
		if l.OrgID != "acme" {
			t.Errorf("got a log of org %q, want only acme's: %v", l.OrgID, l)
		}
		if i > 0 && l.CreatedAt.After(lr.Logs[i-1].CreatedAt) {
			t.Errorf("got log %d newer than log %d, want newest first", i, i-1)
		}
	}
	if lr.Logs[0].Action != server.ActionProjectDeleted || lr.Logs[len(lr.Logs)-1].Action != server.ActionProjectCreated {
		t.Errorf("got first %s and last %s, want the deletion first and the creation last", lr.Logs[0].Action, lr.Logs[len(lr.Logs)-1].Action)
	}
	if *lr.NextCursor != "" {
		t.Errorf("got next_cursor %q for a short page, want none", *lr.NextCursor)
	}
	listed := e.newest(t)
	if listed.Action != server.ActionAuditLogListed || listed.Metadata[audit.MetadataOutcome] != audit.OutcomeSuccess ||
		listed.Metadata["query"] != "limit=100" || listed.Actor.ID != "user-alice" {
		t.Errorf("got %v, want the listing recorded as app.audit_log.listed by alice", listed)
	}
	// A member may not read it: denied, and recorded.
	r = e.mustDo(t, call{method: "GET", path: "/audit-logs", token: bob}, http.StatusForbidden)
	checkLog(t, e.newest(t), r, wantLog{action: server.ActionAuditLogListed, actorID: "user-bob", outcome: audit.OutcomeDenied, reason: "admin_required"})
	// Without a token neither.
	r = e.mustDo(t, call{method: "GET", path: "/audit-logs"}, http.StatusUnauthorized)
	checkLog(t, e.newest(t), r, wantLog{action: server.ActionAuthFailed, actorType: audit.ActorTypeAnonymous, reason: "missing_token"})
	// The denial can be found by outcome.
	denied := e.list(t, alice, "outcome=denied&actor=user-bob")
	if len(denied.Logs) != 3 {
		t.Errorf("got %d denials of bob, want 3", len(denied.Logs))
	}
}

// TestTenantIsolation checks that the admin of one org never reads the logs
// of another through the API, whatever the query says, and cannot act on
// its projects.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	acmeID := e.createProject(t, alice, "apollo")
	for i := range 5 {
		e.createProject(t, alice, fmt.Sprint("acme-", i))
	}
	globexID := e.createProject(t, carol, "gemini")
	acmePage := e.list(t, alice, "limit=2")
	if *acmePage.NextCursor == "" {
		t.Fatal("got no next_cursor from a full acme page")
	}

	for _, query := range []string{
		"",
		"limit=1000",
		"actor=user-alice",
		"actor_type=user",
		"target=" + acmeID,
		"target_type=project&action=app.project.created",
		"source=projects-api",
		"since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z",
		"request_id=" + acmePage.Logs[0].Metadata[audit.MetadataRequestID],
		"cursor=" + *acmePage.NextCursor,
	} {
		t.Run("query "+query, func(t *testing.T) {
			lr := e.list(t, carol, query)
			for _, l := range lr.Logs {
				if l.OrgID != "globex" {
					t.Fatalf("got a log of org %q for globex's admin: %v", l.OrgID, l)
				}
			}
		})
	}
	// A query naming the org is refused outright.
	for _, query := range []string{"org_id=acme", "org=acme", "org_id=acme&org_id=globex"} {
		r := e.mustDo(t, call{method: "GET", path: "/audit-logs?" + query, token: carol}, http.StatusBadRequest)
		if !strings.Contains(string(r.body), "org") {
			t.Errorf("%s: got %s, want a message about the org", query, r.body)
		}
	}
	// Her own logs she does see.
	if lr := e.list(t, carol, "action=app.project.created"); len(lr.Logs) != 1 || lr.Logs[0].Target.ID != globexID {
		t.Errorf("got %v, want globex's one creation", lr.Logs)
	}

	// Acme's project does not exist for globex: not found, not changed, and
	// the attempt is recorded in globex's trail, not acme's.
	acmeBefore := e.count(t, audit.Filter{OrgID: "acme"})
	e.mustDo(t, call{method: "PATCH", path: "/projects/" + acmeID, token: carol, body: `{"name":"mine"}`}, http.StatusNotFound)
	e.mustDo(t, call{method: "DELETE", path: "/projects/" + acmeID, token: carol}, http.StatusNotFound)
	e.mustDo(t, call{method: "POST", path: "/projects/" + acmeID + "/members", token: carol, body: `{"user_id":"eve","role":"editor"}`}, http.StatusNotFound)
	if got := e.count(t, audit.Filter{OrgID: "acme"}); got != acmeBefore {
		t.Errorf("got %d acme logs after globex's attempts, want %d", got, acmeBefore)
	}
	if got := e.count(t, audit.Filter{OrgID: "globex", TargetID: acmeID, Metadata: map[string]string{"reason": "not_found"}}); got != 2 {
		t.Errorf("got %d not_found attempts on acme's project in globex's trail, want 2", got)
	}
	r := e.mustDo(t, call{method: "GET", path: "/projects", token: alice}, http.StatusOK)
	if !strings.Contains(string(r.body), `"apollo"`) || strings.Contains(string(r.body), "mine") {
		t.Errorf("got acme's projects %s, want apollo unchanged", r.body)
	}
	r = e.mustDo(t, call{method: "GET", path: "/projects", token: carol}, http.StatusOK)
	if strings.Contains(string(r.body), "apollo") {
		t.Errorf("got globex's projects %s, want none of acme's", r.body)
	}
}

// TestNoOrgNeverListsEveryOrg checks that a principal without an org
// cannot be configured: with Filter.OrgID empty, List would return every
// org's logs.
func TestNoOrgNeverListsEveryOrg(t *testing.T) {
	tokens := server.DemoTokens()
	tokens["root"] = server.Principal{Actor: audit.Actor{ID: "root", Type: audit.ActorTypeUser}, Role: server.RoleAdmin}
	if _, err := server.New(server.Config{Repository: audit.NewMemoryRepository(), Tokens: tokens}); err == nil {
		t.Fatal("got no error for a principal without an org")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	repo := audit.NewMemoryRepository()
	user := audit.Actor{ID: "u", Type: audit.ActorTypeUser}
	for _, tt := range []struct {
		name string
		cfg  server.Config
	}{
		{"no repository", server.Config{}},
		{"empty token", server.Config{Repository: repo, Tokens: map[string]server.Principal{"": {Actor: user, OrgID: "o", Role: server.RoleAdmin}}}},
		{"anonymous actor", server.Config{Repository: repo, Tokens: map[string]server.Principal{"t": {Actor: audit.Actor{ID: "u", Type: audit.ActorTypeAnonymous}, OrgID: "o", Role: server.RoleAdmin}}}},
		{"no actor id", server.Config{Repository: repo, Tokens: map[string]server.Principal{"t": {Actor: audit.Actor{Type: audit.ActorTypeUser}, OrgID: "o", Role: server.RoleAdmin}}}},
		{"unknown role", server.Config{Repository: repo, Tokens: map[string]server.Principal{"t": {Actor: user, OrgID: "o", Role: "root"}}}},
		{"org with NUL", server.Config{Repository: repo, Tokens: map[string]server.Principal{"t": {Actor: user, OrgID: "o\x00", Role: server.RoleAdmin}}}},
		{"unknown forwarded header", server.Config{Repository: repo, ForwardedHeader: "X-Real-Ip"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := server.New(tt.cfg); err == nil {
				t.Fatal("got no error, want one")
			}
		})
	}
}

// TestClientIPSpoofing checks over real connections, where the peer is
// 127.0.0.1, that forwarding headers change the recorded ip only when the
// peer is a trusted proxy, and then only the hop that proxy added.
func TestClientIPSpoofing(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	spoof := map[string]string{
		"X-Forwarded-For": "203.0.113.66",
		"Forwarded":       "for=203.0.113.66",
		"X-Real-Ip":       "203.0.113.66",
	}
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		header  string
		headers map[string]string
		want    string
	}{
		{name: "untrusted peer sends every header", headers: spoof, want: "127.0.0.1"},
		{name: "untrusted peer, other proxies trusted", trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, headers: spoof, want: "127.0.0.1"},
		{
			name: "trusted proxy adds the client", trusted: loopback,
			headers: map[string]string{"X-Forwarded-For": "198.51.100.66, 203.0.113.9"}, want: "203.0.113.9",
		},
		{
			name: "trusted proxy, client spoofs the other header", trusted: loopback,
			headers: map[string]string{"Forwarded": "for=198.51.100.66"}, want: "127.0.0.1",
		},
		{
			name: "trusted proxy using Forwarded", trusted: loopback, header: auditmeta.HeaderForwarded,
			headers: map[string]string{"X-Forwarded-For": "198.51.100.66", "Forwarded": `for=198.51.100.66, for="[2001:db8::7]:4711"`},
			want:    "2001:db8::7",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *server.Config) {
				c.TrustedProxies, c.ForwardedHeader = tt.trusted, tt.header
			})
			e.mustDo(t, call{method: "POST", path: "/projects", token: alice, body: `{"name":"p"}`, header: tt.headers}, http.StatusCreated)
			if got := e.newest(t).Metadata[audit.MetadataIP]; got != tt.want {
				t.Fatalf("got ip %q, want %q", got, tt.want)
			}
		})
	}
}

// TestClientIPSpoofingPeers drives the handler with chosen peer addresses,
// as a listener behind a proxy would see them.
func TestClientIPSpoofingPeers(t *testing.T) {
	repo := audit.NewMemoryRepository()
	srv, err := server.New(server.Config{
		Repository:     repo,
		Tokens:         server.DemoTokens(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		peer, xff, want string
	}{
		{"192.0.2.1:4000", "203.0.113.66", "192.0.2.1"},
		{"192.0.2.1:4000", "10.0.0.1", "192.0.2.1"},
		{"[2001:db8::1]:4000", "203.0.113.66", "2001:db8::1"},
		{"10.0.0.5:4000", "203.0.113.66, 192.0.2.1", "192.0.2.1"},
		{"10.0.0.5:4000", "192.0.2.1, 10.0.0.9", "192.0.2.1"},
		{"[fd00::5]:4000", "192.0.2.1", "192.0.2.1"},
		{"[::ffff:10.0.0.5]:4000", "192.0.2.1", "192.0.2.1"},
		{"10.0.0.5:4000", "", "10.0.0.5"},
	} {
		t.Run(tt.peer+" "+tt.xff, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/projects", strings.NewReader(`{"name":"`+t.Name()+`"}`))
			r.RemoteAddr = tt.peer
			r.Header.Set("Authorization", "Bearer "+alice)
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != http.StatusCreated {
				t.Fatalf("got status %d (%s), want 201", w.Code, w.Body)
			}
			logs, err := repo.List(context.Background(), audit.Filter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := logs[0].Metadata[audit.MetadataIP]; got != tt.want {
				t.Fatalf("got ip %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHostileHeadersStillAudited sends headers a client controls at their
// worst over a real connection: the request is served and audited, with
// the bad values dropped or cut.
func TestHostileHeadersStillAudited(t *testing.T) {
	e := newEnv(t)
	r := e.mustDo(t, call{method: "POST", path: "/projects", token: alice, body: `{"name":"p"}`, header: map[string]string{
		"User-Agent":   "\xff\xfe" + strings.Repeat("x", 20000),
		"X-Request-Id": "not valid; drop table",
		"Traceparent":  "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	}}, http.StatusCreated)
	l := e.newest(t)
	if err := l.Validate(); err != nil {
		t.Fatalf("got an invalid log: %v", err)
	}
	rid := l.Metadata[audit.MetadataRequestID]
	if rid == "" || rid == "not valid; drop table" || rid != r.header.Get(auditmeta.HeaderRequestID) {
		t.Errorf("got request id %q (sent back %q), want a generated one sent back", rid, r.header.Get(auditmeta.HeaderRequestID))
	}
	if ua := l.Metadata[audit.MetadataUserAgent]; len(ua) > 512 || !strings.HasPrefix(ua, "\uFFFD") {
		t.Errorf("got user agent of %d bytes %.20q, want it cut to at most 512 and made valid UTF-8", len(ua), ua)
	}
	if _, ok := l.Metadata[audit.MetadataTraceID]; ok {
		t.Errorf("got trace_id %q from an invalid traceparent", l.Metadata[audit.MetadataTraceID])
	}
}

func TestListAuditLogsBadInput(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		query string
		want  string
	}{
		{"limit=0", `limit`},
		{"limit=5000", `limit`},
		{"since=last-week", `since`},
		{"until=2024-13-01T00:00:00Z", `until`},
		{"since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z", `since`},
		{"cursor=AAAA", `cursor`},
		{"acton=app.project.created", `acton`},
		{"action=a&action=b", `action`},
		{"actor=%00", `actor`},
		{"%zz", `malformed`},
		{"outcome=ok", `outcome`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			r := e.mustDo(t, call{method: "GET", path: "/audit-logs?" + tt.query, token: alice}, http.StatusBadRequest)
			var body struct{ Error string }
			mustDecode(t, r.body, &body)
			if !strings.Contains(body.Error, tt.want) {
				t.Errorf("got %q, want a message naming %q", body.Error, tt.want)
			}
			checkLog(t, e.newest(t), r, wantLog{action: server.ActionAuditLogListed, outcome: audit.OutcomeFailure, reason: "invalid_request"})
		})
	}
}

// TestPagination pages through the trail over HTTP, with logs being
// written between pages: every log is returned once, newest first, and the
// last page says so with an empty next_cursor.
func TestPagination(t *testing.T) {
	e := newEnv(t)
	var want []string // ids of the creation logs, newest first
	for i := range 23 {
		e.createProject(t, alice, fmt.Sprint("p", i))
		want = append([]string{e.newest(t).ID}, want...)
	}
	var got []string
	query := "action=app.project.created&limit=5"
	pages := 0
	for cursor := ""; ; {
		lr := e.list(t, alice, query+"&cursor="+cursor)
		pages++
		for _, l := range lr.Logs {
			got = append(got, l.ID)
		}
		// New logs written meanwhile are newer than the cursor: they never
		// show up on later pages.
		e.createProject(t, alice, fmt.Sprint("late", pages))
		if *lr.NextCursor == "" {
			if len(lr.Logs) == 5 {
				t.Errorf("got no next_cursor on a full page")
			}
			break
		}
		if len(lr.Logs) != 5 {
			t.Errorf("got next_cursor on a page of %d, want it only on full pages", len(lr.Logs))
		}
		cursor = *lr.NextCursor
	}
	if pages != 5 || !slices.Equal(got, want) {
		t.Fatalf("got %d pages of %v, want 5 pages of %v", pages, got, want)
	}

	// A page exactly as long as the limit gets a cursor; the page after it is
	// empty and final.
	lr := e.list(t, alice, "action=app.project.created&limit=28")
	if len(lr.Logs) != 28 || *lr.NextCursor == "" {
		t.Fatalf("got %d logs, next_cursor %q; want 28 and a cursor", len(lr.Logs), *lr.NextCursor)
	}
	lr = e.list(t, alice, "action=app.project.created&limit=28&cursor="+*lr.NextCursor)
	if len(lr.Logs) != 0 || *lr.NextCursor != "" {
		t.Fatalf("got %d logs, next_cursor %q; want an empty last page", len(lr.Logs), *lr.NextCursor)
	}
}

// flakyRepository fails Create while fail is set.
type flakyRepository struct {
	audit.Repository
	fail atomic.Bool
}

var errStorageDown = errors.New("storage is down")

func (r *flakyRepository) Create(ctx context.Context, l *audit.Log) error {
	if r.fail.Load() {
		return errStorageDown
	}
	return r.Repository.Create(ctx, l)
}

// TestUnauditedChangesAreNotMade checks the server's policy when audit
// logs cannot be stored: no change is made, no trail is shown, and denials
// are still denied; each lost log is reported to the error log.
func TestUnauditedChangesAreNotMade(t *testing.T) {
	repo := &flakyRepository{Repository: audit.NewMemoryRepository()}
	e := newEnv(t, func(c *server.Config) { c.Repository = repo })
	id := e.createProject(t, alice, "apollo")

	repo.fail.Store(true)
	e.mustDo(t, call{method: "POST", path: "/projects", token: alice, body: `{"name":"lost"}`}, http.StatusInternalServerError)
	e.mustDo(t, call{method: "PATCH", path: "/projects/" + id, token: alice, body: `{"name":"renamed"}`}, http.StatusInternalServerError)
	e.mustDo(t, call{method: "POST", path: "/projects/" + id + "/members", token: alice, body: `{"user_id":"dave","role":"editor"}`}, http.StatusInternalServerError)
	e.mustDo(t, call{method: "DELETE", path: "/projects/" + id, token: alice}, http.StatusInternalServerError)
	e.mustDo(t, call{method: "DELETE", path: "/projects/" + id, token: bob}, http.StatusForbidden)
	e.mustDo(t, call{method: "POST", path: "/projects"}, http.StatusUnauthorized)
	r := e.mustDo(t, call{method: "GET", path: "/audit-logs", token: alice}, http.StatusInternalServerError)
	if strings.Contains(string(r.body), "apollo") {
		t.Errorf("got %s, want no logs returned when the listing cannot be audited", r.body)
	}

	r = e.mustDo(t, call{method: "GET", path: "/projects", token: alice}, http.StatusOK)
	var got struct {
		Projects []struct {
			ID, Name string
			Members  []any
		}
	}
	mustDecode(t, r.body, &got)
	if len(got.Projects) != 1 || got.Projects[0].ID != id || got.Projects[0].Name != "apollo" || len(got.Projects[0].Members) != 0 {
		t.Errorf("got projects %s, want apollo alone and unchanged", r.body)
	}
	if n := strings.Count(e.errLog.String(), "audit log not stored"); n != 7 {
		t.Errorf("got %d reports of lost audit logs, want 7:\n%s", n, e.errLog)
	}
	if !strings.Contains(e.errLog.String(), "reason=admin_required") {
		t.Errorf("got error log %s, want the lost denial in it", e.errLog)
	}

	repo.fail.Store(false)
	e.mustDo(t, call{method: "DELETE", path: "/projects/" + id, token: alice}, http.StatusNoContent)
}

// listFailingRepository fails List while fail is set.
type listFailingRepository struct {
	audit.Repository
	fail atomic.Bool
}

func (r *listFailingRepository) List(ctx context.Context, f audit.Filter) ([]audit.Log, error) {
	if r.fail.Load() {
		return nil, errStorageDown
	}
	return r.Repository.List(ctx, f)
}

// TestListStorageError checks that a listing the repository fails is
// answered 500 and recorded as a failure with reason storage_error.
func TestListStorageError(t *testing.T) {
	repo := &listFailingRepository{Repository: audit.NewMemoryRepository()}
	e := newEnv(t, func(c *server.Config) { c.Repository = repo })
	e.createProject(t, alice, "apollo")

	repo.fail.Store(true)
	r := e.mustDo(t, call{method: "GET", path: "/audit-logs", token: alice}, http.StatusInternalServerError)
	if strings.Contains(string(r.body), errStorageDown.Error()) {
		t.Errorf("got %s, want the storage error kept from the client", r.body)
	}
	repo.fail.Store(false)
	checkLog(t, e.newest(t), r, wantLog{action: server.ActionAuditLogListed, org: "acme", actorID: "user-alice",
		outcome: audit.OutcomeFailure, reason: "storage_error", targetType: "audit_log"})
	if !strings.Contains(e.errLog.String(), errStorageDown.Error()) {
		t.Errorf("got error log %s, want the storage error in it", e.errLog)
	}
}

// TestConcurrentRequests runs requests of both orgs in parallel, for the
// race detector, and checks that each success wrote exactly one log.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	var created [2]atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, org := alice, 0
			if g%2 == 1 {
				tok, org = carol, 1
			}
			for i := range 10 {
				r := e.do(t, call{method: "POST", path: "/projects", token: tok, body: fmt.Sprintf(`{"name":"g%d-%d"}`, g, i)})
				if r.status == http.StatusCreated {
					created[org].Add(1)
				}
				e.do(t, call{method: "GET", path: "/audit-logs?limit=5", token: tok})
				e.do(t, call{method: "DELETE", path: "/projects/x", token: bob})
			}
		}()
	}
	wg.Wait()
	for i, org := range []string{"acme", "globex"} {
		f := audit.Filter{OrgID: org, Action: server.ActionProjectCreated, Metadata: map[string]string{audit.MetadataOutcome: audit.OutcomeSuccess}}
		if got := e.count(t, f); int64(got) != created[i].Load() || got != 40 {
			t.Errorf("%s: got %d creation logs for %d creations, want 40 of each", org, got, created[i].Load())
		}
	}
}

// TestRun serves on a free port, answers a request, and stops gracefully
// when its context ends.
func TestRun(t *testing.T) {
	srv, err := server.New(server.Config{Repository: audit.NewMemoryRepository(), Tokens: server.DemoTokens()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, "127.0.0.1:0", srv, func(u string) { ready <- u }) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d from /healthz, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v from Run after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
