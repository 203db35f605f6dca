package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// TestAppendOnly checks that the database itself refuses to change or
// remove logs, whoever asks.
func TestAppendOnly(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	l := makeLog("kept")
	if err := r.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"UPDATE audit_logs SET action = 'app.user.forged'",
		"UPDATE audit_logs SET metadata = '{}' WHERE id = 'kept'",
		"DELETE FROM audit_logs WHERE id = 'kept'",
		"DELETE FROM audit_logs",
		"TRUNCATE audit_logs",
		"INSERT INTO audit_logs SELECT * FROM audit_logs ON CONFLICT (id) DO UPDATE SET action = 'x'",
		// A session flag alone is not enough for an UPDATE or TRUNCATE.
		"SELECT set_config('salt_audit.purge', 'on', true); UPDATE audit_logs SET action = 'x'",
		"SELECT set_config('salt_audit.purge', 'on', true); TRUNCATE audit_logs",
	} {
		err := exec(t, schema, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: got %v, want SQLSTATE 42501 (insufficient_privilege) from the append-only trigger", sql, err)
		}
	}
	got, err := r.GetByID(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if got.Action != l.Action {
		t.Errorf("action: got %q, want %q", got.Action, l.Action)
	}
}

// TestAppendOnlyForgedFlag gives a role every privilege on audit_logs but
// ownership, and a schema of its own: setting the flag that
// audit_logs_purge sets does not let it delete, update or truncate logs,
// nor does putting functions named like those the trigger calls ahead of
// pg_catalog in its search_path. It checks a database migrated afresh and
// one migrated before the guard asked for the owner (version 1), then
// upgraded by Migrate.
func TestAppendOnlyForgedFlag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := mustPool(t)
	fresh := newSchema(t)
	upgraded := fresh + "_upgraded"
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+upgraded+" CASCADE") })
	if err := migrate(ctx, p, upgraded, 1); err != nil {
		t.Fatal(err)
	}
	forger := fresh + "_forger"
	createRoles(t, forger)
	for _, sql := range []string{
		"CREATE SCHEMA " + forger + " AUTHORIZATION " + forger,
		// current_setting always says on, and every table is the caller's.
		"CREATE FUNCTION " + forger + ".current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'on' $$",
		"CREATE FUNCTION " + forger + ".pg_get_userbyid(oid) RETURNS name LANGUAGE sql AS $$ SELECT current_user $$",
		"ALTER FUNCTION " + forger + ".current_setting(text, boolean) OWNER TO " + forger,
		"ALTER FUNCTION " + forger + ".pg_get_userbyid(oid) OWNER TO " + forger,
		"GRANT USAGE ON SCHEMA " + fresh + ", " + upgraded + " TO " + forger,
		"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON " + fresh + ".audit_logs, " + upgraded + ".audit_logs TO " + forger,
		"INSERT INTO " + fresh + ".audit_logs (id, source, action, actor_type, created_at) VALUES ('kept', 's', 'a', 'user', now())",
		"INSERT INTO " + upgraded + ".audit_logs (id, source, action, actor_type, created_at) VALUES ('kept', 's', 'a', 'user', now())",
	} {
		if _, err := p.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	forgeries := func(schema string) []string {
		return []string{
			"SELECT set_config('salt_audit.purge', 'on', true); DELETE FROM audit_logs",
			"SET LOCAL salt_audit.purge = on; DELETE FROM audit_logs WHERE id = 'kept'",
			"SELECT set_config('salt_audit.purge', 'on', false); DELETE FROM audit_logs",
			"SELECT set_config('salt_audit.purge', 'on', true); UPDATE audit_logs SET action = 'x'",
			"SELECT set_config('salt_audit.purge', 'on', true); TRUNCATE audit_logs",
			"SET LOCAL search_path TO " + forger + ", pg_catalog, " + schema + "; DELETE FROM audit_logs",
		}
	}
	// asForger runs sql as the forger, with search_path set to schema, and
	// commits if commit is set.
	asForger := func(schema, sql string, commit bool) error {
		tx, err := p.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema+"; SET LOCAL ROLE "+forger); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		if commit {
			return tx.Commit(ctx)
		}
		return nil
	}
	// The guard of version 1 trusted the flag: the test would see it.
	for _, sql := range forgeries(upgraded) {
		if !strings.Contains(sql, "DELETE") {
			continue
		}
		if err := asForger(upgraded, sql, false); err != nil {
			t.Fatalf("forged DELETE on the guard of version 1: %s: %v; want it to pass, as it did", sql, err)
		}
	}
	if err := Migrate(ctx, p, upgraded); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{fresh, upgraded} {
		for _, sql := range forgeries(schema) {
			err := asForger(schema, sql, true)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
				t.Errorf("%s, as a role with DELETE: %s: got %v, want SQLSTATE 42501 from the append-only trigger", schema, sql, err)
			}
		}
		var n int
		if err := p.QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs WHERE action = 'a'").Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: logs left unchanged: got %d, %v; want 1", schema, n, err)
		}
		// Retention, as the owner through the purge function, still works.
		if n, err := Purge(ctx, p, schema, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Errorf("%s: Purge: got %d, %v; want 1, nil", schema, n, err)
		}
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	p := mustPool(t)
	// 2.5 chunks of old logs, a millisecond apart, then ten that stay,
	// written by the server: COPY from Go is slow under the race detector.
	old := PurgeChunk*5/2 + 1
	if err := exec(t, schema, `INSERT INTO audit_logs (id, source, action, actor_type, created_at)
		SELECT format('log-%s', lpad(i::text, 6, '0')), 'frontier', 'app.user.created', 'user',
			CASE WHEN i < $1 THEN $2::timestamptz ELSE $3::timestamptz END + i * interval '1 ms'
		FROM generate_series(0, $1 + 9) AS i`,
		old, testTime.AddDate(0, 0, -400), testTime); err != nil {
		t.Fatal(err)
	}
	cutoff := testTime // the first kept log is at testTime + timeStep(old) > cutoff
	n, err := Purge(ctx, p, schema, cutoff)
	if err != nil || n != int64(old) {
		t.Fatalf("Purge: got %d, %v; want %d, nil", n, err, old)
	}
	n, err = Purge(ctx, p, schema, cutoff)
	if err != nil || n != 0 {
		t.Fatalf("Purge again: got %d, %v; want 0, nil", n, err)
	}
	page, err := r.List(ctx, audit.Filter{Limit: audit.MaxLimit})
	if err != nil || len(page) != 10 {
		t.Fatalf("List after Purge: got %d logs, %v; want 10", len(page), err)
	}
	// The boundary: a log at the cutoff stays, one a microsecond older goes.
	edge := page[len(page)-1].CreatedAt
	if n, err = Purge(ctx, p, schema, edge); err != nil || n != 0 {
		t.Errorf("Purge at a log's own time: got %d, %v; want 0, nil", n, err)
	}
	if n, err = Purge(ctx, p, schema, edge.Add(1)); err != nil || n != 1 {
		t.Errorf("Purge a nanosecond after a log: got %d, %v; want 1, nil", n, err)
	}
	if n, err = Purge(ctx, p, schema, maxTime.AddDate(1, 0, 0)); err != nil || n != 9 {
		t.Errorf("Purge of everything: got %d, %v; want 9, nil", n, err)
	}
	// Still append-only after Purge: its flag ended with its transaction.
	if err := exec(t, schema, "DELETE FROM audit_logs"); err == nil {
		t.Error("DELETE after Purge succeeded, want the append-only trigger to reject it")
	}
}

// TestLeastPrivilege runs the service as a role that may only insert and
// select, and retention as a role that may only execute the purge
// function, as the README advises: group commit, lone inserts, COPY and
// reads work, and neither role can delete a log directly.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := mustPool(t)
	schema := newSchema(t)
	app, ret := schema+"_app", schema+"_retention"
	createRoles(t, app, ret)
	for _, grant := range []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + app + ", " + ret,
		"GRANT SELECT, INSERT ON " + schema + ".audit_logs TO " + app,
		"GRANT EXECUTE ON FUNCTION " + schema + ".audit_logs_purge(timestamptz, integer) TO " + ret,
	} {
		if _, err := p.Exec(ctx, grant); err != nil {
			t.Fatalf("%s: %v", grant, err)
		}
	}
	asRole := func(role string) *pgxpool.Pool {
		cfg := p.Config().Copy()
		cfg.ConnConfig.RuntimeParams["role"] = role
		cfg.MaxConns = 4
		rp, err := newPoolConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rp.Close)
		return rp
	}
	appPool, retPool := asRole(app), asRole(ret)
	var user string
	if err := appPool.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != app {
		t.Fatalf("current_user of the service's pool: got %q, %v; want %q", user, err, app)
	}

	r := NewRepository(appPool, WithSchema(schema))
	t.Cleanup(func() { _ = r.Close() })
	logs := make([]audit.Log, 20)
	errs := make(chan error, len(logs))
	for i := range logs {
		logs[i] = makeLog(fmt.Sprintf("log-%02d", i))
		logs[i].CreatedAt = testTime.AddDate(0, 0, -i)
		go func() { errs <- r.Create(ctx, &logs[i]) }()
	}
	for range logs {
		if err := <-errs; err != nil {
			t.Fatalf("Create as %s: %v", app, err)
		}
	}
	if err := r.Create(ctx, &logs[0]); !errors.Is(err, audit.ErrAlreadyExists) {
		t.Errorf("duplicate Create as %s: got %v, want ErrAlreadyExists", app, err)
	}
	imported := makeLog("imported")
	if err := r.CreateBatch(ctx, []*audit.Log{&imported}); err != nil {
		t.Errorf("CreateBatch as %s: %v", app, err)
	}
	if page, err := r.List(ctx, audit.Filter{Metadata: map[string]string{audit.MetadataRequestID: "req-1"}}); err != nil || len(page) != 21 {
		t.Errorf("List as %s: got %d logs, %v; want 21", app, len(page), err)
	}
	if _, err := r.GetByID(ctx, "imported"); err != nil {
		t.Errorf("GetByID as %s: %v", app, err)
	}

	var pgErr *pgconn.PgError
	for _, tt := range []struct {
		db   *pgxpool.Pool
		role string
	}{{appPool, app}, {retPool, ret}} {
		_, err := tt.db.Exec(ctx, "DELETE FROM "+schema+".audit_logs")
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "permission denied") {
			t.Errorf("DELETE as %s: got %v, want permission denied", tt.role, err)
		}
	}
	_, err := Purge(ctx, appPool, schema, testTime)
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "permission denied") {
		t.Errorf("Purge as %s: got %v, want permission denied", app, err)
	}
	n, err := Purge(ctx, retPool, schema, testTime.AddDate(0, 0, -9).Add(-time.Second))
	if err != nil || n != 10 {
		t.Errorf("Purge as %s: got %d, %v; want 10, nil", ret, n, err)
	}
}
