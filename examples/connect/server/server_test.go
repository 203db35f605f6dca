package server_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// TestProtocols walks the life of a project with every kind of client —
// Connect, gRPC and gRPC-Web from connect-go over HTTP/1.1 and h2c, and a
// google.golang.org/grpc client — and checks, after each call, the audit
// log it wrote, or that it wrote none: success, failure, denial, the
// anonymous caller, and a server stream.
func TestProtocols(t *testing.T) {
	t.Parallel()
	for _, name := range clientNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Each client works in a fresh server, so that the newest log
			// is its own.
			e := newEnv(t)
			c := e.client(t, name)
			count := func() int { t.Helper(); return len(e.logs(t)) }

			// Success: a member creates a project; its request id is kept
			// and sent back.
			rid := "req-" + strings.ReplaceAll(c.name, "/", "-")
			res, h := mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
				&projectsv1.CreateProjectRequest{Name: "apollo"}, auditmeta.HeaderRequestID, rid)
			id := res.GetProject().GetId()
			if got := h.Get(auditmeta.HeaderRequestID); got != rid {
				t.Errorf("got request id %q sent back, want %q", got, rid)
			}
			l := e.newest(t)
			checkLog(t, l, wantLog{
				action: "app.project.created", org: "acme", actorID: "user-bob", actorType: audit.ActorTypeUser,
				outcome: audit.OutcomeSuccess, code: auditconnect.CodeOK, procedure: procCreate,
				targetType: "project", targetID: id, targetName: "apollo",
				metadata: map[string]string{audit.MetadataRequestID: rid},
			})
			if ua := l.Metadata[audit.MetadataUserAgent]; !strings.HasPrefix(ua, c.userAgent) {
				t.Errorf("got user agent %q, want it to begin %q", ua, c.userAgent)
			}

			// Reads declared NO_SIDE_EFFECTS are not audited.
			n := count()
			mustCall[projectsv1.GetProjectRequest, projectsv1.GetProjectResponse](t, c, procGet, bob, &projectsv1.GetProjectRequest{Id: id})
			list, _ := mustCall[projectsv1.ListProjectsRequest, projectsv1.ListProjectsResponse](t, c, procList, bob, &projectsv1.ListProjectsRequest{})
			if len(list.GetProjects()) != 1 {
				t.Errorf("got %d projects, want 1", len(list.GetProjects()))
			}
			if got := count(); got != n {
				t.Errorf("got %d logs after two reads, want %d: reads are not audited", got, n)
			}

			// A service account renames it.
			mustCall[projectsv1.UpdateProjectRequest, projectsv1.UpdateProjectResponse](t, c, procUpdate, ci,
				&projectsv1.UpdateProjectRequest{Id: id, Name: "apollo-2"})
			checkLog(t, e.newest(t), wantLog{
				action: "app.project.updated", org: "acme", actorID: "sa-deployer", actorType: audit.ActorTypeService,
				outcome: audit.OutcomeSuccess, code: auditconnect.CodeOK, targetID: id, targetName: "apollo-2",
			})

			// Failure: a project that does not exist.
			_, _, err := call[projectsv1.UpdateProjectRequest, projectsv1.UpdateProjectResponse](t, c, procUpdate, bob,
				&projectsv1.UpdateProjectRequest{Id: "prj_nope", Name: "x"})
			checkCode(t, err, connect.CodeNotFound)
			checkLog(t, e.newest(t), wantLog{
				action: "app.project.updated", org: "acme", actorID: "user-bob",
				outcome: audit.OutcomeFailure, code: "not_found", targetID: "prj_nope",
			})

			// Denied: a member may not delete.
			_, h, err = call[projectsv1.DeleteProjectRequest, projectsv1.DeleteProjectResponse](t, c, procDelete, bob,
				&projectsv1.DeleteProjectRequest{Id: id})
			checkCode(t, err, connect.CodePermissionDenied)
			l = e.newest(t)
			checkLog(t, l, wantLog{
				action: "app.project.deleted", org: "acme", actorID: "user-bob",
				outcome: audit.OutcomeDenied, code: "permission_denied", procedure: procDelete, targetID: id,
			})
			if got := h.Get(auditmeta.HeaderRequestID); got != l.Metadata[audit.MetadataRequestID] {
				t.Errorf("got request id %q sent back with the error, want the logged %q", got, l.Metadata[audit.MetadataRequestID])
			}

			// Anonymous: no token, and a token nobody issued. The procedure
			// turns both away; the log has the anonymous actor and no org.
			for _, tt := range []struct{ token, reason string }{{"", auditconnect.AuthMissingToken}, {"forged", auditconnect.AuthInvalidToken}} {
				_, _, err = call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, tt.token,
					&projectsv1.CreateProjectRequest{Name: "sneaky"})
				checkCode(t, err, connect.CodeUnauthenticated)
				l = e.newest(t)
				checkLog(t, l, wantLog{
					action: "app.project.created", actorType: audit.ActorTypeAnonymous,
					outcome: audit.OutcomeDenied, code: "unauthenticated", targetName: "sneaky",
					metadata: map[string]string{auditconnect.MetadataAuthError: tt.reason},
				})
				if l.OrgID != "" || l.Actor.ID != "" {
					t.Errorf("got org %q and actor %v for an anonymous call, want none", l.OrgID, l.Actor)
				}
			}

			// Streaming: an export is one log, written before the first
			// project left, so it does not count them.
			ps, err := export(t, c, bob)
			if err != nil || len(ps) != 1 || ps[0].GetName() != "apollo-2" {
				t.Fatalf("got %v, %v; want the one project", ps, err)
			}
			l = e.newest(t)
			checkLog(t, l, wantLog{
				action: "app.project.exported", org: "acme", actorID: "user-bob", outcome: audit.OutcomeSuccess,
				code: auditconnect.CodeOK, procedure: procExport, targetType: "project",
			})
			if n, ok := l.Metadata[auditconnect.MetadataMessagesSent]; ok {
				t.Errorf("got %s=%s in a log written before the first message, want none", auditconnect.MetadataMessagesSent, n)
			}
			_, err = export(t, c, "")
			checkCode(t, err, connect.CodeUnauthenticated)
			checkLog(t, e.newest(t), wantLog{
				action: "app.project.exported", actorType: audit.ActorTypeAnonymous, outcome: audit.OutcomeDenied,
				code: "unauthenticated", metadata: map[string]string{auditconnect.MetadataMessagesSent: "0"},
			})

			// An admin deletes it: the handler writes the log, with the
			// name, and the interceptor writes no second one.
			n = count()
			mustCall[projectsv1.DeleteProjectRequest, projectsv1.DeleteProjectResponse](t, c, procDelete, alice,
				&projectsv1.DeleteProjectRequest{Id: id})
			if got := count(); got != n+1 {
				t.Fatalf("got %d new logs for one deletion, want 1", got-n)
			}
			checkLog(t, e.newest(t), wantLog{
				action: "app.project.deleted", org: "acme", actorID: "user-alice", outcome: audit.OutcomeSuccess,
				code: auditconnect.CodeOK, procedure: procDelete, targetID: id, targetName: "apollo-2",
			})
		})
	}
}
