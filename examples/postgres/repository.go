package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// Defaults of the Options.
const (
	DefaultMaxBatch     = 1000
	DefaultWriters      = 1
	DefaultWriteTimeout = 30 * time.Second
	DefaultMaxWait      = 500 * time.Microsecond
)

// Repository is an audit.Repository that stores logs in the audit_logs
// table of a PostgreSQL schema prepared by Migrate.
//
// Create goes through group commit: the logs of concurrent Create calls
// are written together, one statement and one commit per batch (see
// Create). List pages by keyset in SQL, and GetByID reads by primary key.
//
// A Repository is safe for concurrent use. It runs a writer goroutine
// from NewRepository until Close.
type Repository struct {
	pool         *pgxpool.Pool
	schema       string
	table        pgx.Identifier
	maxBatch     int
	writers      int
	writeTimeout time.Duration
	maxWait      time.Duration

	copySQLs  [copySegments + 1]string // copySQLs[n]: n COPY statements of group commit, see writer.go
	stmts     statements               // the other statements that write, see insert.go
	selectSQL string                   // SELECT columns FROM table
	getSQL    string

	reqs chan *request
	mu   sync.RWMutex // held for reading while sending to reqs
	// collecting is held by the writer making a batch.
	collecting sync.Mutex
	// A writer waiting for more logs sets awaited to how many it waits
	// for, and a sender that sees that many queued signals enough.
	awaited atomic.Int64
	enough  chan struct{}
	closed  bool
	// copyOffUntil is when group commit tries COPY again, in Unix
	// nanoseconds, after the server refused one (see copyOff).
	copyOffUntil atomic.Int64
	quit         chan struct{}
	wg           sync.WaitGroup
	stats        batchStats
}

var _ audit.Repository = (*Repository)(nil)

// Option configures a Repository.
type Option func(*Repository)

// WithSchema sets the schema that holds the audit_logs table, as given to
// Migrate. The default, "", leaves table names unqualified, so that they
// are found through the connection's search_path.
func WithSchema(schema string) Option {
	return func(r *Repository) { r.schema = schema }
}

// WithMaxBatch sets the most logs group commit writes in one statement.
// The default is DefaultMaxBatch. NewRepository panics if n < 1.
func WithMaxBatch(n int) Option {
	return func(r *Repository) { r.maxBatch = n }
}

// WithWriters sets how many batches group commit may have in flight at
// once, each on its own connection. The default is DefaultWriters: one
// connection writing batches back to back, the next batch made of the
// logs that arrived during the previous one. More writers make smaller
// batches that compete for the same WAL flushes; measure before raising
// it. NewRepository panics if n < 1.
func WithWriters(n int) Option {
	return func(r *Repository) { r.writers = n }
}

// WithMaxWait bounds how long a writer waits, after the first log of a
// batch arrives, for more. It waits only for the callers it expects back:
// those of the previous batch, and those that arrived while it was being
// written. They are likely to be back within moments with their next
// logs, and one commit for all of them is cheaper than one for the first
// few and another for the rest. The batch's COPY starts at once, and the
// logs that arrive during the wait are sent as they come. A lone caller
// does not wait (but for its first log after a burst). A value <= 0 never
// waits. The default is DefaultMaxWait.
func WithMaxWait(d time.Duration) Option {
	return func(r *Repository) { r.maxWait = d }
}

// WithWriteTimeout bounds how long group commit waits for one batch to be
// written, the statements that find a rejected row included, before it
// gives the logs it has not written an error wrapping
// context.DeadlineExceeded, and audit.ErrMaybeStored for those whose
// statement was under way (a commit waiting for a synchronous standby, an
// answer that does not come). A value <= 0 removes the bound. The default
// is DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(r *Repository) { r.writeTimeout = d }
}

// NewRepository returns a Repository that stores logs through pool, in the
// table that Migrate created, and starts its writer. Close it when done;
// closing the pool stays the caller's job, after Close.
//
// It panics if pool is nil or an option has an invalid value: both are
// programming errors found at start-up.
func NewRepository(pool *pgxpool.Pool, opts ...Option) *Repository {
	if pool == nil {
		panic("postgres audit: NewRepository with a nil pool")
	}
	r := &Repository{
		pool:         pool,
		maxBatch:     DefaultMaxBatch,
		writers:      DefaultWriters,
		writeTimeout: DefaultWriteTimeout,
		maxWait:      DefaultMaxWait,
		quit:         make(chan struct{}),
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.maxBatch < 1 {
		panic("postgres audit: WithMaxBatch(" + strconv.Itoa(r.maxBatch) + "): must be at least 1")
	}
	if r.writers < 1 {
		panic("postgres audit: WithWriters(" + strconv.Itoa(r.writers) + "): must be at least 1")
	}
	r.table = pgx.Identifier{"audit_logs"}
	if r.schema != "" {
		r.table = pgx.Identifier{r.schema, "audit_logs"}
	}
	table := r.table.Sanitize()
	cols := strings.Join(columns, ", ")
	r.selectSQL = "SELECT " + cols + " FROM " + table
	r.getSQL = r.selectSQL + " WHERE id = $1"
	for n := range r.copySQLs {
		r.copySQLs[n] = strings.Repeat(copySQL(r.table)+"; ", n)
	}
	r.stmts = newStatements(table)
	r.reqs = make(chan *request, r.maxBatch)
	r.enough = make(chan struct{}, 1)
	r.awaited.Store(math.MaxInt64)
	r.wg.Add(r.writers)
	for range r.writers {
		go r.writeLoop()
	}
	return r
}

// Close stops group commit: it waits until the logs already handed to the
// writer are written and their callers have their results, then stops the
// writer goroutines. Create keeps working while Close waits and after,
// each log written with its own statement, so that requests still in
// flight during a graceful shutdown are audited. Close does not close the
// pool. It always returns nil, and may be called more than once.
func (r *Repository) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.quit)
	r.wg.Wait()
	return nil
}

// GetByID implements audit.Repository.
func (r *Repository) GetByID(ctx context.Context, id string) (audit.Log, error) {
	// No stored log has an ID that PostgreSQL could not even receive.
	if id == "" || len(id) > audit.MaxIDLen || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		if err := ctx.Err(); err != nil {
			return audit.Log{}, err
		}
		return audit.Log{}, fmt.Errorf("%w: id %q", audit.ErrNotFound, id)
	}
	rows, err := r.pool.Query(ctx, r.getSQL, id)
	if err != nil {
		return audit.Log{}, fmt.Errorf("postgres audit: get %q: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return audit.Log{}, fmt.Errorf("postgres audit: get %q: %w", id, err)
		}
		return audit.Log{}, fmt.Errorf("%w: id %q", audit.ErrNotFound, id)
	}
	l, err := scanLog(rows)
	if err != nil {
		return audit.Log{}, fmt.Errorf("postgres audit: get %q: %w", id, err)
	}
	return l, nil
}

// List implements audit.Repository. Every field of the filter becomes a
// condition of one SELECT, and the page is a range of an index in
// (created_at DESC, id DESC) order that starts after the cursor:
// (created_at, id) < (cursor's time, cursor's id). No OFFSET.
func (r *Repository) List(ctx context.Context, filter audit.Filter) ([]audit.Log, error) {
	if err := filter.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sql, args, ok, err := r.listQuery(filter)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	// Plan each List for its own values, never with a generic plan of a
	// prepared statement: the best index depends on the values (a small
	// org is best read through the org index, a big one may be read in
	// time order), and a generic plan, made once for an average org, can
	// scan a large part of the table for a small one. Planning costs a
	// few tens of microseconds.
	rows, err := r.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("postgres audit: list: %w", err)
	}
	defer rows.Close()
	out := make([]audit.Log, 0, min(filter.PageSize(), audit.DefaultLimit))
	for rows.Next() {
		l, err := scanLog(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres audit: list: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres audit: list: %w", err)
	}
	return out, nil
}

// listQuery returns the SELECT for a valid filter and its arguments. It
// returns ok == false when no stored log can match, without a query.
func (r *Repository) listQuery(f audit.Filter) (sql string, args []any, ok bool, err error) {
	var b strings.Builder
	b.Grow(len(r.selectSQL) + 256)
	b.WriteString(r.selectSQL)
	where := " WHERE "
	cond := func(format string, vals ...any) {
		b.WriteString(where)
		where = " AND "
		n := make([]any, len(vals))
		for i, v := range vals {
			args = append(args, v)
			n[i] = len(args)
		}
		fmt.Fprintf(&b, format, n...)
	}
	for _, c := range [...]struct{ col, val string }{
		{"org_id", f.OrgID},
		{"source", f.Source},
		{"action", f.Action},
		{"actor_id", f.ActorID},
		{"actor_type", f.ActorType},
		{"target_id", f.TargetID},
		{"target_type", f.TargetType},
	} {
		if c.val != "" {
			cond(c.col+" = $%d", c.val)
		}
	}
	if len(f.Metadata) > 0 {
		cond("metadata @> $%d", appendJSONObject(nil, f.Metadata))
	}
	// Stored times are whole microseconds, so CreatedAt >= Since and
	// CreatedAt < Until hold exactly when they hold for Since and Until
	// rounded up to a microsecond. Times outside the range of timestamptz
	// either match every stored log or none.
	if !f.Since.IsZero() {
		since := ceilMicro(f.Since)
		if !since.Before(maxTime) {
			return "", nil, false, nil
		}
		if since.After(minTime) {
			cond("created_at >= $%d", since)
		}
	}
	// Until and the cursor both bound the page from above; only the
	// tighter one goes into the query. With both, PostgreSQL would start
	// the index scan at the row comparison and skip, one by one, the
	// entries between it and Until.
	var until time.Time
	if !f.Until.IsZero() {
		until = ceilMicro(f.Until)
		if !until.After(minTime) {
			return "", nil, false, nil
		}
		if !until.Before(maxTime) {
			until = time.Time{}
		}
	}
	if f.Cursor != "" {
		t, id, err := audit.ParseCursor(f.Cursor)
		if err != nil {
			return "", nil, false, err
		}
		if t.Before(minTime) {
			return "", nil, false, nil // nothing is older
		}
		// (created_at, id) < (t, id) implies created_at <= t, so Until
		// adds nothing if it is after t; if it is not, every log before
		// Until comes after the cursor.
		if until.IsZero() || t.Before(until) {
			cond("(created_at, id) < ($%d, $%d)", t, id)
			until = time.Time{}
		}
	}
	if !until.IsZero() {
		cond("created_at < $%d", until)
	}
	args = append(args, f.PageSize())
	b.WriteString(" ORDER BY created_at DESC, id DESC LIMIT $" + strconv.Itoa(len(args)))
	return b.String(), args, true, nil
}

// ceilMicro returns t in UTC rounded up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	t = t.UTC()
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}
