// Package postgres is an audit.Repository on PostgreSQL, written to be
// copied into a service: migrations, an append-only table, keyset
// pagination in SQL, group commit for throughput, COPY for bulk imports and
// an explicit retention path.
//
// # Wiring
//
// At start-up, migrate, then make the Repository and the Logger; at
// shutdown, close them in the opposite order:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	...
//	if err := postgres.Migrate(ctx, pool, ""); err != nil { ... }
//	repo := postgres.NewRepository(pool)
//	logger := audit.NewLogger(repo, audit.WithSource("frontier"))
//	...
//	logger.Close(ctx)
//	repo.Close()
//	pool.Close()
//
// # Schema
//
// Migrate creates the audit_logs table in a schema (by default the first
// of the search_path). Every field that Filter matches exactly is a column
// of its own (actor and target flattened into actor_id, actor_type, ...),
// so it is typed, compared with plain equality and indexable with a
// btree; metadata, free-form, is jsonb and matched with @> through a GIN
// index (jsonb_path_ops). Identifiers use the "C" collation, so that
// PostgreSQL orders IDs bytewise, as Go compares strings and as cursors
// expect. CreatedAt is a timestamptz, stored in UTC truncated to
// microseconds.
//
// Indexes: the primary key on id; (org_id, created_at DESC, id DESC) for
// one org's logs, newest first, and its keyset pages; (created_at DESC,
// id DESC) for services without tenants, listing across orgs and
// retention; and the GIN index on metadata.
//
// # Append-only and retention
//
// A statement trigger rejects UPDATE, DELETE and TRUNCATE of audit_logs,
// whatever the privileges of the role that runs them, with SQLSTATE 42501
// (insufficient_privilege). Logs leave the table only through Purge, which
// calls the audit_logs_purge function: the function sets a flag for its own
// transaction and deletes logs older than a cutoff, oldest first, in
// chunks. The trigger lets a DELETE through only with that flag set and run
// as the table's owner, as the function (SECURITY DEFINER) runs it, so a
// role granted DELETE that sets the flag itself is still refused; the owner
// could do the same, as it could drop the trigger. The function keeps
// every log younger than a minimum age (DefaultPurgeMinAge unless the
// owner changes it in the audit_retention table), and each call of it
// writes an audit log of itself in the transaction of its DELETE (see
// Purge). The README lists the grants that are safe, and those that are
// not: a role granted TRIGGER on the table, which ALL includes, can
// rewrite every new log.
//
// # Group commit
//
// A COMMIT waits for the write-ahead log to reach the disk, so one INSERT
// per log spends most of its time waiting for a flush. Create instead
// hands its log to a writer goroutine and waits: the writer writes all the
// logs waiting at that moment, and those of the callers it expects back,
// with binary COPY and one commit, and tells each caller its own outcome.
// See Create for what callers can rely on, WithMaxWait and WithWriters for
// tuning, and CreateBatch for imports.
//
// # When a write fails
//
// An error of Create or CreateBatch means that the log is not stored,
// unless it wraps one of these:
//
//   - audit.ErrMaybeStored: the outcome is unknown. The message that
//     would commit the log went out whole, and the answer never came: the
//     connection was lost, the server ended the session, or
//     WithWriteTimeout passed while the commit waited, for a synchronous
//     standby say. Or the caller's ctx ended once group commit had taken
//     the log, which may or may not have been sent yet. Or a statement
//     committed without the log, and what became of it could not be found
//     out (see ErrNotStored). The log may be stored already, or later,
//     when that commit completes. The safe retry is audit.Logger.Record
//     with the same log, so the same ID: an error wrapping
//     audit.ErrAlreadyExists then means that the first attempt stored it. A retry through
//     audit.Logger.Log would make a new ID, and a second event. (Retry
//     CreateBatch with the same logs, which it stores all or none.)
//   - audit.ErrAlreadyExists: a log with that ID is stored.
//
// Timeouts wrap context.DeadlineExceeded, with or without
// audit.ErrMaybeStored. A log that the server accepted and a trigger
// dropped (a BEFORE INSERT trigger that returns NULL) fails with
// ErrNotStored: the row counts the server reports are checked. An error
// that one log can cause (a value that a CHECK, a trigger or an index a
// DBA added refuses: SQLSTATE classes 22, 23, 54, P0 and a few more) fails
// that log alone in group commit, never its neighbors in the batch, which
// is written again in halves to find it, and so do two or more bad logs in
// a batch; an error about the connection or the server fails the whole
// batch. Finding k bad logs in a batch of N takes at most 2*k*ceil(log2(N))
// + 2 statements, and narrowing never spends more than 2*ceil(log2(N)) + 8
// per bad log found, plus as many. It stops early only when the batch looks
// refused wholesale (every row refused, by a NOT NULL column a DBA added
// say): once it has found 8 bad logs, they outnumber the logs it has
// written, and the largest group not yet written fails too when tried
// whole, which takes at most ceil(log2(N)) + 16 statements when every log
// fails; the logs not yet written then fail with the server's last error.
//
// Rules on INSERT into audit_logs (CREATE RULE ... DO INSTEAD) are not
// supported: COPY, which writes group commit's batches, ignores them,
// while INSERT, which writes a lone log and the logs of a batch that
// failed, follows them. Use a trigger.
//
// # Lists
//
// List turns every Filter field into SQL, pages by keyset (never OFFSET),
// and is planned for each call's values, so that a page is a short range
// scan of one index whatever the size of the table.
//
// Keyset pages never return a log twice, and logs written during a
// listing do not shift its pages. But CreatedAt is set when a log is
// logged, and the log is visible only once its batch commits: up to the
// time its caller waits for Create (audit.Logger's timeout) plus
// WithWriteTimeout later. Replicas' clocks differ, too. So a log can
// appear whose CreatedAt is older than pages already read: a reader that
// follows the newest logs must overlap its windows by the Logger's timeout
// plus WithWriteTimeout plus the clock skew between replicas, and drop the
// logs whose ID it has already seen. A log whose store ended with
// audit.ErrMaybeStored can appear later still, when the commit it waited
// for completes; no window covers that.
package postgres
