package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// firstYear is the start of the year 1, before any time a log may have.
var firstYear = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)

// PurgeChunk is how many logs Purge deletes per transaction.
const PurgeChunk = 10000

// DefaultPurgeMinAge is the minimum age of the logs that Purge, or any
// call of the audit_logs_purge function, may delete, as Migrate sets it:
// 30 days. The owner of the audit_retention table (the role that ran
// Migrate) may change it, and no other role.
//
// A log's age is counted from its CreatedAt, the time the log says the
// event happened, not from when the row was stored: a log written today
// with an older CreatedAt (an import, Logger.Record of an old event) may
// be purged as soon as that CreatedAt is old enough. The guard keeps the
// recent trail; a role that can write logs with any CreatedAt can only
// write logs, which the trigger then keeps from being changed.
const DefaultPurgeMinAge = 30 * 24 * time.Hour

// ErrCutoffTooRecent is returned by Purge when its cutoff would delete
// logs younger than the minimum age that audit_retention holds (see
// DefaultPurgeMinAge).
var ErrCutoffTooRecent = errors.New("postgres audit: purge cutoff is more recent than the minimum age allows")

// The SQLSTATEs of audit_logs_purge's own errors, in a class that
// PostgreSQL leaves to applications: a cutoff younger than the minimum
// age, and a purge whose own log was not stored.
const (
	cutoffTooRecent = "SA001"
	purgeNotLogged  = "SA002"
)

// Purge deletes the logs of schema created before cutoff, and returns how
// many it deleted. It is the retention path, and the only way logs leave
// the table: UPDATE, DELETE and TRUNCATE of audit_logs are rejected by a
// trigger, except for DELETE run by the table's owner inside the
// audit_logs_purge function that Migrate creates, which Purge calls.
//
// The function keeps every log younger than a minimum age: a cutoff later
// than the server's clock minus that age fails with an error wrapping
// ErrCutoffTooRecent (SQLSTATE SA001), and deletes nothing. The age is
// counted in 24-hour days, whatever the session's TimeZone. Migrate sets the age to
// DefaultPurgeMinAge, and only the table's owner may change it:
//
//	UPDATE audit_retention SET min_age = interval '400 days';
//
// Each call of the function writes, in the transaction of its DELETE, an
// audit log of itself: source "audit_logs_purge", action
// "audit.logs.purged", actor {Type: "system"}, and metadata "cutoff" (the
// cutoff, RFC 3339 in UTC with six fractional digits, as compared: rounded
// up to a microsecond) and "count" (how many logs it deleted, in
// decimal). So the trail tells what retention removed, and a purge that
// deletes nothing still leaves its log. If that log is not stored (a
// trigger dropped it), the call fails, with SQLSTATE SA002, and deletes
// nothing.
//
// Purge deletes oldest first, PurgeChunk logs per call of the function,
// each in its own transaction with its own log, so that it neither holds
// locks for long nor builds one huge transaction; if ctx ends, what was
// deleted stays deleted. A cutoff before the year 1 deletes nothing, and
// Purge then calls nothing. An empty schema means the search_path's, as
// for Migrate.
//
// audit_logs_purge runs with the rights of the role that ran Migrate
// (SECURITY DEFINER), and PUBLIC may not execute it. Run retention as
// that role, or GRANT EXECUTE ON FUNCTION audit_logs_purge(timestamptz,
// integer) to the role of the retention job; the service's own role needs
// only INSERT and SELECT on audit_logs (see the README for the roles).
func Purge(ctx context.Context, db DB, schema string, cutoff time.Time) (int64, error) {
	fn := pgx.Identifier{"audit_logs_purge"}
	if schema != "" {
		fn = pgx.Identifier{schema, "audit_logs_purge"}
	}
	if cutoff.Before(firstYear) {
		return 0, nil // nothing is older
	}
	var arg any = ceilMicro(cutoff)
	if !cutoff.Before(maxTime) {
		arg = pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true} // refused, as any time to come
	}
	sql := "SELECT " + fn.Sanitize() + "($1, $2)"
	var total int64
	for {
		var n int64
		if err := db.QueryRow(ctx, sql, arg, PurgeChunk).Scan(&n); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == cutoffTooRecent {
				err = fmt.Errorf("%w: %w", ErrCutoffTooRecent, err)
			}
			return total, fmt.Errorf("postgres audit: purge before %s: %w", cutoff.Format(time.RFC3339Nano), err)
		}
		total += n
		if n < PurgeChunk {
			return total, nil
		}
	}
}
