package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// grantRoles creates the roles the README documents, with their grants
// on schema: the service (SELECT and INSERT on audit_logs), a reader
// (SELECT) and the retention job (EXECUTE on the purge function). Each
// also owns a schema of its own, in which it may create functions and
// tables, so that what it is refused on the audit schema is refused for
// lack of a privilege there, not for want of somewhere to create a trigger
// function.
func grantRoles(t *testing.T, schema string) map[string]*pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	grants := map[string][]string{
		"service":   {"GRANT SELECT, INSERT ON " + schema + ".audit_logs TO %[1]s"},
		"reader":    {"GRANT SELECT ON " + schema + ".audit_logs TO %[1]s"},
		"retention": {"GRANT EXECUTE ON FUNCTION " + schema + ".audit_logs_purge(timestamptz, integer) TO %[1]s"},
	}
	pools := map[string]*pgxpool.Pool{}
	for name, gs := range grants {
		role := schema + "_" + name
		createRoles(t, role)
		for _, g := range append([]string{
			"GRANT USAGE ON SCHEMA " + schema + " TO %[1]s",
			"CREATE SCHEMA %[1]s AUTHORIZATION %[1]s",
		}, gs...) {
			if _, err := mustPool(t).Exec(ctx, fmt.Sprintf(g, role)); err != nil {
				t.Fatalf("%s: %v", fmt.Sprintf(g, role), err)
			}
		}
		pools[name] = rolePool(t, role)
	}
	return pools
}

// forgeSQL creates, in schema, the trigger function forge, which rewrites
// the actor and the action of the log it is given.
func forgeSQL(schema string) string {
	return `CREATE FUNCTION ` + schema + `.forge() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			NEW.actor_id := 'forged';
			NEW.action := 'app.nothing.happened';
			RETURN NEW;
		END
		$$`
}

// TestRolesCannotChangeLogs runs, as each role the README documents, every
// statement that could change a stored log, change what new logs say, or
// keep retention from working: each is refused with SQLSTATE 42501. Then
// a log written by the service is stored as it was sent, the stored one is
// unchanged, and the table has no trigger, rule or policy but its own.
func TestRolesCannotChangeLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, schema := newRepo(t)
	kept := makeLog("kept")
	kept.CreatedAt = testTime
	if err := owner.Create(ctx, &kept); err != nil {
		t.Fatal(err)
	}
	pools := grantRoles(t, schema)
	table := schema + ".audit_logs"
	for name, pool := range pools {
		own := schema + "_" + name
		if _, err := pool.Exec(ctx, forgeSQL(own)); err != nil {
			t.Fatalf("%s: creating a function in its own schema: %v", name, err)
		}
		for _, sql := range []string{
			// Changing stored logs.
			"UPDATE " + table + " SET action = 'app.forged'",
			"DELETE FROM " + table,
			"TRUNCATE " + table,
			"INSERT INTO " + table + " SELECT * FROM " + table + " ON CONFLICT (id) DO UPDATE SET action = 'app.forged'",
			"SET session_replication_role = replica", // would silence the append-only trigger
			"ALTER TABLE " + table + " DISABLE TRIGGER audit_logs_append_only",
			"DROP TRIGGER audit_logs_append_only ON " + table,
			"CREATE OR REPLACE FUNCTION " + schema + ".audit_logs_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
			"ALTER FUNCTION " + schema + ".audit_logs_reject_change() RENAME TO gone",
			"DROP TABLE " + table,
			"ALTER TABLE " + table + " RENAME TO gone",
			// Changing what new logs say.
			"CREATE TRIGGER forge BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + own + ".forge()",
			"CREATE RULE forge AS ON INSERT TO " + table + " DO INSTEAD NOTHING",
			"CREATE POLICY forge ON " + table + " FOR INSERT WITH CHECK (false)",
			"ALTER TABLE " + table + " ENABLE ROW LEVEL SECURITY",
			"ALTER TABLE " + table + " ALTER COLUMN org_id SET DEFAULT 'forged'",
			"ALTER TABLE " + table + " ADD COLUMN forged text",
			"CREATE UNIQUE INDEX forge ON " + table + " (action)",
			"CREATE FUNCTION " + schema + ".now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT now() $$",
			// Keeping retention from working, or stalling every writer.
			"CREATE TABLE " + own + ".pin (id text REFERENCES " + table + " (id))",
			"BEGIN; LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE; COMMIT",
			"SELECT id FROM " + table + " FOR UPDATE",
			"UPDATE " + schema + ".audit_retention SET min_age = interval '0'",
			"DROP FUNCTION " + schema + ".audit_logs_purge(timestamptz, integer)",
		} {
			_, err := pool.Exec(ctx, sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("as %s: %s: got %v, want SQLSTATE 42501 (insufficient_privilege)", name, sql, err)
			}
		}
	}

	service := NewRepository(pools["service"], WithSchema(schema))
	t.Cleanup(func() { _ = service.Close() })
	sent := makeLog("after")
	if err := service.Create(ctx, &sent); err != nil {
		t.Fatalf("Create as the service: %v", err)
	}
	for _, want := range []audit.Log{kept, sent} {
		got, err := owner.GetByID(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		want.CreatedAt = want.CreatedAt.Truncate(1000)
		checkLog(t, got, want)
	}
	var triggers, rules, policies []string
	for _, q := range []struct {
		sql string
		out *[]string
	}{
		{"SELECT tgname::text FROM pg_trigger WHERE tgrelid = ($1 || '.audit_logs')::regclass", &triggers},
		{"SELECT rulename::text FROM pg_rules WHERE schemaname = $1 AND tablename = 'audit_logs'", &rules},
		{"SELECT policyname::text FROM pg_policies WHERE schemaname = $1 AND tablename = 'audit_logs'", &policies},
	} {
		rows, err := mustPool(t).Query(ctx, q.sql, schema)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			*q.out = append(*q.out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(triggers) != 1 || triggers[0] != "audit_logs_append_only" || len(rules) != 0 || len(policies) != 0 {
		t.Errorf("on audit_logs: triggers %v, rules %v, policies %v; want the append-only trigger alone", triggers, rules, policies)
	}
}

// TestGrantAllIsUnsafe shows why the README says not to grant ALL on
// audit_logs, which includes TRIGGER and REFERENCES: with TRIGGER a role
// rewrites what every new log says, and with REFERENCES it pins old logs
// against retention.
func TestGrantAllIsUnsafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, schema := newRepo(t)
	old := makeLog("old")
	old.CreatedAt = testTime
	if err := owner.Create(ctx, &old); err != nil {
		t.Fatal(err)
	}
	role := schema + "_all"
	createRoles(t, role)
	t.Cleanup(func() { // before the role goes: the trigger uses its function
		_, _ = mustPool(t).Exec(ctx, "DROP TRIGGER IF EXISTS forge ON "+schema+".audit_logs")
	})
	for _, sql := range []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT ALL ON " + schema + ".audit_logs TO " + role,
		"CREATE SCHEMA " + role + " AUTHORIZATION " + role,
	} {
		if _, err := mustPool(t).Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	p := rolePool(t, role)
	for _, sql := range []string{
		forgeSQL(role),
		"CREATE TRIGGER forge BEFORE INSERT ON " + schema + ".audit_logs FOR EACH ROW EXECUTE FUNCTION " + role + ".forge()",
		"CREATE TABLE " + role + ".pin (id text REFERENCES " + schema + ".audit_logs (id))",
		"INSERT INTO " + role + ".pin VALUES ('old')",
	} {
		if _, err := p.Exec(ctx, sql); err != nil {
			t.Fatalf("as a role with ALL on audit_logs: %s: %v", sql, err)
		}
	}
	l := makeLog("new")
	if err := owner.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	got, err := owner.GetByID(ctx, "new")
	if err != nil || got.Actor.ID != "forged" || got.Action != "app.nothing.happened" {
		t.Errorf("a new log under the trigger of a role with ALL: got %+v, %v; want it rewritten, as the README warns", got, err)
	}
	_, err = Purge(ctx, mustPool(t), schema, testTime.Add(1000))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		t.Errorf("Purge of a log that a table of a role with ALL references: got %v, want SQLSTATE 23503 (foreign_key_violation), as the README warns", err)
	}
}
