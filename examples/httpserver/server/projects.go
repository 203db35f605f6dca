package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// The domain: projects, each in one org, with named members.

// Limits of the domain's input.
const (
	maxProjectNameLen = 100 // bytes
	maxUserIDLen      = 64
	maxBodyBytes      = 64 << 10
)

// Member roles within a project.
const (
	memberEditor = "editor"
	memberViewer = "viewer"
)

// Errors of the project store. A commit error (the audit log could not be
// stored) is returned as it is, and is none of these.
var (
	errNotFound     = errors.New("not found")
	errNameTaken    = errors.New("a project with this name exists")
	errIsMember     = errors.New("already a member")
	errNotMember    = errors.New("not a member")
	errInvalidInput = errors.New("invalid input")
)

type project struct {
	ID        string
	OrgID     string
	Name      string
	Members   map[string]string // user id → member role
	CreatedAt time.Time
}

func (p *project) target() audit.Target {
	return audit.Target{ID: p.ID, Type: "project", Name: p.Name}
}

// projectStore holds the projects of every org.
//
// Each change is made under the store's lock in three steps: check, then
// commit — which stores the audit log — then apply. When commit fails the
// change is not applied: a change and its audit log are kept together or
// not at all, as they would be if both were written in one database
// transaction. The lock is held while the log is stored, so changes wait
// for one another; that is the price of the guarantee without a database.
type projectStore struct {
	mu   sync.Mutex
	byID map[string]*project
}

func newProjectStore() *projectStore {
	return &projectStore{byID: make(map[string]*project)}
}

// get returns the project id of org; a project of another org is not
// found.
func (st *projectStore) get(org, id string) (*project, error) {
	p, ok := st.byID[id]
	if !ok || p.OrgID != org {
		return nil, errNotFound
	}
	return p, nil
}

func (st *projectStore) nameTaken(org, name string) bool {
	for _, p := range st.byID {
		if p.OrgID == org && strings.EqualFold(p.Name, name) {
			return true
		}
	}
	return false
}

func (st *projectStore) list(org string) []projectJSON {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := []projectJSON{}
	for _, p := range st.byID {
		if p.OrgID == org {
			out = append(out, p.json())
		}
	}
	slices.SortFunc(out, func(a, b projectJSON) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// The methods that change a project return it as it is afterwards (as it
// was, when they fail), copied while the lock is held.

func (st *projectStore) create(p *project, commit func() error) (projectJSON, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.nameTaken(p.OrgID, p.Name) {
		return projectJSON{}, errNameTaken
	}
	if err := commit(); err != nil {
		return projectJSON{}, err
	}
	st.byID[p.ID] = p
	return p.json(), nil
}

// rename renames project id of org to name; commit gets the project as it
// will be, and its old name.
func (st *projectStore) rename(org, id, name string, commit func(p *project, oldName string) error) (projectJSON, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.get(org, id)
	if err != nil {
		return projectJSON{}, err
	}
	if !strings.EqualFold(p.Name, name) && st.nameTaken(org, name) {
		return p.json(), errNameTaken
	}
	next := *p
	next.Name = name
	if err := commit(&next, p.Name); err != nil {
		return p.json(), err
	}
	p.Name = name
	return p.json(), nil
}

func (st *projectStore) delete(org, id string, commit func(p *project) error) (projectJSON, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.get(org, id)
	if err != nil {
		return projectJSON{}, err
	}
	if err := commit(p); err != nil {
		return p.json(), err
	}
	delete(st.byID, id)
	return p.json(), nil
}

func (st *projectStore) addMember(org, id, user, role string, commit func(p *project) error) (projectJSON, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.get(org, id)
	if err != nil {
		return projectJSON{}, err
	}
	if _, ok := p.Members[user]; ok {
		return p.json(), errIsMember
	}
	if err := commit(p); err != nil {
		return p.json(), err
	}
	if p.Members == nil {
		p.Members = make(map[string]string)
	}
	p.Members[user] = role
	return p.json(), nil
}

func (st *projectStore) removeMember(org, id, user string, commit func(p *project, role string) error) (projectJSON, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.get(org, id)
	if err != nil {
		return projectJSON{}, err
	}
	role, ok := p.Members[user]
	if !ok {
		return p.json(), errNotMember
	}
	if err := commit(p, role); err != nil {
		return p.json(), err
	}
	delete(p.Members, user)
	return p.json(), nil
}

// projectJSON is a project on the wire.
type projectJSON struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Members   []memberJSON `json:"members"`
	CreatedAt time.Time    `json:"created_at"`
}

type memberJSON struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// json returns p on the wire; the caller must hold the store's lock,
// which guards Members.
func (p *project) json() projectJSON {
	out := projectJSON{ID: p.ID, Name: p.Name, Members: []memberJSON{}, CreatedAt: p.CreatedAt}
	for u, r := range p.Members {
		out.Members = append(out.Members, memberJSON{UserID: u, Role: r})
	}
	slices.SortFunc(out.Members, func(a, b memberJSON) int { return strings.Compare(a.UserID, b.UserID) })
	return out
}

// pathProjectID returns the {id} of r's path, and the target to record an
// attempt on it with: the project's id when it is one, or the value made
// fit for a log.
func pathProjectID(r *http.Request) (string, audit.Target) {
	id := r.PathValue("id")
	return id, audit.Target{ID: auditmeta.CleanText(id, audit.MaxEntityIDLen), Type: "project"}
}

// decodeJSON decodes the body of r, a single JSON object of at most
// maxBodyBytes with only known fields, into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: the body must be a JSON object: %w", errInvalidInput, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the body must hold a single JSON object", errInvalidInput)
	}
	return nil
}

// checkProjectName returns name without surrounding spaces, if it is a
// valid project name.
func checkProjectName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxProjectNameLen || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: name must be 1 to %d bytes of UTF-8 text", errInvalidInput, maxProjectNameLen)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return "", fmt.Errorf("%w: name must not hold control characters", errInvalidInput)
	}
	return name, nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	org, _ := audit.OrgIDFromContext(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"projects": s.projects.list(org)})
}

type projectRequest struct {
	Name string `json:"name"`
}

// createProject handles POST /projects: any role.
func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	target := audit.Target{Type: "project"}
	var req projectRequest
	err := decodeJSON(w, r, &req)
	if err == nil {
		req.Name, err = checkProjectName(req.Name)
	}
	if err != nil {
		_ = s.record(ctx, ActionProjectCreated, target, audit.OutcomeFailure, "reason", reasonInvalidRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	org, _ := audit.OrgIDFromContext(ctx)
	p := &project{ID: uuid.NewString(), OrgID: org, Name: req.Name, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	created, err := s.projects.create(p, func() error {
		return s.record(ctx, ActionProjectCreated, p.target(), audit.OutcomeSuccess)
	})
	switch {
	case errors.Is(err, errNameTaken):
		target.Name = p.Name
		_ = s.record(ctx, ActionProjectCreated, target, audit.OutcomeFailure, "reason", reasonConflict)
		writeError(w, http.StatusConflict, "a project with this name exists")
	case err != nil:
		writeAuditUnavailable(w)
	default:
		writeJSON(w, http.StatusCreated, created)
	}
}

// updateProject handles PATCH /projects/{id}: any role; renames.
func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, target := pathProjectID(r)
	var req projectRequest
	err := decodeJSON(w, r, &req)
	if err == nil {
		req.Name, err = checkProjectName(req.Name)
	}
	if err != nil {
		_ = s.record(ctx, ActionProjectUpdated, target, audit.OutcomeFailure, "reason", reasonInvalidRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	org, _ := audit.OrgIDFromContext(ctx)
	p, err := s.projects.rename(org, id, req.Name, func(p *project, oldName string) error {
		return s.record(ctx, ActionProjectUpdated, p.target(), audit.OutcomeSuccess, "previous_name", oldName)
	})
	switch {
	case errors.Is(err, errNotFound):
		_ = s.record(ctx, ActionProjectUpdated, target, audit.OutcomeFailure, "reason", reasonNotFound)
		writeError(w, http.StatusNotFound, "no such project")
	case errors.Is(err, errNameTaken):
		target.Name = p.Name
		_ = s.record(ctx, ActionProjectUpdated, target, audit.OutcomeFailure, "reason", reasonConflict, "requested_name", req.Name)
		writeError(w, http.StatusConflict, "a project with this name exists")
	case err != nil:
		writeAuditUnavailable(w)
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

// deleteProject handles DELETE /projects/{id}: admins only.
func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, target := pathProjectID(r)
	// Authorize before looking the project up, so that a caller who may
	// not delete learns nothing about which projects exist.
	if !s.requireAdmin(w, r, ActionProjectDeleted, target) {
		return
	}
	org, _ := audit.OrgIDFromContext(ctx)
	_, err := s.projects.delete(org, id, func(p *project) error {
		return s.record(ctx, ActionProjectDeleted, p.target(), audit.OutcomeSuccess)
	})
	switch {
	case errors.Is(err, errNotFound):
		_ = s.record(ctx, ActionProjectDeleted, target, audit.OutcomeFailure, "reason", reasonNotFound)
		writeError(w, http.StatusNotFound, "no such project")
	case err != nil:
		writeAuditUnavailable(w)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

type memberRequest struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// memberTarget is the target of a membership change: the user, in the
// project named by the "project_id" metadata.
func memberTarget(user string) audit.Target {
	return audit.Target{ID: auditmeta.CleanText(user, audit.MaxEntityIDLen), Type: "user"}
}

// addMember handles POST /projects/{id}/members: admins only.
func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, pt := pathProjectID(r)
	if !s.requireAdmin(w, r, ActionMemberAdded, audit.Target{Type: "user"}) {
		return
	}
	var req memberRequest
	err := decodeJSON(w, r, &req)
	if err == nil && !auditmeta.ValidIdentifier(req.UserID, maxUserIDLen) {
		err = fmt.Errorf("%w: user_id must be 1 to %d of [A-Za-z0-9._-]", errInvalidInput, maxUserIDLen)
	}
	if err == nil && req.Role != memberEditor && req.Role != memberViewer {
		err = fmt.Errorf("%w: role must be %q or %q", errInvalidInput, memberEditor, memberViewer)
	}
	target := memberTarget(req.UserID)
	if err != nil {
		_ = s.record(ctx, ActionMemberAdded, target, audit.OutcomeFailure, "reason", reasonInvalidRequest, "project_id", pt.ID)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	org, _ := audit.OrgIDFromContext(ctx)
	p, err := s.projects.addMember(org, id, req.UserID, req.Role, func(p *project) error {
		return s.record(ctx, ActionMemberAdded, target, audit.OutcomeSuccess, "project_id", p.ID, "member_role", req.Role)
	})
	switch {
	case errors.Is(err, errNotFound):
		_ = s.record(ctx, ActionMemberAdded, target, audit.OutcomeFailure, "reason", reasonNotFound, "project_id", pt.ID)
		writeError(w, http.StatusNotFound, "no such project")
	case errors.Is(err, errIsMember):
		_ = s.record(ctx, ActionMemberAdded, target, audit.OutcomeFailure, "reason", reasonConflict, "project_id", pt.ID)
		writeError(w, http.StatusConflict, "already a member of the project")
	case err != nil:
		writeAuditUnavailable(w)
	default:
		writeJSON(w, http.StatusCreated, p)
	}
}

// removeMember handles DELETE /projects/{id}/members/{user}: admins only.
func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, pt := pathProjectID(r)
	user := r.PathValue("user")
	target := memberTarget(user)
	if !s.requireAdmin(w, r, ActionMemberRemoved, target) {
		return
	}
	org, _ := audit.OrgIDFromContext(ctx)
	_, err := s.projects.removeMember(org, id, user, func(p *project, role string) error {
		return s.record(ctx, ActionMemberRemoved, target, audit.OutcomeSuccess, "project_id", p.ID, "member_role", role)
	})
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, errNotMember):
		_ = s.record(ctx, ActionMemberRemoved, target, audit.OutcomeFailure, "reason", reasonNotFound, "project_id", pt.ID)
		writeError(w, http.StatusNotFound, "no such project or member")
	case err != nil:
		writeAuditUnavailable(w)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
