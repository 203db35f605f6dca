package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

// request is what a test server saw of one request.
type request struct {
	method string
	header http.Header
	body   []byte
}

// recorder is a handler that records each request, then answers with
// the status that respond returns for it (numbered from 1).
type recorder struct {
	mu       sync.Mutex
	requests []request
	respond  func(n int, w http.ResponseWriter, r *http.Request) int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body)) // for respond to read again
	rec.mu.Lock()
	rec.requests = append(rec.requests, request{r.Method, r.Header.Clone(), body})
	n := len(rec.requests)
	rec.mu.Unlock()
	code := http.StatusNoContent
	if rec.respond != nil {
		code = rec.respond(n, w, r)
	}
	w.WriteHeader(code)
}

func (rec *recorder) all() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.requests)
}

func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) int {
	return func(n int, _ http.ResponseWriter, _ *http.Request) int {
		return codes[min(n, len(codes))-1]
	}
}

func TestPublishDelivers(t *testing.T) {
	var got []webhook.Event
	var mu sync.Mutex
	rc := mustReceiver(t, []string{secretA}, func(e webhook.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		return nil
	})
	var raw request
	srv := withServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw = request{r.Method, r.Header.Clone(), body}
		checkReference(t, secretA, r.Header, body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc.ServeHTTP(w, r)
	}))
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}})

	l := testLog(1)
	before := l.Clone()
	sent := time.Now()
	if err := p.Publish(context.Background(), l); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if !reflect.DeepEqual(l, before) {
		t.Errorf("Publish modified the log: got %+v, want %+v", l, before)
	}

	if raw.method != http.MethodPost {
		t.Errorf("got method %s, want POST", raw.method)
	}
	if ct := raw.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	if id := raw.header.Get(webhook.HeaderID); id != l.ID {
		t.Errorf("got webhook-id %q, want the log ID %q: receivers deduplicate by it", id, l.ID)
	}
	ts, err := strconv.ParseInt(raw.header.Get(webhook.HeaderTimestamp), 10, 64)
	if err != nil || ts < sent.Unix()-1 || ts > time.Now().Unix()+1 {
		t.Errorf("got webhook-timestamp %q, want the Unix seconds of sending (%d)", raw.header.Get(webhook.HeaderTimestamp), sent.Unix())
	}

	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 3 || body["type"] == nil || body["timestamp"] == nil || body["data"] == nil {
		t.Errorf("got body %s, want exactly type, timestamp and data", raw.body)
	}
	if s := string(body["type"]); s != `"app.user.created"` {
		t.Errorf("got type %s, want the log's action", s)
	}
	if s := string(body["timestamp"]); s != `"2025-03-01T12:00:00.123456Z"` {
		t.Errorf("got timestamp %s, want the log's CreatedAt in RFC 3339", s)
	}
	var data audit.Log
	if err := json.Unmarshal(body["data"], &data); err != nil || !reflect.DeepEqual(data, l) {
		t.Errorf("got data %s (%v), want the log %+v", body["data"], err, l)
	}

	want := []webhook.Event{{ID: l.ID, Type: l.Action, Timestamp: l.CreatedAt, Data: l}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the receiver's handler got %+v, want %+v", got, want)
	}
}

func TestPublishHTTPS(t *testing.T) {
	var delivered atomic.Int32
	rc := mustReceiver(t, []string{secretA}, func(webhook.Event) error {
		delivered.Add(1)
		return nil
	})
	srv := httptest.NewTLSServer(rc)
	t.Cleanup(srv.Close)
	ep := []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}}

	trusting := mustPublisher(t, ep, webhook.WithHTTPClient(srv.Client()))
	if err := trusting.Publish(context.Background(), testLog(1)); err != nil {
		t.Fatalf("Publish over HTTPS: %v", err)
	}
	if n := delivered.Load(); n != 1 {
		t.Errorf("got %d deliveries, want 1", n)
	}

	// The default client does not trust the test server's certificate:
	// that is not retried, since no retry would change it.
	untrusting := mustPublisher(t, ep, webhook.WithRetry(fastRetry))
	err := untrusting.Publish(context.Background(), testLog(2))
	var de *webhook.DeliveryError
	if !errors.As(err, &de) || de.Attempts != 1 {
		t.Errorf("got %v, want a DeliveryError after 1 attempt: an untrusted certificate is not retried", err)
	}
}

func TestPublishSignsWithEverySecret(t *testing.T) {
	rec := &recorder{}
	srv := withServer(t, rec)
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretB, secretA}}})
	if err := p.Publish(context.Background(), testLog(1)); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	// During a rotation the receiver knows the old secret, the new one, or
	// both: each must accept the request.
	for _, secrets := range [][]string{{secretA}, {secretB}, {secretA, secretB}} {
		for _, s := range secrets {
			checkReference(t, s, r.header, r.body)
			if err := webhook.Verify(s, r.header, r.body); err != nil {
				t.Errorf("Verify with %s: got %v, want accepted", s[:10], err)
			}
		}
		var handled int
		rc := mustReceiver(t, secrets, func(webhook.Event) error { handled++; return nil })
		w := serve(rc, r)
		if w.Code != http.StatusNoContent || handled != 1 {
			t.Errorf("receiver with %d secret(s): got status %d and %d events, want 204 and 1", len(secrets), w.Code, handled)
		}
	}
	if err := webhook.Verify(secretC, r.header, r.body); !errors.Is(err, webhook.ErrInvalidSignature) {
		t.Errorf("Verify with an unrelated secret: got %v, want ErrInvalidSignature", err)
	}
}

func TestPublishRetriesDeliverOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		// fail wraps the receiver; it fails the first request either
		// before the receiver sees it, or after the receiver handled it
		// (as a proxy timing out would).
		failAfterHandling bool
	}{
		{"500 before the receiver", false},
		{"500 after the receiver handled it", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var handled []webhook.Event
			var mu sync.Mutex
			rc := mustReceiver(t, []string{secretA}, func(e webhook.Event) error {
				mu.Lock()
				defer mu.Unlock()
				handled = append(handled, e)
				return nil
			})
			rec := &recorder{respond: func(n int, _ http.ResponseWriter, r *http.Request) int {
				if n == 1 && !tt.failAfterHandling {
					return http.StatusInternalServerError
				}
				rr := httptest.NewRecorder()
				rc.ServeHTTP(rr, r)
				if n == 1 {
					return http.StatusInternalServerError
				}
				return rr.Code
			}}
			srv := withServer(t, rec)
			p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}}, webhook.WithRetry(fastRetry))

			l := testLog(1)
			if err := p.Publish(context.Background(), l); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			reqs := rec.all()
			if len(reqs) != 2 {
				t.Fatalf("got %d requests, want 2: one failed, one retry", len(reqs))
			}
			for i, r := range reqs {
				if id := r.header.Get(webhook.HeaderID); id != l.ID {
					t.Errorf("request %d: got webhook-id %q, want %q on every attempt", i+1, id, l.ID)
				}
				checkReference(t, secretA, r.header, r.body)
			}
			if len(handled) != 1 || handled[0].ID != l.ID {
				t.Errorf("the handler got %d events, want exactly 1 for %s", len(handled), l.ID)
			}
		})
	}
}

// serve replays a recorded request to h.
func serve(h http.Handler, r request) *httptest.ResponseRecorder {
	req := httptest.NewRequest(r.method, "/", bytes.NewReader(r.body))
	req.Header = r.header.Clone()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestPublishStatusHandling(t *testing.T) {
	for _, tt := range []struct {
		code     int
		attempts int // requests made with fastRetry's 3 attempts
	}{
		{http.StatusOK, 1},
		{http.StatusAccepted, 1},
		{http.StatusMovedPermanently, 1}, // redirects are not followed
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusNotFound, 1},
		{http.StatusRequestTimeout, 1},
		{http.StatusUnprocessableEntity, 1},
		{http.StatusTooManyRequests, 3},
		{http.StatusInternalServerError, 3},
		{http.StatusBadGateway, 3},
		{http.StatusServiceUnavailable, 3},
		{http.StatusGatewayTimeout, 3},
	} {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			var redirected atomic.Int32
			elsewhere := withServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Add(1) }))
			rec := &recorder{respond: func(_ int, w http.ResponseWriter, _ *http.Request) int {
				w.Header().Set("Location", elsewhere.URL)
				return tt.code
			}}
			srv := withServer(t, rec)
			p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}}, webhook.WithRetry(fastRetry))

			err := p.Publish(context.Background(), testLog(1))
			if got := len(rec.all()); got != tt.attempts {
				t.Errorf("got %d requests, want %d", got, tt.attempts)
			}
			if redirected.Load() != 0 {
				t.Error("the redirect was followed")
			}
			if tt.code < 300 {
				if err != nil {
					t.Errorf("got %v, want delivered", err)
				}
				return
			}
			var de *webhook.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DeliveryError", err)
			}
			if de.StatusCode != tt.code || de.Attempts != tt.attempts || de.URL != srv.URL {
				t.Errorf("got %+v, want status %d after %d attempts to %s", de, tt.code, tt.attempts, srv.URL)
			}
		})
	}
}

func TestPublishRetriesNetworkErrors(t *testing.T) {
	rec := &recorder{respond: func(n int, w http.ResponseWriter, _ *http.Request) int {
		if n == 1 {
			// Drop the connection without a response.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return 0
		}
		return http.StatusOK
	}}
	srv := withServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.ServeHTTP(hijackOnly{w}, r)
	}))
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}}, webhook.WithRetry(fastRetry))
	if err := p.Publish(context.Background(), testLog(1)); err != nil {
		t.Errorf("got %v, want delivered on the second attempt", err)
	}
	if n := len(rec.all()); n != 2 {
		t.Errorf("got %d requests, want 2", n)
	}
}

// hijackOnly ignores WriteHeader after the connection was hijacked.
type hijackOnly struct{ http.ResponseWriter }

func (h hijackOnly) WriteHeader(code int) {
	if code != 0 {
		h.ResponseWriter.WriteHeader(code)
	}
}

func (h hijackOnly) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.ResponseWriter.(http.Hijacker).Hijack()
}

func TestPublishRespectsRetryAfter(t *testing.T) {
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		retryAfter string
	}{
		{"seconds", "3600"},
		{"HTTP date", clock.Add(time.Hour).Format(http.TimeFormat)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var times []time.Time
			rec := &recorder{respond: func(n int, w http.ResponseWriter, _ *http.Request) int {
				times = append(times, time.Now())
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			}}
			srv := withServer(t, rec)
			// Base is 1ms, so only Retry-After can make the wait longer;
			// Max caps what it asks for (an hour) to 100ms.
			rp := webhook.RetryPolicy{Attempts: 2, Base: time.Millisecond, Max: 100 * time.Millisecond}
			p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}},
				webhook.WithRetry(rp), webhook.WithClock(func() time.Time { return clock }))
			if err := p.Publish(context.Background(), testLog(1)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if len(times) != 2 {
				t.Fatalf("got %d requests, want 2", len(times))
			}
			if gap := times[1].Sub(times[0]); gap < rp.Max || gap > 5*time.Second {
				t.Errorf("got %s between attempts, want Retry-After (an hour) respected up to the policy's Max (%s)", gap, rp.Max)
			}
		})
	}
}

func TestPublishGoneDisablesEndpoint(t *testing.T) {
	gone := &recorder{respond: statuses(http.StatusGone)}
	ok := &recorder{}
	goneSrv, okSrv := withServer(t, gone), withServer(t, ok)
	p := mustPublisher(t, []webhook.Endpoint{
		{URL: goneSrv.URL, Secrets: []string{secretA}},
		{URL: okSrv.URL, Secrets: []string{secretB}},
	}, webhook.WithRetry(fastRetry))

	err := p.Publish(context.Background(), testLog(1))
	var de *webhook.DeliveryError
	if !errors.Is(err, webhook.ErrGone) || !errors.As(err, &de) || de.URL != goneSrv.URL || de.Attempts != 1 {
		t.Fatalf("got %v, want ErrGone for %s after 1 attempt", err, goneSrv.URL)
	}
	if got := p.Disabled(); !reflect.DeepEqual(got, []string{goneSrv.URL}) {
		t.Errorf("Disabled: got %v, want [%s]", got, goneSrv.URL)
	}
	if err := p.Publish(context.Background(), testLog(2)); err != nil {
		t.Errorf("second Publish: got %v, want nil: the disabled endpoint is skipped", err)
	}
	if n, m := len(gone.all()), len(ok.all()); n != 1 || m != 2 {
		t.Errorf("got %d requests to the gone endpoint and %d to the other, want 1 and 2", n, m)
	}

	only := mustPublisher(t, []webhook.Endpoint{{URL: goneSrv.URL, Secrets: []string{secretA}}})
	_ = only.Publish(context.Background(), testLog(3))
	if err := only.Publish(context.Background(), testLog(4)); !errors.Is(err, webhook.ErrNoEndpoints) {
		t.Errorf("got %v, want ErrNoEndpoints once every endpoint is disabled", err)
	}
}

func TestPublishAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	rec := &recorder{respond: func(_ int, _ http.ResponseWriter, r *http.Request) int {
		select {
		case <-r.Context().Done(): // the sender gave up
		case <-release:
		}
		return http.StatusOK
	}}
	srv := withServer(t, rec)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}},
		webhook.WithAttemptTimeout(50*time.Millisecond),
		webhook.WithRetry(webhook.RetryPolicy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}))

	start := time.Now()
	err := p.Publish(context.Background(), testLog(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	var de *webhook.DeliveryError
	if !errors.As(err, &de) || de.Attempts != 2 {
		t.Errorf("got %v, want 2 attempts: a timed-out attempt is retried", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Publish took %s, want about 2 × 50ms", d)
	}
}

func TestPublishStopsWhenCtxEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{respond: func(int, http.ResponseWriter, *http.Request) int {
		cancel() // the Logger's drain deadline passes during the first attempt
		return http.StatusServiceUnavailable
	}}
	srv := withServer(t, rec)
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}},
		webhook.WithRetry(webhook.RetryPolicy{Attempts: 5, Base: time.Hour, Max: time.Hour}))

	start := time.Now()
	err := p.Publish(ctx, testLog(1))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error wrapping context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Publish took %s, want it to return when ctx ends, not after the backoff", d)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("got %d requests, want 1", n)
	}
}

func TestPublishBoundsConcurrency(t *testing.T) {
	const limit, endpoints, logs = 3, 4, 6
	var inFlight, peak atomic.Int32
	reached := make(chan struct{}) // closed once limit requests were in flight together
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p; p = peak.Load() {
			if peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n >= limit {
			once.Do(func() { close(reached) })
		}
		// Hold the request so that others pile up: until the bound was
		// reached (or it seems it cannot be), then briefly.
		select {
		case <-reached:
			time.Sleep(2 * time.Millisecond)
		case <-time.After(500 * time.Millisecond):
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var eps []webhook.Endpoint
	for range endpoints {
		eps = append(eps, webhook.Endpoint{URL: withServer(t, h).URL, Secrets: []string{secretA}})
	}
	p := mustPublisher(t, eps, webhook.WithMaxConcurrency(limit))

	var wg sync.WaitGroup
	for i := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Publish(context.Background(), testLog(i)); err != nil {
				t.Errorf("Publish: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := peak.Load(); got != limit {
		t.Errorf("got at most %d requests in flight at once, want %d: the bound, reached", got, limit)
	}
}

func TestPublishRejectsUnusableIDs(t *testing.T) {
	srv := withServer(t, &recorder{})
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}})
	for _, id := range []string{"", "a.b", "two words", "line\nbreak", "ü"} {
		l := testLog(1)
		l.ID = id
		if err := p.Publish(context.Background(), l); !errors.Is(err, webhook.ErrUnsupportedID) {
			t.Errorf("ID %q: got %v, want ErrUnsupportedID", id, err)
		}
	}
}

func TestNewPublisherRejectsBadConfig(t *testing.T) {
	ok := webhook.Endpoint{URL: "https://hooks.example.com/audit", Secrets: []string{secretA}}
	for _, tt := range []struct {
		name      string
		endpoints []webhook.Endpoint
		opts      []webhook.Option
	}{
		{"no endpoints", nil, nil},
		{"relative URL", []webhook.Endpoint{{URL: "/audit", Secrets: []string{secretA}}}, nil},
		{"other scheme", []webhook.Endpoint{{URL: "ftp://example.com/x", Secrets: []string{secretA}}}, nil},
		{"no secret", []webhook.Endpoint{{URL: ok.URL}}, nil},
		{"invalid secret", []webhook.Endpoint{{URL: ok.URL, Secrets: []string{"whsec_short"}}}, nil},
		{"nil client", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithHTTPClient(nil)}},
		{"zero timeout", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithAttemptTimeout(0)}},
		{"zero concurrency", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithMaxConcurrency(0)}},
		{"no attempts", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithRetry(webhook.RetryPolicy{Base: time.Second, Max: time.Second})}},
		{"zero base", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithRetry(webhook.RetryPolicy{Attempts: 3, Max: time.Second})}},
		{"max below base", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithRetry(webhook.RetryPolicy{Attempts: 3, Base: time.Second, Max: time.Millisecond})}},
		{"max beyond 24h", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithRetry(webhook.RetryPolicy{Attempts: 3, Base: time.Second, Max: math.MaxInt64})}},
		{"nil clock", []webhook.Endpoint{ok}, []webhook.Option{webhook.WithClock(nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.NewPublisher(tt.endpoints, tt.opts...); err == nil {
				t.Error("got nil, want an error")
			}
		})
	}
	if _, err := webhook.NewPublisher([]webhook.Endpoint{{URL: ok.URL, Secrets: []string{"whsec_short"}}}); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("got %v, want ErrInvalidSecret", err)
	}
}

func TestDeliveryErrorHidesCredentials(t *testing.T) {
	err := &webhook.DeliveryError{URL: "https://user:pass@hooks.example.com/audit?token=s3cret", Attempts: 1, Err: errors.New("status 500")}
	msg := err.Error()
	for _, secret := range []string{"pass", "s3cret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("got %q, want no credentials from the URL", msg)
		}
	}
	if !strings.Contains(msg, "hooks.example.com/audit") {
		t.Errorf("got %q, want the endpoint named", msg)
	}
}
