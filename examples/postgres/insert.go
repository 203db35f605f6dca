package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/audit"
)

// The statements besides COPY: the INSERT of a lone log, the INSERT that
// writes a group of logs whose batch failed and tells each its outcome,
// and the SELECTs that find out which logs the server did not store.

// statement is an SQL statement that runs as a prepared statement of its
// name. Preparing it apart from running it separates the errors that mean
// nothing was sent from those of a statement that may have run.
type statement struct {
	name, sql string
	writes    bool // the statement inserts rows
}

func newStatement(sql string, writes bool) statement {
	sum := sha256.Sum256([]byte(sql))
	return statement{name: "salt_audit_" + hex.EncodeToString(sum[:12]), sql: sql, writes: writes}
}

// statements are the Repository's statements on its table.
type statements struct {
	insertOne statement // INSERT of one log
	insertNew statement // INSERT of a group, skipping stored IDs, RETURNING the IDs it wrote
	insertAll statement // INSERT of a group, every row or an error
	existing  statement // which of some IDs are stored
	stored    statement // which of some logs are stored as they were sent
}

func newStatements(table string) statements {
	cols := strings.Join(columns, ", ")
	unnest := " unnest($1::text[], $2::text[], $3::text[], $4::text[]," +
		" $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]," +
		" $11::jsonb[], $12::timestamptz[])"
	return statements{
		insertOne: newStatement("INSERT INTO "+table+" ("+cols+")"+
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", true),
		insertNew: newStatement("INSERT INTO "+table+" ("+cols+")"+
			" SELECT * FROM"+unnest+" ON CONFLICT (id) DO NOTHING RETURNING id", true),
		insertAll: newStatement("INSERT INTO "+table+" ("+cols+") SELECT * FROM"+unnest, true),
		existing:  newStatement("SELECT id FROM "+table+" WHERE id = ANY($1::text[])", false),
		stored:    newStatement("SELECT id FROM "+table+" WHERE ("+cols+") IN (SELECT * FROM"+unnest+")", false),
	}
}

// run runs st with args on a connection of the pool, hands each row of its
// result to each (if not nil), and returns how many rows it affected. The
// error of a statement that writes wraps audit.ErrMaybeStored when the
// statement may have committed (see outcomeUnknown).
func (r *Repository) run(ctx context.Context, st statement, args []any, each func(pgx.Rows) error) (int64, error) {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	conn := c.Conn()
	if _, err := conn.Prepare(ctx, st.name, st.sql); err != nil {
		return 0, err
	}
	rows, err := conn.Query(ctx, st.name, args...)
	if err == nil {
		for rows.Next() && err == nil {
			if each != nil {
				err = each(rows)
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if st.writes && outcomeUnknown(err) {
		return 0, maybeStored(err)
	}
	if err != nil {
		return 0, err
	}
	return rows.CommandTag().RowsAffected(), nil
}

// createAlone writes one log with its own INSERT, and returns Create's
// result for it.
func (r *Repository) createAlone(ctx context.Context, rw *row) error {
	n, err := r.run(ctx, r.stmts.insertOne, rw.values(), nil)
	switch {
	case duplicateID(err):
		return fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, rw.id)
	case err != nil:
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, err)
	case n == 0:
		return fmt.Errorf("postgres audit: create %q: %w (a trigger on the table dropped it)", rw.id, ErrNotStored)
	}
	return nil
}

// batch holds the rows of one statement as the column arrays it sends.
type batch struct {
	ids, orgIDs, sources, actions       []string
	actorIDs, actorTypes, actorNames    []string
	targetIDs, targetTypes, targetNames []string
	metadata                            [][]byte
	createdAt                           []time.Time
}

func newBatch(reqs []*request) *batch {
	b := &batch{}
	for _, req := range reqs {
		b.add(&req.row)
	}
	return b
}

func (b *batch) add(r *row) {
	b.ids = append(b.ids, r.id)
	b.orgIDs = append(b.orgIDs, r.orgID)
	b.sources = append(b.sources, r.source)
	b.actions = append(b.actions, r.action)
	b.actorIDs = append(b.actorIDs, r.actorID)
	b.actorTypes = append(b.actorTypes, r.actorType)
	b.actorNames = append(b.actorNames, r.actorName)
	b.targetIDs = append(b.targetIDs, r.targetID)
	b.targetTypes = append(b.targetTypes, r.targetType)
	b.targetNames = append(b.targetNames, r.targetName)
	b.metadata = append(b.metadata, r.metadata)
	b.createdAt = append(b.createdAt, r.createdAt)
}

// args returns the column arrays of b as statement arguments.
func (b *batch) args() []any {
	return []any{
		b.ids, b.orgIDs, b.sources, b.actions,
		b.actorIDs, b.actorTypes, b.actorNames,
		b.targetIDs, b.targetTypes, b.targetNames,
		b.metadata, b.createdAt,
	}
}

// ids runs st, a SELECT of ids, and returns the set of them.
func (r *Repository) ids(ctx context.Context, st statement, args []any) (map[string]struct{}, error) {
	found := map[string]struct{}{}
	_, err := r.run(ctx, st, args, func(rows pgx.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		found[id] = struct{}{}
		return nil
	})
	return found, err
}

// insertGroup writes the logs of reqs whose ID is not stored yet with one
// INSERT, and gives each request its result. An error that is not about
// the logs it reached the server with is returned, and no request gets it.
func (r *Repository) insertGroup(ctx context.Context, reqs []*request) error {
	inserted, err := r.ids(ctx, r.stmts.insertNew, newBatch(reqs).args())
	if err != nil {
		return err
	}
	// A log not inserted had its ID stored already, or a trigger dropped
	// it: which, the table says.
	var missing []string
	for _, req := range reqs {
		if _, ok := inserted[req.row.id]; !ok {
			missing = append(missing, req.row.id)
		}
	}
	var stored map[string]struct{}
	var storedErr error
	if len(missing) > 0 {
		stored, storedErr = r.ids(ctx, r.stmts.existing, []any{missing})
	}
	for _, req := range reqs {
		id := req.row.id
		if _, ok := inserted[id]; ok {
			req.done <- nil
			continue
		}
		switch _, ok := stored[id]; {
		case storedErr != nil:
			// The INSERT committed without this log: it was stored before,
			// by an earlier attempt whose answer was lost say, or a trigger
			// dropped it. Only the lookup could tell.
			req.done <- fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
				"the INSERT did not write it, and finding out whether the log was stored before failed: %w", storedErr)))
		case ok:
			req.done <- fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, id)
		default:
			req.done <- dropped(id)
		}
	}
	return nil
}

// errDeficit is returned by insertChecked when the server stored some of
// a group's rows and dropped the others: it rolled the group back, and
// narrow writes it again in halves to find which.
var errDeficit = errors.New("a trigger dropped some of the group's logs, and the group was rolled back")

// insertChecked writes the logs of reqs with one plain INSERT (no ON
// CONFLICT, no RETURNING, which row-level security would judge by the
// table's SELECT policies) in a transaction of its own, and gives each
// request its result, from the rows the server reports: every row stored,
// and it commits; none, and each log fails with ErrNotStored; some, and it
// rolls back and returns errDeficit. A log alone whose ID is stored fails
// with audit.ErrAlreadyExists. An error that is not about the logs it
// reached the server with is returned, and no request gets it. Only an
// error of the COMMIT wraps audit.ErrMaybeStored: the server rolls back a
// transaction whose session is lost before it commits.
func (r *Repository) insertChecked(ctx context.Context, reqs []*request) (err error) {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	st := r.stmts.insertAll
	if _, err := conn.Prepare(ctx, st.name, st.sql); err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	tag, err := tx.Exec(ctx, st.name, newBatch(reqs).args()...)
	switch n := tag.RowsAffected(); {
	case err != nil && len(reqs) == 1 && duplicateID(err):
		reqs[0].done <- fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, reqs[0].row.id)
		return nil
	case err != nil:
		return err
	case n > 0 && n < int64(len(reqs)):
		return fmt.Errorf("%w: the server stored %d of %d", errDeficit, n, len(reqs))
	}
	// Every row stored, or none: commit, as a lone INSERT would, what the
	// triggers did (a row they routed elsewhere stays there). If none was
	// stored, audit_logs holds none of them, whatever the COMMIT does.
	stored := tag.RowsAffected() > 0
	if err := tx.Commit(ctx); err != nil && stored {
		if commitUnknown(err) {
			return maybeStored(timedOut(ctx, err))
		}
		return err
	}
	for _, req := range reqs {
		if stored {
			req.done <- nil
		} else {
			req.done <- dropped(req.row.id)
		}
	}
	return nil
}

// rollback ends tx, which commits nothing; if it fails, pgx closes the
// connection, and the server rolls back.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// settleDropped gives the requests of a committed batch of which the
// server stored only n rows their results: nil for the logs the table
// holds as they were sent, ErrNotStored for the others.
func (r *Repository) settleDropped(ctx context.Context, reqs []*request, n int64) {
	stored, err := r.ids(ctx, r.stmts.stored, newBatch(reqs).args())
	for _, req := range reqs {
		id := req.row.id
		_, ok := stored[id]
		switch {
		case err != nil:
			req.done <- fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
				"the server stored %d of the batch's %d logs, and finding out which failed: %w", n, len(reqs), err)))
		case ok:
			req.done <- nil
		default:
			req.done <- dropped(id)
		}
	}
}

func dropped(id string) error {
	return fmt.Errorf("postgres audit: create %q: %w (a trigger on the table dropped it)", id, ErrNotStored)
}
