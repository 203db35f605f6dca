package postgres

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The COPY protocol of group commit, spoken on a pooled connection through
// pgx's Frontend; writer.go decides what to send and who learns what, this
// file only sends and reads. The rows come encoded by appendCopyRow
// (copyenc.go).
//
// pgconn's CopyFrom reads the data in a goroutine of its own and receives
// the server's messages in another, and hands both to the caller: wake-ups
// that every batch, and so every caller, would wait for. copyIn sends from
// the calling goroutine and reads in one other. (pgx's tracers and notice
// handlers therefore do not see these statements.)

// copySegments is the most COPY statements a batch is written with.
const copySegments = 4

// copyIn writes rows with binary COPY, in a transaction of one or more COPY
// statements, sql holding segments of them (at most copySegments): write
// sends the rows of the first, ends it, sends those of the next, and so on;
// the segments it leaves are sent empty. The server inserts a COPY's rows
// in buffers of up to a thousand, so all of a batch's rows once its COPY
// ends; segments let it insert the first rows of a batch while the last
// are still to come. One simple-query message holds the statements, which
// makes them one transaction: all rows are committed, or none.
//
// It returns how many rows the server inserted, from the COPY statements'
// command tags: fewer than were sent if a trigger dropped some. An error
// means nothing was committed, unless it wraps audit.ErrMaybeStored: all
// of the statements and rows went out, and no ERROR came back. An error of
// ctx's deadline wraps context.DeadlineExceeded.
func copyIn(ctx context.Context, pool *pgxpool.Pool, sql string, segments int, write func(*copyWriter) error) (int64, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	conn := pc.Conn()
	// ctx bounds the exchange by its deadline, which is all a batch's
	// context has.
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := conn.SetDeadline(deadline); err != nil {
			return 0, err
		}
	}
	// The server may answer while the rows are still being sent — an
	// error, or notices from a trigger — and stops reading rows when its
	// answers are not read: read them meanwhile, in a goroutine that only
	// reads, as the other only writes.
	refused := make(chan struct{})
	result := make(chan copyResult, 1)
	go func() { result <- receiveCopy(pc.Frontend(), refused) }()
	w := &copyWriter{fe: pc.Frontend(), left: segments, refused: refused}
	sendErr := sendCopy(w, sql, write)
	if sendErr != nil {
		_ = conn.SetDeadline(time.Now()) // ends receiveCopy's wait
	}
	res := <-result
	// Both sides have stopped. A connection whose exchange was cut short
	// is in a state that no one else should find: close it, and the pool
	// drops it.
	if sendErr != nil || !res.clean {
		closeConn(pc)
	} else if hasDeadline {
		if err := conn.SetDeadline(time.Time{}); err != nil {
			closeConn(pc)
		}
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(res.err, &pgErr) && (!fatal(pgErr) || w.refusedEarly):
		// The server's ERROR rolled the transaction back, and an error
		// that came before the last CopyDone went out ended a
		// transaction that could not commit; either says more than a
		// failure to send the rest.
		return 0, res.err
	case sendErr != nil:
		// The last CopyDone did not go out, so the server cannot have
		// committed.
		return 0, timedOut(ctx, sendErr)
	case res.err != nil:
		// Everything went out and the answer was lost, or the session
		// ended with FATAL, which the server also sends to a commit it
		// made locally and was waiting to replicate.
		return 0, maybeStored(timedOut(ctx, res.err))
	}
	return res.rows, nil
}

// sendCopy sends the statements of copyIn and their data, with write
// sending the rows.
func sendCopy(w *copyWriter, sql string, write func(*copyWriter) error) error {
	w.fe.Send(&pgproto3.Query{String: sql})
	if err := write(w); err != nil {
		return err
	}
	for w.left > 0 {
		w.endSegment()
	}
	// The last CopyDone goes out with this flush.
	select {
	case <-w.refused:
		w.refusedEarly = true
	default:
	}
	return w.flush()
}

// copyResult is what receiveCopy learned.
type copyResult struct {
	rows  int64 // inserted, by the COPY statements' command tags
	err   error // the server's error, or why its answers could not be read
	clean bool  // the server is ready for the next query
}

// receiveCopy reads the server's answers to copyIn's statements up to
// ReadyForQuery: CopyInResponse and CommandComplete for each COPY or, on
// an error, ErrorResponse (after which the server ignores the rest of the
// data), when it closes refused. It reads with the Frontend rather than
// with PgConn, which is not safe to use while another goroutine sends,
// and so skips what PgConn does for notices, notifications and parameter
// changes.
func receiveCopy(fe *pgproto3.Frontend, refused chan<- struct{}) copyResult {
	var res copyResult
	for {
		msg, err := fe.Receive()
		if err != nil {
			if res.err == nil {
				res.err = err
			}
			return res
		}
		switch msg := msg.(type) {
		case *pgproto3.CommandComplete:
			if bytes.HasPrefix(msg.CommandTag, []byte("COPY ")) {
				res.rows += pgconn.NewCommandTag(string(msg.CommandTag)).RowsAffected()
			}
		case *pgproto3.ErrorResponse:
			if res.err == nil {
				res.err = pgconn.ErrorResponseToPgError(msg)
				close(refused)
			}
		case *pgproto3.ReadyForQuery:
			res.clean = true
			return res
		}
	}
}

// closeConn closes a connection whose exchange with the server was cut
// short.
func closeConn(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = pc.Close(ctx)
}

// copyWriter sends the data of copyIn's COPY statements.
type copyWriter struct {
	fe      *pgproto3.Frontend
	left    int             // segments not ended yet
	started bool            // the current segment's header is sent
	rows    int             // rows in the current segment
	refused <-chan struct{} // closed when the server has refused the COPY
	// refusedEarly is set when the server had refused the COPY before the
	// last CopyDone was sent.
	refusedEarly bool
}

// row sends one row, made by appendCopyRow, in the current segment.
func (w *copyWriter) row(tuple []byte) {
	w.start()
	w.fe.Send(&pgproto3.CopyData{Data: tuple})
	w.rows++
}

func (w *copyWriter) start() {
	if !w.started {
		w.fe.Send(&pgproto3.CopyData{Data: copyHeader})
		w.started = true
	}
}

// endSegment ends the current segment; the rows that follow go to the
// next. It must not be called once no segment is left.
func (w *copyWriter) endSegment() {
	w.start()
	w.fe.Send(&pgproto3.CopyData{Data: copyTrailer})
	w.fe.Send(&pgproto3.CopyDone{})
	w.left--
	w.started, w.rows = false, 0
}

// flush sends what was written so far.
func (w *copyWriter) flush() error { return w.fe.Flush() }
