package auditconnect_test

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// TestIdentity checks what each kind of Authorization header makes of the
// caller, as the handler and the log see it.
func TestIdentity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		values     []string // Authorization header values
		wantActor  audit.Actor
		wantOrg    string
		wantReason string // MetadataAuthError
	}{
		{name: "valid", values: []string{"Bearer " + testToken}, wantActor: testActor, wantOrg: "org-1"},
		{name: "scheme in lower case", values: []string{"bearer " + testToken}, wantActor: testActor, wantOrg: "org-1"},
		{name: "spaces around the token", values: []string{"Bearer   " + testToken + " "}, wantActor: testActor, wantOrg: "org-1"},
		{name: "none", wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthMissingToken},
		{name: "unknown token", values: []string{"Bearer forged"}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
		{name: "no token", values: []string{"Bearer"}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
		{name: "empty token", values: []string{"Bearer  "}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
		{name: "other scheme", values: []string{"Basic " + testToken}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
		{name: "two headers", values: []string{"Bearer " + testToken, "Bearer " + testToken}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
		{name: "empty header", values: []string{""}, wantActor: auditconnect.Anonymous, wantReason: auditconnect.AuthInvalidToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			var role any
			var required error
			e.stub.hook = func(ctx context.Context) {
				role = ctx.Value(roleKey{})
				_, required = auditconnect.RequireActor(ctx)
			}
			req := connect.NewRequest(&projectsv1.CreateProjectRequest{Name: "x"})
			req.Header()["Authorization"] = tt.values
			if _, err := e.client.CreateProject(testContext(t), req); err != nil {
				t.Fatal(err)
			}
			l := e.only(t)
			if l.Actor != tt.wantActor || l.OrgID != tt.wantOrg || l.Metadata[auditconnect.MetadataAuthError] != tt.wantReason {
				t.Errorf("got actor %v, org %q, %s %q; want %v, %q, %q", l.Actor, l.OrgID, auditconnect.MetadataAuthError,
					l.Metadata[auditconnect.MetadataAuthError], tt.wantActor, tt.wantOrg, tt.wantReason)
			}
			anonymous := tt.wantActor == auditconnect.Anonymous
			if (role == nil) != anonymous {
				t.Errorf("got role %v in the handler's context: the Authenticator's context must reach it when, and only when, it accepted the token", role)
			}
			if got := connect.CodeOf(required); anonymous && got != connect.CodeUnauthenticated || !anonymous && required != nil {
				t.Errorf("RequireActor: got %v", required)
			}
		})
	}
}

// TestRequestIDSentBack checks that the request id goes back in the
// response header on success and on error, unary and streaming, and that
// a valid one sent by the client is kept.
func TestRequestIDSentBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := testContext(t)
	req := authed(&projectsv1.CreateProjectRequest{Name: "x"})
	req.Header().Set(auditmeta.HeaderRequestID, "req-7")
	res, err := e.client.CreateProject(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header().Get(auditmeta.HeaderRequestID); got != "req-7" {
		t.Errorf("got %q, want req-7 sent back", got)
	}

	e.stub.err = connect.NewError(connect.CodePermissionDenied, nil)
	_, err = e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "x"}))
	var ce *connect.Error
	if !asConnectError(err, &ce) || !auditmeta.ValidRequestID(ce.Meta().Get(auditmeta.HeaderRequestID)) {
		t.Errorf("got %v with headers %v, want a request id sent back with the error", err, ce.Meta())
	}
	if got, want := ce.Meta().Get(auditmeta.HeaderRequestID), e.logs(t)[0].Metadata[audit.MetadataRequestID]; got != want {
		t.Errorf("got request id %q sent back, want the logged %q", got, want)
	}

	s, err := e.client.ExportProjects(ctx, authed(&projectsv1.ExportProjectsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for s.Receive() {
	}
	if got, want := s.ResponseHeader().Get(auditmeta.HeaderRequestID), e.logs(t)[0].Metadata[audit.MetadataRequestID]; got == "" || got != want {
		t.Errorf("got request id %q sent back by a stream, want the logged %q", got, want)
	}
	_ = s.Close()
}

// TestClientSide checks that the interceptors do nothing on a client: no
// header is added, and no log is written for the client's calls.
func TestClientSide(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	repo := audit.NewMemoryRepository()
	var seen http.Header
	e.stub.hook = func(ctx context.Context) {
		if info, ok := connect.CallInfoForHandlerContext(ctx); ok {
			seen = info.RequestHeader().Clone()
		}
	}
	c := newClient(e.url, connect.WithInterceptors(
		auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(audit.NewLogger(repo), nil),
	))
	if _, err := c.CreateProject(testContext(t), authed(&projectsv1.CreateProjectRequest{Name: "x"})); err != nil {
		t.Fatal(err)
	}
	if got := seen.Get(auditmeta.HeaderRequestID); got != "" {
		t.Errorf("got request id %q sent by the client, want none", got)
	}
	if logs, _ := repo.List(context.Background(), audit.Filter{}); len(logs) != 0 {
		t.Errorf("got %d logs written on the client side, want none", len(logs))
	}
	if n := len(e.logs(t)); n != 1 {
		t.Errorf("got %d logs on the server, want 1", n)
	}
}
