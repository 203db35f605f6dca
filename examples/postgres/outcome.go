package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

// What a failed write means for its logs. Every error of a write falls in
// one of three kinds, and each log gets the kind that is true of it:
//
//   - The log is certainly not stored: nothing that could commit it
//     reached the server (no connection, a statement that could not be
//     prepared, a COPY whose last CopyDone was not sent, a transaction
//     whose COMMIT was not sent), or the server answered with an ERROR,
//     which rolls back the transaction it ended.
//   - The outcome is unknown: the message that would commit the log went
//     out whole (a batch's last CopyDone, a lone INSERT, a COMMIT), and
//     then the answer was lost (the connection reset, the deadline passed
//     while a commit waited for a synchronous standby), or the server
//     ended the session with FATAL, which it also does to a commit that it
//     has made locally and is waiting to replicate; or a statement that
//     committed left out the log, and what became of it could not be
//     found out; or the caller's ctx ended once the writer had taken the
//     log (Create). The error wraps audit.ErrMaybeStored.
//   - The server accepted the row and did not store it (ErrNotStored).

// ErrNotStored is returned when the server accepted a log's row and did
// not store it in audit_logs: a BEFORE INSERT trigger returned NULL for
// it, which is how triggers filter or route rows. The log is not in the
// table, and writing it again meets the same fate until the trigger
// changes.
//
// It is returned only when the server said it stored no row for the log
// (a lone INSERT, or a group's, that stored none), or when, after a
// statement that stored fewer rows than it was sent, no row holds the
// log's ID and the counts leave no row stored under another ID (a trigger
// may change a row's ID). A log stored changed by a trigger is stored.
// When the ID of a dropped log is held by an earlier log, an INSERT ...
// ON CONFLICT, which did not store that row, says audit.ErrAlreadyExists,
// and a COPY, whose counts cannot tell that row from one a trigger
// changed as the COPY stored it, says audit.ErrMaybeStored; so does a log
// whose ID no row holds when a trigger both dropped rows and stored some
// under other IDs. Either way the safe retry, with the same ID, answers
// audit.ErrAlreadyExists.
var ErrNotStored = errors.New("postgres audit: row not stored by the server")

// uniqueViolation is the SQLSTATE of a duplicate key, and primaryKey the
// constraint of audit_logs that makes an ID a duplicate.
const (
	uniqueViolation = "23505"
	primaryKey      = "audit_logs_pkey"
)

// duplicateID reports whether err is the server's refusal of an ID that
// is already stored. A unique index a DBA added fails with the same
// SQLSTATE, and is a row error like any other.
func duplicateID(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == primaryKey
}

// notSupported reports whether err is the server refusing a statement as
// a whole (SQLSTATE 0A000, feature not supported), rows unseen: a COPY
// into the table where row-level security applies to the role, or an
// INSERT ... ON CONFLICT on a table with INSERT rules. A plain INSERT may
// still write the rows (see insertChecked).
func notSupported(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000" && !fatal(pgErr)
}

// rowError reports whether err is one that a single row can cause, which
// writing the rows in smaller groups narrows down to the rows at fault.
// The SQLSTATE classes:
//
//   - 22 data exception (a value out of range, a character the server's
//     encoding lacks) and 23 integrity constraint violation (a CHECK, a
//     unique index a DBA added);
//   - 54 program limit exceeded: a value too large for an index on an
//     expression over it, say metadata->>'request_id';
//   - errors raised by code that a DBA runs on each row, in a trigger or
//     in a CHECK: P0 (PL/pgSQL, RAISE EXCEPTION), 09 triggered action, 21
//     cardinality violation, 27 triggered data change, 2F SQL routine, 38
//     and 39 external routine, 44 WITH CHECK OPTION;
//   - 42501, insufficient privilege, when rls is set: the server refused to
//     COPY into the table because row-level security applies to the role
//     (notSupported), which it says after it has checked the role's INSERT
//     privilege, so 42501 is a policy refusing a row. No message is read:
//     the server writes them in its lc_messages.
//
// Any other error is about the statement, the role, the connection or the
// server as a whole (08 connection, 25 read-only, 40 serialization or
// deadlock, 42 privilege or undefined object, 53 out of connections or
// disk, 55 lock not available, 57 canceled or shutting down, 58 and XX
// system and internal errors): every row of the statement shares it, and
// so does every log of the batch. An error that ends the session (FATAL)
// is never one row's.
func rowError(err error, rls bool) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 || fatal(pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "09", "21", "22", "23", "27", "2F", "38", "39", "44", "54", "P0":
		return true
	}
	return rls && pgErr.Code == "42501"
}

// fatal reports whether the server ended the session with the error.
func fatal(pgErr *pgconn.PgError) bool {
	severity := pgErr.SeverityUnlocalized
	if severity == "" { // servers before 9.6
		severity = pgErr.Severity
	}
	return severity == "FATAL" || severity == "PANIC"
}

// outcomeUnknown reports whether err, returned by pgx for a statement that
// commits on its own (or a COMMIT), leaves it unknown whether the
// statement committed: pgx did not fail before sending, and the server did
// not answer with an ERROR.
func outcomeUnknown(err error) bool {
	if err == nil || pgconn.SafeToRetry(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fatal(pgErr)
	}
	return true
}

// commitUnknown reports whether err, returned by pgx.Tx.Commit, leaves it
// unknown whether the transaction committed. pgx sends COMMIT with the
// simple protocol, which reports a connection lost while it waits for the
// answer as "conn closed", an error it says is safe to retry; so the only
// errors taken to mean that nothing committed are the server's ERROR, a
// COMMIT that rolled back, and ctx ending before the COMMIT was sent.
func commitUnknown(err error) bool {
	var pgErr *pgconn.PgError
	switch {
	case err == nil, errors.Is(err, pgx.ErrTxCommitRollback):
		return false
	case errors.As(err, &pgErr):
		return fatal(pgErr)
	case pgconn.SafeToRetry(err):
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return true
}

// copyOutcome returns what copyIn returns for an exchange: the rows
// inserted, or an error, which wraps audit.ErrMaybeStored only when the
// last CopyDone went out and the server's answer never came, or ended the
// session. An error of ctx's deadline wraps context.DeadlineExceeded.
func copyOutcome(ctx context.Context, ex copyExchanged) (int64, error) {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(ex.err, &pgErr) && (!fatal(pgErr) || ex.refusedEarly):
		// The server's ERROR rolled the transaction back, and an error
		// that came before the last CopyDone went out ended a transaction
		// that could not commit; either says more than a failure to send
		// the rest.
		return 0, ex.err
	case ex.sendErr != nil:
		// The last CopyDone did not go out, so the server cannot have
		// committed.
		return 0, timedOut(ctx, ex.sendErr)
	case ex.err != nil:
		// Everything went out and the answer was lost, or the session
		// ended with FATAL, which the server also sends to a commit it
		// made locally and was waiting to replicate.
		return 0, maybeStored(timedOut(ctx, ex.err))
	}
	return ex.rows, nil
}

// maybeStored returns err wrapped in audit.ErrMaybeStored.
func maybeStored(err error) error {
	return &maybeStoredError{err: err}
}

// maybeStoredError is an error after which the outcome is unknown.
type maybeStoredError struct{ err error }

func (e *maybeStoredError) Error() string { return audit.ErrMaybeStored.Error() + ": " + e.err.Error() }

func (e *maybeStoredError) Unwrap() []error { return []error{audit.ErrMaybeStored, e.err} }

// cause returns err without the audit.ErrMaybeStored that maybeStored
// wrapped it in, for the logs that were never sent.
func cause(err error) error {
	var m *maybeStoredError
	if errors.As(err, &m) {
		return m.err
	}
	return err
}

// timedOut returns err, an error of a connection whose deadline was set
// from ctx's, wrapped in context.DeadlineExceeded when it is that
// deadline's: callers test for the deadline of their context, not for the
// connection's.
func timedOut(ctx context.Context, err error) error {
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}
