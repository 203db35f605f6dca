package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
)

// Defaults of the ProjectorOptions.
const (
	DefaultBatchSize         = 1000
	DefaultRebalanceInterval = time.Second
)

// Headers of a dead letter. Its data is the rejected message's data.
const (
	HeaderDeadReason   = "Audit-Dead-Reason"   // why the projection rejected the message
	HeaderDeadStream   = "Audit-Dead-Stream"   // the stream that holds the message
	HeaderDeadSequence = "Audit-Dead-Sequence" // its sequence in that stream
	HeaderDeadSubject  = "Audit-Dead-Subject"  // its subject
)

// DeadLetter is a message of a partition stream that the projection
// rejected: it is not a valid log, it is not on the subject of its own ID,
// org and source, PostgreSQL refused its row, or its ID is already in the
// projection. The Projector stores it in the trail's dead-letter stream
// before the projection's position moves past it, and reports it.
type DeadLetter struct {
	Stream   string // the partition stream that holds the message, which keeps it
	Sequence uint64 // its sequence there
	Subject  string // its subject
	Reason   string // why the projection rejected it
}

// Projector applies the trail's partition streams to the projection in
// PostgreSQL, in order, in batches: for each batch one statement inserts
// the rows and advances the partition's position, and only then is the
// batch acknowledged to the stream.
//
// It is idempotent two ways. The position, committed with the rows,
// tells a redelivered message from a new one: a message at or below it is
// acknowledged and skipped. And IDs are the table's primary key: a batch
// with an ID already in the table commits nothing; its message goes to the
// dead letters and the rest of the batch is applied.
//
// Several Projectors, in as many processes as you like, share the
// partitions: each partition is applied by the one holding its
// PostgreSQL advisory lock, and the position advances only from the value
// its owner read (a compare-and-set), so that even two owners at once, as
// when a stalled process wakes after its lock was taken over, apply every
// message once. Projectors rebalance the partitions among themselves, each
// taking its fair share, and take over those of one that stops.
//
// Make one with NewProjector and call Run.
type Projector struct {
	js        natsjs.JetStream
	pool      *pgxpool.Pool
	trail     Trail
	batchSize int
	rebalance time.Duration
	onDead    func(DeadLetter)
	onError   func(error)

	lockKey      int32 // first key of the trail's advisory locks
	applySQL     string
	positionSQL  string
	ensureSQL    string
	lockSQL      string
	membersSQL   string
	memberSQL    string
	stats        stats
	publishRetry time.Duration
}

type stats struct {
	applied, deadLettered, redelivered, batches, resets atomic.Int64

	mu    sync.Mutex
	owned map[int]bool
}

// own records that the Projector holds partition part now, or not.
func (s *stats) own(part int, yes bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owned == nil {
		s.owned = map[int]bool{}
	}
	if yes {
		s.owned[part] = true
	} else {
		delete(s.owned, part)
	}
}

// ProjectorStats counts what a Projector has done since it was made.
type ProjectorStats struct {
	Applied      int64 // logs inserted into the projection
	DeadLettered int64 // messages sent to the dead letters
	Redelivered  int64 // messages skipped because the projection had them
	Batches      int64 // statements that advanced a position
	Resets       int64 // times a partition's consumer was set back to its position
	Owned        []int // the partitions it holds now, in order
}

// ProjectorOption configures a Projector.
type ProjectorOption func(*Projector)

// WithBatchSize sets the most messages applied in one statement. The
// default is DefaultBatchSize. NewProjector returns an error if n < 1.
func WithBatchSize(n int) ProjectorOption {
	return func(p *Projector) { p.batchSize = n }
}

// WithRebalanceInterval sets how often a Projector counts the Projectors
// of its trail and takes or gives up partitions to hold its fair share. It
// bounds how long a partition waits for a new owner after its owner
// stops. The default is DefaultRebalanceInterval. NewProjector returns an
// error if d <= 0.
func WithRebalanceInterval(d time.Duration) ProjectorOption {
	return func(p *Projector) { p.rebalance = d }
}

// WithDeadLetterHandler sets the function told of every dead letter, once
// it is stored and the position has moved past it. It is called from the
// goroutine of the partition, which waits for it. The default logs it
// with slog at level Warn. A message may be reported again if its batch is
// applied again after a failure.
func WithDeadLetterHandler(fn func(DeadLetter)) ProjectorOption {
	return func(p *Projector) { p.onDead = fn }
}

// WithErrorHandler sets the function told of every error the Projector
// recovers from by trying again: PostgreSQL or NATS unavailable, a
// partition taken over by another Projector, a consumer's subscription
// that missed heartbeats, a durable consumer that was deleted (the
// Projector makes it again, from the position). It may be called from
// several goroutines at once. The default logs it with slog at level
// Error.
func WithErrorHandler(fn func(error)) ProjectorOption {
	return func(p *Projector) { p.onError = fn }
}

// NewProjector returns a Projector of trail that reads its streams through
// js and writes the projection through pool. The trail must match the one
// the streams were made for (see CreateStreams); Run checks that. It
// returns an error for an invalid trail or option, and panics if js or
// pool is nil.
func NewProjector(js natsjs.JetStream, pool *pgxpool.Pool, trail Trail, opts ...ProjectorOption) (*Projector, error) {
	if js == nil || pool == nil {
		panic("jetstream audit: NewProjector with a nil JetStream or pool")
	}
	t, err := trail.resolve()
	if err != nil {
		return nil, err
	}
	p := &Projector{
		js:           js,
		pool:         pool,
		trail:        t,
		batchSize:    DefaultBatchSize,
		rebalance:    DefaultRebalanceInterval,
		publishRetry: 100 * time.Millisecond,
		onDead: func(d DeadLetter) {
			slog.Warn("audit projection rejected a message; it is in the dead letters",
				"stream", d.Stream, "seq", d.Sequence, "subject", d.Subject, "reason", d.Reason)
		},
		onError: func(err error) { slog.Error("audit projection", "err", err) },
	}
	for _, opt := range opts {
		opt(p)
	}
	if p.batchSize < 1 {
		return nil, fmt.Errorf("jetstream audit: WithBatchSize(%d): must be at least 1", p.batchSize)
	}
	if p.rebalance <= 0 {
		return nil, fmt.Errorf("jetstream audit: WithRebalanceInterval(%s): must be positive", p.rebalance)
	}
	h := fnv.New32a()
	h.Write([]byte("github.com/raystack/salt/examples/jetstream projector\x00" + t.Schema + "\x00" + t.Name))
	p.lockKey = int32(h.Sum32() & 0x7fffffff)
	logs := qualified(t.Schema, "audit_logs")
	positions := qualified(t.Schema, positionsTable)
	// One statement applies a batch: it finds the batch's IDs already in
	// the table, advances the position from the value the owner read
	// (only if no ID is taken), and inserts the rows (only if the
	// position advanced). It commits on its own, so rows and position are
	// stored together or not at all.
	p.applySQL = `WITH dup AS (
	SELECT id FROM ` + logs + ` WHERE id = ANY($4::text[])
), pos AS (
	UPDATE ` + positions + ` SET seq = $3, updated_at = now()
	WHERE stream = $1 AND seq = $2 AND NOT EXISTS (SELECT FROM dup)
	RETURNING seq
), ins AS (
	INSERT INTO ` + logs + ` (id, org_id, source, action, actor_id, actor_type, actor_name,
		target_id, target_type, target_name, metadata, created_at)
	SELECT u.id, u.org_id, u.source, u.action, u.actor_id, u.actor_type, u.actor_name,
		u.target_id, u.target_type, u.target_name, u.metadata::jsonb, u.created_at
	FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[])
		AS u(id, org_id, source, action, actor_id, actor_type, actor_name,
			target_id, target_type, target_name, metadata, created_at)
	WHERE EXISTS (SELECT FROM pos)
	RETURNING 1
)
SELECT (SELECT count(*) FROM pos), (SELECT count(*) FROM ins), ARRAY(SELECT id FROM dup)`
	p.ensureSQL = "INSERT INTO " + positions + " (stream, seq) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING"
	p.positionSQL = "SELECT seq FROM " + positions + " WHERE stream = $1"
	p.lockSQL = "SELECT pg_try_advisory_lock($1, $2)"
	p.memberSQL = "SELECT pg_advisory_lock_shared($1, 0)"
	p.membersSQL = "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted" +
		" AND classid::bigint = $1 AND objid::bigint = 0 AND objsubid = 2"
	return p, nil
}

// Stats returns what the Projector has done so far.
func (p *Projector) Stats() ProjectorStats {
	p.stats.mu.Lock()
	owned := slices.Sorted(maps.Keys(p.stats.owned))
	p.stats.mu.Unlock()
	return ProjectorStats{
		Applied:      p.stats.applied.Load(),
		DeadLettered: p.stats.deadLettered.Load(),
		Redelivered:  p.stats.redelivered.Load(),
		Batches:      p.stats.batches.Load(),
		Resets:       p.stats.resets.Load(),
		Owned:        owned,
	}
}

// Run applies the streams until ctx ends, then returns nil once every
// batch under way is committed or abandoned. It returns an error at once
// if a stream of the trail is missing or was made for another layout
// (ErrTrailMismatch); every other failure, NATS or PostgreSQL away
// included, it reports to the error handler and retries, with a growing
// pause of up to 5 s, for as long as ctx lasts.
func (p *Projector) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for part := 0; part < p.trail.Partitions; {
		err := checkStream(ctx, p.js, p.trail, part, true)
		switch {
		case done(ctx):
			return nil
		case err == nil:
			part++
			continue
		case errors.Is(err, ErrTrailMismatch), errors.Is(err, natsjs.ErrStreamNotFound):
			return err
		}
		p.onError(err)
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	backoff = 100 * time.Millisecond
	for {
		start := time.Now()
		err := p.member(ctx)
		if done(ctx) {
			return nil
		}
		p.onError(err)
		if time.Since(start) > 10*backoff {
			backoff = 100 * time.Millisecond
		}
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// done reports whether ctx has ended. Where the function then returns nil,
// which is right (a Projector stops cleanly when its ctx ends), it reads
// as what it means, not as an error dropped.
func done(ctx context.Context) bool { return ctx.Err() != nil }

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connect opens a connection of its own, outside the pool, for a session
// advisory lock: the lock lives as long as the connection.
func (p *Projector) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := p.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// Named for the process, so that pg_stat_activity and pg_locks tell
	// which one holds which partition.
	cfg.RuntimeParams["application_name"] = "audit-projector " + strconv.Itoa(os.Getpid())
	return pgx.ConnectConfig(ctx, cfg)
}

// member takes part in sharing the partitions: it holds the trail's shared
// membership lock, and every rebalance interval counts the members and
// takes or gives up partitions to own its fair share, ceil(partitions /
// members). It returns after stopping its workers, when ctx ends or with
// the error that ended its membership.
func (p *Projector) member(ctx context.Context) error {
	conn, err := p.connect(ctx)
	if err != nil {
		return fmt.Errorf("jetstream audit: projector: connecting to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, p.memberSQL, p.lockKey); err != nil {
		return fmt.Errorf("jetstream audit: projector: joining: %w", err)
	}
	workers := map[int]*worker{}
	exited := make(chan *worker, p.trail.Partitions)
	defer func() {
		for _, w := range workers {
			w.stopAndWait()
		}
	}()
	tick := time.NewTicker(p.rebalance)
	defer tick.Stop()
	for {
		var n int64
		if err := conn.QueryRow(ctx, p.membersSQL, int64(p.lockKey)).Scan(&n); err != nil {
			return fmt.Errorf("jetstream audit: projector: counting projectors: %w", err)
		}
		fair := (p.trail.Partitions + int(max(n, 1)) - 1) / int(max(n, 1))
		// Give up the partitions above the fair share, the highest first.
		for part := p.trail.Partitions - 1; part >= 0 && len(workers) > fair; part-- {
			if w := workers[part]; w != nil {
				w.stopAndWait()
				delete(workers, part)
			}
		}
		// Take free ones up to it, starting at a random partition so that
		// members starting together try different ones first.
		off := rand.IntN(p.trail.Partitions)
		for i := 0; i < p.trail.Partitions && len(workers) < fair; i++ {
			part := (off + i) % p.trail.Partitions
			if workers[part] != nil {
				continue
			}
			w, err := p.startWorker(ctx, part, exited)
			if err != nil {
				if done(ctx) {
					return err
				}
				p.onError(err)
				continue
			}
			if w != nil {
				workers[part] = w
			}
		}
		// A partition whose worker stopped is taken again at the next tick,
		// not at once: what stopped it may last.
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case w := <-exited:
				if workers[w.part] == w {
					delete(workers, w.part)
				}
				if w.err != nil && ctx.Err() == nil {
					p.onError(w.err)
				}
			case <-tick.C:
				break wait
			}
		}
	}
}

// worker applies one partition while its process holds the partition's
// lock.
type worker struct {
	part    int
	stop    chan struct{} // closed to ask the worker to stop after its batch
	done    chan struct{} // closed when it has stopped
	err     error         // why it stopped, once done is closed; nil when asked to
	stopped sync.Once
}

// asked reports whether the worker was asked to stop.
func (w *worker) asked() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *worker) stopAndWait() {
	w.stopped.Do(func() { close(w.stop) })
	<-w.done
}

// startWorker tries to take the lock of partition part, and if it gets it
// starts a worker, which sends itself to exited when it stops. It returns
// nil, nil when another process holds the lock.
func (p *Projector) startWorker(ctx context.Context, part int, exited chan<- *worker) (*worker, error) {
	conn, err := p.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream audit: projector: connecting to PostgreSQL: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, p.lockSQL, p.lockKey, int32(part+1)).Scan(&ok); err != nil || !ok {
		_ = conn.Close(context.Background())
		if err != nil {
			return nil, fmt.Errorf("jetstream audit: projector: locking partition %d: %w", part, err)
		}
		return nil, nil
	}
	w := &worker{part: part, stop: make(chan struct{}), done: make(chan struct{})}
	p.stats.own(part, true)
	go func() {
		defer func() {
			p.stats.own(part, false)
			_ = conn.Close(context.Background())
			close(w.done)
			exited <- w
		}()
		w.err = p.work(ctx, w, conn)
	}()
	return w, nil
}

// errStop ends a worker that was asked to stop, or whose ctx ended.
var errStop = errors.New("stop")

// errGap is returned by apply when a message arrives whose sequence is
// past the next one: the one in between went to a subscription that is
// gone, and the consumer must be set back to the position.
var errGap = errors.New("gap")

// errLostPosition is returned when the position changed under the owner:
// another Projector holds the partition now.
var errLostPosition = errors.New("jetstream audit: projector: the partition's position was advanced by another projector")

// work applies partition part on conn, which holds its lock, until asked
// to stop or ctx ends (then it returns nil) or something fails.
func (p *Projector) work(ctx context.Context, w *worker, conn *pgx.Conn) error {
	name := p.trail.stream(w.part)
	s, err := p.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("jetstream audit: projector: stream %s: %w", name, err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, consumerConfig(w.part))
	if err != nil {
		return fmt.Errorf("jetstream audit: projector: consumer of %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, p.ensureSQL, name); err != nil {
		return fmt.Errorf("jetstream audit: projector: position of %s: %w", name, err)
	}
	var pos int64
	if err := conn.QueryRow(ctx, p.positionSQL, name).Scan(&pos); err != nil {
		return fmt.Errorf("jetstream audit: projector: position of %s: %w", name, err)
	}
	for {
		// Deliver from the position on: messages delivered to a former
		// owner and not acknowledged come first, not after the new ones.
		if _, err := s.ResetConsumerToSequence(ctx, ProjectorConsumer, uint64(pos)+1); err != nil {
			return p.stopped(ctx, w, fmt.Errorf("jetstream audit: projector: setting consumer of %s to %d: %w", name, pos+1, err))
		}
		p.stats.resets.Add(1)
		err := p.consume(ctx, w, conn, s, cons, &pos)
		if !errors.Is(err, errGap) {
			return p.stopped(ctx, w, err)
		}
		// Another subscription took the message that is missing: one of a
		// former owner, until its pulls expire. Give it a moment.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-w.stop:
		case <-t.C:
		}
		t.Stop()
	}
}

// stopped returns nil if the worker was asked to stop or its ctx ended,
// and err otherwise.
func (p *Projector) stopped(ctx context.Context, w *worker, err error) error {
	if w.asked() || done(ctx) || errors.Is(err, errStop) {
		return nil
	}
	return err
}

// consume reads the consumer and applies batches, advancing *pos, until
// it fails, is asked to stop, or meets a gap.
func (p *Projector) consume(ctx context.Context, w *worker, conn *pgx.Conn, s natsjs.Stream, cons natsjs.Consumer, pos *int64) error {
	name := s.CachedInfo().Config.Name
	msgs := make(chan natsjs.Msg, p.batchSize)
	quit := make(chan struct{})
	// ended receives the error after which the subscription delivers no
	// more: the consumer is gone (deleted, say), and work makes it again.
	ended := make(chan error, 1)
	cc, err := cons.Consume(func(m natsjs.Msg) {
		select {
		case msgs <- m:
		case <-quit:
		}
	},
		natsjs.PullMaxMessages(2*p.batchSize),
		// Short pulls, whose heartbeats (every 2.5 s) tell within 5 s that
		// the server holding the pull stopped answering, rather than 30.
		natsjs.PullExpiry(5*time.Second),
		natsjs.ConsumeErrHandler(func(_ natsjs.ConsumeContext, err error) {
			if consumerGone(err) {
				select {
				case ended <- err:
				default:
				}
				return
			}
			// The subscription recovers from the others on its own
			// (missed heartbeats, a reconnection): they are news only.
			p.onError(fmt.Errorf("jetstream audit: projector: consuming %s: %w", name, err))
		}))
	if err != nil {
		return fmt.Errorf("jetstream audit: projector: consuming %s: %w", name, err)
	}
	defer func() {
		close(quit)
		cc.Stop()
	}()
	batch := make([]natsjs.Msg, 0, p.batchSize)
	for {
		batch = batch[:0]
		select {
		case m := <-msgs:
			batch = append(batch, m)
		case err := <-ended:
			return fmt.Errorf("jetstream audit: projector: consuming %s: %w", name, err)
		case <-cc.Closed():
			return fmt.Errorf("jetstream audit: projector: consuming %s: the subscription ended", name)
		case <-w.stop:
			return errStop
		case <-ctx.Done():
			return errStop
		}
	collect:
		for len(batch) < p.batchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break collect
			}
		}
		if err := p.apply(ctx, conn, w.part, s, pos, batch); err != nil {
			return err
		}
	}
}

// consumerGone reports whether err, from a subscription to the
// Projector's consumer, means that the subscription will deliver no more.
func consumerGone(err error) bool {
	return errors.Is(err, natsjs.ErrConsumerDeleted) || errors.Is(err, natsjs.ErrConsumerNotFound) ||
		errors.Is(err, natsjs.ErrBadRequest) || errors.Is(err, natsjs.ErrConnectionClosed)
}

// item is a message of a batch and what became of it.
type item struct {
	msg    natsjs.Msg
	seq    uint64
	log    audit.Log
	reason string // why it is rejected; "" if it is a valid row
}

// apply applies batch, whose messages come in delivery order, and
// acknowledges it. Messages at or below *pos are skipped; the others must
// follow *pos without a gap, but for sequences the stream does not hold
// (deleted, were its deletes allowed): the message of a sequence it holds
// may not be passed.
func (p *Projector) apply(ctx context.Context, conn *pgx.Conn, part int, s natsjs.Stream, pos *int64, batch []natsjs.Msg) error {
	name := s.CachedInfo().Config.Name
	next := uint64(*pos)
	var items []item
	var gap bool
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			continue // not a message of the stream
		}
		seq := md.Sequence.Stream
		if seq <= next {
			p.stats.redelivered.Add(1)
			continue
		}
		if seq != next+1 {
			absent, err := absent(ctx, s, next+1, seq)
			if err != nil {
				return fmt.Errorf("jetstream audit: projector: %s %d..%d: %w", name, next+1, seq-1, err)
			}
			if !absent {
				gap = true
				break
			}
		}
		next = seq
		it := item{msg: m, seq: seq}
		it.log, it.reason = p.decode(part, m)
		items = append(items, it)
	}
	if next > uint64(*pos) {
		if err := p.store(ctx, conn, part, name, pos, next, items); err != nil {
			return err
		}
	}
	// Cumulative: acknowledges every message up to the last one applied
	// or skipped, now that the position covers them.
	if last := lastAt(batch, uint64(*pos)); last != nil {
		_ = last.Ack()
	}
	if gap {
		return errGap
	}
	return nil
}

// absent reports whether s holds none of the sequences from, …, to-1.
func absent(ctx context.Context, s natsjs.Stream, from, to uint64) (bool, error) {
	for seq := from; seq < to; seq++ {
		_, err := s.GetMsg(ctx, seq)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, natsjs.ErrMsgNotFound) {
			return false, err
		}
	}
	return true, nil
}

// lastAt returns the last message of batch at or below pos.
func lastAt(batch []natsjs.Msg, pos uint64) natsjs.Msg {
	for i := len(batch) - 1; i >= 0; i-- {
		if md, err := batch[i].Metadata(); err == nil && md.Sequence.Stream <= pos {
			return batch[i]
		}
	}
	return nil
}

// decode returns the log of m, or the reason it is not a log the
// projection can hold.
func (p *Projector) decode(part int, m natsjs.Msg) (audit.Log, string) {
	var l audit.Log
	if err := json.Unmarshal(m.Data(), &l); err != nil {
		return l, "not a JSON log: " + err.Error()
	}
	if err := l.Validate(); err != nil {
		return l, err.Error()
	}
	l.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	if want := p.trail.subject(part, l.ID, l.OrgID, l.Source); m.Subject() != want {
		return l, "on subject " + m.Subject() + ", want " + want + ", the subject of its partition, ID, org and source"
	}
	return l, ""
}

// store dead-letters the rejected items, then applies the others and
// advances the position to next, in one statement. If PostgreSQL rejects
// the statement because of a row, it applies the items one by one, and
// dead-letters those it rejects.
func (p *Projector) store(ctx context.Context, conn *pgx.Conn, part int, name string, pos *int64, next uint64, items []item) error {
	var dead []DeadLetter
	good := items[:0:0]
	for _, it := range items {
		if it.reason != "" {
			d, err := p.deadLetter(ctx, part, name, it, it.reason)
			if err != nil {
				return err
			}
			dead = append(dead, d)
			continue
		}
		good = append(good, it)
	}
	for {
		dups, err := p.exec(ctx, conn, name, pos, next, good)
		if rowError(err) && len(good) > 1 {
			d, err := p.storeEach(ctx, conn, part, name, pos, next, good)
			dead = append(dead, d...)
			if err != nil {
				return err
			}
			break
		}
		if rowError(err) {
			d, err := p.deadLetter(ctx, part, name, good[0], "PostgreSQL refused the row: "+err.Error())
			if err != nil {
				return err
			}
			dead = append(dead, d)
			good = nil
			continue
		}
		if err != nil {
			return err
		}
		if len(dups) == 0 {
			break
		}
		// Dead-letter the messages whose ID is taken and apply the rest.
		taken := make(map[string]bool, len(dups))
		for _, id := range dups {
			taken[id] = true
		}
		rest := good[:0:0]
		for _, it := range good {
			if !taken[it.log.ID] {
				rest = append(rest, it)
				continue
			}
			d, err := p.deadLetter(ctx, part, name, it, "a log with ID "+strconv.Quote(it.log.ID)+" is already in the projection")
			if err != nil {
				return err
			}
			dead = append(dead, d)
		}
		good = rest
	}
	p.stats.deadLettered.Add(int64(len(dead)))
	for _, d := range dead {
		p.onDead(d)
	}
	return nil
}

// storeEach applies items one statement each, advancing the position to
// each item's sequence, and finally to next; it dead-letters the items
// whose row PostgreSQL rejects.
func (p *Projector) storeEach(ctx context.Context, conn *pgx.Conn, part int, name string, pos *int64, next uint64, items []item) ([]DeadLetter, error) {
	var dead []DeadLetter
	for _, it := range items {
		one := []item{it}
		for {
			dups, err := p.exec(ctx, conn, name, pos, it.seq, one)
			var reason string
			switch {
			case rowError(err):
				reason = "PostgreSQL refused the row: " + err.Error()
			case err != nil:
				return dead, err
			case len(dups) > 0:
				reason = "a log with ID " + strconv.Quote(it.log.ID) + " is already in the projection"
			}
			if reason == "" {
				break
			}
			d, err := p.deadLetter(ctx, part, name, it, reason)
			if err != nil {
				return dead, err
			}
			dead = append(dead, d)
			one = nil // advance the position alone
		}
	}
	if uint64(*pos) < next {
		if _, err := p.exec(ctx, conn, name, pos, next, nil); err != nil {
			return dead, err
		}
	}
	return dead, nil
}

// rowError reports whether err is PostgreSQL refusing a row for what it
// holds (data exceptions, integrity constraints, limits), not a failure
// that trying again may cure.
func rowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23" || class == "54"
}

// exec runs the statement that inserts items and advances the position
// from *pos to next, and returns the IDs of items already in the table, in
// which case it stored nothing.
func (p *Projector) exec(ctx context.Context, conn *pgx.Conn, name string, pos *int64, next uint64, items []item) ([]string, error) {
	n := len(items)
	cols := make([][]string, 11)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	created := make([]time.Time, n)
	for i, it := range items {
		l := &it.log
		for j, v := range [...]string{l.ID, l.OrgID, l.Source, l.Action, l.Actor.ID, l.Actor.Type, l.Actor.Name,
			l.Target.ID, l.Target.Type, l.Target.Name} {
			cols[j][i] = v
		}
		cols[10][i] = metadataJSON(l.Metadata)
		created[i] = l.CreatedAt
	}
	var advanced, inserted int64
	var dups []string
	err := conn.QueryRow(ctx, p.applySQL, name, *pos, int64(next),
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], cols[10], created,
	).Scan(&advanced, &inserted, &dups)
	if err != nil {
		return nil, fmt.Errorf("jetstream audit: projector: applying %s %d..%d: %w", name, *pos+1, next, err)
	}
	if len(dups) > 0 {
		return dups, nil
	}
	if advanced != 1 {
		return nil, errLostPosition
	}
	*pos = int64(next)
	p.stats.applied.Add(inserted)
	p.stats.batches.Add(1)
	return nil, nil
}

// metadataJSON encodes md as a JSON object; nil or empty is {}.
func metadataJSON(md map[string]string) string {
	if len(md) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(md) // a map of strings always encodes
	return string(b)
}

// deadLetter stores it in the dead-letter stream, on a subject of its own
// that the server lets be written once, and returns its report. A dead
// letter stored before (by an attempt whose batch then failed) counts as
// stored.
func (p *Projector) deadLetter(ctx context.Context, part int, name string, it item, reason string) (DeadLetter, error) {
	d := DeadLetter{Stream: name, Sequence: it.seq, Subject: it.msg.Subject(), Reason: reason}
	subject := p.trail.deadLetterSubject(part, it.seq)
	for {
		msg := &nats.Msg{Subject: subject, Data: it.msg.Data(), Header: nats.Header{
			HeaderDeadReason:       []string{headerValue(reason)},
			HeaderDeadStream:       []string{name},
			HeaderDeadSequence:     []string{strconv.FormatUint(it.seq, 10)},
			HeaderDeadSubject:      []string{d.Subject},
			hdrExpectedLastSubjSeq: []string{"0"},
		}}
		pctx, cancel := context.WithTimeout(ctx, DefaultPublishTimeout)
		_, err := p.js.PublishMsg(pctx, msg)
		cancel()
		var apiErr *natsjs.APIError
		switch {
		case err == nil:
			return d, nil
		case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSeq:
			return d, nil
		case done(ctx):
			return d, errStop
		}
		p.onError(fmt.Errorf("jetstream audit: projector: storing the dead letter of %s %d: %w", name, it.seq, err))
		if !sleep(ctx, p.publishRetry) {
			return d, errStop
		}
	}
}

// headerValue makes s fit a header value: one line, at most 1024 bytes.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	return s
}
