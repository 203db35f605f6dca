package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// checkMaybeStored checks that err says the log may be stored.
func checkMaybeStored(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, audit.ErrMaybeStored) {
		t.Errorf("%s: got %v, want an error wrapping audit.ErrMaybeStored: the outcome is unknown", what, err)
	}
}

// checkStored checks that the logs of ids are stored, or with stored
// false, that none is.
func checkStored(t *testing.T, r *Repository, stored bool, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := r.GetByID(context.Background(), id)
		switch {
		case stored && err != nil:
			t.Errorf("GetByID(%s): %v; want the log stored", id, err)
		case !stored && !errors.Is(err, audit.ErrNotFound):
			t.Errorf("GetByID(%s): got %v, want ErrNotFound", id, err)
		}
	}
}

// checkRetry retries logs the safe way, with Logger.Record and the same
// IDs, and checks that each says the log already exists, as the first
// attempt stored it.
func checkRetry(t *testing.T, r *Repository, logs ...audit.Log) {
	t.Helper()
	lg := audit.NewLogger(r)
	defer func() { _ = lg.Close(context.Background()) }()
	for _, l := range logs {
		if err := lg.Record(context.Background(), &l); !errors.Is(err, audit.ErrAlreadyExists) {
			t.Errorf("retry of %s with Logger.Record: got %v, want ErrAlreadyExists: the first attempt stored it", l.ID, err)
		}
	}
}

func ids(logs []audit.Log) []string {
	out := make([]string, len(logs))
	for i := range logs {
		out[i] = logs[i].ID
	}
	return out
}

func someLogs(prefix string, n int) []audit.Log {
	logs := make([]audit.Log, n)
	for i := range logs {
		logs[i] = makeLog(fmt.Sprintf("%s-%d", prefix, i))
	}
	return logs
}

// TestUnknownOutcomeConnectionCut cuts the connection, through a proxy,
// after the server has run and committed a write and before its answer
// reaches the repository: on every write path the error says that the log
// may be stored, the log is stored, and the safe retry says it already
// exists. A cut before the COMMIT of CreateBatch, and a server that cannot
// be reached, say that nothing is stored.
func TestUnknownOutcomeConnectionCut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	// Each case has a proxy and a repository of its own.
	through := func(t *testing.T, opts ...Option) (*cutProxy, *Repository) {
		t.Helper()
		t.Parallel()
		px := newCutProxy(t)
		r := NewRepository(px.pool(2), append([]Option{WithSchema(schema)}, opts...)...)
		t.Cleanup(func() { _ = r.Close() })
		return px, r
	}

	t.Run("batch", func(t *testing.T) {
		px, r := through(t)
		logs := someLogs("batch", 8)
		px.arm("COPY", false)
		for i, err := range flushLogs(t, r, logs) {
			checkMaybeStored(t, logs[i].ID, err)
		}
		px.waitCut()
		checkStored(t, r, true, ids(logs)...)
		checkRetry(t, r, logs...)
	})
	t.Run("concurrent callers", func(t *testing.T) {
		px, r := through(t)
		const callers, each = 32, 4
		var (
			mu     sync.Mutex
			ok     []string
			maybe  []string
			failed []error
			wg     sync.WaitGroup
		)
		px.arm("COPY", false)
		for c := range callers {
			wg.Go(func() {
				for i := range each {
					l := makeLog(fmt.Sprintf("caller-%d-%d", c, i))
					err := r.Create(ctx, &l)
					mu.Lock()
					switch {
					case err == nil:
						ok = append(ok, l.ID)
					case errors.Is(err, audit.ErrMaybeStored):
						maybe = append(maybe, l.ID)
					default:
						failed = append(failed, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		px.waitCut()
		if len(failed) > 0 || len(maybe) == 0 {
			t.Fatalf("got %d logs stored, %d that may be, and errors %v; want the batch that was cut to say it may be stored", len(ok), len(maybe), failed)
		}
		t.Logf("%d logs stored, %d in the batch that was cut", len(ok), len(maybe))
		checkStored(t, r, true, append(ok, maybe...)...) // cut after its commit
	})
	t.Run("lone insert", func(t *testing.T) {
		px, r := through(t)
		logs := someLogs("alone", 1)
		px.arm("INSERT", false)
		checkMaybeStored(t, "lone insert", flushLogs(t, r, logs)[0])
		px.waitCut()
		checkStored(t, r, true, ids(logs)...)
		checkRetry(t, r, logs...)
	})
	t.Run("create batch, commit cut", func(t *testing.T) {
		px, r := through(t)
		logs := someLogs("import", 8)
		px.arm("COMMIT", false)
		checkMaybeStored(t, "CreateBatch", r.CreateBatch(ctx, ptrs(logs)))
		px.waitCut()
		checkStored(t, r, true, ids(logs)...)
		if err := r.CreateBatch(ctx, ptrs(logs)); !errors.Is(err, audit.ErrAlreadyExists) {
			t.Errorf("CreateBatch again: got %v, want ErrAlreadyExists", err)
		}
	})
	t.Run("create batch, cut before commit", func(t *testing.T) {
		px, r := through(t)
		logs := someLogs("import-uncommitted", 8)
		px.arm("COPY", false)
		err := r.CreateBatch(ctx, ptrs(logs))
		px.waitCut()
		if err == nil || errors.Is(err, audit.ErrMaybeStored) {
			t.Errorf("CreateBatch cut before its COMMIT: got %v, want an error that does not say the logs may be stored", err)
		}
		checkStored(t, r, false, ids(logs)...)
		if err := r.CreateBatch(ctx, ptrs(logs)); err != nil {
			t.Errorf("CreateBatch again: %v", err)
		}
	})
	t.Run("answer held past the write timeout", func(t *testing.T) {
		px, slow := through(t, WithWriteTimeout(time.Second))
		for _, tt := range []struct {
			tag  string
			logs []audit.Log
		}{{"COPY", someLogs("stalled-batch", 4)}, {"INSERT", someLogs("stalled-alone", 1)}} {
			px.arm(tt.tag, true)
			for i, err := range flushLogs(t, slow, tt.logs) {
				checkMaybeStored(t, tt.logs[i].ID, err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: got %v, want an error wrapping context.DeadlineExceeded", tt.logs[i].ID, err)
				}
			}
			px.waitCut()
			checkStored(t, slow, true, ids(tt.logs)...)
		}
	})
	t.Run("no server", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := mustPool(t).Config().Copy()
		cfg.ConnConfig.Port = uint16(ln.Addr().(*net.TCPAddr).Port)
		_ = ln.Close() // nothing listens there now
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		lost := NewRepository(p, WithSchema(schema))
		defer func() { _ = lost.Close() }()
		logs := someLogs("unreachable", 3)
		for i, err := range append(flushLogs(t, lost, logs), flushLogs(t, lost, logs[:1])[0], lost.CreateBatch(ctx, ptrs(logs))) {
			if err == nil || errors.Is(err, audit.ErrMaybeStored) {
				t.Errorf("write %d without a server: got %v, want an error that does not say the log may be stored", i, err)
			}
		}
	})
}

// warm opens every connection pool may have, so that the next ones it
// hands out are at hand.
func warm(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	conns := make([]*pgxpool.Conn, pool.Config().MaxConns)
	for i := range conns {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
}

func ptrs(logs []audit.Log) []*audit.Log {
	out := make([]*audit.Log, len(logs))
	for i := range logs {
		out[i] = &logs[i]
	}
	return out
}

// TestUnknownOutcomeSynchronousStandby makes every commit wait for a
// synchronous standby that does not exist, on a server of the test's own
// (the setting is the whole server's: on the server the other tests share,
// it would hold up their commits too). On each write path the wait ends
// with an error that says the log may be stored and that the deadline
// passed, or, when the session is ended, that the log may be stored; once
// the server stops waiting for the standby, every one of those logs is
// there, and the safe retry says so.
func TestUnknownOutcomeSynchronousStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := startServer(t, 8)
	if err := Migrate(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	r := NewRepository(pool, WithWriteTimeout(2*time.Second))
	t.Cleanup(func() { _ = r.Close() })
	alone := NewRepository(pool) // closed: one INSERT per log
	_ = alone.Close()
	standby := func(names string) {
		t.Helper()
		if _, err := pool.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '"+names+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE probe (n integer)"); err != nil {
		t.Fatal(err)
	}
	standby("absent_standby")
	// The setting holds once a commit waits for the standby. A probe runs
	// until it commits or waits, and another one after a commit.
	probeCtx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	close(probed)
	waitFor(t, "commits to wait for the standby", func() bool {
		select {
		case <-probed:
			done := make(chan struct{})
			probed = done
			go func() {
				defer close(done)
				_, _ = pool.Exec(probeCtx, "INSERT INTO probe VALUES (1)")
			}()
		default:
		}
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").Scan(&n)
		return err == nil && n > 0
	})
	stopProbe()
	<-probed
	// Connections at hand, so that no deadline below is spent connecting.
	warm(t, pool)

	var (
		mu     sync.Mutex
		logs   []audit.Log
		wg     sync.WaitGroup
		checks = func(what string, err error) {
			t.Helper()
			checkMaybeStored(t, what, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: got %v, want an error wrapping context.DeadlineExceeded", what, err)
			}
		}
	)
	record := func(ls ...audit.Log) {
		mu.Lock()
		logs = append(logs, ls...)
		mu.Unlock()
	}
	// Group commit, bounded by the caller's ctx: alone, so that its batch
	// is under way when ctx ends.
	l := makeLog("caller-deadline")
	record(l)
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	checks(l.ID, r.Create(cctx, &l))
	cancel()
	for i := range 16 { // group commit, bounded by WithWriteTimeout
		wg.Go(func() {
			l := makeLog(fmt.Sprintf("group-%d", i))
			record(l)
			checks(l.ID, r.Create(ctx, &l))
		})
	}
	wg.Go(func() { // one INSERT
		l := makeLog("alone")
		record(l)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		checks(l.ID, alone.Create(cctx, &l))
	})
	wg.Go(func() {
		batch := someLogs("import", 4)
		record(batch...)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		checks("CreateBatch", r.CreateBatch(cctx, ptrs(batch)))
	})
	wg.Wait()

	// A session ended while its commit waits: the server says FATAL, and
	// has committed locally.
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["application_name"] = "patient"
	cfg.MaxConns = 2
	patientPool, err := newPoolConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer patientPool.Close()
	patient := NewRepository(patientPool, WithWriteTimeout(30*time.Second))
	defer func() { _ = patient.Close() }()
	for _, tt := range []struct {
		name string
		logs []audit.Log
	}{{"terminated-batch", someLogs("terminated-batch", 3)}, {"terminated-alone", someLogs("terminated-alone", 1)}} {
		record(tt.logs...)
		errs := make(chan []error, 1)
		go func() { errs <- flushLogs(t, patient, tt.logs) }()
		waitFor(t, "a commit to wait for the standby", func() bool {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE wait_event = 'SyncRep' AND application_name = 'patient'`).Scan(&n)
			return err == nil && n > 0
		})
		for i, err := range <-errs {
			checkMaybeStored(t, tt.logs[i].ID, err)
		}
	}
	standby("")
	waitFor(t, "the waiting commits to end", func() bool {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_logs").Scan(&n)
		return err == nil && n == len(logs)
	})
	retry := NewRepository(pool) // no write timeout of a second
	defer func() { _ = retry.Close() }()
	checkRetry(t, retry, logs...)
}

// TestUnknownOutcomeSessionEnded ends the server's session while an AFTER
// trigger runs, once the whole batch was sent: the server sends FATAL,
// which it sends to a session it ends whatever that session was doing, the
// commit included, so the error says the log may be stored. (Here the
// commit had not come yet; the repository cannot know that.)
func TestUnknownOutcomeSessionEnded(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	if err := exec(t, schema, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(30);
			RETURN NULL;
		END
		$$;
		CREATE TRIGGER slow AFTER INSERT ON audit_logs
			FOR EACH STATEMENT EXECUTE FUNCTION slow()`); err != nil {
		t.Fatal(err)
	}
	for _, logs := range [][]audit.Log{someLogs("ended-batch", 3), someLogs("ended-alone", 1)} {
		errs := make(chan []error, 1)
		go func() { errs <- flushLogs(t, r, logs) }()
		waitFor(t, "the trigger to run", func() bool {
			var n int
			err := mustPool(t).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE wait_event = 'PgSleep' AND query LIKE '%' || $1 || '%'`, schema).Scan(&n)
			return err == nil && n > 0
		})
		for i, err := range <-errs {
			if sqlState(err) != "57P01" {
				t.Errorf("%s: got %v, want the server's FATAL, SQLSTATE 57P01", logs[i].ID, err)
			}
			checkMaybeStored(t, logs[i].ID, err)
		}
	}
}

// TestUnknownOutcomeLookupLost cuts the connection of the lookup that
// follows the INSERT of a batch holding a log stored before (the safe
// retry of a log whose answer was lost): the INSERT skipped that log, and
// only the lookup could tell whether it was stored before or dropped by a
// trigger, so its error says that it may be stored; the new log of the
// batch is stored.
func TestUnknownOutcomeLookupLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	px := newCutProxy(t)
	r := NewRepository(px.pool(2), WithSchema(schema))
	t.Cleanup(func() { _ = r.Close() })
	retried := makeLog("retried")
	if err := r.Create(ctx, &retried); err != nil {
		t.Fatal(err)
	}
	logs := []audit.Log{retried, makeLog("new")}
	px.arm("SELECT", false)
	errs := flushLogs(t, r, logs)
	px.waitCut()
	checkMaybeStored(t, "the retried log, whose lookup was cut", errs[0])
	if errs[1] != nil {
		t.Errorf("the new log: %v; want it stored", errs[1])
	}
	checkStored(t, r, true, ids(logs)...)
	checkRetry(t, r, logs...)
}
