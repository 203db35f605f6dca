package auditconnect_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// unknownRepository is a memory repository whose next unknown calls of
// Create end with an error wrapping audit.ErrMaybeStored and
// context.DeadlineExceeded, as a repository's does when the wait for an
// acknowledgement ended; when stores is set, such a Create stores the log
// first. unknown < 0 makes every Create end so.
type unknownRepository struct {
	*audit.MemoryRepository
	mu      sync.Mutex
	unknown int
	stores  bool
	creates int
}

func newUnknownRepository(unknown int, stores bool) *unknownRepository {
	return &unknownRepository{MemoryRepository: audit.NewMemoryRepository(), unknown: unknown, stores: stores}
}

func (r *unknownRepository) Create(ctx context.Context, l *audit.Log) error {
	r.mu.Lock()
	r.creates++
	unknown := r.unknown != 0
	if r.unknown > 0 {
		r.unknown--
	}
	r.mu.Unlock()
	if !unknown {
		return r.MemoryRepository.Create(ctx, l)
	}
	if r.stores {
		if err := r.MemoryRepository.Create(ctx, l); err != nil {
			return err
		}
	}
	return fmt.Errorf("waiting for the acknowledgement: %w: %w", audit.ErrMaybeStored, context.DeadlineExceeded)
}

func (r *unknownRepository) createCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.creates
}

// TestRecord checks the retry of a store whose outcome is unknown: the
// same log again, under the same ID; a log a retry finds stored counts as
// stored; a log no attempt could tell about is reported with
// audit.ErrMaybeStored after the bounded retries; and ErrAlreadyExists on
// a first attempt, which is no retry, is an error.
func TestRecord(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		unknown     int
		stores      bool
		wantErr     error // nil: stored
		wantCreates int
	}{
		{name: "stored", unknown: 0, wantCreates: 1},
		{name: "stored, then unknown", unknown: 1, stores: true, wantCreates: 2},
		{name: "not stored, unknown once", unknown: 1, wantCreates: 2},
		{name: "not stored, unknown twice", unknown: 2, wantCreates: 3},
		{name: "stored on the last retry", unknown: -1, stores: true, wantCreates: 2},
		{name: "never known", unknown: -1, wantErr: audit.ErrMaybeStored, wantCreates: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := newUnknownRepository(tt.unknown, tt.stores)
			l := audit.Log{Action: "app.thing.done", Actor: testActor}
			err := auditconnect.Record(context.Background(), audit.NewLogger(repo, audit.WithSource("test")), &l)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if got := repo.createCalls(); got != tt.wantCreates {
				t.Errorf("got %d calls of Create, want %d", got, tt.wantCreates)
			}
			logs, _ := repo.List(context.Background(), audit.Filter{})
			if tt.wantErr == nil && (len(logs) != 1 || logs[0].ID != l.ID) {
				t.Errorf("got %v stored, want the one log %s", logs, l.ID)
			}
			if tt.wantErr != nil && len(logs) != 0 {
				t.Errorf("got %v stored, want none", logs)
			}
		})
	}

	repo := audit.NewMemoryRepository()
	logger := audit.NewLogger(repo, audit.WithSource("test"))
	l := audit.Log{Action: "app.thing.done", Actor: testActor}
	if err := auditconnect.Record(context.Background(), logger, &l); err != nil {
		t.Fatal(err)
	}
	again := audit.Log{ID: l.ID, Action: "app.other.thing", Actor: testActor}
	if err := auditconnect.Record(context.Background(), logger, &again); !errors.Is(err, audit.ErrAlreadyExists) {
		t.Errorf("got %v for a new log under a stored ID, want ErrAlreadyExists: only a retry's means stored", err)
	}
}

// TestMaybeStored checks the interceptor's answer to a store whose
// outcome is unknown: a log that its retry finds stored is no failure, so
// under FailCall the call keeps its result and nothing is reported, and
// the trail holds it once; a log no retry could tell about is reported,
// and fails the call.
func TestMaybeStored(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		unknown   int
		stores    bool
		wantCode  connect.Code // of the call; 0 is success
		wantLogs  int
		wantError bool // reported to the error handler
	}{
		{name: "stored, then unknown", unknown: 1, stores: true, wantLogs: 1},
		{name: "not stored, unknown once", unknown: 1, wantLogs: 1},
		{name: "never known", unknown: -1, wantCode: connect.CodeUnavailable, wantError: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := newUnknownRepository(tt.unknown, tt.stores)
			e := newEnvConfig(t, envConfig{repo: repo})
			_, err := e.client.CreateProject(testContext(t), authed(&projectsv1.CreateProjectRequest{Name: "x"}))
			checkCode(t, "create", err, tt.wantCode)
			logs, _ := repo.List(context.Background(), audit.Filter{})
			if len(logs) != tt.wantLogs {
				t.Errorf("got %d logs stored, want %d", len(logs), tt.wantLogs)
			}
			reported, _, errs := e.errors.get()
			if got := len(reported) > 0; got != tt.wantError {
				t.Fatalf("got %d logs reported (%v), want reported %v", len(reported), errs, tt.wantError)
			}
			if tt.wantError && !errors.Is(errs[0], audit.ErrMaybeStored) {
				t.Errorf("got %v reported, want an error wrapping ErrMaybeStored", errs[0])
			}
		})
	}
}
