package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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
		"INSERT INTO " + fresh + ".audit_logs (id, source, action, actor_type, created_at) VALUES ('kept', 's', 'a', 'user', now() - interval '40 days')",
		"INSERT INTO " + upgraded + ".audit_logs (id, source, action, actor_type, created_at) VALUES ('kept', 's', 'a', 'user', now() - interval '40 days')",
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
		if n, err := Purge(ctx, p, schema, time.Now().AddDate(0, 0, -35)); err != nil || n != 1 {
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
	// Only the logs of the service: each purge wrote one of its own.
	page, err := r.List(ctx, audit.Filter{Source: "frontier", Limit: audit.MaxLimit})
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
	// Logs younger than the minimum age stay, whatever the cutoff.
	for _, cutoff := range []time.Time{time.Now(), time.Now().Add(-DefaultPurgeMinAge).Add(time.Minute), maxTime.AddDate(1, 0, 0)} {
		if n, err = Purge(ctx, p, schema, cutoff); !errors.Is(err, ErrCutoffTooRecent) || n != 0 {
			t.Errorf("Purge before %v: got %d, %v; want 0, ErrCutoffTooRecent", cutoff, n, err)
		}
	}
	if page, err = r.List(ctx, audit.Filter{Source: "frontier", Limit: audit.MaxLimit}); err != nil || len(page) != 9 {
		t.Errorf("List after the refused purges: got %d logs, %v; want 9", len(page), err)
	}
	// One log of each call that deleted: three chunks, an empty purge,
	// the two at the edge; none of the refused ones.
	format := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
	checkPurgeLogs(t, r, []map[string]string{
		{"cutoff": format(cutoff), "count": "10000"},
		{"cutoff": format(cutoff), "count": "10000"},
		{"cutoff": format(cutoff), "count": "5001"},
		{"cutoff": format(cutoff), "count": "0"},
		{"cutoff": format(edge), "count": "0"},
		{"cutoff": format(edge.Add(time.Microsecond)), "count": "1"},
	})
	// Still append-only after Purge: its flag ended with its transaction.
	if err := exec(t, schema, "DELETE FROM audit_logs"); err == nil {
		t.Error("DELETE after Purge succeeded, want the append-only trigger to reject it")
	}
}

// checkPurgeLogs checks the logs that purges wrote in r, oldest first,
// against their metadata.
func checkPurgeLogs(t *testing.T, r *Repository, want []map[string]string) {
	t.Helper()
	page, err := r.List(context.Background(), audit.Filter{Action: "audit.logs.purged", Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(page)
	if len(page) != len(want) {
		t.Fatalf("logs of purges: got %d, want %d", len(page), len(want))
	}
	for i, l := range page {
		if err := l.Validate(); err != nil {
			t.Errorf("log of purge %d: %v", i, err)
		}
		id, err := uuid.Parse(l.ID)
		if err != nil || id.Version() != 7 || id.String() != l.ID {
			t.Errorf("log of purge %d: ID %q is not a UUIDv7 string (%v)", i, l.ID, err)
		}
		sec, nsec := id.Time().UnixTime()
		if idTime := time.Unix(sec, nsec); idTime.Sub(l.CreatedAt).Abs() > time.Millisecond {
			t.Errorf("log of purge %d: ID made at %v, CreatedAt %v; want the same millisecond", i, idTime, l.CreatedAt)
		}
		if age := time.Since(l.CreatedAt); age < -time.Minute || age > time.Hour {
			t.Errorf("log of purge %d: CreatedAt %v, want about now", i, l.CreatedAt)
		}
		wantLog := audit.Log{
			ID: l.ID, Source: "audit_logs_purge", Action: "audit.logs.purged",
			Actor: audit.Actor{Type: audit.ActorTypeSystem}, Metadata: want[i], CreatedAt: l.CreatedAt,
		}
		if !reflect.DeepEqual(l, wantLog) {
			t.Errorf("log of purge %d:\ngot  %+v\nwant %+v", i, l, wantLog)
		}
	}
}

// TestPurgeMinimumAge checks the minimum age against the retention role,
// which may execute the purge function: it cannot purge younger logs, nor
// change the age, nor can a role granted every privilege on the settings;
// the owner can. A purge rolled back takes its log with it.
func TestPurgeMinimumAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := mustPool(t)
	r, schema := newRepo(t)
	ret, meddler := schema+"_retention", schema+"_meddler"
	createRoles(t, ret, meddler)
	for _, sql := range []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + ret + ", " + meddler,
		"GRANT EXECUTE ON FUNCTION " + schema + ".audit_logs_purge(timestamptz, integer) TO " + ret,
		"GRANT ALL ON " + schema + ".audit_retention TO " + meddler,
	} {
		if _, err := p.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var age time.Duration
	if err := p.QueryRow(ctx, "SELECT min_age FROM "+schema+".audit_retention").Scan(&age); err != nil || age != DefaultPurgeMinAge {
		t.Fatalf("the minimum age Migrate sets: got %v, %v; want DefaultPurgeMinAge, %v", age, err, DefaultPurgeMinAge)
	}
	now := time.Now()
	logs := make([]audit.Log, 4)
	for i, days := range []int{400, 31, 29, 0} {
		logs[i] = makeLog(fmt.Sprintf("days-%d", days))
		logs[i].CreatedAt = now.AddDate(0, 0, -days)
	}
	if err := r.CreateBatch(ctx, ptrs(logs)); err != nil {
		t.Fatal(err)
	}
	retPool := rolePool(t, ret)
	var pgErr *pgconn.PgError
	for _, cutoff := range []time.Time{now.Add(time.Hour), now, now.AddDate(0, 0, -29)} {
		if n, err := Purge(ctx, retPool, schema, cutoff); !errors.Is(err, ErrCutoffTooRecent) || n != 0 {
			t.Errorf("Purge as %s before %v: got %d, %v; want 0, ErrCutoffTooRecent", ret, cutoff, n, err)
		}
	}
	for _, tt := range []struct{ sql, code string }{
		{"SELECT audit_logs_purge('infinity')", cutoffTooRecent},
		{"SELECT audit_logs_purge(now() - interval '29 days', NULL)", cutoffTooRecent},
		{"SELECT audit_logs_purge(NULL)", "22023"},
		{"SELECT audit_logs_purge('-infinity')", "22023"},
	} {
		if _, err := retPool.Exec(ctx, "SET search_path TO "+schema+"; "+tt.sql); !errors.As(err, &pgErr) || pgErr.Code != tt.code {
			t.Errorf("%s as %s: got %v, want SQLSTATE %s from the purge function", tt.sql, ret, err, tt.code)
		}
	}
	checkStored(t, r, true, ids(logs)...)
	// Only the owner changes the minimum age.
	for _, tt := range []struct {
		pool *pgxpool.Pool
		role string
	}{{retPool, ret}, {rolePool(t, meddler), meddler}} {
		for _, sql := range []string{
			"UPDATE audit_retention SET min_age = interval '0'",
			"DELETE FROM audit_retention",
			"TRUNCATE audit_retention",
		} {
			_, err := tt.pool.Exec(ctx, "SET search_path TO "+schema+"; "+sql)
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s as %s: got %v, want SQLSTATE 42501", sql, tt.role, err)
			}
		}
	}
	if n, err := Purge(ctx, retPool, schema, now.Add(-DefaultPurgeMinAge).Add(-time.Minute)); err != nil || n != 2 {
		t.Errorf("Purge as %s of the logs older than the minimum age: got %d, %v; want 2, nil", ret, n, err)
	}
	if _, err := p.Exec(ctx, "UPDATE "+schema+".audit_retention SET min_age = interval '1 day'"); err != nil {
		t.Fatalf("the owner changing the minimum age: %v", err)
	}
	// A purge and its log commit together, or neither does.
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Purge(ctx, tx, schema, now.AddDate(0, 0, -2)); err != nil || n != 1 {
		t.Errorf("Purge in a transaction: got %d, %v; want 1, nil", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, r, true, "days-29", "days-0")
	if n, err := Purge(ctx, retPool, schema, now.AddDate(0, 0, -2)); err != nil || n != 1 {
		t.Errorf("Purge as %s once the owner lowered the minimum age: got %d, %v; want 1, nil", ret, n, err)
	}
	checkStored(t, r, false, "days-400", "days-31", "days-29")
	checkStored(t, r, true, "days-0")
	cutoff := func(t time.Time) string { return ceilMicro(t).Format("2006-01-02T15:04:05.000000Z") }
	checkPurgeLogs(t, r, []map[string]string{
		{"cutoff": cutoff(now.Add(-DefaultPurgeMinAge).Add(-time.Minute)), "count": "2"},
		{"cutoff": cutoff(now.AddDate(0, 0, -2)), "count": "1"},
	})
}

// TestPurgeNotLogged makes the purge's own log fail to be stored, with
// triggers a DBA might add: one that drops rows of the system actor, one
// that raises for them with SQLSTATE 22023, as the purge function does for
// a cutoff that is no time. Purge fails, deletes nothing, and says that
// the cutoff is too recent for neither.
func TestPurgeNotLogged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, body, code string
	}{
		{"dropped", "RETURN NULL;", purgeNotLogged},
		{"refused", "RAISE EXCEPTION 'no system logs here' USING ERRCODE = 'invalid_parameter_value';", "22023"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, schema := newRepo(t)
			ctx := context.Background()
			old := makeLog("old")
			old.CreatedAt = time.Now().AddDate(0, 0, -40)
			if err := r.Create(ctx, &old); err != nil {
				t.Fatal(err)
			}
			if err := exec(t, schema, `CREATE FUNCTION no_system() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF NEW.actor_type = 'system' THEN
						`+tt.body+`
					END IF;
					RETURN NEW;
				END
				$$;
				CREATE TRIGGER no_system BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION no_system()`); err != nil {
				t.Fatal(err)
			}
			n, err := Purge(ctx, mustPool(t), schema, time.Now().AddDate(0, 0, -35))
			if n != 0 || sqlState(err) != tt.code || errors.Is(err, ErrCutoffTooRecent) {
				t.Errorf("Purge: got %d, %v; want 0 and SQLSTATE %s, not ErrCutoffTooRecent", n, err, tt.code)
			}
			checkStored(t, r, true, old.ID)
			checkPurgeLogs(t, r, nil)
		})
	}
}

// TestPurgeTimeZone purges as a session whose TimeZone has daylight saving
// time, with the clocks put forward 5 hours since 30 days ago (a zone
// made up for the test, so that it does on any date): the minimum age is
// still 30 days of 24 hours, not 30 days of the zone's calendar, 5 hours
// less.
func TestPurgeTimeZone(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// Standard time at UTC, daylight saving time 5 hours east, from 10
	// days ago (the zero-based day of the year, at midnight) to 100 days
	// from now.
	zone := fmt.Sprintf("STD0DST-5,%d/0,%d/0", now.AddDate(0, 0, -10).YearDay()-1, now.AddDate(0, 0, 100).YearDay()-1)
	p := paramPool(t, mustPool(t), map[string]string{"timezone": zone})
	var shift time.Duration
	if err := p.QueryRow(ctx, "SELECT (now() - interval '30 days') - (now() - interval '720 hours')").Scan(&shift); err != nil || shift != 5*time.Hour {
		t.Fatalf("in TimeZone %s, now() - 30 days is %v, %v after now() - 720 hours; want 5h", zone, shift, err)
	}
	young := makeLog("young") // 2 hours younger than the minimum age
	young.CreatedAt = now.Add(-DefaultPurgeMinAge + 2*time.Hour)
	if err := r.Create(ctx, &young); err != nil {
		t.Fatal(err)
	}
	if n, err := Purge(ctx, p, schema, now.Add(-DefaultPurgeMinAge+3*time.Hour)); !errors.Is(err, ErrCutoffTooRecent) || n != 0 {
		t.Errorf("Purge 3 hours younger than the minimum age: got %d, %v; want 0, ErrCutoffTooRecent", n, err)
	}
	checkStored(t, r, true, young.ID)
	if n, err := Purge(ctx, p, schema, now.Add(-DefaultPurgeMinAge-time.Hour)); err != nil || n != 0 {
		t.Errorf("Purge an hour older than the minimum age: got %d, %v; want 0, nil", n, err)
	}
}

// rolePool returns a pool of two connections whose sessions run as role,
// closed at the end of the test.
func rolePool(t *testing.T, role string) *pgxpool.Pool {
	t.Helper()
	return paramPool(t, mustPool(t), map[string]string{"role": role})
}

// paramPool returns a pool of two connections to base's server whose
// sessions start with the run-time parameters params (role, TimeZone),
// closed at the end of the test.
func paramPool(t *testing.T, base *pgxpool.Pool, params map[string]string) *pgxpool.Pool {
	t.Helper()
	cfg := base.Config().Copy()
	maps.Copy(cfg.ConnConfig.RuntimeParams, params)
	cfg.MaxConns = 2
	p, err := newPoolConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
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
	appPool, retPool := rolePool(t, app), rolePool(t, ret)
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
