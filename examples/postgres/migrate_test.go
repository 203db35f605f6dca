package postgres

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	p := mustPool(t)
	ctx := context.Background()
	schema := fmt.Sprintf("audit_migrate_%d", os.Getpid())
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })

	// Replicas starting together.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Migrate(ctx, p, schema) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	if err := Migrate(ctx, p, schema); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	var versions []int
	rows, _ := p.Query(ctx, "SELECT version FROM "+schema+".audit_schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || !slices.Equal(versions, []int{1, 2, 3, 4}) {
		t.Fatalf("applied versions: got %v, %v; want [1 2 3 4]", versions, err)
	}

	wantIndexes := []string{
		"audit_logs_created_idx",
		"audit_logs_metadata_idx",
		"audit_logs_org_created_idx",
		"audit_logs_pkey",
		"audit_logs_xact_idx",
	}
	rows, _ = p.Query(ctx, "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'audit_logs' ORDER BY 1", schema)
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(indexes, wantIndexes) {
		t.Errorf("indexes: got %v, %v; want %v", indexes, err, wantIndexes)
	}

	// Down removes the table and functions, and is idempotent; up again
	// restores them.
	for range 2 {
		if err := MigrateDown(ctx, p, schema); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
	}
	var n int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname LIKE 'audit_%' AND c.relname NOT LIKE 'audit_schema_migrations%'`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("relations left after MigrateDown: got %d, %v; want 0", n, err)
	}
	if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("functions left after MigrateDown: got %d, %v; want 0", n, err)
	}
	if err := Migrate(ctx, p, schema); err != nil {
		t.Fatalf("Migrate after MigrateDown: %v", err)
	}
	r := NewRepository(p, WithSchema(schema))
	defer r.Close()
	l := makeLog("after-down-up")
	if err := r.Create(ctx, &l); err != nil {
		t.Fatalf("Create after down and up: %v", err)
	}
}

// TestMigrateSearchPath checks the default schema: the first of the
// search_path, with unqualified names in the Repository.
func TestMigrateSearchPath(t *testing.T) {
	t.Parallel()
	schema := fmt.Sprintf("audit_search_path_%d", os.Getpid())
	cfg := mustPool(t).Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 2
	ctx := context.Background()
	p, err := newPoolConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = mustPool(t).Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") }()
	if err := Migrate(ctx, p, ""); err != nil {
		t.Fatal(err)
	}
	r := NewRepository(p)
	defer r.Close()
	l := makeLog("search-path")
	if err := r.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs").Scan(&n); err != nil || n != 1 {
		t.Errorf("logs in %s.audit_logs: got %d, %v; want 1", schema, n, err)
	}
	if _, err := Purge(ctx, p, "", testTime); err != nil {
		t.Errorf("Purge: %v", err)
	}
}

// TestMigrateAsSchemaOwner migrates as a role that owns its schema but may
// not create schemas, as production roles often are.
func TestMigrateAsSchemaOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := mustPool(t)
	schema := fmt.Sprintf("audit_owned_%d", os.Getpid())
	owner := schema + "_owner"
	createRoles(t, owner) // DROP OWNED BY drops the schema too
	if _, err := p.Exec(ctx, "CREATE SCHEMA "+schema+" AUTHORIZATION "+owner); err != nil {
		t.Fatal(err)
	}
	cfg := p.Config().Copy()
	cfg.ConnConfig.RuntimeParams["role"] = owner
	cfg.MaxConns = 2
	op, err := newPoolConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for range 2 {
		if err := Migrate(ctx, op, schema); err != nil {
			t.Fatalf("Migrate as the schema's owner: %v", err)
		}
	}
	r := NewRepository(op, WithSchema(schema))
	defer r.Close()
	l := makeLog("owned")
	if err := r.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, op, schema+"_other"); err == nil {
		t.Error("Migrate of a new schema as a role that may not create schemas succeeded")
	}
}

// TestMigrateInTx migrates in the caller's transaction: Migrate and
// MigrateDown run in a savepoint, set search_path only while they run, and
// leave the caller's search_path as it was.
func TestMigrateInTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := mustPool(t)
	schema := fmt.Sprintf("audit_in_tx_%d", os.Getpid())
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	searchPath := func() string {
		t.Helper()
		var sp string
		if err := tx.QueryRow(ctx, "SHOW search_path").Scan(&sp); err != nil {
			t.Fatal(err)
		}
		return sp
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO pg_catalog, public"); err != nil {
		t.Fatal(err)
	}
	want := searchPath()
	steps := []struct {
		name string
		f    func() error
	}{
		{"Migrate", func() error { return Migrate(ctx, tx, schema) }},
		{"Migrate again", func() error { return Migrate(ctx, tx, schema) }},
		{"MigrateDown", func() error { return MigrateDown(ctx, tx, schema) }},
		{"Migrate after MigrateDown", func() error { return Migrate(ctx, tx, schema) }},
	}
	for _, step := range steps {
		if err := step.f(); err != nil {
			t.Fatalf("%s in a transaction: %v", step.name, err)
		}
		if got := searchPath(); got != want {
			t.Fatalf("search_path after %s in a transaction: got %q, want the caller's, %q", step.name, got, want)
		}
	}
	// The migration is the caller's to commit.
	if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".audit_logs (id, source, action, actor_type, created_at) VALUES ('x', 's', 'a', 'user', now())"); err != nil {
		t.Fatalf("writing to the table migrated in the transaction: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs").Scan(&n); err != nil || n != 1 {
		t.Errorf("logs after commit: got %d, %v; want 1", n, err)
	}
}

// TestMigrateConcurrentIsolation starts 20 replicas at once, each calling
// Migrate, with each level of default_transaction_isolation a server or
// role may have, on a new schema and on one to upgrade: every Migrate
// succeeds, and each migration is applied once.
func TestMigrateConcurrentIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		level string
		from  int // the version the schema is at; 0: no schema
	}{
		{"read committed", 0}, {"repeatable read", 0}, {"serializable", 0},
		{"repeatable read", 1}, {"serializable", 1},
	} {
		level := tt.level
		// One level after the other: 20 connections at a time.
		schema := fmt.Sprintf("audit_isolation_%d_%s_%d", os.Getpid(), strings.ReplaceAll(level, " ", "_"), tt.from)
		t.Cleanup(func() { _, _ = mustPool(t).Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
		if tt.from > 0 {
			if err := migrate(ctx, mustPool(t), schema, tt.from); err != nil {
				t.Fatal(err)
			}
		}
		cfg := mustPool(t).Config().Copy()
		cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
		cfg.MaxConns = 20
		p, err := newPoolConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 20)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = Migrate(ctx, p, schema) })
		}
		wg.Wait()
		p.Close()
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
				t.Logf("%s: Migrate: %v", level, err)
			}
		}
		if failed > 0 {
			t.Errorf("%s, from version %d: %d of %d concurrent Migrate calls failed, want none", level, tt.from, failed, len(errs))
		}
		var n int
		if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_schema_migrations").Scan(&n); err != nil || n != len(want) {
			t.Errorf("%s: migrations applied: got %d, %v; want %d", level, n, err, len(want))
		}
	}
}
