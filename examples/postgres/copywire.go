package postgres

import (
	"bytes"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The COPY protocol of group commit, spoken on a connection through pgx's
// Frontend: the messages of COPY statements sent, and the server's answers
// read, with what they said (rows, an error, whether the exchange ended
// cleanly). What is sent, on which connection, and what the answers mean
// for each log is decided elsewhere: copyIn (insert.go) takes the
// connection and calls copyExchange, copyOutcome (outcome.go) judges its
// result, writer.go says who learns what. The rows come encoded by
// appendCopyRow (copyenc.go).
//
// pgconn's CopyFrom reads the data in a goroutine of its own and receives
// the server's messages in another, and hands both to the caller: wake-ups
// that every batch, and so every caller, would wait for. copyExchange
// sends from the calling goroutine and reads in one other. (pgx's tracers
// and notice handlers therefore do not see these statements.)

// copySegments is the most COPY statements a batch is written with.
const copySegments = 4

// copyExchange sends sql, which holds segments COPY statements (at most
// copySegments), on pc in one simple-query message, which makes them one
// transaction, and their data: write sends the rows of the first segment,
// ends it, sends those of the next, and so on; the segments it leaves are
// sent empty. It reads the server's answers meanwhile, up to the
// ReadyForQuery that ends them, and returns what it learned. deadline, if
// not zero, bounds the exchange. The server inserts a COPY's rows in
// buffers of up to a thousand, so all of a batch's rows once its COPY
// ends; segments let it insert the first rows of a batch while the last
// are still to come.
func copyExchange(pc *pgconn.PgConn, deadline time.Time, sql string, segments int, write func(*copyWriter) error) copyExchanged {
	conn := pc.Conn()
	if !deadline.IsZero() {
		if err := conn.SetDeadline(deadline); err != nil {
			return copyExchanged{sendErr: err}
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
	ex := copyExchanged{copyResult: res, sendErr: sendErr, refusedEarly: w.refusedEarly}
	// Both sides have stopped. A connection whose exchange was cut short
	// is in a state that no one else should find.
	ex.clean = sendErr == nil && res.clean
	if ex.clean && !deadline.IsZero() && conn.SetDeadline(time.Time{}) != nil {
		ex.clean = false
	}
	return ex
}

// copyExchanged is what copyExchange learned.
type copyExchanged struct {
	copyResult       // the server's answers; clean: the connection may be used again
	sendErr    error // why the rest could not be sent, if it could not
	// refusedEarly is set when the server had refused the COPY before the
	// last CopyDone was sent.
	refusedEarly bool
}

// sendCopy sends the statements of copyExchange and their data, with write
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

// receiveCopy reads the server's answers to copyExchange's statements up to
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

// copyWriter sends the data of copyExchange's COPY statements.
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

// segmentRows returns how many rows the current segment holds.
func (w *copyWriter) segmentRows() int { return w.rows }

// segmentsLeft returns how many segments are not ended yet, the current
// one included.
func (w *copyWriter) segmentsLeft() int { return w.left }

// refusal returns a channel closed once the server has refused the COPY,
// after which it reads no more rows.
func (w *copyWriter) refusal() <-chan struct{} { return w.refused }
