package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Defaults of a Receiver made without the corresponding ReceiverOption.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultDedupWindow  = time.Hour
	DefaultDedupSize    = 100_000
)

// Receiver is an http.Handler that receives webhooks from a Publisher. For
// each POST it:
//
//   - reads the body, up to a bound (413 Request Entity Too Large beyond),
//   - verifies it as Verify does with any of its secrets (400 Bad Request
//     for missing or malformed headers, 401 Unauthorized for a timestamp
//     out of tolerance or no matching signature),
//   - decodes the Event (400 when it is not one),
//   - answers 204 No Content at once, without calling the handler, for a
//     webhook-id it has accepted before, and 503 Service Unavailable with
//     Retry-After for one whose handling is still in progress,
//   - calls the handler, and answers 204 when it returns nil, or 500
//     Internal Server Error when it returns an error, so that the sender
//     retries; the webhook-id is then not remembered as accepted.
//
// A handler that panics is treated as one that failed: the webhook-id is
// no longer in progress nor accepted, so the sender's retry is handled
// again. The Receiver does not recover the panic, which would hide it: it
// goes on up the stack, where net/http logs it and drops the connection
// (the sender sees a network error and retries), unless a recovery
// middleware around the Receiver answers first.
//
// The handler runs while the sender waits for the response: it should be
// quick, and hand long work to something else. A Receiver remembers
// accepted IDs in memory, for a bounded time and number: behind several
// replicas, or for exactly-once effects, make the handler idempotent too
// (for instance, store logs by ID and treat audit.ErrAlreadyExists as
// done).
//
// A Receiver is safe for concurrent use.
type Receiver struct {
	keys    [][]byte
	handle  func(context.Context, Event) error
	now     func() time.Time
	maxBody int64
	seen    *dedup
}

// ReceiverOption configures a Receiver.
type ReceiverOption func(*receiverConfig)

type receiverConfig struct {
	now         func() time.Time
	maxBody     int64
	dedupWindow time.Duration
	dedupSize   int
}

// ReceiverClock sets the receiver's clock, against which timestamps are
// checked; the default is time.Now.
func ReceiverClock(now func() time.Time) ReceiverOption {
	return func(c *receiverConfig) { c.now = now }
}

// MaxBodyBytes bounds the size of a request body; the default is
// DefaultMaxBodyBytes.
func MaxBodyBytes(n int64) ReceiverOption {
	return func(c *receiverConfig) { c.maxBody = n }
}

// Dedup sets how long an accepted webhook-id is remembered, and how many
// are remembered at most (the oldest are forgotten first). The window
// should cover the sender's whole retry schedule. The defaults are
// DefaultDedupWindow and DefaultDedupSize.
func Dedup(window time.Duration, size int) ReceiverOption {
	return func(c *receiverConfig) { c.dedupWindow, c.dedupSize = window, size }
}

// NewReceiver returns a Receiver that accepts webhooks signed with any of
// secrets and passes each new Event to handle. It returns an error if
// there is no secret, if one is invalid (ErrInvalidSecret), if handle is
// nil, or if an option has a value it does not accept.
func NewReceiver(secrets []string, handle func(ctx context.Context, e Event) error, opts ...ReceiverOption) (*Receiver, error) {
	cfg := receiverConfig{
		now:         time.Now,
		maxBody:     DefaultMaxBodyBytes,
		dedupWindow: DefaultDedupWindow,
		dedupSize:   DefaultDedupSize,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case len(secrets) == 0:
		return nil, fmt.Errorf("%w: no secret", ErrInvalidSecret)
	case handle == nil:
		return nil, errors.New("webhook: NewReceiver with a nil handler")
	case cfg.now == nil:
		return nil, errors.New("webhook: ReceiverClock(nil)")
	case cfg.maxBody < 1:
		return nil, fmt.Errorf("webhook: MaxBodyBytes(%d), want at least 1", cfg.maxBody)
	case cfg.dedupWindow <= 0 || cfg.dedupSize < 1:
		return nil, fmt.Errorf("webhook: Dedup(%s, %d), want a positive window and size", cfg.dedupWindow, cfg.dedupSize)
	}
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Receiver{
		keys:    keys,
		handle:  handle,
		now:     cfg.now,
		maxBody: cfg.maxBody,
		seen:    newDedup(cfg.dedupWindow, cfg.dedupSize),
	}, nil
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "webhooks are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.maxBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body failed", http.StatusBadRequest)
		return
	}
	now := rc.now()
	if err := verify(rc.keys, r.Header, body, now); err != nil {
		code := http.StatusUnauthorized
		if errors.Is(err, ErrMissingHeaders) || errors.Is(err, ErrInvalidTimestamp) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil {
		http.Error(w, "body is not a webhook event", http.StatusBadRequest)
		return
	}
	e.ID = r.Header.Get(HeaderID)

	switch rc.seen.begin(e.ID, now) {
	case accepted:
		w.WriteHeader(http.StatusNoContent) // a duplicate: done before
		return
	case inProgress:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "this webhook-id is being handled", http.StatusServiceUnavailable)
		return
	}
	// Unless the handler returns nil, the ID must stop being "in progress",
	// or every retry of it would get 503 for the life of the Receiver. The
	// abort is deferred so that it also runs when the handler panics: the
	// panic then goes on, to net/http or the caller's recovery middleware.
	done := false
	defer func() {
		if !done {
			rc.seen.abort(e.ID)
		}
	}()
	if err := rc.handle(r.Context(), e); err != nil {
		http.Error(w, "handling the event failed", http.StatusInternalServerError)
		return
	}
	rc.seen.accept(e.ID, rc.now())
	done = true
	w.WriteHeader(http.StatusNoContent)
}

// idState is what a dedup knows of a webhook-id.
type idState int

const (
	unseen idState = iota
	inProgress
	accepted
)

// dedup remembers the webhook-ids being handled, and those accepted
// within a window, up to a number of them.
type dedup struct {
	window time.Duration
	size   int

	mu       sync.Mutex
	handling map[string]bool
	expiry   map[string]time.Time // accepted IDs
	order    []seenID             // accepted IDs, oldest first; may hold stale entries
}

type seenID struct {
	id      string
	expires time.Time
}

func newDedup(window time.Duration, size int) *dedup {
	return &dedup{
		window:   window,
		size:     size,
		handling: make(map[string]bool),
		expiry:   make(map[string]time.Time),
	}
}

// begin returns the state of id and, when it is unseen, marks it as being
// handled.
func (d *dedup) begin(id string, now time.Time) idState {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forget(now)
	if d.handling[id] {
		return inProgress
	}
	if exp, ok := d.expiry[id]; ok && now.Before(exp) {
		return accepted
	}
	d.handling[id] = true
	return unseen
}

// abort forgets that id is being handled.
func (d *dedup) abort(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.handling, id)
}

// accept records that id was handled.
func (d *dedup) accept(id string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.handling, id)
	exp := now.Add(d.window)
	d.expiry[id] = exp
	d.order = append(d.order, seenID{id, exp})
	d.forget(now)
}

// forget drops accepted IDs that expired, and the oldest beyond size.
func (d *dedup) forget(now time.Time) {
	i := 0
	for ; i < len(d.order); i++ {
		s := d.order[i]
		if len(d.expiry) <= d.size && now.Before(s.expires) {
			break
		}
		if exp, ok := d.expiry[s.id]; ok && exp.Equal(s.expires) {
			delete(d.expiry, s.id)
		}
	}
	if i > 0 {
		d.order = d.order[i:]
	}
}
