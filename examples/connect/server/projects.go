package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// maxNameLen bounds a project's name.
const maxNameLen = 128

// project is a stored project.
type project struct {
	id, name         string
	created, updated time.Time
}

func (p project) proto() *projectsv1.Project {
	return &projectsv1.Project{
		Id: p.id, Name: p.name,
		CreateTime: timestamppb.New(p.created), UpdateTime: timestamppb.New(p.updated),
	}
}

// projectTarget is the audit target of a project.
func projectTarget(id, name string) audit.Target {
	return audit.Target{ID: id, Type: "project", Name: name}
}

// projectStore keeps the projects of every org, each org's apart. It is
// safe for concurrent use.
type projectStore struct {
	mu   sync.Mutex
	orgs map[string]map[string]project // org → id → project
}

func newProjectStore() *projectStore {
	return &projectStore{orgs: make(map[string]map[string]project)}
}

var (
	errNotFound     = errors.New("no such project")
	errNameConflict = errors.New("a project of that name exists")
)

// nameTaken reports whether a project of org other than id is named name.
func (s *projectStore) nameTaken(org, name, id string) bool {
	for _, p := range s.orgs[org] {
		if p.name == name && p.id != id {
			return true
		}
	}
	return false
}

func (s *projectStore) create(org, name string, now time.Time) (project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nameTaken(org, name, "") {
		return project{}, errNameConflict
	}
	p := project{id: "prj_" + rand.Text(), name: name, created: now, updated: now}
	if s.orgs[org] == nil {
		s.orgs[org] = make(map[string]project)
	}
	s.orgs[org][p.id] = p
	return p, nil
}

func (s *projectStore) rename(org, id, name string, now time.Time) (project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.orgs[org][id]
	if !ok {
		return project{}, errNotFound
	}
	if s.nameTaken(org, name, id) {
		return project{}, errNameConflict
	}
	p.name, p.updated = name, now
	s.orgs[org][id] = p
	return p, nil
}

func (s *projectStore) delete(org, id string) (project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.orgs[org][id]
	if !ok {
		return project{}, errNotFound
	}
	delete(s.orgs[org], id)
	return p, nil
}

func (s *projectStore) get(org, id string) (project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.orgs[org][id]
	if !ok {
		return project{}, errNotFound
	}
	return p, nil
}

// list returns the projects of org by name.
func (s *projectStore) list(org string) []project {
	s.mu.Lock()
	ps := make([]project, 0, len(s.orgs[org]))
	for _, p := range s.orgs[org] {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	slices.SortFunc(ps, func(a, b project) int { return cmp.Compare(a.name, b.name) })
	return ps
}

// storeError maps an error of the store to a Connect error.
func storeError(err error) error {
	switch {
	case errors.Is(err, errNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, errNameConflict):
		return connect.NewError(connect.CodeAlreadyExists, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// checkName returns an error with connect.CodeInvalidArgument unless name
// is 1 to maxNameLen bytes of printable text.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || auditmeta.CleanText(name, maxNameLen) != name {
		return invalidArgument("name", "must be 1 to 128 bytes of printable text")
	}
	return nil
}

// CreateProject implements projectsv1connect.ProjectServiceHandler.
func (s *Server) CreateProject(ctx context.Context, req *connect.Request[projectsv1.CreateProjectRequest]) (*connect.Response[projectsv1.CreateProjectResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName(req.Msg.GetName()); err != nil {
		return nil, err
	}
	p, err := s.projects.create(c.org, req.Msg.GetName(), s.now())
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&projectsv1.CreateProjectResponse{Project: p.proto()}), nil
}

// UpdateProject implements projectsv1connect.ProjectServiceHandler.
func (s *Server) UpdateProject(ctx context.Context, req *connect.Request[projectsv1.UpdateProjectRequest]) (*connect.Response[projectsv1.UpdateProjectResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName(req.Msg.GetName()); err != nil {
		return nil, err
	}
	p, err := s.projects.rename(c.org, req.Msg.GetId(), req.Msg.GetName(), s.now())
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&projectsv1.UpdateProjectResponse{Project: p.proto()}), nil
}

// DeleteProject implements projectsv1connect.ProjectServiceHandler.
//
// It writes the audit log of a deletion itself, since only the store knows
// the name of the project deleted, with auditconnect.Record, which
// retries a store whose outcome is unknown; and once that log is stored
// it marks the call with auditconnect.MarkLogged, so that the audit
// interceptor writes no second one. Denials and failures return before
// that, and the interceptor records them, as it records a deletion whose
// log could not be stored here.
func (s *Server) DeleteProject(ctx context.Context, req *connect.Request[projectsv1.DeleteProjectRequest]) (*connect.Response[projectsv1.DeleteProjectResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	p, err := s.projects.delete(c.org, req.Msg.GetId())
	if err != nil {
		return nil, storeError(err)
	}
	l := audit.Log{
		Action: ActionProjectDeleted,
		Target: projectTarget(p.id, p.name),
		Metadata: map[string]string{
			audit.MetadataOutcome:          audit.OutcomeSuccess,
			auditconnect.MetadataProcedure: req.Spec().Procedure,
			auditconnect.MetadataCode:      auditconnect.CodeOK,
		},
	}
	if err := auditconnect.Record(ctx, s.logger, &l); err == nil {
		auditconnect.MarkLogged(ctx)
	} // else the interceptor records the call, and handles the error as it does its own
	return connect.NewResponse(&projectsv1.DeleteProjectResponse{}), nil
}

// GetProject implements projectsv1connect.ProjectServiceHandler.
func (s *Server) GetProject(ctx context.Context, req *connect.Request[projectsv1.GetProjectRequest]) (*connect.Response[projectsv1.GetProjectResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.projects.get(c.org, req.Msg.GetId())
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&projectsv1.GetProjectResponse{Project: p.proto()}), nil
}

// ListProjects implements projectsv1connect.ProjectServiceHandler.
func (s *Server) ListProjects(ctx context.Context, _ *connect.Request[projectsv1.ListProjectsRequest]) (*connect.Response[projectsv1.ListProjectsResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	ps := s.projects.list(c.org)
	res := &projectsv1.ListProjectsResponse{Projects: make([]*projectsv1.Project, len(ps))}
	for i, p := range ps {
		res.Projects[i] = p.proto()
	}
	return connect.NewResponse(res), nil
}

// ExportProjects implements projectsv1connect.ProjectServiceHandler.
func (s *Server) ExportProjects(ctx context.Context, _ *connect.Request[projectsv1.ExportProjectsRequest], stream *connect.ServerStream[projectsv1.ExportProjectsResponse]) error {
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	for _, p := range s.projects.list(c.org) {
		if err := stream.Send(&projectsv1.ExportProjectsResponse{Project: p.proto()}); err != nil {
			return err
		}
	}
	return nil
}
