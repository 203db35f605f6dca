package jetstream

import (
	"context"
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
	retryWait      time.Duration
	positionsSQL   string
}

var _ audit.Repository = (*Repository)(nil)

// Option configures a Repository.
type Option func(*Repository)

// WithPublishTimeout bounds how long Create waits for the stream to
// acknowledge a log, retries included, whatever ctx allows: when it ends
// first, Create returns an error wrapping audit.ErrMaybeStored. A leader
// that dies is replaced after the Raft election timeout (4 to 9 s by
// default), so a bound below about 10 s turns a leader's death into
// errors rather than delays. The default is DefaultPublishTimeout. A
// value <= 0 leaves the bound to ctx.
func WithPublishTimeout(d time.Duration) Option {
	return func(r *Repository) { r.publishTimeout = d }
}

// WithRetryWait sets how long Create waits before it publishes again after
// an answer that says the log was not stored but may be next time: no
// server answered for the stream (its leader is being elected), or another
// log with the same ID is on its way and may yet fail. The default is
// DefaultRetryWait. Open panics if d <= 0.
func WithRetryWait(d time.Duration) Option {
	return func(r *Repository) { r.retryWait = d }
}

// Open returns a Repository on the streams of trail, which CreateStreams
// made, and on the projection that Migrate prepared in trail.Schema. It
// checks that every partition stream exists and was made for trail, and
// returns an error wrapping ErrTrailMismatch if one was made for another
// layout.
//
// js's connection and pool stay the caller's: close them after the
// Repository.
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
		retryWait:      DefaultRetryWait,
		positionsSQL:   "SELECT stream, seq FROM " + qualified(t.Schema, positionsTable) + " WHERE stream = ANY($1)",
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.retryWait <= 0 {
		panic("jetstream audit: WithRetryWait(" + r.retryWait.String() + "): must be positive")
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
// ago it was stored. If the answer does not come (the publish timed out,
// ctx ended, the connection was lost after sending), Create returns an
// error wrapping audit.ErrMaybeStored and the cause; the retry with the
// same log is safe, for the reason above.
func (r *Repository) Create(ctx context.Context, log *audit.Log) error {
	if err := log.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l := *log
	l.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	data, err := json.Marshal(&l)
	if err != nil {
		return fmt.Errorf("jetstream audit: encoding log %q: %w", l.ID, err)
	}
	p := r.trail.partition(l.ID)
	subject := r.trail.subject(p, l.ID, l.OrgID, l.Source)
	idFilter := r.trail.idFilter(p, l.ID)
	if r.publishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.publishTimeout)
		defer cancel()
	}
	for {
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
			hdrExpectedLastSubjSeq:     []string{"0"},
			hdrExpectedLastSubjSeqSubj: []string{idFilter},
		}}
		// Retries are made here, where each answer is known: a retry
		// after no responders inside the client would turn a deadline
		// during its wait into an unknown outcome.
		_, err := r.js.PublishMsg(ctx, msg, natsjs.WithRetryAttempts(0))
		retry, err := r.outcome(ctx, l.ID, err)
		if !retry {
			return err
		}
		t := time.NewTimer(r.retryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			// Every attempt was answered: the log is not stored.
			return fmt.Errorf("jetstream audit: create %q: not stored: %w (last answer: %w)", l.ID, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// outcome turns the result of one publish into Create's result, and says
// whether to publish again.
func (r *Repository) outcome(ctx context.Context, id string, err error) (retry bool, _ error) {
	if err == nil {
		return false, nil
	}
	var apiErr *natsjs.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSeq:
		return false, fmt.Errorf("%w: id %q (%s)", audit.ErrAlreadyExists, id, apiErr.Description)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSeqConstant:
		return true, err
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		// The stream or JetStream is not available at the moment (no
		// leader, not current); nothing was proposed.
		return true, err
	case errors.As(err, &apiErr):
		// Any other answer of the stream's leader is a refusal: nothing was
		// proposed.
		return false, fmt.Errorf("jetstream audit: create %q: %w", id, err)
	case errors.Is(err, natsjs.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		// No server took the message: a leader is being elected.
		return true, err
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, nats.ErrTimeout):
		return false, fmt.Errorf("jetstream audit: create %q: %w: no answer: %w", id, audit.ErrMaybeStored, err)
	default:
		// The connection failed, or the answer could not be read, after
		// the log may have been sent.
		return false, fmt.Errorf("jetstream audit: create %q: %w: %w", id, audit.ErrMaybeStored, err)
	}
}

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
			info, err := s.Info(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("jetstream audit: stream %s: %w", r.names[i], err)
				return
			}
			last[i] = info.State.LastSeq
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

// waitApplied waits until the projection's position of every partition
// stream is at least last[p], polling PostgreSQL with a growing interval,
// until ctx ends.
func (r *Repository) waitApplied(ctx context.Context, last []uint64) error {
	wait := 500 * time.Microsecond
	for {
		behind, err := r.behind(ctx, last)
		if err != nil {
			return err
		}
		if behind == "" {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("jetstream audit: waiting for the projection (%s): %w", behind, ctx.Err())
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
