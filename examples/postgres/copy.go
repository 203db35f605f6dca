package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

// CreateBatch stores logs with one COPY, for bulk imports: it is the
// fastest way in, over twenty times a loop of Create calls and nearly
// twice what group commit reaches from 64 concurrent callers (see the
// README's figures).
//
// It validates every log first, as Create does, and writes nothing if one
// is invalid (the error names its index). It is atomic: either every log
// is stored or none is. A log whose ID is already stored, or repeated in
// logs, fails the whole batch with an error wrapping
// audit.ErrAlreadyExists. Like Create, it does not modify or retain logs.
// A canceled ctx aborts the COPY, and nothing is stored.
func (r *Repository) CreateBatch(ctx context.Context, logs []*audit.Log) error {
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
	_, err := r.pool.CopyFrom(ctx, r.table, columns, &rowSource{rows: rows, i: -1})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
			return fmt.Errorf("%w: %s", audit.ErrAlreadyExists, pgErr.Detail)
		}
		return fmt.Errorf("postgres audit: create batch of %d logs: %w", len(rows), err)
	}
	return nil
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
