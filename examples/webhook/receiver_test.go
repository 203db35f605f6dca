package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/examples/webhook"
)

// signedRequest is a request as a Publisher sends it, for log i, signed
// with secret at ts, built independently with the reference
// implementation.
func signedRequest(t *testing.T, secret string, i int, ts time.Time) request {
	t.Helper()
	l := testLog(i)
	body, err := json.Marshal(webhook.Event{Type: l.Action, Timestamp: l.CreatedAt, Data: l})
	if err != nil {
		t.Fatal(err)
	}
	return request{http.MethodPost, referenceSign(t, secret, l.ID, ts, body), body}
}

func TestReceiver(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fresh := signedRequest(t, secretA, 1, now)

	for _, tt := range []struct {
		name    string
		req     request
		code    int
		handled int
	}{
		{"valid", fresh, http.StatusNoContent, 1},
		{"wrong secret", signedRequest(t, secretB, 1, now), http.StatusUnauthorized, 0},
		{"replayed old request", signedRequest(t, secretA, 1, now.Add(-6*time.Minute)), http.StatusUnauthorized, 0},
		{"tampered body", request{fresh.method, fresh.header, bytes.Replace(fresh.body, []byte("created"), []byte("deleted"), 1)}, http.StatusUnauthorized, 0},
		{"missing headers", request{fresh.method, http.Header{}, fresh.body}, http.StatusBadRequest, 0},
		{"not POST", request{http.MethodGet, fresh.header, nil}, http.StatusMethodNotAllowed, 0},
		{"body too large", request{fresh.method, fresh.header, bytes.Repeat([]byte(" "), 2<<20)}, http.StatusRequestEntityTooLarge, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			handled := 0
			rc := mustReceiver(t, []string{secretA}, func(e webhook.Event) error {
				handled++
				if e.ID != testLog(1).ID || e.Data.ID != e.ID || e.Type != "app.user.created" {
					t.Errorf("got event %+v, want log 1 with its ID as the event ID", e)
				}
				return nil
			}, webhook.ReceiverClock(clock))
			w := serve(rc, tt.req)
			if w.Code != tt.code || handled != tt.handled {
				t.Errorf("got status %d and %d handler calls, want %d and %d (%s)", w.Code, handled, tt.code, tt.handled, strings.TrimSpace(w.Body.String()))
			}
		})
	}
}

func TestReceiverDeduplicates(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	handled := 0
	fail := true
	rc := mustReceiver(t, []string{secretA}, func(webhook.Event) error {
		handled++
		if fail {
			return errors.New("database down")
		}
		return nil
	}, webhook.ReceiverClock(func() time.Time { return *clock.Load() }), webhook.Dedup(time.Hour, 10))

	first := signedRequest(t, secretA, 1, now)
	if w := serve(rc, first); w.Code != http.StatusInternalServerError || handled != 1 {
		t.Fatalf("failing handler: got status %d after %d calls, want 500 after 1: the sender must retry", w.Code, handled)
	}
	fail = false
	retry := signedRequest(t, secretA, 1, now.Add(time.Second))
	if w := serve(rc, retry); w.Code != http.StatusNoContent || handled != 2 {
		t.Fatalf("retry after a failure: got status %d after %d calls, want 204 after 2: a failed event is not remembered", w.Code, handled)
	}
	// The same webhook-id again, with a fresh valid signature: accepted,
	// not handled again.
	again := signedRequest(t, secretA, 1, now.Add(2*time.Second))
	if w := serve(rc, again); w.Code != http.StatusNoContent || handled != 2 {
		t.Errorf("duplicate: got status %d after %d calls, want 204 and no new call", w.Code, handled)
	}
	// A replay of the accepted request within the tolerance is a duplicate
	// too; after it, it is too old.
	if w := serve(rc, retry); w.Code != http.StatusNoContent || handled != 2 {
		t.Errorf("replay within tolerance: got status %d after %d calls, want 204 and no new call", w.Code, handled)
	}
	later := now.Add(webhook.Tolerance + 2*time.Second)
	clock.Store(&later)
	if w := serve(rc, retry); w.Code != http.StatusUnauthorized || handled != 2 {
		t.Errorf("replay after the tolerance: got status %d after %d calls, want 401 and no new call", w.Code, handled)
	}

	// Beyond the dedup window the ID is forgotten.
	muchLater := now.Add(2 * time.Hour)
	clock.Store(&muchLater)
	if w := serve(rc, signedRequest(t, secretA, 1, muchLater)); w.Code != http.StatusNoContent || handled != 3 {
		t.Errorf("after the dedup window: got status %d after %d calls, want 204 and a new call", w.Code, handled)
	}
}

func TestReceiverDedupIsBounded(t *testing.T) {
	now := time.Now()
	handled := map[string]int{}
	rc := mustReceiver(t, []string{secretA}, func(e webhook.Event) error {
		handled[e.ID]++
		return nil
	}, webhook.Dedup(time.Hour, 3))
	for i := range 5 {
		serve(rc, signedRequest(t, secretA, i, now))
	}
	// IDs 2, 3 and 4 are remembered; 0 was forgotten to make room.
	serve(rc, signedRequest(t, secretA, 4, now))
	serve(rc, signedRequest(t, secretA, 0, now))
	if handled[testLog(4).ID] != 1 || handled[testLog(0).ID] != 2 {
		t.Errorf("got %v, want log 4 handled once (remembered) and log 0 twice (forgotten, oldest first)", handled)
	}
}

func TestReceiverInProgressDuplicate(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int32
	rc := mustReceiver(t, []string{secretA}, func(webhook.Event) error {
		if handled.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	})
	req := signedRequest(t, secretA, 1, time.Now())
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(rc, req) }()
	<-entered

	// The sender timed out and retried while the first delivery is still
	// being handled: it is asked to come back later.
	w := serve(rc, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("got status %d, Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	close(release)
	if w := <-done; w.Code != http.StatusNoContent {
		t.Errorf("first delivery: got status %d, want 204", w.Code)
	}
	if n := handled.Load(); n != 1 {
		t.Errorf("got %d handler calls, want 1", n)
	}
}

// TestReceiverHandlerPanics: a handler that panics does not leave its
// webhook-id "in progress", where every retry would get 503 for good. The
// panic itself goes on, for net/http or a recovery middleware.
func TestReceiverHandlerPanics(t *testing.T) {
	var handled atomic.Int32
	rc := mustReceiver(t, []string{secretA}, func(webhook.Event) error {
		if handled.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	req := signedRequest(t, secretA, 1, time.Now())
	func() {
		defer func() {
			if v := recover(); v != "handler bug" {
				t.Errorf("got panic %v, want the handler's panic to go on up the stack", v)
			}
		}()
		serve(rc, req)
	}()
	if w := serve(rc, req); w.Code != http.StatusNoContent || handled.Load() != 2 {
		t.Errorf("retry after a panic: got status %d after %d calls, want 204 after 2", w.Code, handled.Load())
	}
	if w := serve(rc, req); w.Code != http.StatusNoContent || handled.Load() != 2 {
		t.Errorf("duplicate after the retry: got status %d after %d calls, want 204 and no new call", w.Code, handled.Load())
	}
}

// TestPublishRetriesAfterReceiverPanics: over a real server, net/http
// recovers the handler's panic and drops the connection; the Publisher
// retries, and the Receiver handles the retry instead of answering 503.
func TestPublishRetriesAfterReceiverPanics(t *testing.T) {
	var handled atomic.Int32
	rc := mustReceiver(t, []string{secretA}, func(webhook.Event) error {
		if handled.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	srv := httptest.NewUnstartedServer(rc)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panic's stack trace
	srv.Start()
	t.Cleanup(srv.Close)
	p := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}}, webhook.WithRetry(fastRetry))
	if err := p.Publish(context.Background(), testLog(1)); err != nil {
		t.Errorf("got %v, want delivered by the retry", err)
	}
	if n := handled.Load(); n != 2 {
		t.Errorf("got %d handler calls, want 2: the one that panicked, and the retry", n)
	}
}

func TestNewReceiverRejectsBadConfig(t *testing.T) {
	handle := func(context.Context, webhook.Event) error { return nil }
	for _, tt := range []struct {
		name    string
		secrets []string
		handle  func(context.Context, webhook.Event) error
		opts    []webhook.ReceiverOption
	}{
		{"no secret", nil, handle, nil},
		{"invalid secret", []string{"whsec_short"}, handle, nil},
		{"nil handler", []string{secretA}, nil, nil},
		{"nil clock", []string{secretA}, handle, []webhook.ReceiverOption{webhook.ReceiverClock(nil)}},
		{"zero body size", []string{secretA}, handle, []webhook.ReceiverOption{webhook.MaxBodyBytes(0)}},
		{"zero dedup window", []string{secretA}, handle, []webhook.ReceiverOption{webhook.Dedup(0, 10)}},
		{"zero dedup size", []string{secretA}, handle, []webhook.ReceiverOption{webhook.Dedup(time.Hour, 0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.NewReceiver(tt.secrets, tt.handle, tt.opts...); err == nil {
				t.Error("got nil, want an error")
			}
		})
	}
}
