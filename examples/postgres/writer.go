package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raystack/salt/audit"
)

// Group commit. Create hands its row to a writer goroutine through a
// channel and waits for its own result. A writer takes the first row that
// arrives and every other row already waiting, up to the batch size, and
// writes them with binary COPY: one commit, one WAL flush for the whole
// batch, and the cheapest way PostgreSQL has to insert rows. The rows that
// arrive meanwhile make the next batch, so batches grow with load, and a
// lone Create waits for nobody (see WithMaxWait).
// When the writer expects more callers back than it has rows (those of
// its previous batch), it starts the COPY at once and adds their rows as
// they arrive, for up to WithMaxWait: the statement is under way and the
// server reads the first rows while the others are on their way, and the
// writer wakes once per few rows rather than once per row. Such a batch is
// written as up to four COPY statements in one transaction, so that the
// server inserts the first rows before the last arrive (see copyRows, in
// copywire.go, which speaks the protocol; this file decides what is sent
// and who learns what).
//
// A COPY that fails commits nothing (nor do the other COPY statements of
// its batch), so each caller can still get its own outcome. If an ID was
// already stored, the batch is written again with INSERT ... ON CONFLICT
// (id) DO NOTHING RETURNING id: a row whose id is not returned was the
// duplicate. If the server rejected some row for
// another reason, each row is written alone, so that one bad log does not
// fail its neighbors. Any other error (the server out of connections,
// shutting down or read-only, a statement timeout, a lost connection) is
// no row's fault: every caller of the batch gets it, rather than the
// server getting a thousand more statements that would fail the same way.

// uniqueViolation is the SQLSTATE of a duplicate key.
const uniqueViolation = "23505"

// rowError reports whether err is one that a single row can cause, which
// writing the rows one at a time narrows down to the rows at fault: a
// data exception (SQLSTATE class 22, such as a value out of range) or an
// integrity constraint violation (class 23, such as a CHECK a DBA added).
func rowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

// Request states: a queued request may be abandoned by its caller, or
// taken by a writer, whichever happens first.
const (
	queued int32 = iota
	taken
	abandoned
)

type request struct {
	row   row
	tuple []byte // row, encoded by appendCopyRow
	state atomic.Int32
	done  chan error // buffered: the writer never waits for the caller
}

// Create implements audit.Repository.
//
// It validates log (an error wrapping audit.ErrInvalidLog, from
// Log.Validate) and hands a copy to group commit, then waits until that
// copy is committed, or for the error that kept it from being stored: an
// error wrapping audit.ErrAlreadyExists for a duplicate ID, the database's
// error for this log alone when it rejected this log's data (SQLSTATE
// classes 22 and 23), or, when the batch failed for a reason that is no
// row's fault (no connection, the server shutting down, a timeout), that
// error, which every log of the batch gets.
//
// If ctx ends while the log waits for a batch, Create returns ctx's error
// and the log is never written. If ctx ends while its batch is being
// written, Create returns ctx's error at once but the batch goes on: the
// log may be committed, and a retry with the same ID then fails with
// audit.ErrAlreadyExists. Callers that must know, like audit.Logger,
// store with a context that is not canceled with the request. While Close
// waits for the writers, and after, Create writes the log with its own
// INSERT, bounded by ctx.
func (r *Repository) Create(ctx context.Context, log *audit.Log) error {
	rw, err := newRow(log)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, err)
	}
	// Encode the row for COPY here, in the caller's goroutine, so that the
	// writer, which serves every caller, only concatenates.
	req := &request{row: rw, tuple: appendCopyRow(nil, &rw), done: make(chan error, 1)}
	// Once Close waits for the lock, RLock would wait for Close, and so for
	// the writers and the database, whatever ctx says: a Create that does
	// not get the lock at once writes alone.
	if !r.mu.TryRLock() {
		return r.createAlone(ctx, &rw)
	}
	if r.closed {
		r.mu.RUnlock()
		return r.createAlone(ctx, &rw)
	}
	select {
	case r.reqs <- req:
		r.mu.RUnlock()
		r.queued()
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

// queued wakes the writer, if it waits for as many requests as are now
// queued. Create calls it after queuing a request.
func (r *Repository) queued() {
	if int64(len(r.reqs)) >= r.awaited.Load() {
		select {
		case r.enough <- struct{}{}:
		default:
		}
	}
}

// createAlone writes one row with its own statement.
func (r *Repository) createAlone(ctx context.Context, rw *row) error {
	inserted, err := r.insertOne(ctx, rw)
	if err != nil {
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, err)
	}
	if !inserted { // ON CONFLICT DO NOTHING
		return fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, rw.id)
	}
	return nil
}

// insertOne writes one row with its own statement, unless its ID is
// stored already, and reports whether it did.
func (r *Repository) insertOne(ctx context.Context, rw *row) (bool, error) {
	var id string
	err := r.pool.QueryRow(ctx, r.insertOneSQL, rw.values()...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// batch holds the rows of one INSERT as the column arrays it sends.
type batch struct {
	ids, orgIDs, sources, actions       []string
	actorIDs, actorTypes, actorNames    []string
	targetIDs, targetTypes, targetNames []string
	metadata                            [][]byte
	createdAt                           []time.Time
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

// insertNew writes the rows of b whose ID is not stored yet, and returns
// the IDs it inserted.
func (r *Repository) insertNew(ctx context.Context, b *batch) (map[string]struct{}, error) {
	rows, err := r.pool.Query(ctx, r.insertNewSQL, b.args()...)
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
		pending []*request // requests received for the next batch
		batch   []*request // the requests of the batch
		carry   []*request // requests whose ID is already in the batch
		seen    = map[string]struct{}{}
		closing bool
		expect  int // how many requests the next batch may expect
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
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
		// One writer at a time makes a batch, while the others write
		// theirs: the logs that arrive go to one batch rather than be
		// split between writers that would each wait for the rest. The
		// lock is held until the batch is complete: for a streamed batch,
		// that is once it has a connection and its COPY is under way, at
		// most maxWait later.
		r.collecting.Lock()
		pending = r.receive(pending, r.maxBatch)
		if len(pending) == 0 { // closing, and nothing is left
			r.collecting.Unlock()
			return
		}
		clear(seen)
		batch, carry = take(batch[:0], carry, pending, seen)
		want := min(expect, r.maxBatch)
		if len(batch) == 0 || len(batch) >= want || r.maxWait <= 0 || closing {
			r.collecting.Unlock()
			if len(batch) > 0 {
				r.flush(batch)
			}
		} else {
			// The callers of the last batch are likely to be back with
			// their next logs within moments: rather than spend a commit
			// on the first few, start the COPY with them and add the
			// others as they come, for a little while. The server reads
			// the first rows while the others are on their way.
			c := &collector{
				r: r, batch: batch, carry: carry, pending: pending[:0], seen: seen,
				want: want, timer: timer,
			}
			ctx, cancel := r.batchContext()
			err := r.copyRows(ctx, copySegments, c.write)
			c.stop()
			timer.Stop()
			batch, carry, pending = c.batch, c.carry, c.pending
			r.deliver(ctx, batch, err)
			cancel()
		}
		// Expect the callers of this batch back, and those that arrived
		// while it was written.
		expect = len(batch) + len(r.reqs)
		clear(pending[:cap(pending)])
		clear(batch[:cap(batch)])
	}
}

// receive adds the requests queued now to pending, up to limit, and returns
// it.
func (r *Repository) receive(pending []*request, limit int) []*request {
	for len(pending) < limit {
		select {
		case req := <-r.reqs:
			pending = append(pending, req)
		default:
			return pending
		}
	}
	return pending
}

// take appends to batch the requests of pending that their callers have
// not abandoned, and returns batch and carry. A second request for an ID
// in seen goes to carry instead, to wait for the next batch, where it
// learns whether the first was stored.
func take(batch, carry, pending []*request, seen map[string]struct{}) ([]*request, []*request) {
	for _, req := range pending {
		if _, dup := seen[req.row.id]; dup {
			carry = append(carry, req)
			continue
		}
		if !req.state.CompareAndSwap(queued, taken) {
			continue
		}
		seen[req.row.id] = struct{}{}
		batch = append(batch, req)
	}
	return batch, carry
}

// await receives up to n more requests into pending, and returns it once
// it has them, or when expire fires, stop closes or Close starts, which it
// reports.
// Rather than wake for every request that arrives, it sleeps until enough
// are queued: the sender that makes them enough wakes it.
func (r *Repository) await(pending []*request, n int, expire <-chan time.Time, stop <-chan struct{}) ([]*request, bool) {
	want := len(pending) + n
	for {
		need := want - len(pending)
		r.awaited.Store(int64(need))
		select {
		case <-r.enough: // left by a sender after an earlier wait
		default:
		}
		done := false
		if len(r.reqs) < need {
			select {
			case <-r.enough:
			case <-expire:
				done = true
			case <-stop:
				done = true
			case <-r.quit:
				done = true
			}
		}
		r.awaited.Store(math.MaxInt64)
		pending = r.receive(pending, want)
		if done || len(pending) >= want {
			return pending, done
		}
	}
}

// flush writes the rows of reqs and gives each request its result.
func (r *Repository) flush(reqs []*request) {
	ctx, cancel := r.batchContext()
	defer cancel()
	if len(reqs) == 1 {
		// A prepared INSERT is quicker than COPY for one row.
		reqs[0].done <- r.createAlone(ctx, &reqs[0].row)
		return
	}
	r.deliver(ctx, reqs, r.copyRows(ctx, 1, func(w *copyWriter) error {
		for _, req := range reqs {
			w.row(req.tuple)
		}
		return nil
	}))
}

// deliver gives each request of reqs its result, given err, the result of
// writing them all with copyRows.
func (r *Repository) deliver(ctx context.Context, reqs []*request, err error) {
	if err == nil {
		for _, req := range reqs {
			req.done <- nil
		}
		return
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		// Some ID is stored already, and nothing was committed: write the
		// others, and find out which.
		var b batch
		for _, req := range reqs {
			b.add(&req.row)
		}
		var inserted map[string]struct{}
		if inserted, err = r.insertNew(ctx, &b); err == nil {
			for _, req := range reqs {
				req.done <- r.outcome(req.row.id, inserted)
			}
			return
		}
	}
	if rowError(err) {
		// The server rejected a row, and nothing was committed: find out
		// which rows fail, one at a time, within what is left of the
		// batch's deadline. Should an error that is no row's fault come
		// up meanwhile, the rows not yet written get it without a try.
		for i, req := range reqs {
			inserted, err := r.insertOne(ctx, &req.row)
			switch {
			case err == nil && inserted:
				req.done <- nil
			case err == nil:
				req.done <- fmt.Errorf("%w: id %q", audit.ErrAlreadyExists, req.row.id)
			case rowError(err):
				req.done <- fmt.Errorf("postgres audit: create %q: %w", req.row.id, err)
			default:
				failAll(reqs[i:], err)
				return
			}
		}
		return
	}
	// No connection, or it failed or timed out, or the server failed the
	// statement for a reason no row is to blame for: every row of the
	// batch shares the outcome. (If the connection failed, the batch may
	// or may not have been committed.)
	failAll(reqs, err)
}

// failAll gives err to every request of reqs.
func failAll(reqs []*request, err error) {
	for _, req := range reqs {
		req.done <- fmt.Errorf("postgres audit: create %q: %w", req.row.id, err)
	}
}

// collector collects a batch while its COPY is under way: it sends the
// rows at hand, then waits for more requests and sends their rows, until
// the batch has the requests it expects or maxWait has passed. The rows are
// spread over the COPY's segments, so that the server inserts the first
// while the last are on their way.
//
// The writer that made it holds r.collecting; the collector releases it
// once the batch is complete, or stop does.
type collector struct {
	r       *Repository
	batch   []*request // the requests taken
	carry   []*request // see take
	pending []*request // scratch space for await
	seen    map[string]struct{}
	want    int
	timer   *time.Timer // bounds the collection by maxWait, from when write starts
	expire  <-chan time.Time
	done    bool // the collection has ended
}

// write sends the batch's rows with w as they are taken, and returns when
// the batch is complete.
func (c *collector) write(w *copyWriter) error {
	defer c.stop()
	c.timer.Reset(c.r.maxWait)
	c.expire = c.timer.C
	perSegment := (c.want + copySegments - 1) / copySegments
	sent := 0
	for {
		for ; sent < len(c.batch); sent++ {
			if w.rows >= perSegment && w.left > 1 {
				w.endSegment()
			}
			w.row(c.batch[sent].tuple)
		}
		if len(c.batch) >= c.want || c.expire == nil {
			return nil
		}
		if err := w.flush(); err != nil {
			return err
		}
		// Take the rows in a few steps, so that the server reads them as
		// they come.
		var expired bool
		// A COPY the server has refused takes no more.
		c.pending, expired = c.r.await(c.pending[:0], min(max(c.want/4, 8), c.want-len(c.batch)), c.expire, w.refused)
		c.batch, c.carry = take(c.batch, c.carry, c.pending, c.seen)
		if expired {
			c.expire = nil
		}
	}
}

// stop ends the collection, if it has not ended.
func (c *collector) stop() {
	if !c.done {
		c.done = true
		c.r.collecting.Unlock()
	}
}

func (r *Repository) batchContext() (context.Context, context.CancelFunc) {
	if r.writeTimeout > 0 {
		return context.WithTimeout(context.Background(), r.writeTimeout)
	}
	return context.WithCancel(context.Background())
}
