package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher delivers stored logs to another system: a webhook, a log
// pipeline, a message bus.
//
// A Logger calls Publish only after the log was stored, from its own
// goroutines, never from the goroutine that called Logger.Log; see
// WithPublisher. Publish returns nil once the log is delivered, or the
// error that kept it from being delivered; it should retry transient
// failures itself, within ctx's lifetime, and give up when ctx ends. ctx
// carries the values of the context the log was written with, but not its
// cancellation; it ends when the Logger is closed and its drain deadline
// passes.
//
// The log and its Metadata map may be shared with other publishers:
// Publish must not modify them, but it may retain them. Publish must be
// safe for concurrent use when the publisher is attached with more than
// one worker.
type Publisher interface {
	Publish(ctx context.Context, log Log) error
}

// PublisherFunc adapts a function to a Publisher.
type PublisherFunc func(ctx context.Context, log Log) error

// Publish calls f(ctx, log).
func (f PublisherFunc) Publish(ctx context.Context, log Log) error { return f(ctx, log) }

var (
	// ErrQueueFull is the cause of a PublishError when a log was dropped
	// because its publisher's queue was full.
	ErrQueueFull = errors.New("audit: publish queue full")
	// ErrClosed is the cause of a PublishError when a log was stored after
	// Close, so it was not published.
	ErrClosed = errors.New("audit: logger closed")
)

// PublishError reports a log that a publisher did not deliver: Publish
// returned an error or panicked, or the log was dropped before it reached
// Publish (Err is then ErrQueueFull, ErrClosed, or the error of the context
// that ended the wait). The log itself was stored.
type PublishError struct {
	Publisher string // the name given with PublishName, or "publisher-N"
	Log       Log
	Err       error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("audit: log %s (%s) not published to %s: %v", e.Log.ID, e.Log.Action, e.Publisher, e.Err)
}

// Unwrap returns e.Err.
func (e *PublishError) Unwrap() error { return e.Err }

// PublishStats counts what a Logger's publishers did, summed over all of
// them: a log sent to two publishers counts twice. Every log handed to a
// publisher ends up Delivered, Failed or Dropped, or is still queued.
type PublishStats struct {
	Enqueued  uint64 // logs put in a publisher's queue
	Delivered uint64 // Publish returned nil
	Failed    uint64 // Publish returned an error or panicked
	Dropped   uint64 // never reached Publish: queue full, Log's context ended while waiting, Logger closed, drain deadline passed
}

// PublishOption configures one publisher attached with WithPublisher.
type PublishOption func(*publisher)

// PublishName names the publisher in PublishError; the default is
// "publisher-N", N counting from 1 in the order publishers were attached.
func PublishName(name string) PublishOption {
	return func(p *publisher) { p.name = name }
}

// OnlyActions restricts the publisher to logs whose action matches one of
// the patterns. A pattern is an exact action name, "prefix.*" for every
// action that starts with "prefix.", or "*" for every action; a '*'
// anywhere else is matched as itself. OnlyActions with no patterns
// restricts nothing.
func OnlyActions(patterns ...string) PublishOption {
	return func(p *publisher) { p.only = append(p.only, patterns...) }
}

// ExceptActions keeps the publisher from logs whose action matches one of
// the patterns, written as for OnlyActions. It applies after OnlyActions.
func ExceptActions(patterns ...string) PublishOption {
	return func(p *publisher) { p.except = append(p.except, patterns...) }
}

// PublishWorkers sets how many goroutines call Publish concurrently; the
// default is 1, which delivers logs in the order they were stored. Values
// below 1 are taken as 1.
func PublishWorkers(n int) PublishOption {
	return func(p *publisher) { p.workers = max(1, n) }
}

// DefaultQueueSize is the number of logs a publisher's queue holds unless
// PublishQueueSize says otherwise.
const DefaultQueueSize = 1024

// PublishQueueSize sets how many stored logs may wait for the publisher.
// Values below 1 are taken as 1.
func PublishQueueSize(n int) PublishOption {
	return func(p *publisher) { p.queueSize = max(1, n) }
}

// BlockWhenFull makes Logger.Log wait for room in the publisher's queue —
// until Log's context ends, Close is called, or the Logger's timeout (see
// WithTimeout) passes — instead of dropping the log from publishing at
// once. It trades Log's latency for fewer drops: it is the one way a
// publisher can hold up Log. Either way the log is stored first, and a
// log that is not queued is counted and reported.
func BlockWhenFull() PublishOption {
	return func(p *publisher) { p.block = true }
}

// WithPublisher attaches p to the Logger: every log the Logger stores is
// then handed to p, if its action passes p's filters, through a bounded
// queue of its own and p's own goroutines. A slow, failing or panicking
// publisher never fails Logger.Log and does not hold up other publishers.
//
// A queued log keeps the values of the context it was written with, which
// Publish receives, until it is published. A Logger with publishers runs
// goroutines until Close is called.
func WithPublisher(p Publisher, opts ...PublishOption) Option {
	return func(lg *Logger) {
		if p == nil {
			panic("audit: WithPublisher with a nil Publisher")
		}
		pub := &publisher{
			Publisher: p,
			name:      fmt.Sprintf("publisher-%d", len(lg.pubs)+1),
			workers:   1,
			queueSize: DefaultQueueSize,
		}
		for _, opt := range opts {
			opt(pub)
		}
		lg.pubs = append(lg.pubs, pub)
	}
}

// WithErrorHandler sets the function that learns of every log a publisher
// did not deliver, as a *PublishError. It is called from Logger.Log for
// logs that were not queued — the queue was full, Log's context ended
// while waiting, or the Logger was closed — and from the publishers'
// goroutines for logs that Publish failed or Close gave up on; so it must
// be fast and safe for concurrent use. The default logs each error with
// slog.Default at level Error.
func WithErrorHandler(h func(error)) Option {
	return func(lg *Logger) {
		if h != nil {
			lg.onError = h
		}
	}
}

func logPublishError(err error) {
	var pe *PublishError
	if errors.As(err, &pe) {
		slog.Default().Error("audit: log not published",
			"publisher", pe.Publisher, "id", pe.Log.ID, "action", pe.Log.Action, "err", pe.Err)
		return
	}
	slog.Default().Error("audit: log not published", "err", err)
}

// publisher is a Publisher attached to a Logger, with its filter and queue.
type publisher struct {
	Publisher
	name      string
	only      []string
	except    []string
	workers   int
	queueSize int
	block     bool

	queue                                chan queued
	enqueued, delivered, failed, dropped atomic.Uint64
}

func (p *publisher) stats() PublishStats {
	return PublishStats{
		Enqueued:  p.enqueued.Load(),
		Delivered: p.delivered.Load(),
		Failed:    p.failed.Load(),
		Dropped:   p.dropped.Load(),
	}
}

// queued is a stored log waiting for a publisher, with the context it was
// written with, whose values Publish receives.
type queued struct {
	ctx context.Context
	log Log
}

func (p *publisher) wants(action string) bool {
	if len(p.only) > 0 && !matchAny(p.only, action) {
		return false
	}
	return !matchAny(p.except, action)
}

func matchAny(patterns []string, action string) bool {
	for _, pat := range patterns {
		if pat == action || pat == "*" {
			return true
		}
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(action, prefix) {
			return true
		}
	}
	return false
}

// publishing is the publishing state of a Logger.
type publishing struct {
	mu        sync.RWMutex // held for reading while queueing, for writing by Close
	closed    bool
	closing   chan struct{} // closed when Close starts, to free Logs waiting for room
	closeOnce sync.Once

	life    context.Context // the context of every Publish call; canceled when Close gives up
	cancel  context.CancelFunc
	workers sync.WaitGroup

	lost atomic.Uint64 // not published because Close gave up
}

// startPublishing starts the goroutines of every publisher.
func (lg *Logger) startPublishing() {
	if len(lg.pubs) == 0 {
		return
	}
	lg.pub.life, lg.pub.cancel = context.WithCancel(context.Background())
	lg.pub.closing = make(chan struct{})
	for _, p := range lg.pubs {
		p.queue = make(chan queued, p.queueSize)
		for range p.workers {
			lg.pub.workers.Add(1)
			go lg.work(p)
		}
	}
}

// publish hands a stored log to every publisher that wants it. Logs it
// could not queue are reported once the lock is released, so that the
// error handler may do anything, Close included.
func (lg *Logger) publish(ctx context.Context, stored *Log) {
	l := *stored
	var dropped []*PublishError
	lg.pub.mu.RLock()
	for _, p := range lg.pubs {
		if !p.wants(l.Action) {
			continue
		}
		if err := lg.enqueue(ctx, p, l); err != nil {
			p.dropped.Add(1)
			dropped = append(dropped, &PublishError{Publisher: p.name, Log: l, Err: err})
		}
	}
	lg.pub.mu.RUnlock()
	for _, e := range dropped {
		lg.onError(e)
	}
}

// enqueue puts l in p's queue, or returns why it did not; lg.pub.mu must
// be held for reading. A queue with BlockWhenFull is waited for until ctx
// ends, Close starts or the Logger's timeout passes.
func (lg *Logger) enqueue(ctx context.Context, p *publisher, l Log) error {
	if lg.pub.closed {
		return ErrClosed
	}
	item := queued{ctx: ctx, log: l}
	// Counted before the send, so that no worker counts the log done before
	// it is counted queued; taken back if the send fails.
	p.enqueued.Add(1)
	select {
	case p.queue <- item:
		return nil
	default:
	}
	err := ErrQueueFull
	if p.block {
		var timeout <-chan time.Time
		if lg.timeout > 0 {
			t := time.NewTimer(lg.timeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case p.queue <- item:
			return nil
		case <-ctx.Done():
			err = fmt.Errorf("%w: %w", ErrQueueFull, context.Cause(ctx))
		case <-timeout:
			err = fmt.Errorf("%w: waited %v", ErrQueueFull, lg.timeout)
		case <-lg.pub.closing:
			err = ErrClosed
		}
	}
	p.enqueued.Add(^uint64(0))
	return err
}

func (lg *Logger) drop(p *publisher, l Log, err error) {
	p.dropped.Add(1)
	lg.onError(&PublishError{Publisher: p.name, Log: l, Err: err})
}

// work runs one of p's goroutines until p's queue is closed and empty.
func (lg *Logger) work(p *publisher) {
	defer lg.pub.workers.Done()
	for item := range p.queue {
		if err := lg.pub.life.Err(); err != nil {
			// Close gave up waiting: what is still queued is not published.
			lg.pub.lost.Add(1)
			lg.drop(p, item.log, err)
			continue
		}
		err := callPublish(publishCtx{Context: lg.pub.life, values: context.WithoutCancel(item.ctx)}, p, item.log)
		if err != nil {
			p.failed.Add(1)
			if lg.pub.life.Err() != nil {
				lg.pub.lost.Add(1) // cut short by Close
			}
			lg.onError(&PublishError{Publisher: p.name, Log: item.log, Err: err})
			continue
		}
		p.delivered.Add(1)
	}
}

// callPublish calls p.Publish, turning a panic into an error.
func callPublish(ctx context.Context, p *publisher, l Log) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("audit: publisher panicked: %v", r)
		}
	}()
	return p.Publish(ctx, l)
}

// publishCtx is the context of a Publish call: the Logger's publishing
// lifetime, with the values of the context the log was written with.
type publishCtx struct {
	context.Context
	values context.Context
}

func (c publishCtx) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// Stats returns what the Logger's publishers have done so far, summed
// over all of them.
func (lg *Logger) Stats() PublishStats {
	var total PublishStats
	for _, p := range lg.pubs {
		total.add(p.stats())
	}
	return total
}

func (s *PublishStats) add(o PublishStats) {
	s.Enqueued += o.Enqueued
	s.Delivered += o.Delivered
	s.Failed += o.Failed
	s.Dropped += o.Dropped
}

// PublisherStats returns what each publisher has done so far, by the name
// given with PublishName (or "publisher-N").
func (lg *Logger) PublisherStats() map[string]PublishStats {
	m := make(map[string]PublishStats, len(lg.pubs))
	for _, p := range lg.pubs {
		s := m[p.name] // publishers may share a name; their counts add up
		s.add(p.stats())
		m[p.name] = s
	}
	return m
}

// Close stops publishing: it stops queueing logs, waits until the
// publishers delivered what is queued or ctx ends, and then stops the
// publishers' goroutines. When ctx ends first, the context of running
// Publish calls is canceled, what is still queued is dropped and
// reported, and Close returns an error saying how many logs were not
// published. Close waits for running Publish calls to return.
//
// Log and Record keep storing logs after Close — requests still in flight
// during a graceful shutdown must be audited — but no longer publish them;
// each such log is reported with ErrClosed. Closing a Logger twice, or one
// without publishers, does nothing.
func (lg *Logger) Close(ctx context.Context) error {
	ps := &lg.pub
	ps.closeOnce.Do(func() {
		if ps.closing != nil {
			close(ps.closing)
		}
	})
	ps.mu.Lock()
	if ps.closed || len(lg.pubs) == 0 {
		ps.closed = true
		ps.mu.Unlock()
		return nil
	}
	ps.closed = true
	for _, p := range lg.pubs {
		close(p.queue)
	}
	ps.mu.Unlock()

	done := make(chan struct{})
	go func() {
		ps.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		ps.cancel()
		return nil
	case <-ctx.Done():
		ps.cancel()
		<-done
		if n := ps.lost.Load(); n > 0 {
			return fmt.Errorf("audit: closing: %d queued logs not published: %w", n, context.Cause(ctx))
		}
		return nil
	}
}
