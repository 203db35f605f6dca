package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/server"
)

// errStoreDown is the error of a failingRepository that is failing.
var errStoreDown = errors.New("store down")

// failingRepository is a memory repository whose Create fails while
// failing is set.
type failingRepository struct {
	*audit.MemoryRepository
	failing atomic.Bool
}

func (r *failingRepository) Create(ctx context.Context, l *audit.Log) error {
	if r.failing.Load() {
		return errStoreDown
	}
	return r.MemoryRepository.Create(ctx, l)
}

// TestStoreFailure checks what a call whose audit log cannot be stored
// becomes, under each StoreFailure: never silent, since the error log
// gets the whole log; a create that keeps its result under both; an
// update already made under FailCall, reported as Unavailable; a denial that keeps its own code; an export and a listing
// of the trail that return nothing.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		failure     auditconnect.StoreFailure
		wantCode    connect.Code // of an update that succeeded; 0 is no error
		wantListErr bool
	}{
		{name: "FailCall", failure: auditconnect.FailCall, wantCode: connect.CodeUnavailable, wantListErr: true},
		{name: "default is FailCall", wantCode: connect.CodeUnavailable, wantListErr: true},
		{name: "KeepResult", failure: auditconnect.KeepResult},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := &failingRepository{MemoryRepository: audit.NewMemoryRepository()}
			e := newEnv(t, func(c *server.Config) {
				c.Repository = repo
				c.StoreFailure = tt.failure
			})
			c := e.connectClient(t)
			repo.failing.Store(true)

			// A create keeps its result under every StoreFailure: a
			// client told Unavailable would retry and create twice.
			if _, _, err := call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
				&projectsv1.CreateProjectRequest{Name: "unaudited"}); err != nil {
				t.Fatalf("create: got %v, want the result kept", err)
			}
			list, _ := mustCall[projectsv1.ListProjectsRequest, projectsv1.ListProjectsResponse](t, c, procList, bob, &projectsv1.ListProjectsRequest{})
			if len(list.GetProjects()) != 1 {
				t.Fatalf("got %d projects, want the 1 created", len(list.GetProjects()))
			}
			id := list.GetProjects()[0].GetId()

			// An update, which a client may retry, follows StoreFailure.
			_, _, err := call[projectsv1.UpdateProjectRequest, projectsv1.UpdateProjectResponse](t, c, procUpdate, bob,
				&projectsv1.UpdateProjectRequest{Id: id, Name: "renamed"})
			if tt.wantCode == 0 && err != nil {
				t.Fatalf("update: got %v, want the result kept", err)
			}
			if tt.wantCode != 0 {
				checkCode(t, err, tt.wantCode)
			}
			// Whatever the client was told, the project was renamed: the
			// action happened before its log was written.
			got, _ := mustCall[projectsv1.GetProjectRequest, projectsv1.GetProjectResponse](t, c, procGet, bob, &projectsv1.GetProjectRequest{Id: id})
			if name := got.GetProject().GetName(); name != "renamed" {
				t.Errorf("got project name %q, want %q: the update was made", name, "renamed")
			}
			if log := e.errLog.String(); !strings.Contains(log, "audit log not stored") || !strings.Contains(log, "app.project.created") || !strings.Contains(log, errStoreDown.Error()) {
				t.Errorf("got error log %q, want the log that was not stored and why", log)
			}

			// An export lets nothing out unaudited under FailCall: its log
			// is written before the first project is sent.
			exported, err := export(t, c, bob)
			if tt.wantListErr {
				checkCode(t, err, connect.CodeUnavailable)
				if len(exported) != 0 {
					t.Errorf("got %d projects exported, want none: their log was not stored", len(exported))
				}
			} else if err != nil || len(exported) != 1 {
				t.Errorf("got %d projects, %v; want the 1 exported", len(exported), err)
			}

			// A denial keeps its code: nothing changed.
			_, _, err = call[projectsv1.DeleteProjectRequest, projectsv1.DeleteProjectResponse](t, c, procDelete, bob,
				&projectsv1.DeleteProjectRequest{Id: id})
			checkCode(t, err, connect.CodePermissionDenied)

			// The trail's own reads: not returned unaudited under FailCall.
			res, err := listLogs(t, c, alice, &projectsv1.ListAuditLogsRequest{})
			if tt.wantListErr {
				checkCode(t, err, connect.CodeUnavailable)
				if res != nil {
					t.Errorf("got %v, want no data returned", res)
				}
			} else if err != nil {
				t.Errorf("got %v, want the listing", err)
			}
			if got := strings.Count(e.errLog.String(), "audit log not stored"); got != 5 {
				t.Errorf("got %d logs reported not stored, want 5", got)
			}
			if n := len(e.logs(t)); n != 0 {
				t.Errorf("got %d logs stored, want none", n)
			}

			// Once the store is back, so is the trail.
			repo.failing.Store(false)
			mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob, &projectsv1.CreateProjectRequest{Name: "audited"})
			checkLog(t, e.newest(t), wantLog{action: "app.project.created", outcome: audit.OutcomeSuccess, targetName: "audited"})
		})
	}
}

// TestDeleteStoreFailure checks that when the handler's own log of a
// deletion cannot be stored, the interceptor still records the call, and
// reports it like any other.
func TestDeleteStoreFailure(t *testing.T) {
	t.Parallel()
	repo := &failingRepository{MemoryRepository: audit.NewMemoryRepository()}
	e := newEnv(t, func(c *server.Config) { c.Repository = repo; c.StoreFailure = auditconnect.KeepResult })
	c := e.connectClient(t)
	res, _ := mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, alice, &projectsv1.CreateProjectRequest{Name: "doomed"})
	repo.failing.Store(true)
	mustCall[projectsv1.DeleteProjectRequest, projectsv1.DeleteProjectResponse](t, c, procDelete, alice, &projectsv1.DeleteProjectRequest{Id: res.GetProject().GetId()})
	if got := strings.Count(e.errLog.String(), "audit log not stored"); got != 1 {
		t.Errorf("got %d logs reported not stored, want 1: the interceptor's, after the handler's failed\n%s", got, e.errLog)
	}
}

// TestHostileRequestFields checks that request fields the target is named
// from cannot make the log invalid: too long, or holding NUL bytes.
func TestHostileRequestFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, "grpc-go")
	hostile := strings.Repeat("\x00ab\x7f", 1000)
	_, _, err := call[projectsv1.UpdateProjectRequest, projectsv1.UpdateProjectResponse](t, c, procUpdate, bob,
		&projectsv1.UpdateProjectRequest{Id: hostile, Name: "fine"})
	checkCode(t, err, connect.CodeNotFound)
	l := e.newest(t)
	checkLog(t, l, wantLog{action: "app.project.updated", outcome: audit.OutcomeFailure, code: "not_found", targetName: "fine"})
	// The first MaxEntityIDLen bytes, without their control characters.
	if want := strings.Repeat("ab", audit.MaxEntityIDLen/4); l.Target.ID != want {
		t.Errorf("got target id %q, want %q: cleaned and cut", l.Target.ID, want)
	}
	_, _, err = call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob,
		&projectsv1.CreateProjectRequest{Name: hostile})
	checkCode(t, err, connect.CodeInvalidArgument)
	checkLog(t, e.newest(t), wantLog{action: "app.project.created", outcome: audit.OutcomeFailure, code: "invalid_argument"})
}

// unknownRepository is a memory repository whose Create, while unknown
// is set, stores the log and then returns an error wrapping
// audit.ErrMaybeStored, as a repository does when the connection is lost
// after the log was sent; each such Create clears unknown, so the retry
// finds the log stored.
type unknownRepository struct {
	*audit.MemoryRepository
	unknown atomic.Bool
}

func (r *unknownRepository) Create(ctx context.Context, l *audit.Log) error {
	if err := r.MemoryRepository.Create(ctx, l); err != nil || !r.unknown.CompareAndSwap(true, false) {
		return err
	}
	return fmt.Errorf("connection lost after the insert: %w", audit.ErrMaybeStored)
}

// TestMaybeStored checks that a log whose store had an unknown outcome,
// but was stored, counts as stored: a create under FailCall succeeds, and
// the handler's own log of a deletion marks the call, so the trail holds
// one log of each, and nothing is reported.
func TestMaybeStored(t *testing.T) {
	t.Parallel()
	repo := &unknownRepository{MemoryRepository: audit.NewMemoryRepository()}
	e := newEnv(t, func(c *server.Config) { c.Repository = repo })
	c := e.connectClient(t)

	repo.unknown.Store(true)
	res, _, err := call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, alice, &projectsv1.CreateProjectRequest{Name: "apollo"})
	if err != nil {
		t.Fatalf("got %v, want the create to succeed: its log was stored", err)
	}
	repo.unknown.Store(true)
	mustCall[projectsv1.DeleteProjectRequest, projectsv1.DeleteProjectResponse](t, c, procDelete, alice, &projectsv1.DeleteProjectRequest{Id: res.GetProject().GetId()})

	logs := e.logs(t)
	if len(logs) != 2 {
		t.Fatalf("got %d logs, want one per call: %v", len(logs), logs)
	}
	checkLog(t, logs[0], wantLog{action: server.ActionProjectDeleted, outcome: audit.OutcomeSuccess, targetID: res.GetProject().GetId(), targetName: "apollo"})
	checkLog(t, logs[1], wantLog{action: server.ActionProjectCreated, outcome: audit.OutcomeSuccess, targetName: "apollo"})
	if log := e.errLog.String(); log != "" {
		t.Errorf("got error log %q, want nothing reported", log)
	}
}
