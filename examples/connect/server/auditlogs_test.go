package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/raystack/salt/audit"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/server"
)

// listLogs calls ListAuditLogs as token with req.
func listLogs(t *testing.T, c client, token string, req *projectsv1.ListAuditLogsRequest) (*projectsv1.ListAuditLogsResponse, error) {
	t.Helper()
	res, _, err := call[projectsv1.ListAuditLogsRequest, projectsv1.ListAuditLogsResponse](t, c, procAuditLogs, token, req)
	return res, err
}

// TestListAuditLogsTenantIsolation checks that an admin sees only the logs
// of its own org, whatever the request says, that naming another org is
// denied and recorded, and that members may not read the trail.
func TestListAuditLogsTenantIsolation(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"connect/h2c", "grpc-go"} {
		t.Run(name, func(t *testing.T) {
			c := e.client(t, name)
			mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, alice, &projectsv1.CreateProjectRequest{Name: "acme-" + name})
			mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, carol, &projectsv1.CreateProjectRequest{Name: "globex-" + name})

			for _, tt := range []struct{ token, org string }{{alice, "acme"}, {carol, "globex"}} {
				for _, req := range []*projectsv1.ListAuditLogsRequest{
					{},
					{OrgId: tt.org},
					{ActorId: "user-alice"}, // carol must not see alice's logs even by asking for them
					{ActorId: "user-carol"},
				} {
					res, err := listLogs(t, c, tt.token, req)
					if err != nil {
						t.Fatalf("%s lists %v: %v", tt.token, req, err)
					}
					// Each caller's own create is in its org, so the
					// unfiltered listings cannot pass by being empty.
					if (req.GetActorId() == "" || req.GetActorId() == "user-"+strings.TrimPrefix(tt.token, "demo-")) && len(res.GetAuditLogs()) == 0 {
						t.Errorf("%s listing %v got no logs, want at least its own create", tt.token, req)
					}
					for _, l := range res.GetAuditLogs() {
						if l.GetOrgId() != tt.org {
							t.Errorf("%s listing %v got a log of org %q: %v", tt.token, req, l.GetOrgId(), l)
						}
					}
				}
			}

			// Naming another org is denied, and recorded in the caller's org.
			_, err := listLogs(t, c, carol, &projectsv1.ListAuditLogsRequest{OrgId: "acme"})
			checkCode(t, err, connect.CodePermissionDenied)
			checkLog(t, e.newest(t), wantLog{
				action: "app.audit_log.listed", org: "globex", actorID: "user-carol",
				outcome: audit.OutcomeDenied, code: "permission_denied", targetType: "audit_log",
				metadata: map[string]string{server.MetadataFilter: "org_id=acme"},
			})
			if _, ok := e.newest(t).Metadata[server.MetadataCount]; ok {
				t.Errorf("got a count in the log of a denied listing: %v", e.newest(t))
			}
			// Members may not read the trail.
			_, err = listLogs(t, c, bob, &projectsv1.ListAuditLogsRequest{})
			checkCode(t, err, connect.CodePermissionDenied)
			_, err = listLogs(t, c, "", &projectsv1.ListAuditLogsRequest{})
			checkCode(t, err, connect.CodeUnauthenticated)
		})
	}
}

// TestListAuditLogsRecorded checks that the log of a listing says what
// was asked and how many logs it returned, as the net/http example's
// query and count do.
func TestListAuditLogsRecorded(t *testing.T) {
	e := newEnv(t)
	c := e.connectClient(t)
	for _, name := range []string{"a", "b", "c"} {
		mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, alice, &projectsv1.CreateProjectRequest{Name: name})
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	res, err := listLogs(t, c, alice, &projectsv1.ListAuditLogsRequest{Action: "app.project.created", Outcome: "success", Since: timestamppb.New(since), PageSize: 2})
	if err != nil || len(res.GetAuditLogs()) != 2 {
		t.Fatalf("got %v, %v; want a page of 2", res, err)
	}
	checkLog(t, e.newest(t), wantLog{
		action: "app.audit_log.listed", org: "acme", actorID: "user-alice", outcome: audit.OutcomeSuccess, targetType: "audit_log",
		metadata: map[string]string{
			server.MetadataFilter: "action=app.project.created&outcome=success&page_size=2&since=2026-01-02T03%3A04%3A05.6Z",
			server.MetadataCount:  "2",
		},
	})
	if _, err := listLogs(t, c, alice, &projectsv1.ListAuditLogsRequest{ActorId: strings.Repeat("\x00", 9000)}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	if l := e.newest(t); len(l.Metadata[server.MetadataFilter]) > audit.MaxMetadataValueLen {
		t.Errorf("got a filter of %d bytes, want it cut to %d", len(l.Metadata[server.MetadataFilter]), audit.MaxMetadataValueLen)
	}
}

// TestListAuditLogsBadFilters checks that a filter that is not valid fails
// with InvalidArgument naming the field, in the message and in a
// google.rpc.BadRequest detail, and that the failure is recorded.
func TestListAuditLogsBadFilters(t *testing.T) {
	e := newEnv(t)
	c := e.connectClient(t)
	now := time.Now()
	for _, tt := range []struct {
		field string
		req   *projectsv1.ListAuditLogsRequest
	}{
		{"outcome", &projectsv1.ListAuditLogsRequest{Outcome: "maybe"}},
		{"page_size", &projectsv1.ListAuditLogsRequest{PageSize: -1}},
		{"page_size", &projectsv1.ListAuditLogsRequest{PageSize: audit.MaxLimit + 1}},
		{"page_token", &projectsv1.ListAuditLogsRequest{PageToken: "garbage"}},
		{"since", &projectsv1.ListAuditLogsRequest{Since: timestamppb.New(now), Until: timestamppb.New(now.Add(-time.Hour))}},
		{"since", &projectsv1.ListAuditLogsRequest{Since: &timestamppb.Timestamp{Seconds: 1, Nanos: 2e9}}},
		{"until", &projectsv1.ListAuditLogsRequest{Until: &timestamppb.Timestamp{Seconds: 1 << 62}}},
		{"action", &projectsv1.ListAuditLogsRequest{Action: "app.\x00"}},
		{"actor_id", &projectsv1.ListAuditLogsRequest{ActorId: strings.Repeat("a", audit.MaxEntityIDLen+1)}},
		{"request_id", &projectsv1.ListAuditLogsRequest{RequestId: "a\tb"}},
	} {
		t.Run(tt.field, func(t *testing.T) {
			_, err := listLogs(t, c, alice, tt.req)
			checkCode(t, err, connect.CodeInvalidArgument)
			var ce *connect.Error
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Message(), tt.field+" ") {
				t.Errorf("got message %q, want it to begin with the field %q", ce.Message(), tt.field)
			}
			var field string
			for _, d := range ce.Details() {
				if v, err := d.Value(); err == nil {
					if br, ok := v.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
						field = br.GetFieldViolations()[0].GetField()
					}
				}
			}
			if field != tt.field {
				t.Errorf("got BadRequest field %q, want %q", field, tt.field)
			}
			checkLog(t, e.newest(t), wantLog{
				action: "app.audit_log.listed", org: "acme", actorID: "user-alice",
				outcome: audit.OutcomeFailure, code: "invalid_argument",
			})
		})
	}
}

// TestListAuditLogsPaging pages through an org's trail with page tokens
// while other callers keep writing logs, over Connect and gRPC, and
// checks that the pages hold every log that existed when paging began,
// once each, newest first; logs written meanwhile are newer, and may
// appear only on the first page.
func TestListAuditLogsPaging(t *testing.T) {
	e := newEnv(t)
	seed := audit.NewLogger(e.repo, audit.WithSource("seed"))
	ctx := audit.SetOrgID(audit.SetActor(context.Background(), audit.Actor{ID: "seeder", Type: audit.ActorTypeSystem}), "acme")
	for i := range 120 {
		if err := seed.Log(ctx, "app.seeded", audit.Target{ID: fmt.Sprint(i), Type: "seed"}); err != nil {
			t.Fatal(err)
		}
	}
	// A log of another org, which must never show.
	if err := seed.Log(audit.SetOrgID(ctx, "globex"), "app.seeded", audit.Target{}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"connect/http1", "grpc/h2c", "grpc-go"} {
		t.Run(name, func(t *testing.T) {
			c := e.client(t, name)
			before, err := e.repo.List(context.Background(), audit.Filter{OrgID: "acme", Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}

			// Writers: bounded in count, and stopped when paging ends.
			// Before each page the reader waits for a write, so that pages
			// and writes interleave.
			var written atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 1000 {
						select {
						case <-stop:
							return
						default:
						}
						_, _, err := call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
							&projectsv1.CreateProjectRequest{Name: fmt.Sprintf("%s-w%d-%d", strings.ReplaceAll(name, "/", "-"), w, i)})
						if err != nil {
							t.Errorf("writer: %v", err)
							return
						}
						written.Add(1)
					}
				}()
			}

			var got []*projectsv1.AuditLog
			req := &projectsv1.ListAuditLogsRequest{PageSize: 7}
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatal("more than 1000 pages: the token does not advance")
				}
				res, err := listLogs(t, c, alice, req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, res.GetAuditLogs()...)
				if res.GetNextPageToken() == "" {
					break
				}
				req.PageToken = res.GetNextPageToken()
				waitForWrite(t, &written)
			}
			close(stop)
			wg.Wait()

			seen := make(map[string]bool, len(got))
			for i, l := range got {
				if seen[l.GetId()] {
					t.Fatalf("log %s is on two pages", l.GetId())
				}
				seen[l.GetId()] = true
				if l.GetOrgId() != "acme" {
					t.Fatalf("got a log of org %q", l.GetOrgId())
				}
				if i > 0 && !newer(got[i-1], l) {
					t.Fatalf("logs %d and %d are not newest first: %v, %v", i-1, i, got[i-1], l)
				}
			}
			for _, l := range before {
				if !seen[l.ID] {
					t.Fatalf("log %s, stored before paging began, is on no page (a gap); got %d logs, %d before", l.ID, len(got), len(before))
				}
			}
			if len(got) < len(before) {
				t.Fatalf("got %d logs, want at least the %d stored before", len(got), len(before))
			}
		})
	}
}

// waitForWrite waits until written grows, or fails the test after a
// while: the writers have stopped.
func waitForWrite(t *testing.T, written *atomic.Int64) {
	t.Helper()
	n := written.Load()
	for deadline := time.Now().Add(callTimeout); written.Load() == n; {
		if time.Now().After(deadline) {
			t.Fatal("no log was written while paging")
		}
		time.Sleep(time.Millisecond)
	}
}

// newer reports whether a comes before b in a listing: newer, or as new
// with a greater id.
func newer(a, b *projectsv1.AuditLog) bool {
	at, bt := a.GetCreateTime().AsTime(), b.GetCreateTime().AsTime()
	return at.After(bt) || at.Equal(bt) && a.GetId() > b.GetId()
}
