package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what Migrate, MigrateDown and Purge need from a database handle.
// *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered step of the schema, with the SQL that applies
// it and the SQL that reverts it.
type migration struct {
	version  int
	name     string
	up, down string
}

// migrations returns the embedded migrations, in order. Files are named
// NNNN_name.up.sql and NNNN_name.down.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*migration{}
	for _, e := range entries {
		name := e.Name()
		base, dir, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), ".")
		num, label, ok2 := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil || (dir != "up" && dir != "down") {
			return nil, fmt.Errorf("postgres audit: unexpected migration file %q", name)
		}
		b, err := fs.ReadFile(migrationFiles, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &migration{version: v, name: label}
			byVersion[v] = m
		}
		if dir == "up" {
			m.up = string(b)
		} else {
			m.down = string(b)
		}
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.up == "" || m.down == "" {
			return nil, fmt.Errorf("postgres audit: migration %d lacks its up or down file", m.version)
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// Migrate brings the audit schema in schema up to date: it creates the
// schema if needed, then the audit_logs table, its indexes, the trigger
// that keeps it append-only, the audit_logs_purge function and the
// audit_retention table that holds the minimum age of the logs it may
// delete (see Purge).
// An empty schema means the first schema of the search_path, usually
// public.
//
// Call it at start-up, before NewRepository. It is idempotent: the applied
// migrations are recorded in the audit_schema_migrations table of the
// schema, and only the missing ones run. Everything runs in one
// transaction, under an advisory lock, so several replicas starting at
// once apply each migration exactly once, whatever the server's
// default_transaction_isolation: the transaction runs at READ COMMITTED,
// so that each replica sees what the one before it committed. The role
// that runs it owns the tables and the purge function; keep them owned by
// one role, as the append-only trigger lets a DELETE through only when
// the table's owner runs it inside the purge function, and only the owner
// may change the retention settings.
//
// db may be a pgx.Tx: Migrate then runs in a savepoint of it, and leaves
// the transaction's search_path as it found it. That transaction keeps
// its own isolation level: at REPEATABLE READ or SERIALIZABLE, a Migrate
// of the same schema that commits while it runs makes it fail, and the
// caller retries, as after any serialization failure.
func Migrate(ctx context.Context, db DB, schema string) error {
	return migrate(ctx, db, schema, math.MaxInt)
}

// migrate applies the missing migrations up to version last.
func migrate(ctx context.Context, db DB, schema string, last int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return inMigration(ctx, db, schema, func(tx pgx.Tx, applied []int) error {
		for _, m := range ms {
			if m.version > last || slices.Contains(applied, m.version) {
				continue
			}
			if _, err := tx.Exec(ctx, m.up); err != nil {
				return fmt.Errorf("postgres audit: migration %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO audit_schema_migrations (version) VALUES ($1)", m.version); err != nil {
				return fmt.Errorf("postgres audit: recording migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// MigrateDown reverts every applied migration in schema, newest first: it
// drops the audit_logs table with all its logs, the trigger and the
// functions. It leaves the schema and the empty audit_schema_migrations
// table. It is idempotent, and meant for development and for removing the
// package, not for production rollbacks.
func MigrateDown(ctx context.Context, db DB, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return inMigration(ctx, db, schema, func(tx pgx.Tx, applied []int) error {
		for _, m := range slices.Backward(ms) {
			if !slices.Contains(applied, m.version) {
				continue
			}
			if _, err := tx.Exec(ctx, m.down); err != nil {
				return fmt.Errorf("postgres audit: reverting migration %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM audit_schema_migrations WHERE version = $1", m.version); err != nil {
				return fmt.Errorf("postgres audit: recording revert of migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// inMigration runs fn in a transaction that holds the schema's migration
// lock, with search_path set to the schema, and with the versions already
// applied there.
//
// The search_path is set with SET LOCAL, which outlives a savepoint: when
// db is a pgx.Tx, the caller's transaction would keep it. So inMigration
// puts back the search_path it found before it commits (on failure, the
// savepoint's rollback undoes the SET LOCAL by itself).
func inMigration(ctx context.Context, db DB, schema string, fn func(tx pgx.Tx, applied []int) error) (err error) {
	tx, err := begin(ctx, db)
	if err != nil {
		return fmt.Errorf("postgres audit: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if schema == "" {
		var cur *string
		if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&cur); err != nil {
			return fmt.Errorf("postgres audit: migrate: %w", err)
		}
		if cur == nil {
			return errors.New("postgres audit: migrate: no schema of the search_path exists; name one")
		}
		schema = *cur
	}
	ident := pgx.Identifier{schema}.Sanitize()
	var searchPath string
	if err := tx.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&searchPath); err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema)); err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
	// the schema exists, which a role that owns only its schema lacks.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
			return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
		}
	}
	for _, q := range []string{
		"SET LOCAL search_path TO " + ident + ", pg_temp",
		`CREATE TABLE IF NOT EXISTS audit_schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
		}
	}
	rows, err := tx.Query(ctx, "SELECT version FROM audit_schema_migrations")
	if err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	if err := fn(tx, applied); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", searchPath); err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres audit: migrate schema %s: %w", ident, err)
	}
	return nil
}

// begin starts the migration's transaction, at READ COMMITTED when db can
// say so. The migration lock serializes migrations only if each statement
// after it sees what the migration before it committed: at REPEATABLE
// READ or SERIALIZABLE (a server's or a role's default_transaction_-
// isolation), the snapshot is taken by the first statement, before the
// lock is granted, and concurrent replicas would all find the schema
// missing and the migrations unapplied. *pgxpool.Pool and *pgx.Conn
// begin with options; a pgx.Tx is the caller's, at the caller's level.
func begin(ctx context.Context, db DB) (pgx.Tx, error) {
	if b, ok := db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		return b.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	}
	return db.Begin(ctx)
}

// lockKey is the advisory lock that serializes migrations of one schema.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("github.com/raystack/salt/audit migrations\x00" + schema))
	return int64(h.Sum64())
}
