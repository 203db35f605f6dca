package auditconnect_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
)

const (
	procCreate = projectsv1connect.ProjectServiceCreateProjectProcedure
	procUpdate = projectsv1connect.ProjectServiceUpdateProjectProcedure
	procDelete = projectsv1connect.ProjectServiceDeleteProjectProcedure
	procGet    = projectsv1connect.ProjectServiceGetProjectProcedure
	procList   = projectsv1connect.ProjectServiceListProjectsProcedure
	procExport = projectsv1connect.ProjectServiceExportProjectsProcedure
	procLogs   = projectsv1connect.ProjectServiceListAuditLogsProcedure
)

// stub is a ProjectServiceHandler whose every procedure returns err, after
// calling hook with the call's context when it is set; ExportProjects
// sends sent messages first.
type stub struct {
	projectsv1connect.UnimplementedProjectServiceHandler
	err  error
	sent int
	hook func(context.Context)
}

func (s *stub) run(ctx context.Context) error {
	if s.hook != nil {
		s.hook(ctx)
	}
	return s.err
}

func (s *stub) CreateProject(ctx context.Context, req *connect.Request[projectsv1.CreateProjectRequest]) (*connect.Response[projectsv1.CreateProjectResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.CreateProjectResponse{Project: &projectsv1.Project{Id: "prj_1", Name: req.Msg.GetName()}}), nil
}

func (s *stub) UpdateProject(ctx context.Context, req *connect.Request[projectsv1.UpdateProjectRequest]) (*connect.Response[projectsv1.UpdateProjectResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.UpdateProjectResponse{Project: &projectsv1.Project{Id: req.Msg.GetId(), Name: req.Msg.GetName()}}), nil
}

func (s *stub) DeleteProject(ctx context.Context, _ *connect.Request[projectsv1.DeleteProjectRequest]) (*connect.Response[projectsv1.DeleteProjectResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.DeleteProjectResponse{}), nil
}

func (s *stub) GetProject(ctx context.Context, _ *connect.Request[projectsv1.GetProjectRequest]) (*connect.Response[projectsv1.GetProjectResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.GetProjectResponse{}), nil
}

func (s *stub) ListProjects(ctx context.Context, _ *connect.Request[projectsv1.ListProjectsRequest]) (*connect.Response[projectsv1.ListProjectsResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.ListProjectsResponse{}), nil
}

func (s *stub) ExportProjects(ctx context.Context, _ *connect.Request[projectsv1.ExportProjectsRequest], stream *connect.ServerStream[projectsv1.ExportProjectsResponse]) error {
	for range s.sent {
		if err := stream.Send(&projectsv1.ExportProjectsResponse{}); err != nil {
			return err
		}
	}
	return s.run(ctx)
}

func (s *stub) ListAuditLogs(ctx context.Context, _ *connect.Request[projectsv1.ListAuditLogsRequest]) (*connect.Response[projectsv1.ListAuditLogsResponse], error) {
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return connect.NewResponse(&projectsv1.ListAuditLogsResponse{}), nil
}

// testTable is the audit table of the tests: Create and Export named,
// ListAuditLogs listed though it is a read, Delete unaudited; Update and
// the other reads are not listed.
func testTable() auditconnect.Procedures {
	return auditconnect.Procedures{
		procCreate: auditconnect.Rule("app.project.created",
			func(req *projectsv1.CreateProjectRequest, res *projectsv1.CreateProjectResponse) audit.Target {
				return audit.Target{ID: res.GetProject().GetId(), Type: "project", Name: req.GetName()}
			}),
		procExport: auditconnect.Rule("app.project.exported",
			func(req *projectsv1.ExportProjectsRequest, _ *projectsv1.ExportProjectsResponse) audit.Target {
				if req == nil {
					return audit.Target{Type: "no request"}
				}
				return audit.Target{Type: "project"}
			}),
		procLogs:   {Action: "app.audit_log.listed"},
		procDelete: {Unaudited: true},
	}
}

// testToken is the one bearer token the tests' Authenticator knows.
const testToken = "secret"

// testActor is who testToken stands for.
var testActor = audit.Actor{ID: "user-1", Type: audit.ActorTypeUser}

type roleKey struct{}

func authenticate(ctx context.Context, token string) (context.Context, auditconnect.Identity, error) {
	if token != testToken {
		return nil, auditconnect.Identity{}, errors.New("unknown")
	}
	return context.WithValue(ctx, roleKey{}, "admin"), auditconnect.Identity{Actor: testActor, OrgID: "org-1"}, nil
}

// env is a stub service behind the three interceptors, on a loopback
// server.
type env struct {
	stub   *stub
	repo   *faultyRepository
	client projectsv1connect.ProjectServiceClient
	url    string
	errors *errorLog
}

// envConfig configures an env.
type envConfig struct {
	table        auditconnect.Procedures    // nil: testTable()
	opts         []auditconnect.AuditOption // after WithErrorHandler
	repo         audit.Repository           // under the faultyRepository; nil: a memory repository
	outer, inner []connect.HandlerOption    // before and after the interceptors
}

// newEnv starts the stub with table, or the test table when nil, and
// opts.
func newEnv(t *testing.T, table auditconnect.Procedures, opts ...auditconnect.AuditOption) *env {
	t.Helper()
	return newEnvConfig(t, envConfig{table: table, opts: opts})
}

// newEnvConfig starts the stub as cfg says.
func newEnvConfig(t *testing.T, cfg envConfig) *env {
	t.Helper()
	if cfg.repo == nil {
		cfg.repo = audit.NewMemoryRepository()
	}
	if cfg.table == nil {
		cfg.table = testTable()
	}
	e := &env{stub: &stub{}, repo: &faultyRepository{Repository: cfg.repo}, errors: &errorLog{}}
	logger := audit.NewLogger(e.repo, audit.WithSource("test"))
	opts := append([]auditconnect.AuditOption{auditconnect.WithErrorHandler(e.errors.handle)}, cfg.opts...)
	handlerOpts := append(slices.Clone(cfg.outer), connect.WithInterceptors(
		auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(logger, cfg.table, opts...),
	))
	handlerOpts = append(handlerOpts, cfg.inner...)
	mux := http.NewServeMux()
	mux.Handle(projectsv1connect.NewProjectServiceHandler(e.stub, handlerOpts...))
	ts := httptest.NewUnstartedServer(mux)
	// A handler that panics is reported by net/http; the tests that make
	// one check what matters to them.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	t.Cleanup(ts.Close)
	e.url = ts.URL
	e.client = projectsv1connect.NewProjectServiceClient(ts.Client(), ts.URL)
	return e
}

// logs returns every log stored, newest first.
func (e *env) logs(t *testing.T) []audit.Log {
	t.Helper()
	logs, err := e.repo.List(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// only returns the one log stored, failing the test if there are others.
func (e *env) only(t *testing.T) audit.Log {
	t.Helper()
	logs := e.logs(t)
	if len(logs) != 1 {
		t.Fatalf("got %d logs, want 1: %v", len(logs), logs)
	}
	return logs[0]
}

// authed returns a request for msg with the test token.
func authed[T any](msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+testToken)
	return r
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// faultyRepository is a repository whose Create returns err when it is
// set.
type faultyRepository struct {
	audit.Repository
	mu  sync.Mutex
	err error
}

func (r *faultyRepository) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *faultyRepository) Create(ctx context.Context, l *audit.Log) error {
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return r.Repository.Create(ctx, l)
}

// errorLog collects what the audit interceptor's error handler is handed:
// each log, with the metadata of its context, and the error.
type errorLog struct {
	mu       sync.Mutex
	logs     []audit.Log
	requests []map[string]string
	errs     []error
}

func (e *errorLog) handle(ctx context.Context, l audit.Log, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = append(e.logs, l)
	e.requests = append(e.requests, audit.FromContext(ctx).Metadata)
	e.errs = append(e.errs, err)
}

func (e *errorLog) get() ([]audit.Log, []map[string]string, []error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Log(nil), e.logs...), append([]map[string]string(nil), e.requests...), append([]error(nil), e.errs...)
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, audit.OutcomeSuccess},
		{connect.NewError(connect.CodePermissionDenied, nil), audit.OutcomeDenied},
		{connect.NewError(connect.CodeUnauthenticated, nil), audit.OutcomeDenied},
		{connect.NewError(connect.CodeNotFound, nil), audit.OutcomeFailure},
		{connect.NewError(connect.CodeUnavailable, nil), audit.OutcomeFailure},
		{errors.New("plain"), audit.OutcomeFailure},
		{context.Canceled, audit.OutcomeFailure},
		{errors.Join(errors.New("wrapped"), connect.NewError(connect.CodePermissionDenied, nil)), audit.OutcomeDenied},
	} {
		if got := auditconnect.Outcome(tt.err); got != tt.want {
			t.Errorf("Outcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestWhichCallsAreAudited checks the table's rules: listed procedures
// are audited under their action, reads declared NO_SIDE_EFFECTS only when
// listed, procedures with side effects even when not listed, and
// Unaudited ones never.
func TestWhichCallsAreAudited(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		get        bool // call with a client that uses HTTP GET for reads
		call       func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error
		wantAction string // "" = no log
		wantTarget audit.Target
	}{
		{
			name: "listed, target from request and response",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "apollo"}))
				return err
			},
			wantAction: "app.project.created", wantTarget: audit.Target{ID: "prj_1", Type: "project", Name: "apollo"},
		},
		{
			name: "side effects, not listed: audited under its path",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.UpdateProject(ctx, authed(&projectsv1.UpdateProjectRequest{Id: "prj_1"}))
				return err
			},
			wantAction: "projects.v1.ProjectService.UpdateProject",
		},
		{
			name: "listed as Unaudited",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.DeleteProject(ctx, authed(&projectsv1.DeleteProjectRequest{Id: "prj_1"}))
				return err
			},
		},
		{
			name: "NO_SIDE_EFFECTS, not listed",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.GetProject(ctx, authed(&projectsv1.GetProjectRequest{Id: "prj_1"}))
				return err
			},
		},
		{
			name: "NO_SIDE_EFFECTS, not listed, over HTTP GET",
			get:  true,
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.ListProjects(ctx, authed(&projectsv1.ListProjectsRequest{}))
				return err
			},
		},
		{
			name: "NO_SIDE_EFFECTS, listed",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				_, err := c.ListAuditLogs(ctx, authed(&projectsv1.ListAuditLogsRequest{}))
				return err
			},
			wantAction: "app.audit_log.listed",
		},
		{
			name: "streaming, listed: target from the first request",
			call: func(ctx context.Context, c projectsv1connect.ProjectServiceClient) error {
				s, err := c.ExportProjects(ctx, authed(&projectsv1.ExportProjectsRequest{}))
				if err != nil {
					return err
				}
				for s.Receive() {
				}
				return errors.Join(s.Err(), s.Close())
			},
			wantAction: "app.project.exported", wantTarget: audit.Target{Type: "project"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			c := e.client
			if tt.get {
				c = projectsv1connect.NewProjectServiceClient(http.DefaultClient, e.url, connect.WithHTTPGet())
			}
			if err := tt.call(testContext(t), c); err != nil {
				t.Fatal(err)
			}
			logs := e.logs(t)
			if tt.wantAction == "" {
				if len(logs) != 0 {
					t.Fatalf("got %v, want no log", logs)
				}
				return
			}
			l := e.only(t)
			if l.Action != tt.wantAction || l.Target != tt.wantTarget {
				t.Errorf("got action %q, target %+v; want %q, %+v", l.Action, l.Target, tt.wantAction, tt.wantTarget)
			}
			if l.Actor != testActor || l.OrgID != "org-1" || l.Metadata[audit.MetadataOutcome] != audit.OutcomeSuccess || l.Metadata[auditconnect.MetadataCode] != auditconnect.CodeOK {
				t.Errorf("got %v, want a success by the test actor in org-1", l)
			}
		})
	}
}

// TestCodes checks the outcome and code of a call for each kind of error
// its handler returns, unary and streaming.
func TestCodes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err      error
		code     string
		outcome  string
		wantCode connect.Code
	}{
		{connect.NewError(connect.CodePermissionDenied, errors.New("no")), "permission_denied", audit.OutcomeDenied, connect.CodePermissionDenied},
		{connect.NewError(connect.CodeUnauthenticated, errors.New("who")), "unauthenticated", audit.OutcomeDenied, connect.CodeUnauthenticated},
		{connect.NewError(connect.CodeAlreadyExists, errors.New("dup")), "already_exists", audit.OutcomeFailure, connect.CodeAlreadyExists},
		{connect.NewError(connect.CodeInvalidArgument, errors.New("bad")), "invalid_argument", audit.OutcomeFailure, connect.CodeInvalidArgument},
		{errors.New("not a connect error"), "unknown", audit.OutcomeFailure, connect.CodeUnknown},
		// connect-go sends Go's context errors with codes of their own.
		{context.Canceled, "canceled", audit.OutcomeFailure, connect.CodeCanceled},
		{fmt.Errorf("storing: %w", context.DeadlineExceeded), "deadline_exceeded", audit.OutcomeFailure, connect.CodeDeadlineExceeded},
	} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.stub.err, e.stub.sent = tt.err, 2
			ctx := testContext(t)
			_, err := e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "x"}))
			if connect.CodeOf(err) != tt.wantCode {
				t.Fatalf("got %v, want code %v: the interceptor must not change a handler's error", err, tt.wantCode)
			}
			s, err := e.client.ExportProjects(ctx, authed(&projectsv1.ExportProjectsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for s.Receive() {
			}
			if connect.CodeOf(s.Err()) != tt.wantCode {
				t.Fatalf("got %v from the stream, want code %v", s.Err(), tt.wantCode)
			}
			_ = s.Close()
			logs := e.logs(t)
			if len(logs) != 2 {
				t.Fatalf("got %d logs, want 2", len(logs))
			}
			for _, l := range logs {
				if l.Metadata[audit.MetadataOutcome] != tt.outcome || l.Metadata[auditconnect.MetadataCode] != tt.code {
					t.Errorf("got outcome %q, code %q; want %q, %q (log %v)", l.Metadata[audit.MetadataOutcome], l.Metadata[auditconnect.MetadataCode], tt.outcome, tt.code, l)
				}
			}
			if l := logs[0]; l.Action != "app.project.exported" || l.Metadata[auditconnect.MetadataMessagesSent] != "2" || l.Metadata[auditconnect.MetadataProcedure] != procExport {
				t.Errorf("got %v, want the export's log, with 2 messages sent", l)
			}
			if l := logs[1]; l.Action != "app.project.created" || l.Target.ID != "" || l.Target.Name != "x" || l.Metadata[auditconnect.MetadataProcedure] != procCreate {
				t.Errorf("got %v, want the create's log, its target named from the request alone", l)
			}
			if _, ok := logs[1].Metadata[auditconnect.MetadataMessagesSent]; ok {
				t.Errorf("got %s in the log of a unary call", auditconnect.MetadataMessagesSent)
			}
		})
	}
}

// TestIdempotencyFromDescriptor checks that a handler built without
// connect.WithIdempotency is still known to be a read from its method
// descriptor, and that a handler with neither is audited, since nothing
// says it changes nothing.
func TestIdempotencyFromDescriptor(t *testing.T) {
	t.Parallel()
	repo := audit.NewMemoryRepository()
	interceptors := connect.WithInterceptors(
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(audit.NewLogger(repo, audit.WithSource("test")), nil),
	)
	get := func(context.Context, *connect.Request[projectsv1.GetProjectRequest]) (*connect.Response[projectsv1.GetProjectResponse], error) {
		return connect.NewResponse(&projectsv1.GetProjectResponse{}), nil
	}
	md := projectsv1.File_projects_v1_projects_proto.Services().ByName("ProjectService").Methods().ByName("GetProject")
	mux := http.NewServeMux()
	mux.Handle("/schema-only"+procGet, http.StripPrefix("/schema-only", connect.NewUnaryHandler(procGet, get, interceptors, connect.WithSchema(md))))
	mux.Handle("/bare"+procGet, http.StripPrefix("/bare", connect.NewUnaryHandler(procGet, get, interceptors)))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	for _, tt := range []struct {
		prefix string
		want   int
	}{{"/schema-only", 0}, {"/bare", 1}} {
		c := connect.NewClient[projectsv1.GetProjectRequest, projectsv1.GetProjectResponse](ts.Client(), ts.URL+tt.prefix+procGet)
		if _, err := c.CallUnary(testContext(t), authed(&projectsv1.GetProjectRequest{})); err != nil {
			t.Fatal(err)
		}
		logs, err := repo.List(context.Background(), audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != tt.want {
			t.Errorf("%s: got %d logs, want %d", tt.prefix, len(logs), tt.want)
		}
	}
}

// TestMarkLogged checks that a handler that writes the call's log itself
// and marks the call gets no second log, and that an unmarked call, or a
// mark outside an audited call, changes nothing.
func TestMarkLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	logger := audit.NewLogger(e.repo, audit.WithSource("handler"))
	var marked bool
	e.stub.hook = func(ctx context.Context) {
		if err := logger.Log(ctx, "app.project.created", audit.Target{Type: "project", Name: "richer"}); err != nil {
			t.Error(err)
		}
		marked = auditconnect.MarkLogged(ctx)
	}
	ctx := testContext(t)
	if _, err := e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "x"})); err != nil {
		t.Fatal(err)
	}
	if !marked {
		t.Error("MarkLogged reported false in an audited call")
	}
	if l := e.only(t); l.Source != "handler" || l.Target.Name != "richer" || l.Metadata[audit.MetadataRequestID] == "" {
		t.Errorf("got %v, want only the handler's log, with the request's metadata", l)
	}
	// A read nobody audits: the mark reports false and does nothing.
	if _, err := e.client.GetProject(ctx, authed(&projectsv1.GetProjectRequest{})); err != nil {
		t.Fatal(err)
	}
	if marked {
		t.Error("MarkLogged reported true in a call that is not audited")
	}
	if auditconnect.MarkLogged(context.Background()) {
		t.Error("MarkLogged reported true outside any call")
	}
}

// TestStoreFailure checks both answers to a log that cannot be stored,
// the override of one procedure, and that the error handler gets the
// whole log and the repository's error.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	errDown := errors.New("down")
	for _, tt := range []struct {
		name       string
		opts       []auditconnect.AuditOption
		override   auditconnect.StoreFailure // of CreateProject
		wantCreate connect.Code              // 0: the call succeeds
		wantExport connect.Code
	}{
		{name: "default", wantCreate: connect.CodeUnavailable, wantExport: connect.CodeUnavailable},
		{name: "FailCall", opts: []auditconnect.AuditOption{auditconnect.WithStoreFailure(auditconnect.FailCall)}, wantCreate: connect.CodeUnavailable, wantExport: connect.CodeUnavailable},
		{name: "KeepResult", opts: []auditconnect.AuditOption{auditconnect.WithStoreFailure(auditconnect.KeepResult)}},
		{name: "KeepResult for create only", override: auditconnect.KeepResult, wantExport: connect.CodeUnavailable},
		{name: "FailCall for create only", opts: []auditconnect.AuditOption{auditconnect.WithStoreFailure(auditconnect.KeepResult)}, override: auditconnect.FailCall, wantCreate: connect.CodeUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table := testTable()
			p := table[procCreate]
			p.OnStoreFailure = tt.override
			table[procCreate] = p
			e := newEnv(t, table, tt.opts...)
			e.repo.setErr(errDown)
			ctx := testContext(t)

			_, err := e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "x"}))
			checkCode(t, "create", err, tt.wantCreate)
			s, err := e.client.ExportProjects(ctx, authed(&projectsv1.ExportProjectsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for s.Receive() {
			}
			checkCode(t, "export", s.Err(), tt.wantExport)
			_ = s.Close()
			// A failed call keeps its own error, whatever the policy.
			e.stub.err = connect.NewError(connect.CodeNotFound, errors.New("gone"))
			_, err = e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "y"}))
			checkCode(t, "failed create", err, connect.CodeNotFound)

			logs, requests, errs := e.errors.get()
			if len(logs) != 3 {
				t.Fatalf("got %d logs reported, want 3", len(logs))
			}
			for i, l := range logs {
				if !errors.Is(errs[i], errDown) || l.ID == "" || l.CreatedAt.IsZero() || l.Actor != testActor || l.Metadata[audit.MetadataOutcome] == "" {
					t.Errorf("got %v, %v; want the log as filled in, with the repository's error", l, errs[i])
				}
				if requests[i][audit.MetadataRequestID] == "" {
					t.Errorf("got request metadata %v in the context, want the request's", requests[i])
				}
			}
			// The safe retry: the same log, with the same context's metadata.
			e.repo.setErr(nil)
			retry := logs[0]
			if err := audit.NewLogger(e.repo).Record(audit.SetMetadata(ctx, requests[0]), &retry); err != nil {
				t.Fatal(err)
			}
			if got, err := e.repo.GetByID(ctx, logs[0].ID); err != nil || got.Metadata[audit.MetadataRequestID] != requests[0][audit.MetadataRequestID] {
				t.Errorf("got %v, %v after the retry; want the log stored whole", got, err)
			}
		})
	}
}

func newClient(url string, opts ...connect.ClientOption) projectsv1connect.ProjectServiceClient {
	return projectsv1connect.NewProjectServiceClient(http.DefaultClient, url, opts...)
}

func asConnectError(err error, target **connect.Error) bool {
	return errors.As(err, target)
}

func checkCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: got %v, want success", what, err)
		}
		return
	}
	if connect.CodeOf(err) != want {
		t.Errorf("%s: got %v, want code %v", what, err, want)
	}
	if want == connect.CodeUnavailable && !strings.Contains(err.Error(), auditconnect.ErrNotAudited.Error()) {
		t.Errorf("%s: got %v, want it to say %q", what, err, auditconnect.ErrNotAudited)
	}
}

func TestConstructorsPanic(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"nil logger":       func() { auditconnect.NewAuditInterceptor(nil, nil) },
		"bad StoreFailure": func() { auditconnect.WithStoreFailure(7) },
		"bad procedure failure": func() {
			auditconnect.NewAuditInterceptor(audit.NewLogger(audit.NewMemoryRepository()), auditconnect.Procedures{"/x": {OnStoreFailure: 9}})
		},
		"nil authenticator":   func() { auditconnect.NewIdentityInterceptor(nil) },
		"bad metadata config": func() { auditconnect.NewMetadataInterceptor(auditmeta.Config{ForwardedHeader: "X-Real-Ip"}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: got no panic, want one", name)
				}
			}()
			f()
		}()
	}
}
