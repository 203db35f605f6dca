package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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
	// Rules of this service's DBA, which no Validate knows about: one
	// fails with an integrity constraint violation (SQLSTATE 23514), the
	// other with a data exception (22P02, "abc" is no integer).
	if err := exec(t, schema, `ALTER TABLE audit_logs
		ADD CONSTRAINT no_forbidden CHECK (action <> 'app.forbidden'),
		ADD CONSTRAINT n_positive CHECK ((metadata->>'n')::integer > 0)`); err != nil {
		t.Fatal(err)
	}
	bad := makeLog("bad")
	bad.Action = "app.forbidden"
	badData := makeLog("bad-data")
	badData.Metadata = map[string]string{"n": "abc"}
	var (
		refused  = func(err error) bool { return sqlState(err) == "23514" }
		badValue = func(err error) bool { return sqlState(err) == "22P02" }
	)
	for _, batch := range []struct {
		logs  []audit.Log
		wants []func(error) bool
	}{
		{[]audit.Log{makeLog("good-1"), stored, makeLog("good-2")}, []func(error) bool{isStored, isDuplicate, isStored}},
		{[]audit.Log{makeLog("good-3"), stored, bad, makeLog("good-4")}, []func(error) bool{isStored, isDuplicate, refused, isStored}},
		{[]audit.Log{makeLog("good-5"), bad, makeLog("good-6")}, []func(error) bool{isStored, refused, isStored}},
		{[]audit.Log{makeLog("good-7"), badData, makeLog("good-8")}, []func(error) bool{isStored, badValue, isStored}},
		// The server refuses the first row while the others are on their way.
		{[]audit.Log{bad, makeLog("good-9"), makeLog("good-10")}, []func(error) bool{refused, isStored, isStored}},
	} {
		for _, write := range writePaths(schema) {
			// Each write is a new batch of the same logs: the good ones
			// get new IDs the second time.
			logs := slices.Clone(batch.logs)
			for i := range logs {
				if strings.HasPrefix(logs[i].ID, "good-") {
					logs[i].ID += "-" + write.name
				}
			}
			for i, err := range write.do(t, r, logs) {
				if !batch.wants[i](err) {
					t.Errorf("%s: log %s: unexpected result %v", write.name, logs[i].ID, err)
				}
			}
		}
	}
	for _, id := range []string{"good-1", "good-2", "good-3", "good-4", "good-5", "good-6", "good-7", "good-8", "good-9", "good-10"} {
		for _, write := range []string{"flush", "stream"} {
			if _, err := r.GetByID(ctx, id+"-"+write); err != nil {
				t.Errorf("GetByID(%s-%s): %v; want the neighbors of a bad log stored", id, write, err)
			}
		}
	}
	for _, id := range []string{"bad", "bad-data"} {
		if _, err := r.GetByID(ctx, id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("GetByID(%s): got %v, want ErrNotFound", id, err)
		}
	}
}

// flushLogs writes logs as one batch of group commit, and returns each
// caller's result.
func flushLogs(t *testing.T, r *Repository, logs []audit.Log) []error {
	t.Helper()
	reqs := takenRequests(t, logs)
	r.flush(reqs)
	return results(reqs)
}

// streamLogs writes logs as one batch of group commit that starts with the
// first log, as its collector does: the others are queued once the server
// has had time to read the first — and to fail the COPY, if the first log
// is bad. r's writers must not be running.
func streamLogs(t *testing.T, r *Repository, logs []audit.Log) []error {
	t.Helper()
	reqs := takenRequests(t, logs)
	for _, req := range reqs[1:] {
		req.state.Store(queued)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	r.collecting.Lock()
	c := &collector{
		r: r, batch: reqs[:1:1], seen: map[string]struct{}{reqs[0].row.id: {}},
		want: len(reqs), timer: timer,
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		time.Sleep(50 * time.Millisecond)
		for _, req := range reqs[1:] {
			r.reqs <- req
			r.queued()
		}
	}()
	ctx := context.Background()
	n, err := copyIn(ctx, r.pool, r.copySQLs[copySegments], copySegments, c.write)
	c.stop()
	if len(c.carry) != 0 {
		t.Fatalf("the batch carried %d logs to the next", len(c.carry))
	}
	r.deliver(ctx, c.batch, n, err)
	// A COPY that failed early may end before it took every log: as a
	// writer would, write the others in the next batch.
	<-sent
	var next []*request
	for len(r.reqs) > 0 {
		req := <-r.reqs
		req.state.Store(taken)
		next = append(next, req)
	}
	if len(next) > 0 {
		r.flush(next)
	}
	return results(reqs)
}

// idleRepository returns a Repository on schema whose writers have
// stopped, for tests that play a writer's part.
func idleRepository(t *testing.T, schema string) *Repository {
	t.Helper()
	return idleRepositoryOn(t, mustPool(t), schema)
}

// idleRepositoryOn is idleRepository on pool.
func idleRepositoryOn(t *testing.T, pool *pgxpool.Pool, schema string) *Repository {
	t.Helper()
	r := NewRepository(pool, WithSchema(schema))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r.reqs = make(chan *request, r.maxBatch)
	r.quit = make(chan struct{})
	r.maxWait = 10 * time.Second // the tests decide when a batch is complete
	return r
}

func takenRequests(t *testing.T, logs []audit.Log) []*request {
	t.Helper()
	reqs := make([]*request, len(logs))
	for i := range logs {
		rw, err := newRow(&logs[i])
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = &request{row: rw, tuple: appendCopyRow(nil, &rw), done: make(chan error, 1)}
		reqs[i].state.Store(taken)
	}
	return reqs
}

// results returns the result each request was given.
func results(reqs []*request) []error {
	errs := make([]error, len(reqs))
	for i, req := range reqs {
		errs[i] = <-req.done
	}
	return errs
}

// sqlState returns the SQLSTATE of the server's error in err, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// counted returns how many statements a test's trigger counted with
// nextval of schema's sequence inserts, whose next value was 1 before the
// first.
func counted(t *testing.T, schema string) int {
	t.Helper()
	var n int
	if err := mustPool(t).QueryRow(context.Background(), "SELECT nextval($1::regclass) - 1", schema+".inserts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlushServerErrors fails every INSERT of a table with a given
// SQLSTATE, and counts the statements: a batch is written again in halves,
// down to single rows, only for an error that one row can cause (a data
// exception, a constraint violation, an index row too large, a DBA's
// trigger raising). Any other error fails the whole batch at once, every
// caller getting the server's error with its own log's ID, and none an
// error that says the log may be stored.
func TestFlushServerErrors(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	if err := exec(t, schema, `CREATE SEQUENCE inserts;
		CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql
		SET search_path FROM CURRENT AS $$
		BEGIN
			PERFORM nextval('inserts');
			RAISE EXCEPTION 'refused by the test' USING ERRCODE = TG_ARGV[0];
		END
		$$`); err != nil {
		t.Fatal(err)
	}
	logs := []audit.Log{makeLog("a"), makeLog("b"), makeLog("c")}
	for _, tt := range []struct {
		code       string
		statements int
	}{
		// Every log is bad: the COPY, then the halves and their halves.
		{"23514", 2*len(logs) - 1}, // check_violation
		{"22003", 2*len(logs) - 1}, // numeric_value_out_of_range
		{"54000", 2*len(logs) - 1}, // program_limit_exceeded: an index row too large
		{"P0001", 2*len(logs) - 1}, // raise_exception: a DBA's trigger
		{"53300", 1},               // too_many_connections
		{"57014", 1},               // query_canceled: a statement timeout
		{"57P01", 1},               // admin_shutdown
		{"25006", 1},               // read_only_sql_transaction: a standby
		{"42501", 1},               // insufficient_privilege
	} {
		if err := exec(t, schema, fmt.Sprintf(`SELECT setval('inserts', 1, false);
			DROP TRIGGER IF EXISTS fail_insert ON audit_logs;
			CREATE TRIGGER fail_insert BEFORE INSERT ON audit_logs
				FOR EACH STATEMENT EXECUTE FUNCTION fail_insert('%s')`, tt.code)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		errs := flushLogs(t, r, logs)
		for i, err := range errs {
			if sqlState(err) != tt.code || !strings.Contains(err.Error(), fmt.Sprintf("create %q", logs[i].ID)) ||
				errors.Is(err, audit.ErrMaybeStored) {
				t.Errorf("SQLSTATE %s, log %s: got %v, want the server's error for this log", tt.code, logs[i].ID, err)
			}
		}
		statements := counted(t, schema)
		if statements != tt.statements {
			t.Errorf("SQLSTATE %s: %d INSERT statements, want %d", tt.code, statements, tt.statements)
		}
		t.Logf("SQLSTATE %s: %d statements in %v", tt.code, statements, time.Since(start))
	}
	// Once the server accepts rows again, the same logs are written.
	if err := exec(t, schema, "DROP TRIGGER fail_insert ON audit_logs"); err != nil {
		t.Fatal(err)
	}
	for i, err := range flushLogs(t, r, logs) {
		if err != nil {
			t.Errorf("log %s after the trigger was dropped: %v", logs[i].ID, err)
		}
	}
}

// TestFlushEveryRowRefused refuses every row of a batch of 1000 with an
// error that one row could cause, as a NOT NULL column or a trigger a DBA
// added would: narrowing stops once it has found wholesaleBad bad logs and
// nothing written, rather than write 1,999 statements that each fail, and
// every caller gets the server's error, which says the log is not stored.
func TestFlushEveryRowRefused(t *testing.T) {
	t.Parallel()
	const n = 1000
	for _, tt := range []struct {
		name, code, sql string
	}{
		{"trigger", "P0001", `CREATE TRIGGER refuse BEFORE INSERT ON audit_logs
			FOR EACH STATEMENT EXECUTE FUNCTION count_insert('P0001')`},
		{"not null column", "23502", `ALTER TABLE audit_logs ADD COLUMN region text NOT NULL;
			CREATE TRIGGER count BEFORE INSERT ON audit_logs
			FOR EACH STATEMENT EXECUTE FUNCTION count_insert('')`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, schema := newRepo(t)
			if err := exec(t, schema, `CREATE SEQUENCE inserts;
				CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql
				SET search_path FROM CURRENT AS $$
				BEGIN
					PERFORM nextval('inserts');
					IF TG_ARGV[0] <> '' THEN
						RAISE EXCEPTION 'refused by the test' USING ERRCODE = TG_ARGV[0];
					END IF;
					RETURN NULL;
				END
				$$;`+tt.sql); err != nil {
				t.Fatal(err)
			}
			logs := someLogs("refused", n)
			for i, err := range flushLogs(t, r, logs) {
				if sqlState(err) != tt.code || errors.Is(err, audit.ErrMaybeStored) ||
					!strings.Contains(err.Error(), fmt.Sprintf("create %q", logs[i].ID)) {
					t.Fatalf("log %s: got %v, want the server's error, SQLSTATE %s, for this log", logs[i].ID, err, tt.code)
				}
			}
			statements := counted(t, schema)
			// The COPY, then at most ceil(log2(1000)) + 16 INSERTs: down to
			// the first log, the next seven logs, and the largest group
			// left, tried whole.
			if want := 1 + bits.Len(n-1) + 16; statements > want {
				t.Errorf("%d statements for a batch of %d, want at most %d", statements, n, want)
			}
			t.Logf("%d statements for a batch of %d", statements, n)
			checkStored(t, r, false, logs[0].ID, logs[n-1].ID)
		})
	}
}

// TestFlushGroupsRefused refuses every statement that writes more than one
// row, with an error that one row could cause: no log is bad alone, and
// narrowing, which finds none, stops after narrowBudget statements rather
// than write the batch one log at a time. The logs it wrote are stored,
// and every other caller gets the server's error, which says the log is
// not stored.
func TestFlushGroupsRefused(t *testing.T) {
	t.Parallel()
	const n = 1000
	r, schema := newRepo(t)
	if err := exec(t, schema, `CREATE SEQUENCE inserts;
		CREATE FUNCTION refuse_groups() RETURNS trigger LANGUAGE plpgsql
		SET search_path FROM CURRENT AS $$
		BEGIN
			PERFORM nextval('inserts');
			IF (SELECT count(*) FROM new_rows) > 1 THEN
				RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'P0001';
			END IF;
			RETURN NULL;
		END
		$$;
		CREATE TRIGGER refuse_groups AFTER INSERT ON audit_logs
			REFERENCING NEW TABLE AS new_rows
			FOR EACH STATEMENT EXECUTE FUNCTION refuse_groups()`); err != nil {
		t.Fatal(err)
	}
	logs := someLogs("group", n)
	written := 0
	for i, err := range flushLogs(t, r, logs) {
		switch {
		case err == nil:
			written++
		case sqlState(err) != "P0001" || errors.Is(err, audit.ErrMaybeStored) ||
			!strings.Contains(err.Error(), fmt.Sprintf("create %q", logs[i].ID)):
			t.Fatalf("log %s: got %v, want the server's error, SQLSTATE P0001, for this log", logs[i].ID, err)
		}
	}
	statements := counted(t, schema)
	var stored int
	if err := mustPool(t).QueryRow(context.Background(), "SELECT count(*) FROM "+r.table.Sanitize()).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	// The COPY, then narrowBudget(1000) INSERTs.
	if want := 1 + 2*10 + 8; statements != want {
		t.Errorf("%d statements for a batch of %d, want %d", statements, n, want)
	}
	if written == 0 || stored != written {
		t.Errorf("%d logs written, %d stored: want the same number, and some", written, stored)
	}
	t.Logf("%d statements for a batch of %d, %d logs written", statements, n, written)
}

// TestFlushOneDeadline gives a batch a rejected row and slow good ones:
// the rows written one at a time after the failed COPY share the batch's
// WithWriteTimeout, rather than each getting a timeout of its own, and
// those it leaves no time for get the deadline's error.
func TestFlushOneDeadline(t *testing.T) {
	t.Parallel()
	const (
		timeout = 500 * time.Millisecond
		sleep   = 100 * time.Millisecond
		good    = 20 // written alone, 2 s in all
	)
	r, schema := newRepo(t, WithWriteTimeout(timeout))
	if err := exec(t, schema, fmt.Sprintf(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.action = 'app.forbidden' THEN
				RAISE EXCEPTION 'forbidden' USING ERRCODE = 'check_violation';
			END IF;
			PERFORM pg_sleep(%g);
			RETURN NEW;
		END
		$$;
		CREATE TRIGGER slow_insert BEFORE INSERT ON audit_logs
			FOR EACH ROW EXECUTE FUNCTION slow_insert()`, sleep.Seconds())); err != nil {
		t.Fatal(err)
	}
	logs := []audit.Log{makeLog("bad")} // first, so that the COPY fails at once
	logs[0].Action = "app.forbidden"
	for i := range good {
		logs = append(logs, makeLog(fmt.Sprintf("good-%d", i)))
	}
	start := time.Now()
	errs := flushLogs(t, r, logs)
	elapsed := time.Since(start)
	if sqlState(errs[0]) != "23514" {
		t.Errorf("log bad: got %v, want SQLSTATE 23514", errs[0])
	}
	if last := errs[len(errs)-1]; !errors.Is(last, context.DeadlineExceeded) {
		t.Errorf("last log: got %v, want the batch's deadline", last)
	}
	if limit := good * sleep * 3 / 4; elapsed > limit {
		t.Errorf("the batch took %v, want about its write timeout, %v (each row with a timeout of its own: %v)", elapsed, timeout, good*sleep)
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
	return waitingIn("(*Repository).writeLoop(", "")
}

// waitingIn counts the goroutines whose stack holds the function call
// frame and that wait for state ("chan send", say; "" for any), as their
// stacks tell: it reads them without taking any lock of theirs.
func waitingIn(frame, state string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, frame) && (state == "" || strings.Contains(header, "["+state+"]") || strings.Contains(header, "["+state+",")) {
			count++
		}
	}
	return count
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

// TestCopyRowsConnectionLost ends the server's session while a COPY is
// still receiving rows: the COPY fails, and the connection, left in the
// middle of the protocol, is not handed to anyone else.
func TestCopyRowsConnectionLost(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	reqs := takenRequests(t, []audit.Log{makeLog("lost-1"), makeLog("lost-2")})
	resume := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := copyIn(ctx, r.pool, r.copySQLs[2], 2, func(w *copyWriter) error {
			w.row(reqs[0].tuple)
			if err := w.flush(); err != nil {
				return err
			}
			<-resume
			select { // the server's FATAL has come before the rest is sent
			case <-w.refusal():
			case <-time.After(10 * time.Second):
			}
			w.endSegment()
			w.row(reqs[1].tuple)
			return nil
		})
		done <- err
	}()

	// Wait until the COPY runs, then end its session.
	var terminated bool
	for deadline := time.Now().Add(10 * time.Second); !terminated && time.Now().Before(deadline); {
		err := mustPool(t).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
			WHERE query LIKE 'COPY %' || $1 || '%' AND pid <> pg_backend_pid()`, schema).Scan(&terminated)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !terminated {
		t.Fatal("found no COPY to end")
	}
	close(resume)
	err := <-done
	if err == nil {
		t.Fatal("COPY: got success from a session that was ended")
	}
	t.Logf("COPY: %v", err)
	if errors.Is(err, audit.ErrMaybeStored) {
		t.Errorf("COPY: got %v, want an error that does not wrap ErrMaybeStored: the session ended before the COPY was sent whole", err)
	}
	checkPoolWorks(t, r)
	if _, err := r.GetByID(ctx, "lost-1"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID(lost-1): got %v, want ErrNotFound: the COPY was not committed", err)
	}
}

// TestCopyRowsServerNotices writes a batch whose every row makes the
// server send a notice while the rows are still coming: the notices must
// be read as they come, or the server, unable to send, stops reading rows.
func TestCopyRowsServerNotices(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t, WithWriteTimeout(20*time.Second))
	if err := exec(t, schema, `CREATE FUNCTION notice_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE NOTICE 'inserting %: %', NEW.id, repeat('x', 20000);
			RETURN NEW;
		END
		$$;
		CREATE TRIGGER notice_insert BEFORE INSERT ON audit_logs
			FOR EACH ROW EXECUTE FUNCTION notice_insert()`); err != nil {
		t.Fatal(err)
	}
	// More rows and notices than the sockets' buffers hold.
	logs := make([]audit.Log, 1000)
	for i := range logs {
		logs[i] = makeLog(fmt.Sprintf("notice-%04d", i))
		logs[i].Metadata = make(map[string]string, 8)
		for k := range 8 {
			logs[i].Metadata[fmt.Sprintf("pad%d", k)] = strings.Repeat("p", 4000)
		}
	}
	for _, write := range writePaths(schema) {
		batch := slices.Clone(logs)
		for i := range batch {
			batch[i].ID += "-" + write.name
		}
		start := time.Now()
		for i, err := range write.do(t, r, batch) {
			if err != nil {
				t.Fatalf("%s: log %s: %v", write.name, batch[i].ID, err)
			}
		}
		t.Logf("%s: %d logs with a notice each in %v", write.name, len(batch), time.Since(start))
	}
}

// TestCopyRowsSendFails gives up sending while the server's answers are
// awaited: the error is the sender's, and the connection is not reused.
func TestCopyRowsSendFails(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	ctx := context.Background()
	reqs := takenRequests(t, []audit.Log{makeLog("send-fails")})
	stop := errors.New("the rows could not be read")
	_, err := copyIn(ctx, r.pool, r.copySQLs[1], 1, func(w *copyWriter) error {
		w.row(reqs[0].tuple)
		if err := w.flush(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // receiveCopy waits meanwhile
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("copyIn: got %v, want the sender's error", err)
	}
	checkPoolWorks(t, r)
	if _, err := r.GetByID(ctx, "send-fails"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID: got %v, want ErrNotFound", err)
	}
}

// TestCopyRowsDeadline writes into a table another transaction has
// locked, more rows than the sockets hold: sending and receiving both
// stop at the batch's deadline.
func TestCopyRowsDeadline(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t, WithWriteTimeout(300*time.Millisecond))
	ctx := context.Background()
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{schema, "audit_logs"}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	l := makeLog("locked")
	l.Metadata = map[string]string{"pad": strings.Repeat("p", audit.MaxMetadataValueLen)}
	reqs := takenRequests(t, []audit.Log{l})
	start := time.Now()
	batch, cancel := r.batchContext()
	defer cancel()
	_, err = copyIn(batch, r.pool, r.copySQLs[1], 1, func(w *copyWriter) error {
		for range 16 << 10 { // 64 MB
			w.row(reqs[0].tuple)
			if err := w.flush(); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("copyIn into a locked table: got success")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("copyIn took %v, want about the write timeout", took)
	}
	t.Logf("copyIn: %v after %v", err, time.Since(start))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool is what the failed COPY may have left broken; a Repository
	// on it with the default write timeout checks it, since 300 ms is
	// short for a Create when the other tests load the machine.
	check := NewRepository(mustPool(t), WithSchema(schema))
	defer func() { _ = check.Close() }()
	checkPoolWorks(t, check)
}

// checkPoolWorks checks that every connection the pool hands out works,
// through r.
func checkPoolWorks(t *testing.T, r *Repository) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 * int(mustPool(t).Config().MaxConns) {
		l := makeLog(fmt.Sprintf("pool-%s-%d", t.Name(), i))
		if err := r.Create(ctx, &l); err != nil {
			t.Fatalf("Create after the failed COPY: %v", err)
		}
	}
}

// TestCreateWhileCloseWaits holds back the writer with a table lock, fills
// group commit's queue, and calls Close, which waits for the queue: a
// Create with a short ctx returns by its ctx's deadline, while Close is
// still waiting, rather than when Close is done. It does not run in
// parallel, so that the goroutines it counts are its own.
func TestCreateWhileCloseWaits(t *testing.T) {
	r, schema := newRepo(t, WithMaxBatch(1)) // a queue of one
	ctx := context.Background()
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+r.table.Sanitize()+" IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	// One log in the writer's hands, waiting for the lock; one queued; one
	// waiting for room in the queue.
	held := someLogs("held", 3)
	errs := make(chan error, len(held))
	for i := range held {
		go func() { errs <- r.Create(ctx, &held[i]) }()
		switch i {
		case 0:
			waitFor(t, "the writer to wait for the lock", func() bool {
				var n int
				err := mustPool(t).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, schema).Scan(&n)
				return err == nil && n > 0
			})
		case 1:
			waitFor(t, "a log to be queued", func() bool { return len(r.reqs) == 1 })
		case 2:
			// Read from the goroutines' stacks: taking r.mu to find out
			// would make the Create's TryRLock fail. Two Creates wait for
			// their results, and this one, the queue being full, to send.
			waitFor(t, "a Create to wait for room in the queue", func() bool {
				return waitingIn("(*Repository).Create(", "select") == 3
			})
		}
	}
	closed := make(chan struct{})
	go func() {
		_ = r.Close()
		close(closed)
	}()
	waitFor(t, "Close to wait", func() bool { return waitingIn("(*Repository).Close(", "sync.RWMutex.Lock") == 1 })

	l := makeLog("short-deadline")
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Create(cctx, &l) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Create while Close waits: got %v, want its ctx's deadline", err)
		}
		t.Logf("Create while Close waits: %v", err)
	case <-time.After(10 * time.Second):
		t.Error("Create with a 100 ms ctx has not returned after 10 s, while Close waits")
	}
	select {
	case <-closed:
		t.Error("Close returned while the writer was held back")
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	<-closed
	for range held {
		if err := <-errs; err != nil {
			t.Errorf("Create of a log queued before Close: %v", err)
		}
	}
}
