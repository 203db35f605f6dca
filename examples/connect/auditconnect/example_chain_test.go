package auditconnect_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
)

// projects is a service with one procedure: CreateProject, for callers
// with a token.
type projects struct {
	projectsv1connect.UnimplementedProjectServiceHandler
}

func (projects) CreateProject(ctx context.Context, req *connect.Request[projectsv1.CreateProjectRequest]) (*connect.Response[projectsv1.CreateProjectResponse], error) {
	if _, err := auditconnect.RequireActor(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.CreateProjectResponse{Project: &projectsv1.Project{Id: "prj_1", Name: req.Msg.GetName()}}), nil
}

// The three interceptors in front of a service, and the logs of a call
// that succeeded and of one without a token.
func Example() {
	repo := audit.NewMemoryRepository()
	ids := 0
	logger := audit.NewLogger(repo, audit.WithSource("projects-api"),
		audit.WithClock(func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }),
		audit.WithIDFunc(func() string { ids++; return fmt.Sprintf("log-%d", ids) }))
	authenticate := func(ctx context.Context, token string) (context.Context, auditconnect.Identity, error) {
		if token != "alice-token" {
			return nil, auditconnect.Identity{}, errors.New("unknown token")
		}
		return ctx, auditconnect.Identity{Actor: audit.Actor{ID: "user-alice", Type: audit.ActorTypeUser}, OrgID: "acme"}, nil
	}

	mux := http.NewServeMux()
	mux.Handle(projectsv1connect.NewProjectServiceHandler(projects{}, connect.WithInterceptors(
		auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(logger, auditconnect.Procedures{
			projectsv1connect.ProjectServiceCreateProjectProcedure: auditconnect.Rule("app.project.created",
				func(req *projectsv1.CreateProjectRequest, res *projectsv1.CreateProjectResponse) audit.Target {
					return audit.Target{ID: res.GetProject().GetId(), Type: "project", Name: req.GetName()}
				}),
		}),
	)))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	client := projectsv1connect.NewProjectServiceClient(ts.Client(), ts.URL)
	for i, token := range []string{"alice-token", ""} {
		req := connect.NewRequest(&projectsv1.CreateProjectRequest{Name: "apollo"})
		req.Header().Set("X-Request-Id", fmt.Sprintf("req-%d", i+1))
		req.Header().Set("User-Agent", "example/1.0")
		if token != "" {
			req.Header().Set("Authorization", "Bearer "+token)
		}
		if _, err := client.CreateProject(context.Background(), req); err != nil {
			fmt.Println("call:", connect.CodeOf(err))
		} else {
			fmt.Println("call: ok")
		}
	}

	logs, _ := repo.List(context.Background(), audit.Filter{})
	for _, l := range slices.Backward(logs) {
		fmt.Printf("%s %s by %s %q in %q on %+v\n", l.ID, l.Action, l.Actor.Type, l.Actor.ID, l.OrgID, l.Target)
		for _, k := range slices.Sorted(maps.Keys(l.Metadata)) {
			fmt.Printf("  %s=%s\n", k, l.Metadata[k])
		}
	}
	// Output:
	// call: ok
	// call: unauthenticated
	// log-1 app.project.created by user "user-alice" in "acme" on {ID:prj_1 Type:project Name:apollo}
	//   code=ok
	//   ip=127.0.0.1
	//   outcome=success
	//   procedure=/projects.v1.ProjectService/CreateProject
	//   request_id=req-1
	//   user_agent=example/1.0
	// log-2 app.project.created by anonymous "" in "" on {ID: Type:project Name:apollo}
	//   authn_error=missing_token
	//   code=unauthenticated
	//   ip=127.0.0.1
	//   outcome=denied
	//   procedure=/projects.v1.ProjectService/CreateProject
	//   request_id=req-2
	//   user_agent=example/1.0
}
