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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// The statements of group commit, each on a connection of the pool: the
// COPY of a batch (copyIn, whose protocol copywire.go speaks), the INSERT
// of a lone log, the INSERTs that write a group of logs whose batch failed
// and tell each its outcome, and the SELECTs that find out which logs the
// server did not store.

// copyIn writes a batch with binary COPY on a connection of pool, in one
// transaction of segments COPY statements held in sql (see copyExchange,
// which write sends the rows for), within ctx's deadline, which is all a
// batch's context has. It returns how many rows the server inserted, from
// the COPY statements' command tags: fewer than were sent if a trigger
// dropped some. An error means that nothing was committed, unless it wraps
// audit.ErrMaybeStored (see copyOutcome). A connection whose exchange was
// cut short is closed, and the pool drops it.
func copyIn(ctx context.Context, pool *pgxpool.Pool, sql string, segments int, write func(*copyWriter) error) (int64, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	deadline, _ := ctx.Deadline()
	ex := copyExchange(c.Conn().PgConn(), deadline, sql, segments, write)
	if !ex.clean {
		closeConn(c.Conn().PgConn())
	}
	return copyOutcome(ctx, ex)
}

// closeConn closes a connection whose exchange with the server was cut
// short.
func closeConn(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = pc.Close(ctx)
}

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
	lookup    statement // which IDs of some logs are stored, and whether as they were sent
	own       statement // which of some IDs the current transaction stored
}

func newStatements(table string) statements {
	cols := strings.Join(columns, ", ")
	unnest := " unnest($1::text[], $2::text[], $3::text[], $4::text[]," +
		" $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]," +
		" $11::jsonb[], $12::timestamptz[])"
	// The columns of a log as sent, compared bytewise as stored.
	sent := `s.org_id COLLATE "C", s.source COLLATE "C", s.action COLLATE "C",` +
		` s.actor_id COLLATE "C", s.actor_type COLLATE "C", s.actor_name,` +
		` s.target_id COLLATE "C", s.target_type COLLATE "C", s.target_name, s.metadata, s.created_at`
	return statements{
		insertOne: newStatement("INSERT INTO "+table+" ("+cols+")"+
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", true),
		insertNew: newStatement("INSERT INTO "+table+" ("+cols+")"+
			" SELECT * FROM"+unnest+" ON CONFLICT (id) DO NOTHING RETURNING id", true),
		insertAll: newStatement("INSERT INTO "+table+" ("+cols+") SELECT * FROM"+unnest, true),
		existing:  newStatement("SELECT id FROM "+table+" WHERE id = ANY($1::text[])", false),
		lookup: newStatement("SELECT s.id, ("+prefixed("t.", columns[1:])+") = ("+sent+")"+
			" FROM"+unnest+" AS s ("+cols+") JOIN "+table+" t ON t.id = s.id COLLATE \"C\"", false),
		own: newStatement("SELECT id FROM "+table+
			" WHERE id = ANY($1::text[]) AND xmin = pg_current_xact_id()::xid", false),
	}
}

// prefixed returns names, each after prefix, separated by commas.
func prefixed(prefix string, names []string) string {
	return prefix + strings.Join(names, ", "+prefix)
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
		err = readRows(rows, each)
	}
	if st.writes && outcomeUnknown(err) {
		return 0, maybeStored(err)
	}
	if err != nil {
		return 0, err
	}
	return rows.CommandTag().RowsAffected(), nil
}

// readRows hands each row of rows to each (if not nil), closes rows, and
// returns the first error.
func readRows(rows pgx.Rows, each func(pgx.Rows) error) error {
	var err error
	for rows.Next() && err == nil {
		if each != nil {
			err = each(rows)
		}
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	return err
}

// idSet is the IDs a statement returned, each with whether the table
// holds its log as it was sent, for a statement that says (lookup), or
// true.
type idSet map[string]bool

// add adds the current row of rows, an ID and maybe whether its log is
// as it was sent.
func (s idSet) add(rows pgx.Rows) error {
	var id string
	same := true
	if err := rows.Scan([]any{&id, &same}[:len(rows.FieldDescriptions())]...); err != nil {
		return err
	}
	s[id] = same
	return nil
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
		return dropped(rw.id)
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

// ids runs st, which returns IDs, and returns the set of them.
func (r *Repository) ids(ctx context.Context, st statement, args []any) (idSet, error) {
	found := idSet{}
	_, err := r.run(ctx, st, args, found.add)
	return found, err
}

// insertGroup writes the logs of reqs whose ID is not stored yet with one
// INSERT, and gives each request its result. An error that is not about
// the logs it reached the server with is returned, and no request gets it.
//
// A log whose ID the INSERT returns is stored. For the others the table
// says what became of them: a log whose ID is stored gets
// audit.ErrAlreadyExists, since the INSERT did not store that row; a log
// whose ID no row holds was dropped by a trigger (settleAbsent).
func (r *Repository) insertGroup(ctx context.Context, reqs []*request) error {
	inserted, err := r.ids(ctx, r.stmts.insertNew, newBatch(reqs).args())
	if err != nil {
		return err
	}
	var missing []string
	for _, req := range reqs {
		if !inserted[req.row.id] {
			missing = append(missing, req.row.id)
		}
	}
	if len(missing) == 0 {
		for _, req := range reqs {
			req.done <- nil
		}
		return nil
	}
	// Rows that a trigger stored under an ID of its own making.
	renamed := len(inserted) - (len(reqs) - len(missing))
	stored, storedErr := r.ids(ctx, r.stmts.existing, []any{missing})
	absent := len(missing) - len(stored)
	for _, req := range reqs {
		id := req.row.id
		_, isStored := stored[id]
		switch {
		case inserted[id]:
			req.done <- nil
		case storedErr != nil:
			// The INSERT committed without this log: it was stored before,
			// by an earlier attempt whose answer was lost say, or a trigger
			// dropped it. Only the lookup could tell.
			req.done <- fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
				"the INSERT did not write it, and finding out whether the log was stored before failed: %w", storedErr)))
		case isStored:
			req.done <- fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, id)
		default:
			req.done <- settleAbsent(id, renamed, absent)
		}
	}
	return nil
}

// settleAbsent returns the result of a log whose ID no row holds after a
// statement that committed, of absent such logs, when the server stored
// renamed rows under IDs that no log of the statement has (a trigger
// changed them): with none, the log was dropped (ErrNotStored); with as
// many as there are such logs, each of them was stored under a new ID
// (nil, as for a trigger that changes any other column); else either may
// be true (audit.ErrMaybeStored).
func settleAbsent(id string, renamed, absent int) error {
	switch {
	case renamed <= 0:
		return dropped(id)
	case renamed == absent:
		return nil
	}
	return fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
		"no row holds its ID, and the server stored %d of the %d such logs under IDs of a trigger's making: "+
			"it dropped the others, and which is which is unknown", renamed, absent)))
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
		// The transaction failed: end it before the connection goes back
		// to the pool, which would close a connection in a failed one.
		rollback(tx)
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

// settleDropped gives the requests of a committed batch, of which the
// server stored only n rows, their results, from what the table holds
// under their IDs, and the fewest triggers' deeds that explain the counts:
//
//   - a log stored as it was sent is stored (nil);
//   - a log whose ID holds a row that differs from it was changed by a
//     trigger as it was stored (nil), unless more rows hold the batch's
//     IDs than the batch stored: then some are earlier logs whose IDs
//     dropped logs had, and a different row may be one of them
//     (audit.ErrMaybeStored: the COPY's answers cannot tell);
//   - a log whose ID no row holds gets settleAbsent's result, fewer rows
//     holding the batch's IDs than it stored being the rows a trigger
//     stored under other IDs.
func (r *Repository) settleDropped(ctx context.Context, reqs []*request, n int64) {
	found, err := r.ids(ctx, r.stmts.lookup, newBatch(reqs).args())
	renamed := int(n) - len(found)
	absent := len(reqs) - len(found)
	for _, req := range reqs {
		id := req.row.id
		same, ok := found[id]
		switch {
		case err != nil:
			req.done <- fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
				"the server stored %d of the batch's %d logs, and finding out which failed: %w", n, len(reqs), err)))
		case ok && (same || renamed >= 0):
			req.done <- nil
		case ok:
			req.done <- fmt.Errorf("postgres audit: create %q: %w", id, maybeStored(fmt.Errorf(
				"the server stored %d of its batch's %d logs, %d rows hold their IDs, and the one with this ID differs "+
					"from it: a trigger changed it as it was stored, or dropped it and an earlier log has its ID",
				n, len(reqs), len(found))))
		default:
			req.done <- settleAbsent(id, renamed, absent)
		}
	}
}

func dropped(id string) error {
	return fmt.Errorf("postgres audit: create %q: %w (a trigger on the table dropped it)", id, ErrNotStored)
}
