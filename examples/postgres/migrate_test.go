package postgres

import (
	"context"
	"fmt"
	"os"
	"slices"
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
	if err != nil || !slices.Equal(versions, []int{1}) {
		t.Fatalf("applied versions: got %v, %v; want [1]", versions, err)
	}

	wantIndexes := []string{
		"audit_logs_created_idx",
		"audit_logs_metadata_idx",
		"audit_logs_org_created_idx",
		"audit_logs_pkey",
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
		WHERE n.nspname = $1 AND c.relname LIKE 'audit_logs%'`, schema).Scan(&n); err != nil || n != 0 {
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
	if _, err := p.Exec(ctx, "CREATE ROLE "+owner+" NOLOGIN; CREATE SCHEMA "+schema+" AUTHORIZATION "+owner); err != nil {
		t.Skipf("cannot create roles on this server (tests need CREATEROLE for this one): %v", err)
	}
	t.Cleanup(func() {
		if _, err := p.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE; DROP OWNED BY "+owner+"; DROP ROLE "+owner); err != nil {
			t.Errorf("dropping %s: %v", owner, err)
		}
	})
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
