package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// PurgeChunk is how many logs Purge deletes per transaction.
const PurgeChunk = 10000

// Purge deletes the logs of schema created before cutoff, and returns how
// many it deleted. It is the retention path, and the only way logs leave
// the table: UPDATE, DELETE and TRUNCATE of audit_logs are rejected by a
// trigger, except for DELETE run by the table's owner inside the
// audit_logs_purge function that Migrate creates, which Purge calls.
//
// Purge deletes oldest first, PurgeChunk logs per call of the function,
// each in its own transaction, so that it neither holds locks for long nor
// builds one huge transaction; if ctx ends, what was deleted stays
// deleted. An empty schema means the search_path's, as for Migrate.
//
// audit_logs_purge runs with the rights of the role that ran Migrate
// (SECURITY DEFINER), and PUBLIC may not execute it. Run retention as
// that role, or GRANT EXECUTE ON FUNCTION audit_logs_purge(timestamptz,
// integer) to the role of the retention job; the service's own role needs
// only INSERT and SELECT on audit_logs.
func Purge(ctx context.Context, db DB, schema string, cutoff time.Time) (int64, error) {
	fn := pgx.Identifier{"audit_logs_purge"}
	if schema != "" {
		fn = pgx.Identifier{schema, "audit_logs_purge"}
	}
	if !cutoff.After(minTime) {
		return 0, nil // nothing is older
	}
	var arg any = ceilMicro(cutoff)
	if !cutoff.Before(maxTime) {
		arg = pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true} // everything
	}
	sql := "SELECT " + fn.Sanitize() + "($1, $2)"
	var total int64
	for {
		var n int64
		if err := db.QueryRow(ctx, sql, arg, PurgeChunk).Scan(&n); err != nil {
			return total, fmt.Errorf("postgres audit: purge before %s: %w", cutoff.Format(time.RFC3339Nano), err)
		}
		total += n
		if n < PurgeChunk {
			return total, nil
		}
	}
}
