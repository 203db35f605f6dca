// Package pgtest holds what the tests of the PostgreSQL example share:
// the pool of the server they run against, tampering as the tables'
// owner, and logs as a service writes them. Only tests import it.
package pgtest

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

var (
	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
)

// Pool returns the pool of 16 connections that the tests of a package
// share, connected to DATABASE_URL. Without DATABASE_URL the test fails,
// naming the script that starts a throwaway server.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		tb.Fatal("DATABASE_URL is not set: these tests need a PostgreSQL server; run them through " +
			"scripts/with-postgres.sh, e.g. from the repository's root: " +
			"./scripts/with-postgres.sh bash -c 'cd examples/postgres && go test ./...'")
	}
	poolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			poolErr = err
			return
		}
		cfg.MaxConns = 16
		if pool, poolErr = pgxpool.NewWithConfig(ctx, cfg); poolErr == nil {
			if poolErr = pool.Ping(ctx); poolErr != nil {
				pool.Close()
			}
		}
	})
	if poolErr != nil {
		tb.Fatalf("connecting to DATABASE_URL: %v", poolErr)
	}
	return pool
}

// Close closes the shared pool, if Pool opened it; TestMain calls it.
func Close() {
	if pool != nil && poolErr == nil {
		pool.Close()
	}
}

// Tamper runs sql in schema as the tables' owner, with the append-only
// triggers of audit_logs and (if it exists) audit_seals disabled for the
// statement, as whoever owns the tables, or a superuser, can.
func Tamper(tb testing.TB, db *pgxpool.Pool, schema, sql string, args ...any) {
	tb.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	triggers := []string{"audit_logs", "audit_logs_append_only"}
	var seals bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, "audit_seals"}.Sanitize()).Scan(&seals); err != nil {
		tb.Fatal(err)
	}
	if seals {
		triggers = append(triggers, "audit_seals", "audit_seals_append_only")
	}
	toggle := func(how string) {
		for i := 0; i < len(triggers); i += 2 {
			q := "ALTER TABLE " + pgx.Identifier{schema, triggers[i]}.Sanitize() + " " + how + " TRIGGER " + triggers[i+1]
			if _, err := tx.Exec(ctx, q); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	toggle("DISABLE")
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	toggle("ENABLE")
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

// BenchLogs returns n logs as a service's Logger makes them: UUIDv7 IDs,
// the current time, an org, an actor, a target and four metadata keys.
func BenchLogs(n int) []audit.Log {
	logs := make([]audit.Log, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range logs {
		logs[i] = audit.Log{
			ID:     uuid.Must(uuid.NewV7()).String(),
			OrgID:  "org-" + strconv.Itoa(i%20),
			Source: "frontier",
			Action: "app.project.updated",
			Actor:  audit.Actor{ID: "user-" + strconv.Itoa(i%500), Type: audit.ActorTypeUser, Name: "Ada Lovelace"},
			Target: audit.Target{ID: "project-" + strconv.Itoa(i%2000), Type: "project", Name: "Analytical Engine"},
			Metadata: map[string]string{
				audit.MetadataRequestID: uuid.NewString(),
				audit.MetadataIP:        "192.0.2." + strconv.Itoa(i%256),
				audit.MetadataUserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
				audit.MetadataOutcome:   audit.OutcomeSuccess,
			},
			CreatedAt: now.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return logs
}
