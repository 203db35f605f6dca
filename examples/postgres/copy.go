package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

// CreateBatch stores logs with one COPY, for bulk imports: all the logs go
// in one statement and one commit, where group commit pays a commit and a
// round trip per batch, and a loop of Create calls one per log (see the
// README's figures).
//
// It validates every log first, as Create does, and writes nothing if one
// is invalid (the error names its index). It is atomic: either every log
// is stored or none is. A log whose ID is already stored, or repeated in
// logs, fails the whole batch with an error wrapping
// audit.ErrAlreadyExists. If a trigger drops some of the rows, none is
// stored, and the error wraps ErrNotStored and names the logs dropped.
// Like Create, it does not modify or retain logs. A canceled ctx aborts
// the COPY, and nothing is stored.
//
// The COPY and the check of what it stored run in a transaction. An error
// wraps audit.ErrMaybeStored only when the COMMIT was sent and its answer
// lost: then every log of the batch may be stored, or none, and the safe
// retry is CreateBatch of the same logs, for which an error wrapping
// audit.ErrAlreadyExists means that the first attempt stored them.
func (r *Repository) CreateBatch(ctx context.Context, logs []*audit.Log) (err error) {
	rows := make([]row, len(logs))
	ids := make(map[string]struct{}, len(logs))
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("%w: log %d is nil", audit.ErrInvalidLog, i)
		}
		rw, err := newRow(l)
		if err != nil {
			return fmt.Errorf("log %d: %w", i, err)
		}
		if _, dup := ids[rw.id]; dup {
			return fmt.Errorf("%w: id %q appears twice in the batch", audit.ErrAlreadyExists, rw.id)
		}
		ids[rw.id] = struct{}{}
		rows[i] = rw
	}
	if len(rows) == 0 {
		return ctx.Err()
	}
	fail := func(err error) error {
		return fmt.Errorf("postgres audit: create batch of %d logs: %w", len(rows), err)
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	n, err := tx.CopyFrom(ctx, r.table, columns, &rowSource{rows: rows, i: -1})
	if err != nil {
		var pgErr *pgconn.PgError
		if duplicateID(err) && errors.As(err, &pgErr) {
			return fmt.Errorf("%w: %s", audit.ErrAlreadyExists, pgErr.Detail)
		}
		return fail(err)
	}
	if n != int64(len(rows)) {
		return fail(r.droppedInBatch(ctx, tx, rows, n))
	}
	if err := tx.Commit(ctx); err != nil {
		if commitUnknown(err) {
			return fail(maybeStored(err))
		}
		return fail(err)
	}
	return nil
}

// droppedInBatch returns the error of a batch whose COPY stored only n of
// rows, in tx, naming the logs whose ID no row that tx stored holds.
func (r *Repository) droppedInBatch(ctx context.Context, tx pgx.Tx, rows []row, n int64) error {
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].id
	}
	stored := idSet{}
	res, err := tx.Query(ctx, r.stmts.own.sql, ids)
	if err == nil {
		err = readRows(res, stored.add)
	}
	if err != nil {
		return fmt.Errorf("%w: %d of them, and finding out which failed: %w; nothing was stored", ErrNotStored, int64(len(rows))-n, err)
	}
	var missing []string
	for _, id := range ids {
		if !stored[id] {
			missing = append(missing, id)
		}
	}
	const shown = 10
	list := fmt.Sprintf("%q", missing[:min(len(missing), shown)])
	if len(missing) > shown {
		list += fmt.Sprintf(" and %d more", len(missing)-shown)
	}
	return fmt.Errorf("%w: %d of them (a trigger on the table dropped them), ids %s; nothing was stored", ErrNotStored, len(missing), list)
}

// rowSource is a pgx.CopyFromSource over rows.
type rowSource struct {
	rows []row
	i    int
}

func (s *rowSource) Next() bool {
	s.i++
	return s.i < len(s.rows)
}

func (s *rowSource) Values() ([]any, error) { return s.rows[s.i].values(), nil }

func (s *rowSource) Err() error { return nil }
