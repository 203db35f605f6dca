package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
// cancellation; it ends when Close gives up waiting for the publishers,
// and context.Cause then returns the cause of Close's ctx. A Publish that
// calls Close, itself or through the error handler of a Log it calls,
// should give Close ctx or a context derived from it: that Close then
// stops publishing and returns at once, with an error wrapping ErrClosed,
// instead of waiting for the drain, which waits for this very call. A
// Publish that panics, or ends its goroutine with runtime.Goexit (as
// t.Fatal does in a test), fails its log, and the publisher goes on with
// the next.
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
// them: a log sent to two publishers counts twice.
//
// A log that passes a publisher's filters is Enqueued: handed to the
// publisher. Its queue takes it, and it is Queued until it is Delivered or
// Failed, or Dropped when Close gives up; or the queue does not take it,
// and it is Dropped at once: the queue was full (and stayed full while Log
// waited, with BlockWhenFull), or the Logger was closed. So at every
// moment
//
//	Enqueued == Delivered + Failed + Dropped + Queued
//
// for the counts of each publisher, which are read at one moment, and so
// for their sums in Logger.Stats and Logger.PublisherStats. Queued is 0
// once a Close that waits for the drain has returned. A log that Close
// gives up on while its Publish call runs counts as Failed at once,
// whatever the call returns later. Every Failed and Dropped log is
// reported to the error handler.
type PublishStats struct {
	Enqueued  uint64 // logs handed to a publisher: they passed its filters
	Delivered uint64 // Publish returned nil
	Failed    uint64 // Publish returned an error, panicked or called runtime.Goexit, or Close gave up while it ran
	Dropped   uint64 // never reached Publish: queue full, Log's context ended or the Logger's timeout passed while waiting, Logger closed, Close gave up
	Queued    uint64 // held by the publisher: in its queue, or being published
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
// Every log handed to p counts as Enqueued in Logger.Stats, and as Queued
// until it is Delivered, Failed or Dropped; one its queue does not take is
// Dropped at once (see PublishStats).
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
// while waiting, or the Logger was closed —, from the publishers'
// goroutines for logs that Publish failed, and from the publishers'
// goroutines or from Close for logs that Close gave up on; so it must be
// fast and safe for concurrent use. It may call Close (see Logger.Close).
// The default logs each error with slog.Default at level Error.
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

	// room has a token when a worker took a log from the queue of a
	// publisher with BlockWhenFull: a Log waiting for room takes it, tries
	// again, and passes it on if room is left.
	room chan struct{}

	// mu guards what follows. The queue and the counts change together
	// under it, so that a log is always counted once, and Stats reads one
	// moment.
	mu    sync.Mutex
	ready sync.Cond // on mu: a log was queued, or the queue closed
	// The queue: a ring of queueSize logs, n of them from head on.
	ring    []queued
	head, n int
	// closed is set when Close starts: nothing is queued any more.
	closed bool
	// The counts of PublishStats, held being Queued: Enqueued is always
	// delivered + failed + dropped + held.
	enqueued, delivered, failed, dropped, held uint64
	// seats are the goroutines that take logs from the queue, one per
	// worker; reporting counts those reporting to the error handler, for
	// whom Close waits.
	seats     []*seat
	reporting int
	drained   bool // closed, and nothing held or being reported
}

// seat is one of a publisher's workers, held by one goroutine at a time;
// its fields are guarded by the publisher's mu.
type seat struct {
	publishing bool // its goroutine is in Publish, with log
	log        Log
	// cut is set when Close gave up while the goroutine was in Publish:
	// the log is counted and reported already.
	cut       bool
	reporting bool // its goroutine is in the error handler
	// taken is set when Close gave the seat to a new goroutine while this
	// one was in the error handler, which may be the goroutine that called
	// Close: once back, that goroutine stops.
	taken bool
}

func (p *publisher) stats() PublishStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PublishStats{Enqueued: p.enqueued, Delivered: p.delivered, Failed: p.failed, Dropped: p.dropped, Queued: p.held}
}

// queued is a stored log waiting for a publisher, with the context it was
// written with, whose values Publish receives.
type queued struct {
	ctx context.Context
	log Log
}

// push queues item if there is room; p.mu must be held.
func (p *publisher) push(item queued) bool {
	if p.n == len(p.ring) {
		return false
	}
	p.ring[(p.head+p.n)%len(p.ring)] = item
	p.n++
	p.enqueued++
	p.held++
	p.ready.Signal()
	return true
}

// pop takes the oldest queued log; p.mu must be held and p.n > 0.
func (p *publisher) pop() queued {
	item := p.ring[p.head]
	p.ring[p.head] = queued{}
	p.head = (p.head + 1) % len(p.ring)
	p.n--
	p.signalRoom()
	return item
}

// signalRoom tells a Log waiting for room in p's queue, if any, that there
// may be; p.mu must be held.
func (p *publisher) signalRoom() {
	if p.room == nil {
		return
	}
	select {
	case p.room <- struct{}{}:
	default: // a token is there already
	}
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
	life   context.Context // the context of every Publish call; canceled when the drain is over
	cancel context.CancelCauseFunc

	stopOnce sync.Once
	closing  chan struct{} // closed when Close is first called, to free Logs waiting for room

	undrained atomic.Int32  // publishers not drained yet
	drained   chan struct{} // closed when every publisher is drained

	mu      sync.Mutex    // held while the drain is declared over
	over    chan struct{} // closed once the drain is over, when outcome is set
	outcome error         // what every Close returns
}

// startPublishing starts the goroutines of every publisher.
func (lg *Logger) startPublishing() {
	if len(lg.pubs) == 0 {
		return
	}
	ps := &lg.pub
	ps.life, ps.cancel = context.WithCancelCause(context.Background())
	ps.closing = make(chan struct{})
	ps.drained = make(chan struct{})
	ps.over = make(chan struct{})
	ps.undrained.Store(int32(len(lg.pubs)))
	for _, p := range lg.pubs {
		p.ring = make([]queued, p.queueSize)
		p.ready.L = &p.mu
		if p.block {
			p.room = make(chan struct{}, 1)
		}
		for range p.workers {
			s := &seat{}
			p.seats = append(p.seats, s)
			go lg.work(p, s)
		}
	}
}

// publish hands a stored log to every publisher that wants it. Logs it
// could not queue are reported after, outside any lock, so that the
// error handler may do anything, Close included.
func (lg *Logger) publish(ctx context.Context, stored *Log) {
	l := *stored
	var refused []*PublishError
	for _, p := range lg.pubs {
		if !p.wants(l.Action) {
			continue
		}
		if err := lg.enqueue(ctx, p, l); err != nil {
			refused = append(refused, &PublishError{Publisher: p.name, Log: l, Err: err})
		}
	}
	for _, e := range refused {
		lg.onError(e)
	}
}

// enqueue puts l in p's queue, or counts it dropped and returns why it did
// not. A queue with BlockWhenFull is waited for until ctx ends, Close
// starts or the Logger's timeout passes.
func (lg *Logger) enqueue(ctx context.Context, p *publisher, l Log) error {
	item := queued{ctx: ctx, log: l}
	p.mu.Lock()
	var err error
	switch {
	case p.closed:
		err = ErrClosed
	case p.push(item):
	case p.block:
		p.mu.Unlock()
		return lg.wait(ctx, p, item)
	default:
		err = ErrQueueFull
	}
	if err != nil {
		p.refuse()
	}
	p.mu.Unlock()
	return err
}

// refuse counts a log that p's queue did not take; p.mu must be held.
func (p *publisher) refuse() {
	p.enqueued++
	p.dropped++
}

// wait puts item in p's full queue once it has room, for BlockWhenFull.
func (lg *Logger) wait(ctx context.Context, p *publisher, item queued) error {
	var timeout <-chan time.Time
	if lg.timeout > 0 {
		t := time.NewTimer(lg.timeout)
		defer t.Stop()
		timeout = t.C
	}
	for {
		var err error
		select {
		case <-p.room:
		case <-ctx.Done():
			err = fmt.Errorf("%w: %w", ErrQueueFull, context.Cause(ctx))
		case <-timeout:
			err = fmt.Errorf("%w: waited %v", ErrQueueFull, lg.timeout)
		case <-lg.pub.closing:
			err = ErrClosed
		}
		p.mu.Lock()
		if err == nil && p.closed {
			err = ErrClosed
		}
		if err == nil && p.push(item) {
			if p.n < len(p.ring) {
				p.signalRoom() // room is left, for the next Log waiting
			}
			p.mu.Unlock()
			return nil
		}
		if err != nil {
			p.refuse()
			p.mu.Unlock()
			return err
		}
		p.mu.Unlock() // another Log took the room
	}
}

// take waits for a log in p's queue for seat s, and returns it, or false
// once the queue is closed and empty.
func (p *publisher) take(s *seat) (queued, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n == 0 && !p.closed {
		p.ready.Wait()
	}
	if p.n == 0 {
		p.seats = slices.DeleteFunc(p.seats, func(t *seat) bool { return t == s })
		return queued{}, false
	}
	item := p.pop()
	s.publishing, s.log = true, item.log
	return item, true
}

// settle counts how the Publish call of seat s ended: delivered when err
// is nil, else failed, and then s is to report it, which Close waits for.
// It reports whether s is to report it: not when the log was delivered,
// nor when Close gave up on it while Publish ran and reported it.
func (lg *Logger) settle(p *publisher, s *seat, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.publishing, s.log = false, Log{}
	if s.cut {
		s.cut = false
		return false
	}
	p.held--
	if err == nil {
		p.delivered++
		lg.checkDrained(p)
		return false
	}
	p.failed++
	s.reporting = true
	p.reporting++
	return true
}

// reported records that s is back from the error handler, and reports
// whether its goroutine still holds it.
func (lg *Logger) reported(p *publisher, s *seat) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.reporting = false
	if s.taken {
		return false
	}
	p.reporting--
	lg.checkDrained(p)
	return true
}

// checkDrained notes that p is drained once it is closed and nothing of
// it is held or being reported; p.mu must be held.
func (lg *Logger) checkDrained(p *publisher) {
	if p.drained || !p.closed || p.held > 0 || p.reporting > 0 {
		return
	}
	p.drained = true
	if lg.pub.undrained.Add(-1) == 0 {
		close(lg.pub.drained)
	}
}

// giveSeat gives seat s of p to a new goroutine, and stops waiting for
// the report of the one that held it; p.mu must be held.
func (lg *Logger) giveSeat(p *publisher, s *seat) {
	s.taken = true
	if s.reporting {
		p.reporting--
		lg.checkDrained(p)
	}
	next := &seat{}
	for i := range p.seats {
		if p.seats[i] == s {
			p.seats[i] = next
		}
	}
	go lg.work(p, next)
}

// abandon gives seat s of p, whose goroutine is ending early, to a new
// goroutine, unless Close did already.
func (lg *Logger) abandon(p *publisher, s *seat) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !s.taken {
		lg.giveSeat(p, s)
	}
}

// errGoexit is the error of a log whose Publish call never returned: the
// publisher ended its goroutine with runtime.Goexit.
var errGoexit = errors.New("audit: publisher called runtime.Goexit (as t.Fatal and t.FailNow do) instead of returning")

// Where a worker is, for the clean-up of one whose goroutine ends early.
const (
	atQueue = iota
	inPublish
	inReport
	gone
)

// work runs seat s of p until p's queue is closed and empty, or until s
// is given to another goroutine while this one is in the error handler.
//
// A Publish that panics fails its log. One that calls runtime.Goexit, or
// an error handler that does, ends the goroutine: the log fails all the
// same, and the seat goes to a new goroutine.
func (lg *Logger) work(p *publisher, s *seat) {
	var item queued
	at := atQueue
	defer func() {
		if at == gone {
			return
		}
		// The goroutine is ending early. The seat goes to a new goroutine
		// even if the report below ends this one too.
		defer lg.abandon(p, s)
		if at == inPublish && lg.settle(p, s, errGoexit) {
			lg.onError(&PublishError{Publisher: p.name, Log: item.log, Err: errGoexit})
		}
	}()
	for {
		var ok bool
		if item, ok = p.take(s); !ok {
			at = gone
			return
		}
		at = inPublish
		err := callPublish(publishCtx{Context: lg.pub.life, values: context.WithoutCancel(item.ctx), lg: lg}, p, item.log)
		if !lg.settle(p, s, err) {
			at = atQueue
			continue
		}
		at = inReport
		lg.onError(&PublishError{Publisher: p.name, Log: item.log, Err: err})
		if !lg.reported(p, s) {
			at = gone
			return
		}
		at = atQueue
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
// lifetime, with the values of the context the log was written with, and
// the mark of the Logger whose Publish call it is.
type publishCtx struct {
	context.Context
	values context.Context
	lg     *Logger
}

// publishingKey is the key of the mark of a publishCtx: the Logger whose
// Publish call the context, or the one it derives from, was given to.
type publishingKey struct{}

func (c publishCtx) Value(key any) any {
	if key == any(publishingKey{}) {
		return c.lg
	}
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// errCloseFromPublish is what a Close called with the context of one of
// its own Logger's Publish calls returns.
var errCloseFromPublish = fmt.Errorf("%w: Close was given the context of a Publish call of this Logger, "+
	"so it stopped publishing without waiting for the drain, which waits for that call", ErrClosed)

// Stats returns what the Logger's publishers have done so far, summed
// over all of them. The counts of each publisher are read at one moment,
// under its lock, so the sums keep the equation that PublishStats states:
// Enqueued == Delivered + Failed + Dropped + Queued.
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
	s.Queued += o.Queued
}

// PublisherStats returns what each publisher has done so far, by the name
// given with PublishName (or "publisher-N"). The counts of each publisher
// are read at one moment, as for Stats, and keep the same equation.
func (lg *Logger) PublisherStats() map[string]PublishStats {
	m := make(map[string]PublishStats, len(lg.pubs))
	for _, p := range lg.pubs {
		s := m[p.name] // publishers may share a name; their counts add up
		s.add(p.stats())
		m[p.name] = s
	}
	return m
}

// Close stops publishing and waits for the publishers to finish what is
// queued.
//
// At once, Close stops queueing: Log and Record keep storing logs —
// requests still in flight during a graceful shutdown must be audited —,
// but report each with ErrClosed instead of publishing it, and a Log
// waiting for room in a queue (BlockWhenFull) is freed the same way.
// Then Close waits until every queued log is delivered or has failed, and
// every failure is reported to the error handler, or until ctx ends.
// When ctx ends first, Close gives up: it drops the logs still queued, and
// fails those whose Publish call still runs, whose context it cancels.
// It does not wait for those calls, so it reports their logs as failed
// with an error that says they may be delivered yet, and ignores what the
// calls return. Close reports the logs it gives up itself, and returns an
// error wrapping ctx's cause that counts them.
//
// Close may be called from any goroutine, the error handler included,
// and more than once. Every call waits for the same drain, bounded by its
// own ctx: the first ctx to end gives up for all of them. Every call
// returns the same result, once the drain is over: nil when nothing was
// given up, else the error of the give-up (but see below for a Close
// given the ctx of a Publish call). The Close that gives up reports what
// it gave up before it returns, but the others do not wait for those
// reports, since the error handler called for them may itself call Close:
// a Close may return while the logs that another Close gave up on are
// still being reported to the error handler.
//
// The drain does not wait for error handler calls that were running when
// a Close was called, since one of them may be that Close's caller: their
// publisher goes on with another goroutine. A handler that calls Close may
// be called again from within that Close, for a log it gives up.
//
// The drain waits for every Publish call, so a Close called from Publish —
// directly, or from the error handler of a Log that Publish called —
// cannot wait for it. Given the ctx of that Publish call, or a context
// derived from it, Close stops queueing and returns at once an error
// wrapping ErrClosed that says so; the drain goes on without it, for the
// other Close calls to wait for. Given another ctx, it waits for the very
// Publish call it was called from, so it returns only when that ctx ends,
// giving up. Closing a Logger without publishers does nothing.
func (lg *Logger) Close(ctx context.Context) error {
	if len(lg.pubs) == 0 {
		return nil
	}
	ps := &lg.pub
	ps.stopOnce.Do(lg.stopQueueing)
	if ctx.Value(publishingKey{}) == lg {
		return errCloseFromPublish
	}
	// A seat whose goroutine is in the error handler may be the one
	// calling Close: it goes to a new goroutine, which takes the rest of
	// the queue, and the drain waits for that goroutine, not this one.
	for _, p := range lg.pubs {
		p.mu.Lock()
		for _, s := range p.seats {
			if s.reporting && !s.taken {
				lg.giveSeat(p, s)
			}
		}
		p.mu.Unlock()
	}
	select {
	case <-ps.over:
	case <-ps.drained:
		lg.endDrain(nil)
	case <-ctx.Done():
		lg.endDrain(context.Cause(ctx))
	}
	return ps.outcome
}

// stopQueueing closes every queue, once.
func (lg *Logger) stopQueueing() {
	close(lg.pub.closing) // frees the Logs waiting for room
	for _, p := range lg.pubs {
		p.mu.Lock()
		p.closed = true
		p.ready.Broadcast()
		lg.checkDrained(p)
		p.mu.Unlock()
	}
}

// endDrain declares the drain over, unless it is already: when every
// publisher is drained, with no error; else, when the ctx of a Close ended
// with cause, by giving up what is left.
func (lg *Logger) endDrain(cause error) {
	ps := &lg.pub
	ps.mu.Lock()
	select {
	case <-ps.over:
		ps.mu.Unlock()
		return
	default:
	}
	select {
	case <-ps.drained:
		cause = nil
	default:
	}
	if cause == nil {
		ps.cancel(ErrClosed)
		close(ps.over)
		ps.mu.Unlock()
		return
	}
	// What is queued is dropped. What is being published fails now: the
	// call is canceled, and Close does not wait for it, so its outcome is
	// not known; it may deliver the log yet.
	cut := fmt.Errorf("audit: Close gave up while the log was being published, which may deliver it yet: %w", cause)
	var lost []*PublishError
	var dropped, failed int
	for _, p := range lg.pubs {
		p.mu.Lock()
		for p.n > 0 {
			item := p.pop()
			p.held--
			p.dropped++
			lost = append(lost, &PublishError{Publisher: p.name, Log: item.log, Err: cause})
			dropped++
		}
		for _, s := range p.seats {
			if s.publishing && !s.cut {
				s.cut = true
				p.held--
				p.failed++
				lost = append(lost, &PublishError{Publisher: p.name, Log: s.log, Err: cut})
				failed++
			}
		}
		lg.checkDrained(p)
		p.mu.Unlock()
	}
	ps.cancel(cause)
	if len(lost) > 0 {
		ps.outcome = fmt.Errorf("audit: closing: %d logs not published (%d dropped from the queues, %d cut short while being published): %w",
			len(lost), dropped, failed, cause)
	}
	close(ps.over)
	ps.mu.Unlock()
	for _, e := range lost {
		lg.onError(e)
	}
}
