package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raystack/salt/audit"
)

// Endpoint is a receiver of webhooks.
type Endpoint struct {
	// URL is where logs are POSTed; its scheme is http or https. Prefer
	// https: the signature proves where a log came from, but does not hide
	// it.
	URL string
	// Secrets sign every delivery, each with a signature of its own. One is
	// needed; give two while the receiver moves from the old secret to the
	// new one. Each is written SecretPrefix + base64, as NewSecret makes.
	Secrets []string
}

// Defaults of a Publisher made without the corresponding Option.
const (
	DefaultAttemptTimeout = 15 * time.Second
	DefaultMaxConcurrency = 16
)

var (
	// ErrGone is the cause of a DeliveryError when the endpoint answered
	// 410 Gone: it wants no more webhooks, and the Publisher has disabled
	// it.
	ErrGone = errors.New("webhook: endpoint answered 410 Gone and is disabled")
	// ErrNoEndpoints is returned by Publish when every endpoint of the
	// Publisher has been disabled.
	ErrNoEndpoints = errors.New("webhook: every endpoint is disabled")
	// ErrUnsupportedID is returned by Publish for a log whose ID cannot be
	// a webhook-id: empty, or with a '.' (which would make the signed
	// content ambiguous), or with a byte that is not printable ASCII.
	ErrUnsupportedID = errors.New("webhook: log ID cannot be a webhook-id")
)

// DeliveryError reports a log that was not delivered to one endpoint.
type DeliveryError struct {
	URL        string // the endpoint's URL, as configured
	Attempts   int    // requests made
	StatusCode int    // of the last response; 0 when there was none
	Err        error  // why the last attempt failed
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("webhook: not delivered to %s after %d attempt(s): %v", redactURL(e.URL), e.Attempts, e.Err)
}

// Unwrap returns e.Err.
func (e *DeliveryError) Unwrap() error { return e.Err }

// redactURL returns u without its user info and query, which may hold
// credentials, for error messages.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid URL>"
	}
	p.User, p.RawQuery, p.ForceQuery = nil, "", false
	return p.String()
}

// Publisher is an audit.Publisher that delivers each log to a set of
// endpoints as a Standard Webhook; see the package documentation for the
// format, the signatures and the retries. It is safe for concurrent use,
// so it may be attached with any number of workers.
type Publisher struct {
	endpoints   []*endpoint
	client      *http.Client
	ownsClient  bool
	timeout     time.Duration
	retry       RetryPolicy
	inFlight    chan struct{} // a token per request in flight
	now         func() time.Time
	maxRespBody int64
}

type endpoint struct {
	url      string
	keys     [][]byte
	disabled atomic.Bool
}

var _ audit.Publisher = (*Publisher)(nil)

// config collects the options of NewPublisher.
type config struct {
	client      *http.Client
	clientSet   bool
	timeout     time.Duration
	retry       RetryPolicy
	concurrency int
	now         func() time.Time
}

// Option configures a Publisher.
type Option func(*config)

// WithHTTPClient makes the Publisher send with c: its Transport (TLS
// settings, proxy) and Timeout apply, but redirects are never followed,
// whatever c's CheckRedirect says (c itself is not changed). The default
// is a client of the Publisher's own, with a transport like
// http.DefaultTransport.
func WithHTTPClient(c *http.Client) Option {
	return func(cfg *config) { cfg.client, cfg.clientSet = c, true }
}

// WithAttemptTimeout bounds each attempt, from sending the request until
// the response, and what is read of its body, has arrived; the time spent
// waiting for a free request (see WithMaxConcurrency) is not counted. It
// must be more than 0; the default is DefaultAttemptTimeout.
func WithAttemptTimeout(d time.Duration) Option {
	return func(cfg *config) { cfg.timeout = d }
}

// WithRetry sets the retry policy; the default is DefaultRetryPolicy.
func WithRetry(rp RetryPolicy) Option {
	return func(cfg *config) { cfg.retry = rp }
}

// WithMaxConcurrency bounds the number of requests the Publisher has in
// flight at once, over all its endpoints and Publish calls; a delivery
// waiting to retry holds no request. It must be at least 1; the default is
// DefaultMaxConcurrency.
func WithMaxConcurrency(n int) Option {
	return func(cfg *config) { cfg.concurrency = n }
}

// WithClock sets the function that gives the current time, for the
// webhook-timestamp header and for Retry-After dates; the default is
// time.Now. Waiting between attempts uses real timers regardless.
func WithClock(now func() time.Time) Option {
	return func(cfg *config) { cfg.now = now }
}

// NewPublisher returns a Publisher that delivers to endpoints. It returns
// an error if there is no endpoint, if an endpoint has a URL that is not
// absolute http or https, no secret or an invalid one (ErrInvalidSecret),
// or if an option has a value it does not accept.
func NewPublisher(endpoints []Endpoint, opts ...Option) (*Publisher, error) {
	cfg := config{
		timeout:     DefaultAttemptTimeout,
		retry:       DefaultRetryPolicy(),
		concurrency: DefaultMaxConcurrency,
		now:         time.Now,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case len(endpoints) == 0:
		return nil, errors.New("webhook: no endpoints")
	case cfg.clientSet && cfg.client == nil:
		return nil, errors.New("webhook: WithHTTPClient(nil)")
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("webhook: attempt timeout is %s, want more than 0", cfg.timeout)
	case cfg.concurrency < 1:
		return nil, fmt.Errorf("webhook: max concurrency is %d, want at least 1", cfg.concurrency)
	case cfg.now == nil:
		return nil, errors.New("webhook: WithClock(nil)")
	}
	if err := cfg.retry.validate(); err != nil {
		return nil, err
	}

	p := &Publisher{
		timeout:     cfg.timeout,
		retry:       cfg.retry,
		inFlight:    make(chan struct{}, cfg.concurrency),
		now:         cfg.now,
		maxRespBody: 64 << 10,
	}
	for i, e := range endpoints {
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook: endpoint %d: URL %q is not an absolute http or https URL", i, redactURL(e.URL))
		}
		if len(e.Secrets) == 0 {
			return nil, fmt.Errorf("webhook: endpoint %d (%s): no secret", i, redactURL(e.URL))
		}
		keys, err := parseSecrets(e.Secrets)
		if err != nil {
			return nil, fmt.Errorf("webhook: endpoint %d (%s): %w", i, redactURL(e.URL), err)
		}
		p.endpoints = append(p.endpoints, &endpoint{url: e.URL, keys: keys})
	}

	if cfg.client != nil {
		c := *cfg.client
		p.client = &c
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.concurrency
		p.client, p.ownsClient = &http.Client{Transport: t}, true
	}
	p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return p, nil
}

// Publish delivers log to every endpoint that is not disabled,
// concurrently, and returns once each delivery succeeded or failed for
// good. It returns nil when every delivery succeeded; otherwise the
// *DeliveryError of each endpoint that failed, joined. It returns
// ErrNoEndpoints when every endpoint is disabled, and ErrUnsupportedID for
// a log whose ID cannot be a webhook-id.
//
// Publish stops retrying, and stops waiting for a response, when ctx
// ends. It does not modify log.
func (p *Publisher) Publish(ctx context.Context, log audit.Log) error {
	if err := checkID(log.ID); err != nil {
		return err
	}
	body, err := json.Marshal(Event{Type: log.Action, Timestamp: log.CreatedAt, Data: log})
	if err != nil {
		return fmt.Errorf("webhook: encoding log %s: %w", log.ID, err)
	}
	var targets []*endpoint
	for _, ep := range p.endpoints {
		if !ep.disabled.Load() {
			targets = append(targets, ep)
		}
	}
	switch len(targets) {
	case 0:
		return ErrNoEndpoints
	case 1:
		return p.deliver(ctx, targets[0], log.ID, body)
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, ep := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.deliver(ctx, ep, log.ID, body)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func checkID(id string) error {
	if id == "" {
		return ErrUnsupportedID
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '.' || c <= ' ' || c > '~' {
			return fmt.Errorf("%w: %q", ErrUnsupportedID, truncate(id))
		}
	}
	return nil
}

// Disabled returns the URLs of the endpoints that answered 410 Gone, in
// the order they were given to NewPublisher. A disabled endpoint gets no
// more webhooks from this Publisher; to send to it again, make a new one.
func (p *Publisher) Disabled() []string {
	var urls []string
	for _, ep := range p.endpoints {
		if ep.disabled.Load() {
			urls = append(urls, ep.url)
		}
	}
	return urls
}

// CloseIdleConnections closes the idle connections of the Publisher's own
// HTTP client; call it once the Logger the Publisher is attached to is
// closed. It does nothing for a client given with WithHTTPClient, which
// belongs to the caller.
func (p *Publisher) CloseIdleConnections() {
	if p.ownsClient {
		p.client.CloseIdleConnections()
	}
}

// outcome is how an attempt ended.
type outcome int

const (
	delivered outcome = iota
	retry             // a transient failure: try again
	permanent         // a failure that trying again would not change
	gone              // 410: disable the endpoint
)

// deliver delivers body to ep, retrying as p's policy says.
func (p *Publisher) deliver(ctx context.Context, ep *endpoint, id string, body []byte) error {
	sent := 0 // requests made
	for n := 1; ; n++ {
		res := p.attempt(ctx, ep, id, body)
		if res.sent {
			sent++
		}
		fail := func(err error) error {
			return &DeliveryError{URL: ep.url, Attempts: sent, StatusCode: res.status, Err: err}
		}
		switch res.outcome {
		case delivered:
			return nil
		case gone:
			ep.disabled.Store(true)
			return fail(ErrGone)
		case permanent:
			return fail(res.err)
		}
		if n == p.retry.Attempts {
			return fail(res.err)
		}
		if err := sleep(ctx, p.retry.delay(n, res.retryAfter)); err != nil {
			return fail(fmt.Errorf("%w; stopped retrying: %w", res.err, err))
		}
		if ep.disabled.Load() {
			// Another delivery learned meanwhile that the endpoint is gone.
			return fail(ErrGone)
		}
	}
}

// result is the result of one attempt.
type result struct {
	sent       bool // the request was sent
	outcome    outcome
	status     int
	retryAfter time.Duration
	err        error
}

// attempt makes one request.
func (p *Publisher) attempt(ctx context.Context, ep *endpoint, id string, body []byte) result {
	select {
	case p.inFlight <- struct{}{}:
	case <-ctx.Done():
		return result{outcome: permanent, err: ctx.Err()}
	}
	defer func() { <-p.inFlight }()

	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return result{outcome: permanent, err: err}
	}
	unix := p.now().Unix()
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	req.Header.Set(HeaderSignature, signatureHeader(ep.keys, id, unix, body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "salt-audit-webhook")

	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || errors.As(err, new(*tls.CertificateVerificationError)) {
			// The publisher is stopping, or the endpoint cannot be trusted
			// until its certificate or the configuration changes.
			return result{sent: true, outcome: permanent, err: err}
		}
		return result{sent: true, outcome: retry, err: err}
	}
	// Read some of the body, so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, p.maxRespBody))
	_ = resp.Body.Close()

	res := result{sent: true, status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		res.outcome = delivered
		return res
	case code == http.StatusGone:
		res.outcome = gone
	case code == http.StatusTooManyRequests || code >= 500:
		res.outcome = retry
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), p.now())
	default:
		res.outcome = permanent
	}
	res.err = fmt.Errorf("status %s", resp.Status)
	return res
}

// sleep waits for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
