package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

// Group commit. Create hands its row to a writer goroutine through a
// channel and waits for its own result. A writer takes the first row that
// arrives and every other row already waiting, up to the batch size, and
// writes them with one INSERT ... SELECT FROM unnest(...) ON CONFLICT (id)
// DO NOTHING RETURNING id: one statement, one commit, one WAL flush for
// the whole batch. The rows that arrive meanwhile make the next batch, so
// batches grow with load and a lone Create waits for nobody.
//
// RETURNING tells each caller its own outcome: a row whose id is not
// returned was a duplicate. If the statement fails as a whole (the server
// rejected some row), nothing of it was committed, and each row is retried
// alone so that one bad log does not fail its neighbors.

// uniqueViolation is the SQLSTATE of a duplicate key.
const uniqueViolation = "23505"

// Request states: a queued request may be abandoned by its caller, or
// taken by a writer, whichever happens first.
const (
	queued int32 = iota
	taken
	abandoned
)

type request struct {
	row   row
	state atomic.Int32
	done  chan error // buffered: the writer never waits for the caller
}

// Create implements audit.Repository.
//
// It validates log (an error wrapping audit.ErrInvalidLog, also for a
// CreatedAt outside the range of timestamptz) and hands a copy to group
// commit, then waits until that copy is committed, or for the error that
// kept it from being stored: an error wrapping audit.ErrAlreadyExists for
// a duplicate ID, or the database's error for this log alone.
//
// If ctx ends while the log waits for a batch, Create returns ctx's error
// and the log is never written. If ctx ends while its batch is being
// written, Create returns ctx's error at once but the batch goes on: the
// log may be committed, and a retry with the same ID then fails with
// audit.ErrAlreadyExists. Callers that must know, like audit.Logger,
// store with a context that is not canceled with the request.
func (r *Repository) Create(ctx context.Context, log *audit.Log) error {
	rw, err := newRow(log)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, err)
	}
	req := &request{row: rw, done: make(chan error, 1)}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return r.createAlone(ctx, &rw)
	}
	select {
	case r.reqs <- req:
		r.mu.RUnlock()
	case <-ctx.Done():
		r.mu.RUnlock()
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, abandoned) {
			return fmt.Errorf("postgres audit: create %q: %w", rw.id, ctx.Err())
		}
		return fmt.Errorf("postgres audit: create %q: %w (the log may be committed)", rw.id, ctx.Err())
	}
}

// createAlone writes one row with its own statement.
func (r *Repository) createAlone(ctx context.Context, rw *row) error {
	var b batch
	b.add(rw)
	inserted, err := r.insert(ctx, &b)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
			return fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, rw.id)
		}
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, err)
	}
	return r.outcome(rw.id, inserted)
}

// batch holds the rows of one INSERT as the column arrays it sends.
type batch struct {
	ids, orgIDs, sources, actions       []string
	actorIDs, actorTypes, actorNames    []string
	targetIDs, targetTypes, targetNames []string
	metadata                            [][]byte
	createdAt                           []time.Time
}

func (b *batch) reset() {
	b.ids, b.orgIDs, b.sources, b.actions = b.ids[:0], b.orgIDs[:0], b.sources[:0], b.actions[:0]
	b.actorIDs, b.actorTypes, b.actorNames = b.actorIDs[:0], b.actorTypes[:0], b.actorNames[:0]
	b.targetIDs, b.targetTypes, b.targetNames = b.targetIDs[:0], b.targetTypes[:0], b.targetNames[:0]
	b.metadata, b.createdAt = b.metadata[:0], b.createdAt[:0]
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

// insert writes the rows of b in one statement and returns the IDs that
// were inserted; the others were already stored.
func (r *Repository) insert(ctx context.Context, b *batch) (map[string]struct{}, error) {
	rows, err := r.pool.Query(ctx, r.insertSQL,
		b.ids, b.orgIDs, b.sources, b.actions,
		b.actorIDs, b.actorTypes, b.actorNames,
		b.targetIDs, b.targetTypes, b.targetNames,
		b.metadata, b.createdAt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	inserted := make(map[string]struct{}, len(b.ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		inserted[id] = struct{}{}
	}
	return inserted, rows.Err()
}

// outcome is the result of Create for id, given the IDs its statement
// inserted.
func (r *Repository) outcome(id string, inserted map[string]struct{}) error {
	if _, ok := inserted[id]; ok {
		return nil
	}
	return fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, id)
}

// writeLoop is a writer goroutine. After Close it writes what is still
// queued and returns.
func (r *Repository) writeLoop() {
	defer r.wg.Done()
	var (
		b       batch
		pending []*request // the requests of the next batch
		carry   []*request // requests whose ID is already in the batch
		seen    = map[string]struct{}{}
		closing bool
	)
	for {
		pending = append(pending[:0], carry...)
		carry = carry[:0]
		if len(pending) == 0 && !closing {
			select {
			case req := <-r.reqs:
				pending = append(pending, req)
			case <-r.quit:
				closing = true
			}
		}
	fill:
		for len(pending) < r.maxBatch {
			select {
			case req := <-r.reqs:
				pending = append(pending, req)
			default:
				break fill
			}
		}
		if len(pending) == 0 { // closing, and nothing is left
			return
		}

		// Take the requests their callers have not abandoned. A second
		// request for an ID waits for the next batch, where it learns
		// whether the first was stored.
		b.reset()
		clear(seen)
		batchReqs := pending[:0]
		for _, req := range pending {
			if _, dup := seen[req.row.id]; dup {
				carry = append(carry, req)
				continue
			}
			if !req.state.CompareAndSwap(queued, taken) {
				continue
			}
			seen[req.row.id] = struct{}{}
			batchReqs = append(batchReqs, req)
			b.add(&req.row)
		}
		if len(batchReqs) > 0 {
			r.flush(&b, batchReqs)
		}
		clear(pending[:cap(pending)])
	}
}

// flush writes the batch b, made of the rows of reqs, and gives each
// request its result.
func (r *Repository) flush(b *batch, reqs []*request) {
	ctx, cancel := r.batchContext()
	defer cancel()
	inserted, err := r.insert(ctx, b)
	if err == nil {
		for _, req := range reqs {
			req.done <- r.outcome(req.row.id, inserted)
		}
		return
	}
	var pgErr *pgconn.PgError
	if len(reqs) > 1 && (errors.As(err, &pgErr) || pgconn.SafeToRetry(err)) {
		// Nothing was committed: find out which rows fail, one at a time.
		cancel()
		for _, req := range reqs {
			ctx, cancel := r.batchContext()
			req.done <- r.createAlone(ctx, &req.row)
			cancel()
		}
		return
	}
	// The connection failed or timed out: the batch may or may not have
	// been committed, and every row in it shares that fate.
	for _, req := range reqs {
		req.done <- fmt.Errorf("postgres audit: create %q: %w", req.row.id, err)
	}
}

func (r *Repository) batchContext() (context.Context, context.CancelFunc) {
	if r.writeTimeout > 0 {
		return context.WithTimeout(context.Background(), r.writeTimeout)
	}
	return context.WithCancel(context.Background())
}
