package audit

import "context"

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
