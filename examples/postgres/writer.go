package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"

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
// server inserts the first rows before the last arrive (see copyIn, in
// insert.go, and copyExchange, in copywire.go, which speaks the protocol;
// this file decides what is sent and who learns what).
//
// A COPY that fails with an ERROR commits nothing (nor do the other COPY
// statements of its batch), so each caller can still get its own outcome.
// If an ID was already stored, the batch is written again with INSERT ...
// ON CONFLICT (id) DO NOTHING RETURNING id: a row whose id is not returned
// was the duplicate (or was dropped by a trigger, which the table tells).
// If the server rejected some row with an error one row can cause
// (rowError), the batch is written again in halves, and each half that
// fails in halves again, so that one bad log fails alone, at the cost of
// two statements per halving (2*log2(N) for one bad log in N) rather than
// one per log; narrowing stops when the rows keep failing without a bad log
// found (narrowBudget), or when the bad logs are most of the batch
// (wholesaleBad), and the logs it has not written by then get the last
// error. Any other
// error (the server out of connections, shutting down or read-only, a
// statement timeout, a lost connection) is no row's fault: every caller of
// the batch gets it, rather than the server getting a thousand more
// statements that would fail the same way, and it wraps
// audit.ErrMaybeStored when the batch may have been committed (outcome.go
// says when). A COPY that commits with fewer rows than it was sent had
// some dropped by a trigger: the table tells which.
//
// Where row-level security applies to the role, the server refuses COPY
// into the table (0A000). Group commit then writes its batches, for
// copyRetry, with a plain INSERT each, in a transaction that commits only
// if the server stored every row (or none), and narrows by halves from
// there: the policies judge each row, a policy's refusal (42501) fails its
// log alone, and no RETURNING, ON CONFLICT or lookup is used, which the
// table's SELECT policies would judge, or hide other tenants' logs from.

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
// copy is committed, or for the error that kept it from being stored:
//
//   - an error wrapping audit.ErrAlreadyExists for a duplicate ID;
//   - an error wrapping ErrNotStored when the server accepted the log and
//     a trigger dropped it;
//   - the database's error for this log alone when it rejected this log's
//     data, with an error that one row can cause (a CHECK, an index or a
//     trigger a DBA added: SQLSTATE classes 22, 23, 54, P0 and a few more,
//     and a row-level security policy's 42501), or, when the batch's rows
//     kept failing past the statements that narrowing may spend (see
//     narrowBudget), or most of them failed (see wholesaleBad), the last
//     such error, wrapped in one that says so;
//   - when the batch failed for a reason that is no row's fault (no
//     connection, the server shutting down, a timeout), that error, which
//     every log of the batch gets;
//   - an error wrapping audit.ErrMaybeStored when the outcome is unknown:
//     the message that would commit the log went out whole and its answer
//     never came (the connection was lost, WithWriteTimeout passed while
//     the commit waited for a synchronous standby), or ctx ended once the
//     writer had taken the log, or a statement committed without it and
//     what became of it could not be found out (see ErrNotStored). The
//     log may be committed, then or later.
//
// A timeout, WithWriteTimeout's or ctx's, wraps context.DeadlineExceeded.
// The safe retry of an unknown outcome is audit.Logger.Record with the
// same log, and so the same ID: an error wrapping audit.ErrAlreadyExists
// then means that the first attempt stored it. Only an error that wraps
// neither ErrMaybeStored nor ErrAlreadyExists means that the log is not
// stored.
//
// If ctx ends while the log waits for a batch, Create returns ctx's error
// and the log is never written. If ctx ends while its batch is being
// written, Create returns at once, with ctx's error wrapped in
// audit.ErrMaybeStored, and the batch goes on. Callers that must know,
// like audit.Logger, store with a context that is not canceled with the
// request. While Close waits for the writers, and after, Create writes the
// log with its own INSERT, bounded by ctx.
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
		return fmt.Errorf("postgres audit: create %q: %w", rw.id, maybeStored(ctx.Err()))
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
		start := time.Now()
		clear(seen)
		batch, carry = take(batch[:0], carry, pending, seen)
		want := min(expect, r.maxBatch)
		if len(batch) == 0 || len(batch) >= want || r.maxWait <= 0 || closing || r.copyOff() {
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
			n, err := copyIn(ctx, r.pool, r.copySQLs[copySegments], copySegments, c.write)
			c.stop()
			timer.Stop()
			batch, carry, pending = c.batch, c.carry, c.pending
			r.deliver(ctx, batch, n, err)
			cancel()
		}
		if len(batch) > 0 {
			r.stats.add(len(batch), start)
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
	if r.copyOff() {
		r.narrow(ctx, reqs, false, checkedRLS)
		return
	}
	n, err := copyIn(ctx, r.pool, r.copySQLs[1], 1, func(w *copyWriter) error {
		for _, req := range reqs {
			w.row(req.tuple)
		}
		return nil
	})
	r.deliver(ctx, reqs, n, err)
}

// deliver gives each request of reqs its result, given n and err, the
// result of writing them all with copyIn.
func (r *Repository) deliver(ctx context.Context, reqs []*request, n int64, err error) {
	switch {
	case err == nil && n == int64(len(reqs)):
		for _, req := range reqs {
			req.done <- nil
		}
	case err == nil:
		// Committed, but a trigger dropped some rows.
		r.settleDropped(ctx, reqs, n)
	case duplicateID(err):
		// Some ID is stored already, and nothing was committed: write them
		// with an INSERT, which finds out which IDs were stored.
		r.narrow(ctx, reqs, false, upsert)
	case notSupported(err):
		// Row-level security applies, and nothing was committed: write
		// them with INSERT, and the next batches too, for a while.
		r.refuseCopy()
		r.narrow(ctx, reqs, false, checkedRLS)
	case rowError(err, false):
		// The server rejected a row, and nothing was committed: find out
		// which rows fail.
		r.narrow(ctx, reqs, true, upsert)
	default:
		// No connection, or it failed or timed out, or the server failed
		// the statement for a reason no row is to blame for: every row of
		// the batch shares the outcome, which err tells (it wraps
		// audit.ErrMaybeStored when the batch may have been committed).
		failAll(reqs, err)
	}
}

// narrow writes reqs, whose batch failed without committing anything, in
// groups of one INSERT each, and gives each request its result: the whole
// of reqs first, or at once its two halves if split is set; a group that
// fails with an error one row can cause is split in halves, down to single
// logs, which get the error. All within ctx, the batch's deadline, and in
// at most narrowBudget(len(reqs)) statements per bad log found, plus as
// many; and it stops once it has found wholesaleBad bad logs and they
// outnumber the logs written, and the largest group left, tried whole,
// fails too (the batch is refused wholesale). Once it
// stops, every log not written yet gets the last such error, wrapped in
// one that says so (each of them is certainly not stored: its group was
// never sent, or the server's ERROR rolled it back). Should an
// error that is no row's fault come up, the group that met it gets it
// (wrapping audit.ErrMaybeStored if the group may be committed), and the
// groups not written yet get it plain, without a try.
func (r *Repository) narrow(ctx context.Context, reqs []*request, split bool, how groupInsert) {
	groups := [][]*request{reqs} // a stack: the next group is last
	if split {
		groups = halves(groups[:0], reqs)
	}
	perBad := narrowBudget(len(reqs))
	var (
		last         error // the last error one row can cause
		bad, written int   // logs found bad, and logs written (or settled)
		probed       bool  // the largest group left was tried whole
	)
	for statements := 0; len(groups) > 0; statements++ {
		wholesale := bad >= wholesaleBad && bad > written
		if wholesale && !probed {
			// Bad logs clustered at the start of a batch look like a
			// batch refused wholesale: before giving up, try the largest
			// group left (the bottom of the stack) whole, once. It fails
			// if the server refuses every row, and writes its logs if
			// not.
			probed, wholesale = true, false
			groups = append(groups[1:], groups[0])
		}
		if statements == (bad+1)*perBad || wholesale {
			// Rows that fail this often are likely all to fail (a NOT
			// NULL column a DBA added, a trigger that refuses every row),
			// and 2N-1 statements would only say so N times.
			err := fmt.Errorf("not written: after %d statements that found %d logs of the batch the server refuses "+
				"and wrote %d, narrowing stopped, and the server's last error was: %w", statements, bad, written, last)
			for _, g := range groups {
				failAll(g, err)
			}
			return
		}
		g := groups[len(groups)-1]
		groups = groups[:len(groups)-1]
		var err error
		if how == upsert {
			err = r.insertGroup(ctx, g)
		} else {
			err = r.insertChecked(ctx, g)
		}
		rowErr := rowError(err, how == checkedRLS) || errors.Is(err, errDeficit)
		switch {
		case err == nil:
			written += len(g)
		case how == upsert && notSupported(err):
			// INSERT rules on the table, which are not supported (COPY
			// ignores them): write this group and the others as a lone
			// INSERT would.
			how = checked
			groups = append(groups, g)
		case rowErr && len(g) == 1:
			last = err
			bad++
			g[0].done <- fmt.Errorf("postgres audit: create %q: %w", g[0].row.id, err)
		case rowErr:
			last = err
			groups = halves(groups, g)
		default:
			failAll(g, err)
			for _, g := range groups {
				failAll(g, cause(err)) // never sent
			}
			return
		}
	}
}

// groupInsert is how narrow writes a group of logs.
type groupInsert int

const (
	// upsert writes a group with INSERT ... ON CONFLICT DO NOTHING
	// RETURNING id, and finds out from the table why a log was skipped
	// (insertGroup): one statement settles every duplicate.
	upsert groupInsert = iota
	// checked writes a group with a plain INSERT in a transaction that
	// commits only if the server stored every row or none
	// (insertChecked), for a table with INSERT rules, on which the server
	// refuses ON CONFLICT.
	checked
	// checkedRLS is checked, for a table under row-level security: ON
	// CONFLICT and RETURNING would be judged by its SELECT policies, which
	// may hide other tenants' logs, and a lookup would not see them
	// either. A policy's 42501 is a row's error.
	checkedRLS
)

// copyRetry is how long group commit writes with INSERT, after the server
// refused a COPY into the table, before it tries COPY again.
const copyRetry = time.Minute

// refuseCopy records that the server refused a COPY into the table.
func (r *Repository) refuseCopy() {
	r.copyOffUntil.Store(time.Now().Add(copyRetry).UnixNano())
	r.stats.copyRefused.Add(1)
}

// copyOff reports whether the server refused a COPY into the table less
// than copyRetry ago: a COPY would be refused again (row-level security
// applies to the role), a round trip and an ERROR in the server's log per
// batch.
func (r *Repository) copyOff() bool {
	return time.Now().UnixNano() < r.copyOffUntil.Load()
}

// narrowBudget is the most statements narrow spends on a batch of n logs
// per bad log it finds, and before the first: enough to find one bad log by
// halves (two statements per halving, one halving per power of two) and a
// few more, 2*ceil(log2(n)) + 8 (28 for a batch of 1000). The statements
// that find a bad log other than the first are fewer, as they share the
// halvings above it: k bad logs cost at most 2*k*ceil(log2(n)) + 2, so
// narrow finds all of them within (k+1)*narrowBudget(n), wherever they are
// in the batch, and rows that keep failing while no single log does (an
// error that depends on the group) cost narrowBudget(n) at most.
func narrowBudget(n int) int {
	return 2*bits.Len(uint(max(n, 1)-1)) + 8
}

// wholesaleBad is how many bad logs narrow finds in a batch before it
// takes the batch as refused wholesale (a NOT NULL column a DBA added, a
// trigger that refuses every row), if the bad logs outnumber the logs
// written (as narrow writes a batch's first logs first, they are then most
// of the batch's logs up to the last one found) and the largest group not
// yet written fails too when it is tried whole, once. A batch whose every
// log is refused costs ceil(log2(n)) + 16 statements at most (26 for
// 1000; 24 in TestFlushEveryRowRefused), rather than 2n-1; a batch with fewer bad logs, or with bad logs
// clustered where that group does not reach, has every bad log found, and
// only those fail.
const wholesaleBad = 8

// halves pushes the two halves of g on the stack groups, the first half
// on top.
func halves(groups [][]*request, g []*request) [][]*request {
	mid := len(g) / 2
	return append(groups, g[mid:], g[:mid])
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
			if w.segmentRows() >= perSegment && w.segmentsLeft() > 1 {
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
		c.pending, expired = c.r.await(c.pending[:0], min(max(c.want/4, 8), c.want-len(c.batch)), c.expire, w.refusal())
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

// batchStats counts group commit's batches and the time they take, from
// the moment a writer starts making a batch to the moment each of its
// callers has a result: the batch cycle, whose length bounds by Little's
// law what a number of callers can write (callers / cycle). The
// benchmarks read it.
type batchStats struct {
	batches, logs, nanos atomic.Int64
	copyRefused          atomic.Int64 // COPY statements the server refused
}

func (s *batchStats) add(logs int, since time.Time) {
	s.batches.Add(1)
	s.logs.Add(int64(logs))
	s.nanos.Add(int64(time.Since(since)))
}

func (r *Repository) batchContext() (context.Context, context.CancelFunc) {
	if r.writeTimeout > 0 {
		return context.WithTimeout(context.Background(), r.writeTimeout)
	}
	return context.WithCancel(context.Background())
}
