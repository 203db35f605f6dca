package audit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// detach returns a context that carries ctx's values but not its
// cancellation, and that ends timeout after start (never, if timeout <= 0);
// start must be a reading of time.Now. The action being audited has already
// happened, so the request ending must not abandon its audit log; the
// timeout keeps a stuck store from holding the caller forever.
//
// The second result is the deadline context, nil when timeout <= 0: call
// its stop once the context is no longer used. The deadline is enforced
// lazily: no timer runs unless someone waits on Done, which keeps the
// common path — a store that only checks Err — cheap.
func detach(ctx context.Context, timeout time.Duration, start time.Time) (context.Context, *deadlineCtx) {
	if ctx.Done() != nil {
		// context.WithoutCancel also hides ctx's cancellation from
		// context.Cause and from contexts derived from the result.
		ctx = context.WithoutCancel(ctx)
	}
	if timeout <= 0 {
		return ctx, nil
	}
	d := &deadlineCtx{Context: ctx, start: start, timeout: timeout}
	return d, d
}

// deadlineCtx is a context that ends timeout after start. Its parent has
// no cancellation of its own.
type deadlineCtx struct {
	context.Context
	start   time.Time // with a monotonic clock reading
	timeout time.Duration

	expired atomic.Bool // set, under mu, once done is closed or left to be made closed
	armed   atomic.Bool // a timer was started
	mu      sync.Mutex
	done    chan struct{} // made on first use
	timer   *time.Timer
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.start.Add(c.timeout), true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		switch d := c.timeout - time.Since(c.start); {
		case c.expired.Load():
			close(c.done)
		case d <= 0:
			c.expireLocked()
		default:
			c.timer = time.AfterFunc(d, c.expire)
			c.armed.Store(true)
		}
	}
	return c.done
}

func (c *deadlineCtx) Err() error {
	if !c.expired.Load() {
		if time.Since(c.start) < c.timeout {
			return nil
		}
		c.expire()
	}
	return context.DeadlineExceeded
}

func (c *deadlineCtx) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
}

func (c *deadlineCtx) expireLocked() {
	if c.expired.Load() {
		return
	}
	if c.done != nil {
		close(c.done)
	}
	c.expired.Store(true)
}

// stop releases the timer, if one was started. c may be nil.
func (c *deadlineCtx) stop() {
	if c == nil || !c.armed.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer.Stop()
}

func (c *deadlineCtx) String() string {
	return contextName(c.Context) + ".WithDeadline(" + c.start.Add(c.timeout).String() + ")"
}
