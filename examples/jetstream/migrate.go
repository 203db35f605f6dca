package jetstream

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/examples/postgres"
)

// positionsTable records, per partition stream, the sequence of the last
// message the projection applied. The Projector advances it in the same
// statement that inserts the batch's rows, so rows and position commit
// together or not at all.
const positionsTable = "audit_jetstream_positions"

// Migrate prepares schema for the projection: it runs postgres.Migrate,
// which creates the audit_logs table that List and GetByID read, then
// creates the audit_jetstream_positions table. It is idempotent and safe
// when several processes start at once. An empty schema means the first
// schema of the search_path, as for postgres.Migrate.
func Migrate(ctx context.Context, db postgres.DB, schema string) (err error) {
	if err := postgres.Migrate(ctx, db, schema); err != nil {
		return err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("jetstream audit: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	h := fnv.New64a()
	h.Write([]byte("github.com/raystack/salt/examples/jetstream migrations\x00" + schema))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("jetstream audit: migrate: %w", err)
	}
	_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+qualified(schema, positionsTable)+` (
		stream     text COLLATE "C" PRIMARY KEY,
		seq        bigint NOT NULL CHECK (seq >= 0),
		updated_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return fmt.Errorf("jetstream audit: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("jetstream audit: migrate: %w", err)
	}
	return nil
}

// qualified returns the SQL name of table in schema; an empty schema
// leaves it unqualified.
func qualified(schema, table string) string {
	if schema == "" {
		return pgx.Identifier{table}.Sanitize()
	}
	return pgx.Identifier{schema, table}.Sanitize()
}
