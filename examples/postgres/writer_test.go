package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

func TestGroupCommitConcurrent(t *testing.T) {
	t.Parallel()
	for _, writers := range []int{1, 3} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) {
			t.Parallel()
			r, _ := newRepo(t, WithWriters(writers), WithMaxBatch(16))
			ctx := context.Background()
			const n, dups = 300, 40
			errs := make([]error, n+dups)
			var wg sync.WaitGroup
			for i := range n + dups {
				wg.Go(func() {
					l := makeLog(fmt.Sprintf("log-%d", i))
					if i >= n {
						l = makeLog("same-id") // all race for one ID
						l.Action = fmt.Sprintf("app.try.%d", i)
					}
					errs[i] = r.Create(ctx, &l)
				})
			}
			wg.Wait()
			won := -1
			for i, err := range errs {
				switch {
				case i < n && err != nil:
					t.Errorf("Create log-%d: %v", i, err)
				case i >= n && err == nil:
					if won >= 0 {
						t.Errorf("Create same-id succeeded twice (callers %d and %d), want once", won, i)
					}
					won = i
				case i >= n && !errors.Is(err, audit.ErrAlreadyExists):
					t.Errorf("Create same-id: got %v, want nil or ErrAlreadyExists", err)
				}
			}
			if won < 0 {
				t.Fatal("no Create of same-id succeeded")
			}
			// The stored log is the winner's.
			got, err := r.GetByID(ctx, "same-id")
			if err != nil || got.Action != fmt.Sprintf("app.try.%d", won) {
				t.Errorf("same-id: got action %q, %v; want the winner's, app.try.%d", got.Action, err, won)
			}
			page, err := r.List(ctx, audit.Filter{Limit: audit.MaxLimit})
			if err != nil || len(page) != n+1 {
				t.Errorf("List: got %d logs, %v; want %d", len(page), err, n+1)
			}
		})
	}
}

// TestFlushIsolatesFailures writes batches holding good logs, a duplicate
// and a log the database rejects: each caller gets its own result.
func TestFlushIsolatesFailures(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	stored := makeLog("stored")
	if err := r.Create(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	// A rule of this service's DBA, which no Validate knows about.
	if err := exec(t, schema, "ALTER TABLE audit_logs ADD CONSTRAINT no_forbidden CHECK (action <> 'app.forbidden')"); err != nil {
		t.Fatal(err)
	}
	bad := makeLog("bad")
	bad.Action = "app.forbidden"
	var (
		ok      = func(err error) bool { return err == nil }
		dup     = func(err error) bool { return errors.Is(err, audit.ErrAlreadyExists) }
		pgErr   *pgconn.PgError
		refused = func(err error) bool { return errors.As(err, &pgErr) && pgErr.Code == "23514" }
	)
	for _, batch := range []struct {
		logs  []audit.Log
		wants []func(error) bool
	}{
		{[]audit.Log{makeLog("good-1"), stored, makeLog("good-2")}, []func(error) bool{ok, dup, ok}},
		{[]audit.Log{makeLog("good-3"), stored, bad, makeLog("good-4")}, []func(error) bool{ok, dup, refused, ok}},
		{[]audit.Log{makeLog("good-5"), bad, makeLog("good-6")}, []func(error) bool{ok, refused, ok}},
	} {
		var reqs []*request
		for i := range batch.logs {
			rw, err := newRow(&batch.logs[i])
			if err != nil {
				t.Fatal(err)
			}
			req := &request{row: rw, done: make(chan error, 1)}
			req.state.Store(taken)
			reqs = append(reqs, req)
		}
		r.flush(nil, reqs)
		for i, want := range batch.wants {
			if err := <-reqs[i].done; !want(err) {
				t.Errorf("log %s: unexpected result %v", batch.logs[i].ID, err)
			}
		}
	}
	for _, id := range []string{"good-1", "good-2", "good-3", "good-4", "good-5", "good-6"} {
		if _, err := r.GetByID(ctx, id); err != nil {
			t.Errorf("GetByID(%s): %v; want the neighbors of a bad log stored", id, err)
		}
	}
	if _, err := r.GetByID(ctx, "bad"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID(bad): got %v, want ErrNotFound", err)
	}
}

// TestCreateCanceled cancels one Create whose log waits for a batch, and
// one whose batch is being written: the first log is never written, the
// second is committed anyway.
func TestCreateCanceled(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	p := mustPool(t)

	// Hold back the writer: its INSERT waits for this lock.
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+r.table.Sanitize()+" IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	create := func(id string) (context.CancelFunc, chan error) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			l := makeLog(id)
			done <- r.Create(cctx, &l)
		}()
		return cancel, done
	}
	cancelA, doneA := create("in-flight")
	waitFor(t, "the batch to wait for the lock", func() bool {
		var n int
		err := p.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, schema).Scan(&n)
		return err == nil && n > 0
	})
	cancelB, doneB := create("queued")
	waitFor(t, "the second log to be queued", func() bool { return len(r.reqs) == 1 })

	cancelB()
	if err := <-doneB; !errors.Is(err, context.Canceled) {
		t.Errorf("Create of a queued log: got %v, want context.Canceled", err)
	}
	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Errorf("Create of a log in flight: got %v, want context.Canceled", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // waits for the batch in flight
		t.Fatal(err)
	}
	if _, err := r.GetByID(ctx, "in-flight"); err != nil {
		t.Errorf("GetByID(in-flight): got %v, want the log committed", err)
	}
	if _, err := r.GetByID(ctx, "queued"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID(queued): got %v, want ErrNotFound", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClose checks that Close stops every writer goroutine, that logs
// created during and after Close are stored, and that Close may be called
// twice. It does not run in parallel, so that it sees only its own
// writers.
func TestClose(t *testing.T) {
	r, _ := newRepo(t, WithWriters(3))
	ctx := context.Background()
	waitFor(t, "3 writer goroutines", func() bool { return writerGoroutines() == 3 })
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			l := makeLog(fmt.Sprintf("log-%d", i))
			errs[i] = r.Create(ctx, &l)
		})
		if i == n/2 {
			wg.Go(func() { _ = r.Close() })
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create log-%d around Close: %v", i, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitFor(t, "writer goroutines to end", func() bool { return writerGoroutines() == 0 })
	l := makeLog("after-close")
	if err := r.Create(ctx, &l); err != nil {
		t.Errorf("Create after Close: %v", err)
	}
	dup := makeLog("after-close")
	if err := r.Create(ctx, &dup); !errors.Is(err, audit.ErrAlreadyExists) {
		t.Errorf("duplicate Create after Close: got %v, want ErrAlreadyExists", err)
	}
	page, err := r.List(ctx, audit.Filter{Limit: audit.MaxLimit})
	if err != nil || len(page) != n+1 {
		t.Errorf("List: got %d logs, %v; want %d", len(page), err, n+1)
	}
}

// writerGoroutines counts the goroutines running writeLoop.
func writerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*Repository).writeLoop(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func TestNewRepositoryPanics(t *testing.T) {
	t.Parallel()
	p := mustPool(t)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"nil pool", func() { NewRepository(nil) }},
		{"batch 0", func() { NewRepository(p, WithMaxBatch(0)) }},
		{"writers 0", func() { NewRepository(p, WithWriters(0)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("got no panic, want one")
				}
			}()
			tt.f()
		})
	}
}
