package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// Defaults of the Options.
const (
	DefaultPublishTimeout = 10 * time.Second
	DefaultAttemptTimeout = 2 * time.Second
	DefaultRetryWait      = 50 * time.Millisecond
)

// Headers of the publish that make a second log with the same ID fail. The
// server checks that no message is stored on any subject that matches the
// second header's filter — the ID's subjects, whatever their org and
// source — before it stores the log.
const (
	hdrExpectedLastSubjSeq     = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectedLastSubjSeqSubj = "Nats-Expected-Last-Subject-Sequence-Subject"
)

// HeaderCreateNonce is the header of a stored log that names the Create
// call that stored it: a random value of its own for every call, the same
// for all of that call's attempts. It lets a call whose attempt went
// unanswered tell its own stored log from one that another call stored
// with the same ID and the same bytes.
const HeaderCreateNonce = "Audit-Create-Nonce"

// Error codes of the JetStream API that Create tells apart.
const (
	// errCodeWrongLastSeq: a message is stored on the ID's subjects; the
	// description carries its sequence.
	errCodeWrongLastSeq = natsjs.JSErrCodeStreamWrongLastSequence
	// errCodeWrongLastSeqConstant: on a replicated stream, a message on the
	// ID's subjects is on its way through Raft and not yet stored; it may
	// yet fail, so the answer is not final.
	errCodeWrongLastSeqConstant = natsjs.JSErrCodeStreamWrongLastSequenceConstant
)

// Repository is an audit.Repository whose Create stores a log in a
// replicated JetStream stream and whose List and GetByID read the
// projection that a Projector keeps in PostgreSQL.
//
// Create returns nil once the stream's Raft group has the log on a
// majority of its servers. List and GetByID first wait until the
// projection has applied every log the streams held when they were
// called, so that a caller reads its own writes and those that others
// finished before the call. Without a Projector running they wait until
// ctx ends.
//
// A Repository is safe for concurrent use. Close it when done.
type Repository struct {
	js             natsjs.JetStream
	trail          Trail
	streams        []natsjs.Stream
	names          []string
	pool           *pgxpool.Pool
	query          *postgres.Repository
	publishTimeout time.Duration
	attemptTimeout time.Duration
	retryWait      time.Duration
	positionsSQL   string
}

var _ audit.Repository = (*Repository)(nil)

// Option configures a Repository.
type Option func(*Repository)

// WithPublishTimeout bounds how long Create waits for the stream to
// acknowledge a log, all its attempts included, whatever ctx allows: when
// it ends with no attempt settled, Create returns an error wrapping
// audit.ErrMaybeStored. A leader that dies is replaced after the Raft
// election timeout (4 to 9 s by default), so a bound below about 10 s
// turns a leader's death into errors rather than delays. The default is DefaultPublishTimeout. A
// value <= 0 leaves the bound to ctx.
func WithPublishTimeout(d time.Duration) Option {
	return func(r *Repository) { r.publishTimeout = d }
}

// WithAttemptTimeout bounds how long one publish of Create waits for its
// answer before Create publishes again (see Create). An answer that takes
// longer is lost, as when the server that had the message dies; a bound
// well above the slowest answer of a healthy cluster costs nothing then.
// The default is DefaultAttemptTimeout. Open returns an error if d <= 0.
func WithAttemptTimeout(d time.Duration) Option {
	return func(r *Repository) { r.attemptTimeout = d }
}

// WithRetryWait sets how long Create waits before it publishes again after
// an answer that says the log was not stored but may be next time: no
// server answered for the stream (its leader is being elected), or another
// log with the same ID is on its way and may yet fail. The default is
// DefaultRetryWait. Open returns an error if d <= 0.
func WithRetryWait(d time.Duration) Option {
	return func(r *Repository) { r.retryWait = d }
}

// Open returns a Repository on the streams of trail, which CreateStreams
// made, and on the projection that Migrate prepared in trail.Schema. It
// checks that every partition stream exists and was made for trail, and
// returns an error wrapping ErrTrailMismatch if one was made for another
// layout, and an error for an invalid trail or option.
//
// js's connection and pool stay the caller's: close them after the
// Repository. Open panics if js or pool is nil, as NewProjector does.
func Open(ctx context.Context, js natsjs.JetStream, pool *pgxpool.Pool, trail Trail, opts ...Option) (*Repository, error) {
	if js == nil || pool == nil {
		panic("jetstream audit: Open with a nil JetStream or pool")
	}
	t, err := trail.resolve()
	if err != nil {
		return nil, err
	}
	r := &Repository{
		js:             js,
		trail:          t,
		pool:           pool,
		publishTimeout: DefaultPublishTimeout,
		attemptTimeout: DefaultAttemptTimeout,
		retryWait:      DefaultRetryWait,
		positionsSQL:   "SELECT stream, seq FROM " + qualified(t.Schema, positionsTable) + " WHERE stream = ANY($1)",
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.retryWait <= 0 {
		return nil, fmt.Errorf("jetstream audit: WithRetryWait(%s): must be positive", r.retryWait)
	}
	if r.attemptTimeout <= 0 {
		return nil, fmt.Errorf("jetstream audit: WithAttemptTimeout(%s): must be positive", r.attemptTimeout)
	}
	for p := range t.Partitions {
		if err := checkStream(ctx, js, t, p, true); err != nil {
			return nil, err
		}
		s, err := js.Stream(ctx, t.stream(p))
		if err != nil {
			return nil, fmt.Errorf("jetstream audit: stream %s: %w", t.stream(p), err)
		}
		r.streams = append(r.streams, s)
		r.names = append(r.names, t.stream(p))
	}
	r.query = postgres.NewRepository(pool, postgres.WithSchema(t.Schema))
	return r, nil
}

// Close releases what the Repository holds in this process. It does not
// close the NATS connection or the pool. It always returns nil.
func (r *Repository) Close() error { return r.query.Close() }

// Create implements audit.Repository. It publishes log to the subject of
// its ID, org and source in the stream of its partition, and returns
// once the stream acknowledges it: the log is then stored on a majority
// of the stream's replicas, in the order the stream's leader gave it.
//
// The publish tells the server to store the log only if no message is
// stored yet on any subject of the same ID; a log whose ID is stored is
// rejected with an error wrapping audit.ErrAlreadyExists, however long
// ago it was stored.
//
// An attempt that gets no answer within the attempt timeout (see
// WithAttemptTimeout) is made again, which is safe for the same reason:
// the first attempt that the server answers settles it. Every attempt
// carries the call's own random nonce (HeaderCreateNonce); if an answer
// after an unanswered attempt is that the ID is taken, Create reads the
// stored log and returns nil only if it carries that nonce, that is if
// one of this call's attempts stored it, and ErrAlreadyExists otherwise,
// even if another call stored the very same log.
//
// When the publish timeout or ctx ends with no attempt settled, Create
// returns an error wrapping audit.ErrMaybeStored and the cause. The retry
// with the same log (Logger.Record with the same ID) is a new call with a
// nonce of its own: if the first call stored the log, the retry gets
// ErrAlreadyExists, which the audit package defines, after an
// ErrMaybeStored, as "the first attempt stored it"; if not, the retry
// stores it and gets nil.
func (r *Repository) Create(ctx context.Context, log *audit.Log) error {
	if err := log.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.js.Conn().IsClosed() {
		// Nothing can be sent: the log is not stored.
		return fmt.Errorf("jetstream audit: create %q: %w", log.ID, nats.ErrConnectionClosed)
	}
	l := *log
	l.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	data, err := json.Marshal(&l)
	if err != nil {
		return fmt.Errorf("jetstream audit: encoding log %q: %w", l.ID, err)
	}
	p := r.trail.partition(l.ID)
	c := create{
		id:       l.ID,
		stream:   r.streams[p],
		subject:  r.trail.subject(p, l.ID, l.OrgID, l.Source),
		idFilter: r.trail.idFilter(p, l.ID),
		data:     data,
		nonce:    rand.Text(),
	}
	if r.publishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.publishTimeout)
		defer cancel()
	}
	for {
		done, err := r.attempt(ctx, &c)
		if done {
			return err
		}
		if ctx.Err() != nil {
			if c.maybe {
				return fmt.Errorf("jetstream audit: create %q: %w: no answer: %w (last: %w)", c.id, audit.ErrMaybeStored, ctx.Err(), err)
			}
			// Every attempt was answered, and none stored the log.
			return fmt.Errorf("jetstream audit: create %q: not stored: %w (last answer: %w)", c.id, ctx.Err(), err)
		}
	}
}

// create is the state of one Create call across its attempts.
type create struct {
	id, subject, idFilter string
	stream                natsjs.Stream
	data                  []byte
	// nonce is sent with every attempt (HeaderCreateNonce), so that the
	// stored log tells whether one of this call's attempts stored it.
	nonce string
	// maybe is set once an attempt went unanswered: it may have stored
	// the log, so a later answer that the ID is taken may be its own.
	maybe bool
}

// attempt publishes c once and says whether that settles the Create, and
// with what. When it does not, it has waited before returning, if the
// answer asks for a wait.
func (r *Repository) attempt(ctx context.Context, c *create) (done bool, _ error) {
	msg := &nats.Msg{Subject: c.subject, Data: c.data, Header: nats.Header{
		hdrExpectedLastSubjSeq:     []string{"0"},
		hdrExpectedLastSubjSeqSubj: []string{c.idFilter},
		HeaderCreateNonce:          []string{c.nonce},
	}}
	actx, cancel := context.WithTimeout(ctx, r.attemptTimeout)
	// Retries are made here, where each answer is known: one after no
	// responders inside the client would turn a deadline during its wait
	// into an unknown outcome.
	_, err := r.js.PublishMsg(actx, msg, natsjs.WithRetryAttempts(0))
	cancel()
	if err == nil {
		return true, nil
	}
	var apiErr *natsjs.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSeq:
		if c.maybe {
			return r.settleTaken(ctx, c, apiErr)
		}
		return true, fmt.Errorf("%w: id %q (%s)", audit.ErrAlreadyExists, c.id, apiErr.Description)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSeqConstant,
		errors.As(err, &apiErr) && apiErr.Code == 503,
		errors.Is(err, natsjs.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		// Not stored by this attempt, but the next may be: a log with
		// the ID is on its way and may yet fail; the stream has no leader
		// or is not current; no server took the message, as while a
		// leader is elected.
		r.pause(ctx)
		return false, err
	case errors.As(err, &apiErr):
		// Any other answer of the stream's leader is a refusal: nothing was
		// proposed.
		if c.maybe {
			return true, fmt.Errorf("jetstream audit: create %q: %w: %w", c.id, audit.ErrMaybeStored, err)
		}
		return true, fmt.Errorf("jetstream audit: create %q: %w", c.id, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout):
		// No answer in time: the log may be stored. Ask again.
		c.maybe = true
		return false, err
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		// Closed for good, maybe after the log was sent: no attempt can
		// settle it.
		return true, fmt.Errorf("jetstream audit: create %q: %w: %w", c.id, audit.ErrMaybeStored, err)
	default:
		// The connection failed, or the answer could not be read, after
		// the log may have been sent.
		c.maybe = true
		r.pause(ctx)
		return false, err
	}
}

// settleTaken settles a Create one of whose attempts went unanswered and a
// later one found the ID taken: if the stored log carries c's nonce, the
// unanswered attempt stored it. Equal bytes are not enough: another call
// may have stored the same log (a service that sends it twice, from two
// replicas), and then this call stored nothing.
func (r *Repository) settleTaken(ctx context.Context, c *create, taken *natsjs.APIError) (bool, error) {
	m, err := c.stream.GetLastMsgForSubject(ctx, c.idFilter)
	if err != nil {
		return true, fmt.Errorf("jetstream audit: create %q: %w: the ID is taken, reading the log that took it: %w", c.id, audit.ErrMaybeStored, err)
	}
	if m.Header.Get(HeaderCreateNonce) == c.nonce {
		return true, nil
	}
	return true, fmt.Errorf("%w: id %q (%s)", audit.ErrAlreadyExists, c.id, taken.Description)
}

// pause waits the retry wait, or until ctx ends.
func (r *Repository) pause(ctx context.Context) { sleep(ctx, r.retryWait) }

// List implements audit.Repository. It waits until the projection has
// applied every log that the trail's streams held when List was called,
// then lists the projection as postgres.Repository.List does. When ctx
// ends first it returns an error wrapping ctx's error that says how far
// the projection lags.
func (r *Repository) List(ctx context.Context, filter audit.Filter) ([]audit.Log, error) {
	if err := filter.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	last, err := r.lastSequences(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.waitApplied(ctx, last); err != nil {
		return nil, err
	}
	return r.query.List(ctx, filter)
}

// GetByID implements audit.Repository. It reads the projection; if the
// log is not there, it asks the stream of the ID's partition whether the
// log is stored, and if so waits until the projection has applied it and
// reads again. A log that the projection rejected (see Projector) is not
// found.
func (r *Repository) GetByID(ctx context.Context, id string) (audit.Log, error) {
	l, err := r.query.GetByID(ctx, id)
	if !errors.Is(err, audit.ErrNotFound) || !plausibleID(id) {
		return l, err
	}
	p := r.trail.partition(id)
	m, err := r.streams[p].GetLastMsgForSubject(ctx, r.trail.idFilter(p, id))
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return audit.Log{}, fmt.Errorf("%w: id %q", audit.ErrNotFound, id)
	}
	if err != nil {
		return audit.Log{}, fmt.Errorf("jetstream audit: get %q: %w", id, err)
	}
	last := make([]uint64, len(r.streams))
	last[p] = m.Sequence
	if err := r.waitApplied(ctx, last); err != nil {
		return audit.Log{}, err
	}
	return r.query.GetByID(ctx, id)
}

// plausibleID reports whether a log could have id: Validate rejects the
// others, so no stream holds them.
func plausibleID(id string) bool {
	return id != "" && len(id) <= audit.MaxIDLen && utf8.ValidString(id) && strings.IndexByte(id, 0) < 0
}

// lastSequences returns the last sequence of every partition stream, as
// each stream's leader knows it: every log acknowledged before the call is
// at or below it.
func (r *Repository) lastSequences(ctx context.Context) ([]uint64, error) {
	last := make([]uint64, len(r.streams))
	errs := make([]error, len(r.streams))
	done := make(chan struct{}, len(r.streams))
	for i, s := range r.streams {
		go func() {
			defer func() { done <- struct{}{} }()
			last[i], errs[i] = r.leaderLastSeq(ctx, i, s)
		}()
	}
	for range r.streams {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return last, nil
}

// leaderLastSeq returns the last sequence of stream s (partition i) as its
// leader answers it. While a stream's group has no leader (an election),
// a member of the group answers with its own state, which may lack logs
// the group acknowledged: such an answer, and any other not from the
// leader, is not taken, and the question asked again shortly, until ctx
// ends.
func (r *Repository) leaderLastSeq(ctx context.Context, i int, s natsjs.Stream) (uint64, error) {
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("jetstream audit: stream %s: %w", r.names[i], err)
		}
		if fromLeader(info) {
			return info.State.LastSeq, nil
		}
		r.pause(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("jetstream audit: stream %s: waiting for its leader to answer (the last answer came from %s): %w",
				r.names[i], answerer(info), err)
		}
	}
}

// fromLeader reports whether info is the answer of its stream's leader.
// A server answers for a replicated stream it does not lead when its group
// has no leader (info.Cluster.Leader is empty); it names itself nowhere in
// info.Cluster but leaves itself out of the replicas, so an answer that
// lists the leader among the replicas is not the leader's. A stream of one
// replica, or of a server that is not clustered, has only one server to
// answer.
func fromLeader(info *natsjs.StreamInfo) bool {
	c := info.Cluster
	if c == nil || info.Config.Replicas <= 1 {
		return true
	}
	if c.Leader == "" {
		return false
	}
	for _, p := range c.Replicas {
		if p != nil && p.Name == c.Leader {
			return false
		}
	}
	return true
}

// answerer says who gave an answer that fromLeader refused.
func answerer(info *natsjs.StreamInfo) string {
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "a member of the stream's group that has no leader"
	}
	return "a server that is not the leader " + info.Cluster.Leader
}

// waitApplied waits until the projection's position of every partition
// stream is at least last[p], polling PostgreSQL with a growing interval,
// until ctx ends.
//
// When ctx ends first, whether between two polls or during one, the
// error wraps ctx's error and says how far behind the projection was at
// the last poll that answered.
func (r *Repository) waitApplied(ctx context.Context, last []uint64) error {
	wait := 500 * time.Microsecond
	lag := "not read yet"
	for {
		behind, err := r.behind(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("jetstream audit: waiting for the projection (last lag: %s): %w (%w)", lag, ctx.Err(), err)
			}
			return err
		}
		if behind == "" {
			return nil
		}
		lag = behind
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("jetstream audit: waiting for the projection (last lag: %s): %w", lag, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// behind returns "" if the projection has applied last[p] of every
// partition p, or else says which partitions it has not.
func (r *Repository) behind(ctx context.Context, last []uint64) (string, error) {
	rows, err := r.pool.Query(ctx, r.positionsSQL, r.names)
	if err != nil {
		return "", fmt.Errorf("jetstream audit: reading the projection's positions: %w", err)
	}
	applied := make(map[string]uint64, len(r.names))
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			rows.Close()
			return "", fmt.Errorf("jetstream audit: reading the projection's positions: %w", err)
		}
		applied[name] = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("jetstream audit: reading the projection's positions: %w", err)
	}
	var b strings.Builder
	for p, name := range r.names {
		if applied[name] < last[p] {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name + " at " + strconv.FormatUint(applied[name], 10) + " of " + strconv.FormatUint(last[p], 10))
		}
	}
	return b.String(), nil
}
