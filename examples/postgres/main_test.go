package postgres

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// The tests run against the PostgreSQL server of DATABASE_URL; each
// repository gets a schema of its own, dropped when its test ends. Without
// DATABASE_URL they fail: run them through scripts/with-postgres.sh, which
// starts a throwaway server.

var schemaN atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	runAtExit()
	pgtest.Close()
	if benchReport != nil {
		benchReport()
	}
	os.Exit(code)
}

// mustPool returns the pool shared by the tests, connected to DATABASE_URL.
func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return pgtest.Pool(tb)
}

func newPool(url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	return newPoolConfig(cfg)
}

func newPoolConfig(cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// newSchema returns the name of a new schema holding a migrated audit_logs
// table, dropped at the end of the test.
func newSchema(tb testing.TB) string {
	tb.Helper()
	p := mustPool(tb)
	schema := fmt.Sprintf("audit_test_%d_%d", os.Getpid(), schemaN.Add(1))
	ctx := context.Background()
	if err := Migrate(ctx, p, schema); err != nil {
		tb.Fatalf("Migrate(%q): %v", schema, err)
	}
	tb.Cleanup(func() {
		if _, err := p.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// newRepo returns a Repository on a new schema, closed at the end of the
// test.
func newRepo(tb testing.TB, opts ...Option) (*Repository, string) {
	tb.Helper()
	schema := newSchema(tb)
	r := NewRepository(mustPool(tb), append([]Option{WithSchema(schema)}, opts...)...)
	tb.Cleanup(func() { _ = r.Close() })
	return r, schema
}

// createRoles creates roles that cannot log in, dropped with what they own
// at the end of the test. The tests of privileges need them: DATABASE_URL's
// role must have CREATEROLE (scripts/with-postgres.sh connects as a
// superuser). They fail rather than skip without it, so that a run that
// checked no privilege does not pass.
func createRoles(tb testing.TB, roles ...string) {
	tb.Helper()
	p := mustPool(tb)
	ctx := context.Background()
	for _, role := range roles {
		if _, err := p.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN"); err != nil {
			tb.Fatalf("creating role %s: %v; the tests of privileges need DATABASE_URL's role to have CREATEROLE "+
				"(scripts/with-postgres.sh connects as a superuser)", role, err)
		}
		tb.Cleanup(func() {
			ident := pgx.Identifier{role}.Sanitize()
			if _, err := p.Exec(ctx, "DROP OWNED BY "+ident+"; DROP ROLE "+ident); err != nil {
				tb.Errorf("dropping role %s: %v", role, err)
			}
		})
	}
}

// exec runs sql on the shared pool with search_path set to schema.
func exec(tb testing.TB, schema, sql string, args ...any) error {
	tb.Helper()
	ctx := context.Background()
	tx, err := mustPool(tb).Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// makeLog returns a valid log with the given ID.
func makeLog(id string) audit.Log {
	return audit.Log{
		ID:     id,
		OrgID:  "org-1",
		Source: "frontier",
		Action: "app.user.created",
		Actor:  audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "Ada"},
		Target: audit.Target{ID: "u-2", Type: "user", Name: "grace@example.com"},
		Metadata: map[string]string{
			audit.MetadataRequestID: "req-1",
			audit.MetadataIP:        "192.0.2.1",
		},
		CreatedAt: testTime,
	}
}
